package sink

import (
	"bytes"
	"encoding/base64"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/detect"
)

// spoolVersion is the version of the spool record encodeAlert writes. A
// record is a JSON object {"v":2,"alert":{…}}, whose fields are named by
// the json tags below, not by Go field names, so that renaming a field in
// detect or audit cannot change the format on disk: the round-trip and
// golden tests fail instead. docs/sinks.md ("The spool on disk") documents
// every field. A reader of version N reads every version up to N, and
// version 1 (encoding/gob of detect.Alert, written before encwatch had
// versioned records) is still read, so an upgrade loses no spooled alert.
const spoolVersion = 2

// bstr is a string that may hold any bytes (argv, paths, comm…). It is
// written as a JSON string when it is valid UTF-8, and otherwise as
// {"b64":"…"} holding the standard base64 of its exact bytes, because
// encoding/json would replace invalid UTF-8 with U+FFFD.
type bstr string

// MarshalJSON writes s as a JSON string, or as {"b64":…} when s is not
// valid UTF-8.
func (s bstr) MarshalJSON() ([]byte, error) {
	if utf8.ValidString(string(s)) {
		return json.Marshal(string(s))
	}
	b := append([]byte(`{"b64":"`), base64.StdEncoding.EncodeToString([]byte(s))...)
	return append(b, `"}`...), nil
}

// UnmarshalJSON reads either form MarshalJSON writes.
func (s *bstr) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '{' {
		var o struct {
			B64 string `json:"b64"`
		}
		if err := json.Unmarshal(b, &o); err != nil {
			return err
		}
		raw, err := base64.StdEncoding.DecodeString(o.B64)
		if err != nil {
			return fmt.Errorf("b64: %w", err)
		}
		*s = bstr(raw)
		return nil
	}
	var v string
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = bstr(v)
	return nil
}

func bstrs(ss []string) []bstr {
	if ss == nil {
		return nil
	}
	out := make([]bstr, len(ss))
	for i, s := range ss {
		out[i] = bstr(s)
	}
	return out
}

func strs(bs []bstr) []string {
	if bs == nil {
		return nil
	}
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = string(b)
	}
	return out
}

// spoolRecord is a version-2 spool record.
type spoolRecord struct {
	V     int         `json:"v"`
	Alert *spoolAlert `json:"alert"`
}

type spoolAlert struct {
	ID          bstr           `json:"id"`
	Time        time.Time      `json:"time"` // RFC 3339, nanoseconds and offset kept
	Host        bstr           `json:"host"`
	Environment bstr           `json:"environment"`
	Signature   spoolSignature `json:"signature"`
	Event       *spoolEvent    `json:"event,omitempty"`
	Ancestry    []spoolProcess `json:"ancestry,omitempty"`
	Matches     []spoolMatch   `json:"matches,omitempty"`
	Actions     []bstr         `json:"actions,omitempty"`
	Payload     *spoolPayload  `json:"payload,omitempty"`
	Throttled   uint64         `json:"throttled,omitempty"`
	Mode        bstr           `json:"mode,omitempty"`
	User        bstr           `json:"user,omitempty"`
	LoginUser   bstr           `json:"login_user,omitempty"`
	ContainerID bstr           `json:"container_id,omitempty"`
	Related     []spoolProcess `json:"related,omitempty"`
	Subject     bstr           `json:"subject,omitempty"`
	ClaimedHost bstr           `json:"claimed_host,omitempty"`
}

type spoolSignature struct {
	Name        bstr   `json:"name"`
	Description bstr   `json:"description"`
	Category    bstr   `json:"category"`
	Method      bstr   `json:"method"`
	Importance  int    `json:"importance"` // 0 info … 4 critical
	MITRE       []bstr `json:"mitre,omitempty"`
}

type spoolProcess struct {
	PID  int    `json:"pid"`
	PPID int    `json:"ppid"`
	Exe  bstr   `json:"exe"`
	Argv []bstr `json:"argv"`
	UID  uint32 `json:"uid"`
}

type spoolMatch struct {
	Field  bstr `json:"field"`
	Value  bstr `json:"value"`
	Reason bstr `json:"reason"`
}

type spoolPayload struct {
	Encoding bstr `json:"encoding"`
	Length   int  `json:"length"`
	Kind     bstr `json:"kind"`
	Preview  bstr `json:"preview"`
}

type spoolEvent struct {
	Time       time.Time   `json:"time"`
	Serial     uint64      `json:"serial"`
	Node       bstr        `json:"node,omitempty"`
	Arch       uint32      `json:"arch"`
	Syscall    int         `json:"syscall"`
	Success    bool        `json:"success"`
	Exit       int64       `json:"exit"`
	PID        int         `json:"pid"`
	PPID       int         `json:"ppid"`
	UID        uint32      `json:"uid"`
	EUID       uint32      `json:"euid"`
	SUID       uint32      `json:"suid"`
	FSUID      uint32      `json:"fsuid"`
	GID        uint32      `json:"gid"`
	EGID       uint32      `json:"egid"`
	SGID       uint32      `json:"sgid"`
	FSGID      uint32      `json:"fsgid"`
	AUID       uint32      `json:"auid"`
	Session    uint32      `json:"session"`
	TTY        bstr        `json:"tty"`
	Comm       bstr        `json:"comm"`
	Exe        bstr        `json:"exe"`
	Key        bstr        `json:"key"`
	Subject    bstr        `json:"subject"`
	Argc       int         `json:"argc"`
	Argv       []bstr      `json:"argv"`
	Cwd        bstr        `json:"cwd"`
	Paths      []spoolPath `json:"paths,omitempty"`
	Proctitle  bstr        `json:"proctitle"`
	Records    int         `json:"records"`
	Incomplete bool        `json:"incomplete,omitempty"`

	// ArgvFromProctitle is new since version 2's first records; those
	// lack it and decode as false (argv from EXECVE).
	ArgvFromProctitle bool `json:"argv_from_proctitle,omitempty"`
	// NoSyscall is new in issue 26; records without it decode as false.
	NoSyscall bool `json:"no_syscall,omitempty"`
}

type spoolPath struct {
	Item     int    `json:"item"`
	Name     bstr   `json:"name"`
	Inode    uint64 `json:"inode"`
	Dev      bstr   `json:"dev"`
	Mode     uint32 `json:"mode"`
	OUID     uint32 `json:"ouid,omitempty"`
	Nametype bstr   `json:"nametype"`
}

// encodeAlert appends the spool encoding of a to dst: a version-2 record.
func encodeAlert(dst *bytes.Buffer, a *detect.Alert) error {
	if err := json.NewEncoder(dst).Encode(spoolRecord{V: spoolVersion, Alert: toSpool(a)}); err != nil {
		return fmt.Errorf("encode alert: %w", err)
	}
	return nil
}

// decodeAlert is the inverse of encodeAlert. It also reads version 1, the
// gob records of earlier releases: a gob stream never starts with '{' and
// a version-1 record fails to parse as JSON, so the two cannot be confused.
func decodeAlert(b []byte) (detect.Alert, error) {
	if len(b) > 0 && b[0] == '{' {
		var rec spoolRecord
		err := json.Unmarshal(b, &rec)
		switch {
		case err == nil && rec.V == spoolVersion && rec.Alert != nil:
			return fromSpool(rec.Alert), nil
		case err == nil:
			return detect.Alert{}, fmt.Errorf("decode alert: spool record version %d: want %d", rec.V, spoolVersion)
		}
		// Not JSON: a gob stream whose first byte happened to be '{'.
	}
	a, err := decodeGob(b)
	if err != nil {
		return detect.Alert{}, fmt.Errorf("decode alert: %w", err)
	}
	return a, nil
}

// decodeGob reads a version-1 record: one self-contained encoding/gob
// stream of detect.Alert.
func decodeGob(b []byte) (detect.Alert, error) {
	var a detect.Alert
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&a); err != nil {
		return detect.Alert{}, errors.Join(errors.New("neither a version-2 record nor a gob one"), err)
	}
	return a, nil
}

func toSpool(a *detect.Alert) *spoolAlert {
	s := &spoolAlert{
		ID: bstr(a.ID), Time: a.Time, Host: bstr(a.Host), Environment: bstr(a.Environment),
		Signature: spoolSignature{
			Name: bstr(a.Signature.Name), Description: bstr(a.Signature.Description),
			Category: bstr(a.Signature.Category), Method: bstr(a.Signature.Method),
			Importance: int(a.Signature.Importance), MITRE: bstrs(a.Signature.MITRE),
		},
		Ancestry: toSpoolProcs(a.Ancestry), Actions: bstrs(a.Actions), Throttled: a.Throttled, Mode: bstr(a.Mode),
		User: bstr(a.User), LoginUser: bstr(a.LoginUser), ContainerID: bstr(a.ContainerID),
		Related: toSpoolProcs(a.Related), Subject: bstr(a.Subject), ClaimedHost: bstr(a.ClaimedHost),
	}
	for _, m := range a.Matches {
		s.Matches = append(s.Matches, spoolMatch{Field: bstr(m.Field), Value: bstr(m.Value), Reason: bstr(m.Reason)})
	}
	if p := a.Payload; p != nil {
		s.Payload = &spoolPayload{Encoding: bstr(p.Encoding), Length: p.Length, Kind: bstr(p.Kind), Preview: bstr(p.Preview)}
	}
	if e := a.Event; e != nil {
		s.Event = &spoolEvent{
			Time: e.Time, Serial: e.Serial, Node: bstr(e.Node), Arch: e.Arch, Syscall: e.Syscall,
			Success: e.Success, Exit: e.Exit, PID: e.PID, PPID: e.PPID,
			UID: e.UID, EUID: e.EUID, SUID: e.SUID, FSUID: e.FSUID,
			GID: e.GID, EGID: e.EGID, SGID: e.SGID, FSGID: e.FSGID, AUID: e.AUID, Session: e.Session,
			TTY: bstr(e.TTY), Comm: bstr(e.Comm), Exe: bstr(e.Exe), Key: bstr(e.Key), Subject: bstr(e.Subject),
			Argc: e.Argc, Argv: bstrs(e.Argv), ArgvFromProctitle: e.ArgvFromProctitle, Cwd: bstr(e.Cwd), Proctitle: bstr(e.Proctitle),
			Records: e.Records, Incomplete: e.Incomplete, NoSyscall: e.NoSyscall,
		}
		for _, p := range e.Paths {
			s.Event.Paths = append(s.Event.Paths, spoolPath{
				Item: p.Item, Name: bstr(p.Name), Inode: p.Inode, Dev: bstr(p.Dev), Mode: p.Mode, OUID: p.OUID, Nametype: bstr(p.Nametype),
			})
		}
	}
	return s
}

func toSpoolProcs(ps []detect.Process) []spoolProcess {
	var out []spoolProcess
	for _, p := range ps {
		out = append(out, spoolProcess{PID: p.PID, PPID: p.PPID, Exe: bstr(p.Exe), Argv: bstrs(p.Argv), UID: p.UID})
	}
	return out
}

func fromSpool(s *spoolAlert) detect.Alert {
	a := detect.Alert{
		ID: string(s.ID), Time: s.Time, Host: string(s.Host), Environment: string(s.Environment),
		Signature: detect.SignatureInfo{
			Name: string(s.Signature.Name), Description: string(s.Signature.Description),
			Category: string(s.Signature.Category), Method: string(s.Signature.Method),
			Importance: detect.Importance(s.Signature.Importance), MITRE: strs(s.Signature.MITRE),
		},
		Ancestry: fromSpoolProcs(s.Ancestry), Actions: strs(s.Actions), Throttled: s.Throttled, Mode: string(s.Mode),
		User: string(s.User), LoginUser: string(s.LoginUser), ContainerID: string(s.ContainerID),
		Related: fromSpoolProcs(s.Related), Subject: string(s.Subject), ClaimedHost: string(s.ClaimedHost),
	}
	for _, m := range s.Matches {
		a.Matches = append(a.Matches, detect.Match{Field: string(m.Field), Value: string(m.Value), Reason: string(m.Reason)})
	}
	if p := s.Payload; p != nil {
		a.Payload = &detect.Payload{Encoding: string(p.Encoding), Length: p.Length, Kind: string(p.Kind), Preview: string(p.Preview)}
	}
	if e := s.Event; e != nil {
		a.Event = &audit.Event{
			Time: e.Time, Serial: e.Serial, Node: string(e.Node), Arch: e.Arch, Syscall: e.Syscall,
			Success: e.Success, Exit: e.Exit, PID: e.PID, PPID: e.PPID,
			UID: e.UID, EUID: e.EUID, SUID: e.SUID, FSUID: e.FSUID,
			GID: e.GID, EGID: e.EGID, SGID: e.SGID, FSGID: e.FSGID, AUID: e.AUID, Session: e.Session,
			TTY: string(e.TTY), Comm: string(e.Comm), Exe: string(e.Exe), Key: string(e.Key), Subject: string(e.Subject),
			Argc: e.Argc, Argv: strs(e.Argv), ArgvFromProctitle: e.ArgvFromProctitle, Cwd: string(e.Cwd), Proctitle: string(e.Proctitle),
			Records: e.Records, Incomplete: e.Incomplete, NoSyscall: e.NoSyscall,
		}
		for _, p := range e.Paths {
			a.Event.Paths = append(a.Event.Paths, audit.Path{
				Item: p.Item, Name: string(p.Name), Inode: p.Inode, Dev: string(p.Dev), Mode: p.Mode, OUID: p.OUID, Nametype: string(p.Nametype),
			})
		}
	}
	return a
}

func fromSpoolProcs(ps []spoolProcess) []detect.Process {
	var out []detect.Process
	for _, p := range ps {
		out = append(out, detect.Process{PID: p.PID, PPID: p.PPID, Exe: string(p.Exe), Argv: strs(p.Argv), UID: p.UID})
	}
	return out
}

// EncodeRecord returns a's versioned record: the spool's encoding (see
// docs/sinks.md "The spool on disk") without its final newline, for a sink
// that carries the whole alert beside a body in another format.
func EncodeRecord(a *detect.Alert) ([]byte, error) {
	var b bytes.Buffer
	if err := encodeAlert(&b, a); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// DecodeRecord reads a versioned record (EncodeRecord's, or a spool's)
// back into an alert.
func DecodeRecord(b []byte) (detect.Alert, error) { return decodeAlert(b) }

package sink

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/encwatch/encwatch/detect"
)

// ContentJSON is the content type of a format whose encoding of one alert
// is a JSON object.
const ContentJSON = "application/json"

// FormatKind is an alert format as it registers, as a sink type does: its
// name (what a sink's format or payload attribute and replay's --format
// name), the MIME type of one encoded alert, and its encoder's constructor.
// Every sink that takes a format and replay take every registered one.
type FormatKind struct {
	Name string
	// ContentType is the MIME type of one encoded alert. ContentJSON marks
	// a JSON object: the Elasticsearch sink requires one, and the HTTP
	// sinks send it as JSON rather than text.
	ContentType string
	// New returns the encoder for o.
	New func(o FormatOptions) Format
}

// FormatOptions are what a format's encoder is made for.
type FormatOptions struct {
	// Version is the product version the formats report: ECS
	// observer.version, OCSF metadata.product.version, the CEF and LEEF
	// headers.
	Version string
	// Terminal says the output is a terminal a person reads: a format for
	// people may colour it. Sinks never set it.
	Terminal bool
}

// formats holds every registered format, in registration order (the order
// messages and help list them): the built-in ones, set before any init
// function runs, then those RegisterFormat adds from init functions.
var formats = builtinFormats()

// RegisterFormat adds a format. It is meant for init functions and panics on
// a duplicate or incomplete format, a programming error.
func RegisterFormat(k FormatKind) {
	if k.Name == "" || k.ContentType == "" || k.New == nil {
		panic("sink: RegisterFormat: a format needs a name, a content type and New")
	}
	if _, dup := LookupFormat(k.Name); dup {
		panic("sink: RegisterFormat: duplicate format " + k.Name)
	}
	formats = append(formats, k)
}

// Formats returns the names of the registered formats, in registration
// order.
func Formats() []string {
	names := make([]string, len(formats))
	for i, k := range formats {
		names[i] = k.Name
	}
	return names
}

// LookupFormat returns the format called name ("" is json).
func LookupFormat(name string) (FormatKind, bool) {
	if name == "" {
		name = "json"
	}
	for _, k := range formats {
		if k.Name == name {
			return k, true
		}
	}
	return FormatKind{}, false
}

// NewFormat returns the encoder of the format called name ("" is json).
func NewFormat(name string, o FormatOptions) (Format, error) {
	k, ok := LookupFormat(name)
	if !ok {
		return nil, fmt.Errorf("unknown format %q: want %s", name, strings.Join(Formats(), ", "))
	}
	return k.New(o), nil
}

// builtinFormats are encwatch's own formats, in the order messages list
// them.
func builtinFormats() []FormatKind {
	versioned := func(f func([]byte, *detect.Alert, string) []byte) func(FormatOptions) Format {
		return func(o FormatOptions) Format {
			return func(dst []byte, a *detect.Alert) []byte { return f(dst, a, o.Version) }
		}
	}
	return []FormatKind{
		{Name: "json", ContentType: ContentJSON, New: func(FormatOptions) Format { return AppendJSON }},
		{Name: "ecs", ContentType: ContentJSON, New: versioned(appendECS)},
		{Name: "ocsf", ContentType: ContentJSON, New: versioned(appendOCSF)},
		{Name: "cef", ContentType: "text/plain; charset=utf-8", New: versioned(appendCEF)},
		{Name: "leef", ContentType: "text/plain; charset=utf-8", New: versioned(appendLEEFEvent)},
		{Name: "text", ContentType: "text/plain; charset=utf-8", New: func(o FormatOptions) Format { return textFormat(o.Terminal) }},
	}
}

// ecsSeverity maps an importance to ECS event.severity and event.risk_score
// (0-100), on the scale of Elastic's detection rules (low 21, medium 47,
// high 73, critical 99).
var ecsSeverity = [...]int{detect.Info: 1, detect.Low: 21, detect.Medium: 47, detect.High: 73, detect.Critical: 99}

// ocsfSeverity maps an importance to OCSF severity_id: 1 Informational,
// 2 Low, 3 Medium, 4 High, 5 Critical.
var ocsfSeverity = [...]int{detect.Info: 1, detect.Low: 2, detect.Medium: 3, detect.High: 4, detect.Critical: 5}

// cefSeverity maps an importance to the CEF and LEEF 0-10 severity.
var cefSeverity = [...]int{detect.Info: 1, detect.Low: 3, detect.Medium: 5, detect.High: 8, detect.Critical: 10}

func severityOf(table []int, i detect.Importance) int {
	if i < 0 || int(i) >= len(table) {
		return table[0]
	}
	return table[i]
}

// appendECS appends a as one Elastic Common Schema (ECS 8) document: an
// event.kind "alert" of category "process", type "start", with process.*,
// process.parent.*, rule.*, threat.* and host.name. Fields ECS has no name
// for are under "encwatch". Strings are escaped as by AppendJSON, so the
// document is valid UTF-8 JSON on one line; when an argument of argv is not
// valid UTF-8, encwatch.args_b64 holds its exact bytes, and
// encwatch.args_source is "proctitle" when argv was split from PROCTITLE.
//
// It is longer than 80 lines because it writes the document field by field
// in output order: read top to bottom, it is the document's layout.
func appendECS(dst []byte, a *detect.Alert, version string) []byte {
	s := &a.Signature
	dst = append(dst, `{"@timestamp":"`...)
	dst = a.Time.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","ecs":{"version":"8.11.0"},"event":{"kind":"alert","category":["process"],"type":["start"],"module":"encwatch","dataset":"encwatch.alert","id":`...)
	dst = appendString(dst, a.ID)
	dst = append(dst, `,"severity":`...)
	dst = strconv.AppendInt(dst, int64(severityOf(ecsSeverity[:], s.Importance)), 10)
	dst = append(dst, `,"risk_score":`...)
	dst = strconv.AppendInt(dst, int64(severityOf(ecsSeverity[:], s.Importance)), 10)
	dst = append(dst, `},"message":`...)
	dst = appendString(dst, s.Description)
	dst = append(dst, `,"host":{"name":`...)
	dst = appendString(dst, a.Host)
	dst = append(dst, `},"observer":{"product":"encwatch","vendor":"encwatch","version":`...)
	dst = appendString(dst, version)
	dst = append(dst, `},"rule":{"name":`...)
	dst = appendString(dst, s.Name)
	dst = append(dst, `,"description":`...)
	dst = appendString(dst, s.Description)
	dst = append(dst, `,"category":`...)
	dst = appendString(dst, s.Category)
	dst = append(dst, `}`...)
	if len(s.MITRE) > 0 {
		dst = append(dst, `,"threat":{"framework":"MITRE ATT&CK","technique":{"id":`...)
		dst = appendStrings(dst, s.MITRE)
		dst = append(dst, `}}`...)
	}
	var argv []string
	if e := a.Event; e != nil {
		argv = e.Argv
		dst = append(dst, `,"process":{"pid":`...)
		dst = strconv.AppendInt(dst, int64(e.PID), 10)
		dst = append(dst, `,"executable":`...)
		dst = appendString(dst, e.Exe)
		dst = append(dst, `,"name":`...)
		dst = appendString(dst, baseName(e.Exe))
		dst = append(dst, `,"args":`...)
		dst = appendStrings(dst, e.Argv)
		dst = append(dst, `,"args_count":`...)
		dst = strconv.AppendInt(dst, int64(len(e.Argv)), 10)
		dst = append(dst, `,"command_line":`...)
		dst = appendString(dst, strings.Join(e.Argv, " "))
		dst = append(dst, `,"working_directory":`...)
		dst = appendString(dst, e.Cwd)
		dst = append(dst, `,"user":{"id":"`...)
		dst = strconv.AppendUint(dst, uint64(e.UID), 10)
		dst = append(dst, `"},"group":{"id":"`...)
		dst = strconv.AppendUint(dst, uint64(e.GID), 10)
		dst = append(dst, `"},"parent":{"pid":`...)
		if len(a.Ancestry) > 0 {
			p := &a.Ancestry[0]
			dst = strconv.AppendInt(dst, int64(p.PID), 10)
			dst = append(dst, `,"executable":`...)
			dst = appendString(dst, p.Exe)
			dst = append(dst, `,"name":`...)
			dst = appendString(dst, baseName(p.Exe))
			dst = append(dst, `,"args":`...)
			dst = appendStrings(dst, p.Argv)
			dst = append(dst, `,"user":{"id":"`...)
			dst = strconv.AppendUint(dst, uint64(p.UID), 10)
			dst = append(dst, `"}`...)
		} else {
			dst = strconv.AppendInt(dst, int64(e.PPID), 10)
		}
		dst = append(dst, `}}`...)
		dst = append(dst, `,"user":{"id":"`...)
		dst = strconv.AppendUint(dst, uint64(e.UID), 10)
		dst = append(dst, '"')
		if a.User != "" {
			dst = append(dst, `,"name":`...)
			dst = appendString(dst, a.User)
		}
		dst = append(dst, '}')
		if a.ContainerID != "" {
			dst = append(dst, `,"container":{"id":`...)
			dst = appendString(dst, a.ContainerID)
			dst = append(dst, '}')
		}
	}
	dst = append(dst, `,"labels":{"environment":`...)
	dst = appendString(dst, a.Environment)
	dst = append(dst, `},"encwatch":{"method":`...)
	dst = appendString(dst, s.Method)
	dst = appendFleet(dst, a, ``, `,"subject":`, `,"claimed_host":`, ``)
	dst = append(dst, `,"importance":`...)
	dst = appendString(dst, s.Importance.String())
	dst = append(dst, `,"actions":`...)
	dst = appendStrings(dst, a.Actions)
	if a.Mode != "" {
		dst = append(dst, `,"mode":`...)
		dst = appendString(dst, a.Mode)
	}
	if a.Event != nil && a.Event.ArgvFromProctitle {
		dst = append(dst, `,"args_source":"proctitle"`...)
	}
	if !allValid(argv) {
		dst = append(dst, `,"args_b64":`...)
		dst = appendB64s(dst, argv)
	}
	dst = appendPayloadThrottled(dst, a)
	return append(dst, `}}`...)
}

// appendOCSF appends a as one OCSF 1.1 Process Activity event (class_uid
// 1007, category_uid 1 System Activity, activity_id 1 Launch, type_uid
// 100701), with the signature as finding_info (analytic, MITRE ATT&CK
// techniques). OCSF has no argv array, so unmapped.args carries it.
// Escaping is AppendJSON's; when an argument of argv is not valid UTF-8,
// unmapped.args_b64 holds its exact bytes; unmapped.args_source is
// "proctitle" when argv was split from PROCTITLE.
func appendOCSF(dst []byte, a *detect.Alert, version string) []byte {
	s := &a.Signature
	sev := severityOf(ocsfSeverity[:], s.Importance)
	dst = append(dst, `{"class_uid":1007,"class_name":"Process Activity","category_uid":1,"category_name":"System Activity","activity_id":1,"activity_name":"Launch","type_uid":100701,"type_name":"Process Activity: Launch","severity_id":`...)
	dst = strconv.AppendInt(dst, int64(sev), 10)
	dst = append(dst, `,"severity":`...)
	dst = appendString(dst, ocsfSeverityName(sev))
	dst = append(dst, `,"status_id":1,"status":"Success","time":`...)
	dst = strconv.AppendInt(dst, a.Time.UnixMilli(), 10)
	dst = append(dst, `,"message":`...)
	dst = appendString(dst, s.Description)
	dst = append(dst, `,"metadata":{"version":"1.1.0","uid":`...)
	dst = appendString(dst, a.ID)
	dst = append(dst, `,"product":{"name":"encwatch","vendor_name":"encwatch","version":`...)
	dst = appendString(dst, version)
	dst = append(dst, `}},"device":{"hostname":`...)
	dst = appendString(dst, a.Host)
	dst = append(dst, `,"type_id":0},"finding_info":{"uid":`...)
	dst = appendString(dst, a.ID)
	dst = append(dst, `,"title":`...)
	dst = appendString(dst, s.Name)
	dst = append(dst, `,"desc":`...)
	dst = appendString(dst, s.Description)
	dst = append(dst, `,"types":[`...)
	dst = appendString(dst, s.Category)
	dst = append(dst, `],"analytic":{"name":`...)
	dst = appendString(dst, s.Name)
	dst = append(dst, `,"category":`...)
	dst = appendString(dst, s.Category)
	dst = append(dst, `,"type_id":1,"type":"Rule"},"attacks":[`...)
	for i, id := range s.MITRE {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"technique":{"uid":`...)
		dst = appendString(dst, id)
		dst = append(dst, `}}`...)
	}
	dst = append(dst, `]}`...)
	var argv []string
	if e := a.Event; e != nil {
		argv = e.Argv
		dst = append(dst, `,"process":`...)
		dst = appendOCSFProcess(dst, e.PID, e.Exe, e.Argv, e.UID, e.Cwd)
		dst = dst[:len(dst)-1] // reopen the process object for its parent
		dst = append(dst, `,"parent_process":`...)
		if len(a.Ancestry) > 0 {
			p := &a.Ancestry[0]
			dst = appendOCSFProcess(dst, p.PID, p.Exe, p.Argv, p.UID, "")
		} else {
			dst = append(dst, `{"pid":`...)
			dst = strconv.AppendInt(dst, int64(e.PPID), 10)
			dst = append(dst, '}')
		}
		dst = append(dst, `},"actor":{"user":{"uid":"`...)
		dst = strconv.AppendUint(dst, uint64(e.UID), 10)
		dst = append(dst, `"}}`...)
	}
	dst = append(dst, `,"unmapped":{"environment":`...)
	dst = appendString(dst, a.Environment)
	dst = appendFleet(dst, a, ``, `,"subject":`, `,"claimed_host":`, ``)
	dst = append(dst, `,"importance":`...)
	dst = appendString(dst, s.Importance.String())
	dst = append(dst, `,"actions":`...)
	dst = appendStrings(dst, a.Actions)
	if a.Event != nil {
		dst = append(dst, `,"args":`...)
		dst = appendStrings(dst, argv)
		if a.Event.ArgvFromProctitle {
			dst = append(dst, `,"args_source":"proctitle"`...)
		}
	}
	if a.Mode != "" {
		dst = append(dst, `,"mode":`...)
		dst = appendString(dst, a.Mode)
	}
	if !allValid(argv) {
		dst = append(dst, `,"args_b64":`...)
		dst = appendB64s(dst, argv)
	}
	return append(dst, `}}`...)
}

func appendOCSFProcess(dst []byte, pid int, exe string, argv []string, uid uint32, cwd string) []byte {
	dst = append(dst, `{"pid":`...)
	dst = strconv.AppendInt(dst, int64(pid), 10)
	dst = append(dst, `,"cmd_line":`...)
	dst = appendString(dst, strings.Join(argv, " "))
	dst = append(dst, `,"file":{"path":`...)
	dst = appendString(dst, exe)
	dst = append(dst, `,"name":`...)
	dst = appendString(dst, baseName(exe))
	dst = append(dst, `,"type_id":1},"user":{"uid":"`...)
	dst = strconv.AppendUint(dst, uint64(uid), 10)
	dst = append(dst, `"}`...)
	if cwd != "" {
		dst = append(dst, `,"working_directory":`...)
		dst = appendString(dst, cwd)
	}
	return append(dst, '}')
}

func ocsfSeverityName(id int) string {
	return [...]string{"Unknown", "Informational", "Low", "Medium", "High", "Critical"}[id]
}

func allValid(ss []string) bool {
	for _, s := range ss {
		if !utf8.ValidString(s) {
			return false
		}
	}
	return true
}

func appendB64s(dst []byte, ss []string) []byte {
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, []byte(s))
		dst = append(dst, '"')
	}
	return append(dst, ']')
}

// appendCEF appends a as one ArcSight Common Event Format (CEF:0) line,
// without a trailing newline:
//
//	CEF:0|encwatch|encwatch|VERSION|SIGNATURE|DESCRIPTION|SEVERITY|EXTENSION
//
// Header fields escape '\' and '|' with a backslash; extension values
// escape '\' and '=', and write LF and CR as the two characters \n and \r,
// as the CEF specification says. Characters CEF has no escape for (other C0
// and C1 controls, DEL, the Unicode line separators and bidi controls) and
// bytes that are not UTF-8 become U+FFFD, so a record is always one line
// that no argument can split or extend. argv is also carried exactly, as a
// JSON array in cs2 (JSON escapes every control character), and, when an
// argument is not valid UTF-8, as base64 in flexString1.
//
// Extension keys: rt (ms since the epoch), dvchost, externalId (alert id),
// cat (signature category), act ("alert"), msg (description), spid, sproc
// (process name), filePath (executable), suid, cs1 commandLine, cs2 argv
// (JSON), cs3 mitre, cs4 parentProcess (executable), cn1 parentPid, cs5
// environment, cs6 cwd, flexString1 argvBase64, cn2 argvFromProctitle (1,
// only when argv was split from PROCTITLE for want of an EXECVE record).
func appendCEF(dst []byte, a *detect.Alert, version string) []byte {
	s := &a.Signature
	dst = append(dst, "CEF:0|encwatch|encwatch|"...)
	dst = appendCEFHeader(dst, version)
	dst = append(dst, '|')
	dst = appendCEFHeader(dst, s.Name)
	dst = append(dst, '|')
	dst = appendCEFHeader(dst, s.Description)
	dst = append(dst, '|')
	dst = strconv.AppendInt(dst, int64(severityOf(cefSeverity[:], s.Importance)), 10)
	dst = append(dst, "|rt="...)
	dst = strconv.AppendInt(dst, a.Time.UnixMilli(), 10)
	dst = appendCEFExt(dst, "dvchost", a.Host)
	dst = appendCEFExt(dst, "externalId", a.ID)
	dst = appendCEFExt(dst, "cat", s.Category)
	dst = append(dst, " act=alert"...)
	dst = appendCEFExt(dst, "msg", s.Description)
	dst = appendCEFExt(dst, "cs3Label", "mitre")
	dst = appendCEFExt(dst, "cs3", strings.Join(s.MITRE, ","))
	dst = appendCEFExt(dst, "cs5Label", "environment")
	dst = appendCEFExt(dst, "cs5", a.Environment)
	if a.Subject != "" {
		// deviceFacility: where the collector received it; shost: the
		// host the record claimed, when not the subject's.
		dst = appendCEFExt(dst, "deviceFacility", a.Subject)
		if a.ClaimedHost != "" {
			dst = appendCEFExt(dst, "shost", a.ClaimedHost)
		}
	}
	if e := a.Event; e != nil {
		dst = append(dst, " spid="...)
		dst = strconv.AppendInt(dst, int64(e.PID), 10)
		dst = appendCEFExt(dst, "sproc", baseName(e.Exe))
		dst = appendCEFExt(dst, "filePath", e.Exe)
		dst = append(dst, " suid="...)
		dst = strconv.AppendUint(dst, uint64(e.UID), 10)
		dst = appendCEFExt(dst, "cs1Label", "commandLine")
		dst = appendCEFExt(dst, "cs1", strings.Join(e.Argv, " "))
		dst = appendCEFExt(dst, "cs2Label", "argv")
		dst = appendCEFExt(dst, "cs2", string(appendStrings(nil, e.Argv)))
		if e.ArgvFromProctitle {
			// cs1..cs6 are taken; CEF has no flexString3.
			dst = appendCEFExt(dst, "cn2Label", "argvFromProctitle")
			dst = append(dst, " cn2=1"...)
		}
		dst = appendCEFExt(dst, "cs6Label", "cwd")
		dst = appendCEFExt(dst, "cs6", e.Cwd)
		if a.Mode != "" {
			dst = appendCEFExt(dst, "flexString2Label", "mode")
			dst = appendCEFExt(dst, "flexString2", a.Mode)
		}
		ppid, pexe := e.PPID, ""
		if len(a.Ancestry) > 0 {
			ppid, pexe = a.Ancestry[0].PID, a.Ancestry[0].Exe
		}
		dst = appendCEFExt(dst, "cn1Label", "parentPid")
		dst = append(dst, " cn1="...)
		dst = strconv.AppendInt(dst, int64(ppid), 10)
		if pexe != "" {
			dst = appendCEFExt(dst, "cs4Label", "parentProcess")
			dst = appendCEFExt(dst, "cs4", pexe)
		}
		if !allValid(e.Argv) {
			dst = appendCEFExt(dst, "flexString1Label", "argvBase64")
			dst = appendCEFExt(dst, "flexString1", string(appendB64s(nil, e.Argv)))
		}
	}
	return dst
}

// appendCEFHeader writes a CEF header field: '\' and '|' escaped.
func appendCEFHeader(dst []byte, s string) []byte {
	return appendSafe(dst, s, func(dst []byte, c byte) ([]byte, bool) {
		switch c {
		case '\\', '|':
			return append(dst, '\\', c), true
		}
		return dst, false
	})
}

// appendCEFExt writes " key=value": '\' and '=' escaped, LF and CR as \n
// and \r.
func appendCEFExt(dst []byte, key, value string) []byte {
	dst = append(dst, ' ')
	dst = append(dst, key...)
	dst = append(dst, '=')
	return appendSafe(dst, value, func(dst []byte, c byte) ([]byte, bool) {
		switch c {
		case '\\', '=':
			return append(dst, '\\', c), true
		case '\n':
			return append(dst, '\\', 'n'), true
		case '\r':
			return append(dst, '\\', 'r'), true
		}
		return dst, false
	})
}

// appendSafe writes s, letting esc handle ASCII bytes first; any other
// control character, DEL, a rune AppendJSON escapes (C1 controls, line
// separators, bidi controls) or a byte that is not UTF-8 becomes U+FFFD.
func appendSafe(dst []byte, s string, esc func([]byte, byte) ([]byte, bool)) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			var ok bool
			if dst, ok = esc(dst, c); !ok {
				if c < 0x20 || c == 0x7f {
					dst = append(dst, "\uFFFD"...)
				} else {
					dst = append(dst, c)
				}
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || mustEscape(r) {
			dst = append(dst, "\uFFFD"...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return dst
}

// appendLEEFEvent appends a as one IBM QRadar LEEF 2.0 event, without a trailing
// newline:
//
//	LEEF:2.0|encwatch|encwatch|VERSION|SIGNATURE|x09|key=value<TAB>key=value…
//
// The attribute delimiter is TAB (declared as x09). LEEF has no escape
// mechanism, so values have TAB, CR and LF removed (and '|' in header
// fields); other control characters, the Unicode line separators and bidi
// controls, and bytes that are not UTF-8 become U+FFFD. argv survives
// exactly all the same, as a JSON array in the "argv" attribute (JSON
// escapes TAB, CR and LF), plus "argvBase64" when an argument is not UTF-8.
//
// Attributes: devTime and devTimeFormat, sev (1-10), cat, identHostName,
// externalId (alert id), usrName (the uid: LEEF has no uid key), and the
// custom keys signature, description, mitre, environment, pid, ppid,
// parentExe, exe, processName, cmdLine, argv, argsSource ("proctitle" when argv was
// split from PROCTITLE for want of an EXECVE record), cwd, argvBase64.
func appendLEEFEvent(dst []byte, a *detect.Alert, version string) []byte {
	s := &a.Signature
	dst = append(dst, "LEEF:2.0|encwatch|encwatch|"...)
	dst = appendLEEF(dst, version, true)
	dst = append(dst, '|')
	dst = appendLEEF(dst, s.Name, true)
	dst = append(dst, "|x09|devTime="...)
	dst = a.Time.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000-0700")
	dst = append(dst, "\tdevTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSSZ\tsev="...)
	dst = strconv.AppendInt(dst, int64(severityOf(cefSeverity[:], s.Importance)), 10)
	dst = appendLEEFAttr(dst, "cat", s.Category)
	dst = appendLEEFAttr(dst, "identHostName", a.Host)
	dst = appendLEEFAttr(dst, "externalId", a.ID)
	dst = appendLEEFAttr(dst, "signature", s.Name)
	dst = appendLEEFAttr(dst, "description", s.Description)
	dst = appendLEEFAttr(dst, "mitre", strings.Join(s.MITRE, ","))
	dst = appendLEEFAttr(dst, "environment", a.Environment)
	if a.Subject != "" {
		dst = appendLEEFAttr(dst, "fleetSubject", a.Subject)
		if a.ClaimedHost != "" {
			dst = appendLEEFAttr(dst, "claimedHost", a.ClaimedHost)
		}
	}
	if e := a.Event; e != nil {
		dst = append(dst, "\tpid="...)
		dst = strconv.AppendInt(dst, int64(e.PID), 10)
		ppid, pexe := e.PPID, ""
		if len(a.Ancestry) > 0 {
			ppid, pexe = a.Ancestry[0].PID, a.Ancestry[0].Exe
		}
		dst = append(dst, "\tppid="...)
		dst = strconv.AppendInt(dst, int64(ppid), 10)
		if pexe != "" {
			dst = appendLEEFAttr(dst, "parentExe", pexe)
		}
		dst = append(dst, "\tusrName="...)
		dst = strconv.AppendUint(dst, uint64(e.UID), 10)
		dst = appendLEEFAttr(dst, "exe", e.Exe)
		dst = appendLEEFAttr(dst, "processName", baseName(e.Exe))
		dst = appendLEEFAttr(dst, "cmdLine", strings.Join(e.Argv, " "))
		dst = appendLEEFAttr(dst, "argv", string(appendStrings(nil, e.Argv)))
		if e.ArgvFromProctitle {
			dst = appendLEEFAttr(dst, "argsSource", "proctitle")
		}
		dst = appendLEEFAttr(dst, "cwd", e.Cwd)
		if a.Mode != "" {
			dst = appendLEEFAttr(dst, "mode", a.Mode)
		}
		if !allValid(e.Argv) {
			dst = appendLEEFAttr(dst, "argvBase64", string(appendB64s(nil, e.Argv)))
		}
	}
	return dst
}

func appendLEEFAttr(dst []byte, key, value string) []byte {
	dst = append(dst, '\t')
	dst = append(dst, key...)
	dst = append(dst, '=')
	return appendLEEF(dst, value, false)
}

// appendLEEF writes a LEEF value: TAB, CR, LF (and '|' in a header field)
// removed; see appendLEEFEvent.
func appendLEEF(dst []byte, s string, header bool) []byte {
	return appendSafe(dst, s, func(dst []byte, c byte) ([]byte, bool) {
		switch {
		case c == '\t' || c == '\r' || c == '\n':
			return dst, true
		case c == '|' && header:
			return dst, true
		}
		return dst, false
	})
}

package sink

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/detect"
)

// Format appends one alert, encoded, to dst and returns the extended slice.
// A Format used by a line sink must never emit a newline: the sink adds one.
type Format func(dst []byte, a *detect.Alert) []byte

// AppendJSON appends a as one JSON object to dst, without a trailing newline,
// and returns the extended slice.
//
// Every string in an alert may hold attacker-chosen bytes, so each is escaped
// to keep the object valid and on one line whatever it holds: '"' and '\'
// are backslash-escaped; C0 controls, DEL, C1 controls, U+2028/U+2029 (line
// terminators to JavaScript) and the Unicode bidi controls are written as
// \uXXXX, so the output is never split by a newline nor reordered on a
// terminal; and each byte that is not part of valid UTF-8 becomes U+FFFD,
// because a JSON text must be UTF-8 (RFC 8259 section 8.1). So that this
// replacement loses no evidence, when any argument of argv is not valid
// UTF-8 the object also carries "args_b64": the exact bytes of every
// argument, base64-encoded (RFC 4648 section 4). When the event had no
// EXECVE record and args were split from its PROCTITLE, the process object
// says so with "args_source": "proctitle" (absent: from EXECVE).
//
// The shape is fixed and documented by the golden files in testdata/.
func AppendJSON(dst []byte, a *detect.Alert) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendString(dst, a.ID)
	dst = append(dst, `,"time":"`...)
	dst = a.Time.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","host":`...)
	dst = appendString(dst, a.Host)
	dst = append(dst, `,"environment":`...)
	dst = appendString(dst, a.Environment)
	dst = appendFleet(dst, a, `,"fleet":{`, `"subject":`, `,"claimed_host":`, `}`)

	s := &a.Signature
	dst = append(dst, `,"signature":{"name":`...)
	dst = appendString(dst, s.Name)
	dst = append(dst, `,"description":`...)
	dst = appendString(dst, s.Description)
	dst = append(dst, `,"category":`...)
	dst = appendString(dst, s.Category)
	dst = append(dst, `,"method":`...)
	dst = appendString(dst, s.Method)
	dst = append(dst, `,"importance":`...)
	dst = appendString(dst, s.Importance.String())
	dst = append(dst, `,"mitre":`...)
	dst = appendStrings(dst, s.MITRE)
	dst = append(dst, '}')

	if e := a.Event; e != nil {
		dst = append(dst, `,"process":`...)
		dst = appendProcess(dst, e, a.User, a.LoginUser)
		if a.Mode != "" {
			// process.mode: what the encoder was asked to do.
			dst = append(dst[:len(dst)-1], `,"mode":`...)
			dst = appendString(dst, a.Mode)
			dst = append(dst, '}')
		}
	}
	if a.ContainerID != "" {
		dst = append(dst, `,"container":{"id":`...)
		dst = appendString(dst, a.ContainerID)
		dst = append(dst, '}')
	}
	if len(a.Ancestry) > 0 {
		dst = append(dst, `,"parent":`...)
		dst = appendAncestor(dst, &a.Ancestry[0], true)
		dst = append(dst, `,"ancestry":[`...)
		for i := range a.Ancestry {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendAncestor(dst, &a.Ancestry[i], false)
		}
		dst = append(dst, ']')
	}

	dst = append(dst, `,"matches":[`...)
	for i, m := range a.Matches {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"field":`...)
		dst = appendString(dst, m.Field)
		dst = append(dst, `,"value":`...)
		dst = appendString(dst, m.Value)
		dst = append(dst, `,"reason":`...)
		dst = appendString(dst, m.Reason)
		dst = append(dst, '}')
	}
	dst = append(dst, `],"actions":`...)
	dst = appendStrings(dst, a.Actions)

	dst = appendPayloadThrottled(dst, a)
	if e := a.Event; e != nil {
		dst = append(dst, `,"audit":`...)
		dst = appendAudit(dst, e)
	}
	return append(dst, '}')
}

// appendProcess writes the process object; user and loginUser name its uid
// and auid when known.
func appendProcess(dst []byte, e *audit.Event, user, loginUser string) []byte {
	dst = append(dst, `{"pid":`...)
	dst = strconv.AppendInt(dst, int64(e.PID), 10)
	dst = append(dst, `,"ppid":`...)
	dst = strconv.AppendInt(dst, int64(e.PPID), 10)
	dst = append(dst, `,"exe":`...)
	dst = appendString(dst, e.Exe)
	dst = append(dst, `,"name":`...)
	dst = appendString(dst, baseName(e.Exe))
	dst = appendArgs(dst, e.Argv)
	if e.ArgvFromProctitle {
		// No EXECVE record: args were split from PROCTITLE (see
		// audit.Event.ArgvFromProctitle); absent means EXECVE.
		dst = append(dst, `,"args_source":"proctitle"`...)
	}
	dst = append(dst, `,"argc":`...)
	dst = strconv.AppendInt(dst, int64(e.Argc), 10)
	dst = append(dst, `,"cwd":`...)
	dst = appendString(dst, e.Cwd)
	dst = append(dst, `,"comm":`...)
	dst = appendString(dst, e.Comm)
	dst = append(dst, `,"uid":`...)
	dst = strconv.AppendUint(dst, uint64(e.UID), 10)
	dst = append(dst, `,"euid":`...)
	dst = strconv.AppendUint(dst, uint64(e.EUID), 10)
	dst = append(dst, `,"gid":`...)
	dst = strconv.AppendUint(dst, uint64(e.GID), 10)
	dst = append(dst, `,"auid":`...)
	dst = appendID(dst, e.AUID)
	if user != "" {
		dst = append(dst, `,"user":`...)
		dst = appendString(dst, user)
	}
	if loginUser != "" {
		dst = append(dst, `,"login_user":`...)
		dst = appendString(dst, loginUser)
	}
	dst = append(dst, `,"session":`...)
	dst = appendID(dst, e.Session)
	dst = append(dst, `,"tty":`...)
	dst = appendString(dst, e.TTY)
	if e.Subject != "" {
		dst = append(dst, `,"subject":`...)
		dst = appendString(dst, e.Subject)
	}
	dst = append(dst, `,"success":`...)
	dst = strconv.AppendBool(dst, e.Success)
	dst = append(dst, `,"exit":`...)
	dst = strconv.AppendInt(dst, e.Exit, 10)
	return append(dst, '}')
}

// appendAncestor writes one link of the ancestry chain; the "parent" object
// also carries the executable's base name, like "process".
func appendAncestor(dst []byte, p *detect.Process, name bool) []byte {
	dst = append(dst, `{"pid":`...)
	dst = strconv.AppendInt(dst, int64(p.PID), 10)
	dst = append(dst, `,"ppid":`...)
	dst = strconv.AppendInt(dst, int64(p.PPID), 10)
	dst = append(dst, `,"exe":`...)
	dst = appendString(dst, p.Exe)
	if name {
		dst = append(dst, `,"name":`...)
		dst = appendString(dst, baseName(p.Exe))
	}
	dst = appendArgs(dst, p.Argv)
	dst = append(dst, `,"uid":`...)
	dst = strconv.AppendUint(dst, uint64(p.UID), 10)
	return append(dst, '}')
}

func appendAudit(dst []byte, e *audit.Event) []byte {
	dst = append(dst, `{"serial":`...)
	dst = strconv.AppendUint(dst, e.Serial, 10)
	dst = append(dst, `,"syscall":`...)
	dst = strconv.AppendInt(dst, int64(e.Syscall), 10)
	dst = append(dst, `,"arch":"`...)
	dst = appendHex32(dst, e.Arch)
	dst = append(dst, `","key":`...)
	dst = appendString(dst, e.Key)
	if e.Node != "" {
		dst = append(dst, `,"node":`...)
		dst = appendString(dst, e.Node)
	}
	dst = append(dst, `,"records":`...)
	dst = strconv.AppendInt(dst, int64(e.Records), 10)
	if e.Incomplete {
		dst = append(dst, `,"incomplete":true`...)
	}
	if e.NoSyscall {
		// An EXECVE without its SYSCALL (audit.Event.NoSyscall): the
		// process's ids, pid and exe are unknown, not root's.
		dst = append(dst, `,"no_syscall":true`...)
	}
	if len(e.Paths) > 0 {
		dst = append(dst, `,"paths":[`...)
		for i := range e.Paths {
			p := &e.Paths[i]
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"item":`...)
			dst = strconv.AppendInt(dst, int64(p.Item), 10)
			dst = append(dst, `,"name":`...)
			dst = appendString(dst, p.Name)
			dst = append(dst, `,"inode":`...)
			dst = strconv.AppendUint(dst, p.Inode, 10)
			dst = append(dst, `,"dev":`...)
			dst = appendString(dst, p.Dev)
			dst = append(dst, `,"mode":`...)
			dst = strconv.AppendUint(dst, uint64(p.Mode), 10)
			dst = append(dst, `,"nametype":`...)
			dst = appendString(dst, p.Nametype)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

// appendArgs writes ,"args":[...] and, when any argument is not valid UTF-8
// (and so was altered by appendString), ,"args_b64":[...] with the exact bytes.
func appendArgs(dst []byte, argv []string) []byte {
	dst = append(dst, `,"args":`...)
	dst = appendStrings(dst, argv)
	if allValid(argv) {
		return dst
	}
	dst = append(dst, `,"args_b64":`...)
	return appendB64s(dst, argv)
}

// appendID writes an auid or session id: null when the kernel reports it
// unset, since (u32)-1 is not an id anyone has.
func appendID(dst []byte, id uint32) []byte {
	if id == audit.Unset {
		return append(dst, "null"...)
	}
	return strconv.AppendUint(dst, uint64(id), 10)
}

func appendStrings(dst []byte, ss []string) []byte {
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, s)
	}
	return append(dst, ']')
}

const hexDigits = "0123456789abcdef"

func appendHex32(dst []byte, v uint32) []byte {
	for shift := 28; shift >= 0; shift -= 4 {
		dst = append(dst, hexDigits[v>>uint(shift)&0xf])
	}
	return dst
}

// appendString writes s as a JSON string; see AppendJSON for the escaping.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0 // s[start:i] is pending, copied verbatim
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != 0x7f {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			if c == '"' || c == '\\' {
				dst = append(dst, '\\', c)
			} else {
				dst = appendEscape(dst, rune(c))
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if mustEscape(r) {
			dst = append(dst, s[start:i]...)
			dst = appendEscape(dst, r)
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// mustEscape reports whether a valid non-ASCII rune is written as \uXXXX:
// C1 controls, the line and paragraph separators, and the bidi controls
// (Unicode TR9) that could make a log line read differently from its bytes.
func mustEscape(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f:
		return true
	case r == 0x200e || r == 0x200f: // LRM, RLM
		return true
	case r >= 0x2028 && r <= 0x202e: // LS, PS, LRE, RLE, PDF, LRO, RLO
		return true
	case r >= 0x2066 && r <= 0x2069: // LRI, RLI, FSI, PDI
		return true
	case r == 0xfeff: // BOM
		return true
	}
	return false
}

// appendEscape writes r, a rune of the Basic Multilingual Plane, as \uXXXX.
func appendEscape(dst []byte, r rune) []byte {
	return append(dst, '\\', 'u',
		hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}

func baseName(path string) string {
	return path[strings.LastIndexByte(path, '/')+1:]
}

// appendPayloadThrottled writes the decoded-payload object and the throttle
// count, when the alert has them, as members of an open JSON object. The
// native JSON and ECS formats share them.
func appendPayloadThrottled(dst []byte, a *detect.Alert) []byte {
	if p := a.Payload; p != nil {
		dst = append(dst, `,"payload":{"encoding":`...)
		dst = appendString(dst, p.Encoding)
		dst = append(dst, `,"length":`...)
		dst = strconv.AppendInt(dst, int64(p.Length), 10)
		dst = append(dst, `,"kind":`...)
		dst = appendString(dst, p.Kind)
		dst = append(dst, `,"preview":`...)
		dst = appendString(dst, p.Preview)
		dst = append(dst, '}')
	}
	if a.Throttled > 0 {
		dst = append(dst, `,"throttled":`...)
		dst = strconv.AppendUint(dst, a.Throttled, 10)
	}
	return dst
}

// appendFleet writes where a collector received a (open, then its subject
// and claimed host under their keys, then closing), or nothing for an
// alert no collector received.
func appendFleet(dst []byte, a *detect.Alert, open, subject, claimed, closing string) []byte {
	if a.Subject == "" {
		return dst
	}
	dst = append(dst, open...)
	dst = append(dst, subject...)
	dst = appendString(dst, a.Subject)
	if a.ClaimedHost != "" {
		dst = append(dst, claimed...)
		dst = appendString(dst, a.ClaimedHost)
	}
	return append(dst, closing...)
}

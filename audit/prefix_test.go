package audit

import (
	"bytes"
	"errors"
	"testing"
)

func TestStripLogPrefix(t *testing.T) {
	const rec = "type=EXECVE msg=audit(1795759259.157:6): argc=1 a0=\"x\""
	const kern = "type=1309 audit(1795759259.157:6): argc=1 a0=\"x\""
	tests := []struct {
		name     string
		in       string
		wantHost string
		wantRest string
		wantKind logPrefix
		wantErr  error
	}{
		{"plain", rec, "", rec, prefixNone, nil},
		{"plain node", "node=a " + rec, "", "node=a " + rec, prefixNone, nil},
		{"ausearch dashes", "----", "", "", prefixSeparator, nil},
		{"ausearch time", "time->Mon Dec  7 12:00:00 2026", "", "", prefixSeparator, nil},
		{"rfc3164", "Mar  5 17:38:33 web1 audispd: " + rec, "web1", rec, prefixSyslog, nil},
		{"rfc3164 pid", "Mar 15 17:38:33 web1 audisp-syslog[812]: " + rec, "web1", rec, prefixSyslog, nil},
		{"rfc3164 bare tag", "Mar  5 17:38:33 web1 tag_audit " + rec, "web1", rec, prefixSyslog, nil},
		{"rfc3164 no tag", "Mar  5 17:38:33 web1 " + rec, "web1", rec, prefixSyslog, nil},
		{"rfc3164 pri", "<13>Mar  5 17:38:33 web1 audispd: " + rec, "web1", rec, prefixSyslog, nil},
		{"rfc3164 node", "Mar  5 17:38:33 relay audispd: node=web1 " + rec, "relay", "node=web1 " + rec, prefixSyslog, nil},
		{"rfc3164 space after tag", "Mar  5 17:38:33 web1 audispd:  " + rec, "web1", rec, prefixSyslog, nil},
		{"rfc3339", "2026-12-07T12:15:25.123456+00:00 web1 audispd: " + rec, "web1", rec, prefixSyslog, nil},
		{"rfc3339 zulu", "2026-12-07T12:15:25Z web1 audispd: " + rec, "web1", rec, prefixSyslog, nil},
		{"rfc5424", "<13>1 2026-12-07T12:15:25.123+00:00 web1 audispd - - - " + rec, "web1", rec, prefixRFC5424, nil},
		{"rfc5424 sd", `<13>1 2026-12-07T12:15:25Z web1 audispd 12 ID47 [ts a="x\]y" b="c d"][o k="v"] ` + rec, "web1", rec, prefixRFC5424, nil},
		{"rfc5424 bom", "<13>1 2026-12-07T12:15:25Z web1 audispd - - - \xef\xbb\xbf" + rec, "web1", rec, prefixRFC5424, nil},
		{"rfc5424 nil host", "<13>1 - - - - - - " + rec, "", rec, prefixRFC5424, nil},
		{"kmsg", "audit: " + kern, "", kern, prefixKernel, nil},
		{"dmesg", "[   12.345678] audit: " + kern, "", kern, prefixKernel, nil},
		{"journal short-precise kernel", "Dec 07 12:15:25.123456 web1 kernel: audit: " + kern, "web1", kern, prefixKernel, nil},
		{"journal short-iso kernel", "2026-12-07T12:15:25+0000 web1 kernel: audit: " + kern, "web1", kern, prefixKernel, nil},
		{"journal short kernel", "Dec 07 12:15:25 web1 kernel: audit: " + kern, "web1", kern, prefixKernel, nil},
		{"rfc5424 kernel", "<6>1 2026-12-07T12:15:25Z web1 kernel - - - audit: " + kern, "web1", kern, prefixKernel, nil},
		{"journal short audit", "Dec 07 12:15:25 web1 audit[2817]: EXECVE argc=1 a0=\"x\"", "", "", 0, errJournalShort},
		{"host with control byte", "Mar  5 17:38:33 we\x1bb1 audispd: " + rec, "", "", 0, errBadHost},
		{"host not ascii", "Mar  5 17:38:33 wéb1 audispd: " + rec, "", "", 0, errBadHost},
		{"host too long", "Mar  5 17:38:33 " + string(bytes.Repeat([]byte{'h'}, 256)) + " audispd: " + rec, "", "", 0, errBadHost},
		{"rfc5424 bad host", "<13>1 2026-12-07T12:15:25Z \x7fweb - - - - " + rec, "", "", 0, errBadHost},
		{"syslog of another program", "Mar  5 17:38:33 web1 sshd[1]: Accepted publickey for root", "", "", 0, errForeign},
		{"rfc5424 of another program", "<38>1 2026-12-07T12:15:25Z web1 sshd 1 - - Accepted publickey", "", "", 0, errForeign},
		{"syslog with a damaged record", "Mar  5 17:38:33 web1 audispd: typ=SYSCALL msg=audit(1.000:6): x=1", "", "", 0, errNoType},
		{"bad pri", "<13x>Mar  5 17:38:33 web1 audispd: " + rec, "", "", 0, errNoType},
		{"rfc5424 unterminated sd", `<13>1 2026-12-07T12:15:25Z web1 a - - [x k="v" ` + rec, "", "", 0, errNoType},
		{"bad timestamp", "Mar  5 17:38 web1 audispd: " + rec, "", "", 0, errNoType},
		{"msg only", "msg=audit(1.000:6): x=1", "", "", 0, errNoType},
		{"empty", "", "", "", 0, errNoType},
		{"dashes then text", "---- x", "", "", 0, errNoType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host, rest, kind, err := stripLogPrefix([]byte(tt.in))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("stripLogPrefix(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if string(host) != tt.wantHost || string(rest) != tt.wantRest || kind != tt.wantKind {
				t.Errorf("stripLogPrefix(%q) = %q, %q, %d, want %q, %q, %d", tt.in, host, rest, kind, tt.wantHost, tt.wantRest, tt.wantKind)
			}
		})
	}
}

func TestParseLogLinePrefixed(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		wantType uint16
		wantData string
	}{
		{"syslog host is node", "Mar  5 17:38:33 web1 audispd: type=CWD msg=audit(1.000:6): cwd=\"/\"", RecCwd, "node=web1 audit(1.000:6): cwd=\"/\""},
		{"record node wins", "Mar  5 17:38:33 relay audispd: node=web1 type=CWD msg=audit(1.000:6): cwd=\"/\"", RecCwd, "node=web1 audit(1.000:6): cwd=\"/\""},
		{"rfc5424 nil host", "<13>1 - - - - - - type=CWD msg=audit(1.000:6): cwd=\"/\"", RecCwd, "audit(1.000:6): cwd=\"/\""},
		{"kmsg number", "audit: type=1300 audit(1.000:6): arch=c000003e syscall=59", RecSyscall, "audit(1.000:6): arch=c000003e syscall=59"},
		{"kmsg unknown number", "audit: type=1339 audit(1.000:6): x=1", 1339, "audit(1.000:6): x=1"},
		{"rsyslog-escaped enriched", "Mar  5 17:38:33 web1 a: type=SYSCALL msg=audit(1.000:6): key=\"k\"#035ARCH=x86_64 UID=\"root\"", RecSyscall, "node=web1 audit(1.000:6): key=\"k\"\x1dARCH=x86_64 UID=\"root\""},
		{"#035 in a quoted value", "Mar  5 17:38:33 web1 a: type=EXECVE msg=audit(1.000:6): argc=2 a0=\"x\" a1=\"y#035ARCH=z\"", RecExecve, "node=web1 audit(1.000:6): argc=2 a0=\"x\" a1=\"y#035ARCH=z\""},
		{"syslog number with msg", "Mar  5 17:38:33 web1 a: type=1307 msg=audit(1.000:6): cwd=\"/\"", RecCwd, "node=web1 audit(1.000:6): cwd=\"/\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseLogLine([]byte(tt.in))
			if err != nil {
				t.Fatalf("parseLogLine(%q) error = %v, want nil", tt.in, err)
			}
			if got.Type != tt.wantType || string(got.Data) != tt.wantData {
				t.Errorf("parseLogLine(%q) = %d %q, want %d %q", tt.in, got.Type, got.Data, tt.wantType, tt.wantData)
			}
		})
	}
	// A plain line keeps its strictness: no number, no missing msg=.
	for _, in := range []string{"type=1300 msg=audit(1.000:6): x=1", "type=SYSCALL audit(1.000:6): x=1", "Mar  5 17:38:33 web1 a: type=SYSCALL audit(1.000:6): x=1"} {
		if _, err := parseLogLine([]byte(in)); err == nil {
			t.Errorf("parseLogLine(%q) error = nil, want one", in)
		}
	}
}

// FuzzLogPrefix checks stripLogPrefix's invariants on any line: no panic,
// the rest is a suffix of the line, the host is a checked hostname, and a
// plain line comes back unchanged.
func FuzzLogPrefix(f *testing.F) {
	for _, s := range []string{
		"type=SYSCALL msg=audit(1.000:6): x=1",
		"----",
		"time->Mon Dec  7 12:00:00 2026",
		"Mar  5 17:38:33 web1 audispd: type=CWD msg=audit(1.000:6): cwd=\"/\"",
		"<13>1 2026-12-07T12:15:25Z web1 a 1 - [x k=\"v\\]\"] type=CWD msg=audit(1.000:6): cwd=\"/\"",
		"[ 1.2] audit: type=1300 audit(1.000:6): x=1",
		"Dec 07 12:15:25 web1 audit[2817]: EXECVE argc=1",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		host, rest, kind, err := stripLogPrefix(line)
		if err != nil {
			if host != nil || rest != nil {
				t.Fatalf("stripLogPrefix(%q) = %q, %q with error %v", line, host, rest, err)
			}
			return
		}
		if !bytes.HasSuffix(line, rest) {
			t.Fatalf("stripLogPrefix(%q) rest %q is not a suffix", line, rest)
		}
		if host != nil && checkHost(host) != nil {
			t.Fatalf("stripLogPrefix(%q) host %q is not a valid hostname", line, host)
		}
		plain := bytes.HasPrefix(line, []byte("type=")) || bytes.HasPrefix(line, []byte("node="))
		if plain && (kind != prefixNone || !bytes.Equal(rest, line) || host != nil) {
			t.Fatalf("stripLogPrefix(%q) changed a plain line: %q, %q, %d", line, host, rest, kind)
		}
		if kind != prefixSeparator && kind != prefixNone && !bytes.HasPrefix(rest, []byte("type=")) && !bytes.HasPrefix(rest, []byte("node=")) {
			t.Fatalf("stripLogPrefix(%q) rest %q starts no record", line, rest)
		}
		// Whatever was stripped, the line parses as a record or fails
		// cleanly.
		_, _, _, _ = appendLogRecord(nil, line)
	})
}

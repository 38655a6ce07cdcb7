package sink

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/detect"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func testEvent() *audit.Event {
	return &audit.Event{
		Time:    time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC),
		Serial:  4242,
		Arch:    audit.ArchX86_64,
		Syscall: 59,
		Success: true,
		PID:     3120, PPID: 3100,
		UID: 1000, EUID: 1000, GID: 1000,
		AUID: 1000, Session: 3,
		TTY: "pts0", Comm: "base64", Exe: "/usr/bin/base64", Key: "encwatch",
		Argc:    2,
		Argv:    []string{"base64", "-d"},
		Cwd:     "/home/alice",
		Paths:   []audit.Path{{Item: 0, Name: "/usr/bin/base64", Inode: 1311, Dev: "fe:00", Mode: 0o100755, Nametype: "NORMAL"}},
		Records: 7,
	}
}

func testAlert() detect.Alert {
	return detect.Alert{
		ID:          "0f3a9c2e5b7d4a18",
		Time:        time.Date(2025, 3, 1, 13, 0, 0, 123456789, time.FixedZone("CET", 3600)),
		Host:        "web-1",
		Environment: "production",
		Signature: detect.SignatureInfo{
			Name:        "data_encoder_exec",
			Description: "a data-encoding tool ran",
			Category:    "defense_evasion",
			Method:      "exec",
			Importance:  detect.High,
			MITRE:       []string{"T1027", "T1140"},
		},
		Event:   testEvent(),
		Matches: []detect.Match{{Field: "exe", Value: "/usr/bin/base64", Reason: "known encoder"}, {Field: "argv", Value: "-d", Reason: "decode flag"}},
		Actions: []string{"page on-call", "isolate host"},
	}
}

func TestAppendJSONGolden(t *testing.T) {
	tests := []struct {
		name  string
		alert func() detect.Alert
	}{
		{"basic", testAlert},
		{"user_and_container", func() detect.Alert {
			a := testAlert()
			a.User, a.LoginUser = "www-data", "alice"
			a.ContainerID = "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa00112233445566778899"
			return a
		}},
		{"hostile", func() detect.Alert {
			a := testAlert()
			e := a.Event
			e.Argv = []string{
				"sh", "-c",
				"echo \"x\\y\" \x00nul \x1b[31mred\r\n{\"id\":\"forged\"}\n",
				"bad\xff\xfeutf8 \xed\xa0\x80surrogate \xc3",
				"ls\u2028sep\u2029para \u202egnp.exe \u0085nel \x7fdel",
				"",
			}
			e.Argc = len(e.Argv)
			e.Exe = "/tmp/\n\"evil\xff"
			e.Cwd = "/tmp/\x1b]0;title\x07"
			e.Comm = "a\tb"
			e.Paths[0].Name = "\x00\x01"
			e.Node = "node\"1"
			e.Incomplete = true
			a.Matches = []detect.Match{{Field: "argv", Value: "\xff", Reason: "\"}\n{"}}
			return a
		}},
		{"unset_auid_with_parent_payload", func() detect.Alert {
			a := testAlert()
			a.Event.AUID = audit.Unset
			a.Event.Session = audit.Unset
			a.Event.TTY = "(none)"
			a.Event.Success = false
			a.Event.Exit = -2
			a.Ancestry = []detect.Process{
				{PID: 3100, PPID: 1, Exe: "/usr/bin/bash", Argv: []string{"bash", "-c", "echo aGk= | base64 -d | sh"}, UID: 0},
				{PID: 1, PPID: 0, Exe: "/usr/lib/systemd/systemd", Argv: []string{"/sbin/init", "\xffsplash"}, UID: 0},
			}
			a.Payload = &detect.Payload{Encoding: "base64", Length: 2, Kind: "text", Preview: "hi"}
			a.Throttled = 17
			return a
		}},
		{"no_event", func() detect.Alert {
			return detect.Alert{ID: "x", Time: time.Unix(0, 0), Signature: detect.SignatureInfo{Name: "audit_rules_removed", Importance: detect.Critical}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := tt.alert()
			got := AppendJSON(nil, &a)
			if !json.Valid(got) {
				t.Fatalf("AppendJSON = %s, not valid JSON", got)
			}
			if i := bytes.IndexAny(got, "\n\r\u2028\u2029"); i >= 0 {
				t.Fatalf("AppendJSON = %q, has a line break at %d", got, i)
			}
			golden := filepath.Join("testdata", tt.name+".golden")
			if *update {
				if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(append(got, '\n'), want) {
				t.Errorf("AppendJSON =\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// TestAppendJSONRoundTrip checks that a decoder gets back the exact argv, or
// its exact bytes from args_b64, and that AppendJSON appends to dst.
func TestAppendJSONRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		argv []string
		b64  bool
	}{
		{"plain", []string{"base64", "-d", "--wrap=0"}, false},
		{"empty args kept", []string{"", "x", ""}, false},
		{"controls", []string{"\x00\x1b\n\r\t\"\\", "\u2028\u2029\u202e\ufeff"}, false},
		{"invalid utf8", []string{"ok", "\xff", "\xc3("}, true},
		{"literal replacement char", []string{"\ufffd"}, false},
		{"no args", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := testAlert()
			a.Event.Argv = tt.argv
			prefix := []byte("prefix")
			out := AppendJSON(prefix, &a)
			if !bytes.HasPrefix(out, []byte("prefix{")) {
				t.Fatalf("AppendJSON(%q, ...) = %q, want it to extend dst", "prefix", out)
			}
			got := decodeOne(t, out[len(prefix):])
			if gotB64 := got.Process.ArgsB64 != nil; gotB64 != tt.b64 {
				t.Errorf("args_b64 present = %v, want %v", gotB64, tt.b64)
			}
			if !tt.b64 && !slices.Equal(got.Process.Args, tt.argv) {
				t.Errorf("args = %q, want %q", got.Process.Args, tt.argv)
			}
			if tt.b64 {
				if args := decodeB64(t, got.Process.ArgsB64); !slices.Equal(args, tt.argv) {
					t.Errorf("args_b64 decodes to %q, want %q", args, tt.argv)
				}
			}
		})
	}
}

type decoded struct {
	ID      string
	Process struct {
		Args    []string `json:"args"`
		ArgsB64 []string `json:"args_b64"`
		Exe     string   `json:"exe"`
		Cwd     string   `json:"cwd"`
		AUID    *uint32  `json:"auid"`
	} `json:"process"`
}

// decodeOne decodes b, failing unless it holds exactly one JSON object.
func decodeOne(t *testing.T, b []byte) decoded {
	t.Helper()
	if !json.Valid(b) {
		t.Fatalf("output %q is not valid JSON", b)
	}
	if i := bytes.IndexAny(b, "\n\r"); i >= 0 {
		t.Fatalf("output %q has a line break at %d", b, i)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var got decoded
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); err != io.EOF {
		t.Fatalf("output %q holds more than one value (%v)", b, err)
	}
	return got
}

func decodeB64(t *testing.T, enc []string) []string {
	t.Helper()
	var args []string
	for _, s := range enc {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("args_b64 %q: %v", s, err)
		}
		args = append(args, string(b))
	}
	return args
}

// replaceInvalid is what a decoder reads back from AppendJSON for s: each
// byte that is not part of valid UTF-8 replaced by U+FFFD.
func replaceInvalid(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		b.WriteRune(r) // RuneError for an invalid byte, with size 1
		i += size
	}
	return b.String()
}

func FuzzAppendJSON(f *testing.F) {
	f.Add("base64", "-d", "", "/usr/bin/base64", "/root")
	f.Add("sh", "-c", "echo aGk= | base64 -d", "/bin/sh", "/")
	f.Add("\xff\xfe", "\x00\n{\"id\":\"x\"}\n", "\u2028", "/tmp/\x1b[0m", "\xc3")
	f.Fuzz(func(t *testing.T, a0, a1, a2, exe, cwd string) {
		a := testAlert()
		argv := []string{a0, a1, a2}
		a.Event.Argv = argv
		a.Event.Exe = exe
		a.Event.Cwd = cwd
		a.Event.Comm = a2
		a.Matches = []detect.Match{{Field: "argv", Value: a1, Reason: a0}}
		a.Ancestry = []detect.Process{{PID: 1, Exe: cwd, Argv: []string{exe, a0}}}

		got := decodeOne(t, AppendJSON(nil, &a))
		valid := utf8.ValidString(a0) && utf8.ValidString(a1) && utf8.ValidString(a2)
		if valid {
			if !slices.Equal(got.Process.Args, argv) {
				t.Errorf("args = %q, want %q", got.Process.Args, argv)
			}
			if got.Process.ArgsB64 != nil {
				t.Errorf("args_b64 = %q for valid UTF-8 argv %q", got.Process.ArgsB64, argv)
			}
		} else if args := decodeB64(t, got.Process.ArgsB64); !slices.Equal(args, argv) {
			t.Errorf("args_b64 decodes to %q, want %q", args, argv)
		}
		if want := replaceInvalid(exe); got.Process.Exe != want {
			t.Errorf("exe = %q, want %q", got.Process.Exe, want)
		}
		if want := replaceInvalid(cwd); got.Process.Cwd != want {
			t.Errorf("cwd = %q, want %q", got.Process.Cwd, want)
		}
	})
}

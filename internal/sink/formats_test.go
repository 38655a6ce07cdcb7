package sink

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/leodido/go-syslog/v4/rfc5424"

	"github.com/encwatch/encwatch/detect"
)

// hostileArgv holds every kind of byte that could split or forge a record
// in one format or another.
var hostileArgv = []string{
	"sh", "-c",
	"a\nb\r\nc",
	"\x00nul",
	"\x1b[31mesc\x07",
	`q"uote'`,
	"]brack[",
	"p|ipe||",
	"e=q==",
	`back\slash\`,
	"bad\xff\xfeutf8\xc3",
	"\n<13>1 2026-01-01T00:00:00Z host app - - - forged",
	"tab\tsep",
	"\u2028ls\u2029ps\u202egnp",
	"CEF:0|x|y|1|z|n|10|act=forged",
	"LEEF:2.0|a|b|c|d|x09|sev=10",
	`{"id":"forged"}`,
	"",
	" cs2=forged key=val",
	"\\=\\|\\n",
}

func hostileAlert() detect.Alert {
	a := testAlert()
	a.Event.Argv = slices.Clone(hostileArgv)
	a.Event.Argc = len(hostileArgv)
	a.Event.Exe = "/tmp/ev il|=\n\"x\xff"
	a.Event.Cwd = "/tmp/]\"\\"
	a.Ancestry = []detect.Process{{PID: 3100, PPID: 1, Exe: "/bin/ba|sh", Argv: []string{"bash", "-i\n"}, UID: 1000}}
	return a
}

// oneLine fails unless b is valid UTF-8 without a control character.
func oneLine(t *testing.T, name string, b []byte, allowTab bool) {
	t.Helper()
	if !utf8.Valid(b) {
		t.Errorf("%s output is not valid UTF-8: %q", name, b)
	}
	for i, c := range b {
		if (c < 0x20 && !(allowTab && c == '\t')) || c == 0x7f {
			t.Errorf("%s output has control byte %#x at %d: %q", name, c, i, b)
			return
		}
	}
}

// argvFrom is argv as a receiver recovers it: the exact base64 copy when
// there is one, else the readable array.
func argvFrom(t *testing.T, args []string, b64 []string) []string {
	t.Helper()
	if b64 == nil {
		return args
	}
	out := make([]string, len(b64))
	for i, s := range b64 {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("args_b64[%d] = %q: %v", i, s, err)
		}
		out[i] = string(b)
	}
	return out
}

// parseCEF parses one CEF record as the specification describes it: seven
// '|'-separated header fields after "CEF:0" ('\|' and '\\' escaped), then
// key=value extensions where '\=' and '\\' are escaped and \n, \r stand for
// LF and CR; a value ends where the next " key=" begins.
func parseCEF(rec string) (header []string, ext map[string]string, err error) {
	if !strings.HasPrefix(rec, "CEF:") {
		return nil, nil, fmt.Errorf("no CEF: prefix")
	}
	rest := rec[len("CEF:"):]
	var cur strings.Builder
	for len(header) < 7 {
		if rest == "" {
			return nil, nil, fmt.Errorf("%d header fields, want 8", len(header)+1)
		}
		c := rest[0]
		switch {
		case c == '\\' && len(rest) > 1 && (rest[1] == '\\' || rest[1] == '|'):
			cur.WriteByte(rest[1])
			rest = rest[2:]
		case c == '|':
			header = append(header, cur.String())
			cur.Reset()
			rest = rest[1:]
		default:
			cur.WriteByte(c)
			rest = rest[1:]
		}
	}
	// Positions of the unescaped '=' in the extension.
	var eqs []int
	for i := 0; i < len(rest); i++ {
		if rest[i] == '\\' {
			i++
			continue
		}
		if rest[i] == '=' {
			eqs = append(eqs, i)
		}
	}
	ext = map[string]string{}
	keyStart := 0
	for n, eq := range eqs {
		key := rest[keyStart:eq]
		if key == "" || strings.ContainsAny(key, " \\") {
			return nil, nil, fmt.Errorf("bad key %q", key)
		}
		end := len(rest)
		if n+1 < len(eqs) {
			end = strings.LastIndexByte(rest[:eqs[n+1]], ' ')
			if end <= eq {
				return nil, nil, fmt.Errorf("no space before key at %d", eqs[n+1])
			}
		}
		raw := rest[eq+1 : end]
		var v strings.Builder
		for i := 0; i < len(raw); i++ {
			if raw[i] == '\\' && i+1 < len(raw) {
				i++
				switch raw[i] {
				case 'n':
					v.WriteByte('\n')
				case 'r':
					v.WriteByte('\r')
				default:
					v.WriteByte(raw[i])
				}
				continue
			}
			v.WriteByte(raw[i])
		}
		if _, dup := ext[key]; dup {
			return nil, nil, fmt.Errorf("duplicate key %q", key)
		}
		ext[key] = v.String()
		keyStart = end + 1
	}
	return header, ext, nil
}

// parseLEEF splits a LEEF 2.0 record with a tab delimiter.
func parseLEEF(rec string) (header []string, attrs map[string]string, err error) {
	parts := strings.SplitN(rec, "|", 7)
	if len(parts) != 7 || parts[0] != "LEEF:2.0" || parts[5] != "x09" {
		return nil, nil, fmt.Errorf("bad LEEF header in %q", rec)
	}
	attrs = map[string]string{}
	for _, kv := range strings.Split(parts[6], "\t") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, nil, fmt.Errorf("attribute %q has no key", kv)
		}
		if _, dup := attrs[k]; dup {
			return nil, nil, fmt.Errorf("duplicate attribute %q", k)
		}
		attrs[k] = v
	}
	return parts[:6], attrs, nil
}

func jsonStrings(t *testing.T, s string) []string {
	t.Helper()
	var out []string
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return out
}

// recoverArgv parses one record of format name and returns the argv it
// carries, failing the test if the record is not exactly one well-formed
// record of that format.
func recoverArgv(t *testing.T, name string, out []byte) []string {
	t.Helper()
	switch name {
	case "json", "ecs", "ocsf":
		oneLine(t, name, out, false)
		dec := json.NewDecoder(bytes.NewReader(out))
		var doc struct {
			Process struct {
				Args    []string `json:"args"`
				ArgsB64 []string `json:"args_b64"`
			} `json:"process"`
			Encwatch struct {
				ArgsB64 []string `json:"args_b64"`
			} `json:"encwatch"`
			Unmapped struct {
				Args    []string `json:"args"`
				ArgsB64 []string `json:"args_b64"`
			} `json:"unmapped"`
		}
		if err := dec.Decode(&doc); err != nil {
			t.Fatalf("%s: decode: %v\n%s", name, err, out)
		}
		if dec.More() {
			t.Fatalf("%s: more than one JSON value in %s", name, out)
		}
		switch name {
		case "json":
			return argvFrom(t, doc.Process.Args, doc.Process.ArgsB64)
		case "ecs":
			return argvFrom(t, doc.Process.Args, doc.Encwatch.ArgsB64)
		default:
			return argvFrom(t, doc.Unmapped.Args, doc.Unmapped.ArgsB64)
		}
	case "text":
		return textArgv(t, out)
	case "cef":
		oneLine(t, name, out, false)
		h, ext, err := parseCEF(string(out))
		if err != nil {
			t.Fatalf("cef: %v\n%s", err, out)
		}
		if h[0] != "0" || h[1] != "encwatch" {
			t.Errorf("cef header = %q", h)
		}
		var b64 []string
		if s, ok := ext["flexString1"]; ok {
			b64 = jsonStrings(t, s)
		}
		return argvFrom(t, jsonStrings(t, ext["cs2"]), b64)
	case "leef":
		oneLine(t, name, out, true)
		_, attrs, err := parseLEEF(string(out))
		if err != nil {
			t.Fatalf("leef: %v", err)
		}
		var b64 []string
		if s, ok := attrs["argvBase64"]; ok {
			b64 = jsonStrings(t, s)
		}
		return argvFrom(t, jsonStrings(t, attrs["argv"]), b64)
	}
	t.Fatalf("no parser for %s", name)
	return nil
}

func TestFormatsInjection(t *testing.T) {
	for name, f := range allFormats {
		t.Run(name, func(t *testing.T) {
			a := hostileAlert()
			out := f(nil, &a)
			if got := recoverArgv(t, name, out); !slices.Equal(got, hostileArgv) {
				t.Errorf("%s argv = %q, want %q", name, got, hostileArgv)
			}
		})
	}
}

// TestFormatsInSyslog wraps each format in an RFC 5424 message and parses
// it back with a real RFC 5424 parser.
func TestFormatsInSyslog(t *testing.T) {
	for name, f := range allFormats {
		t.Run(name, func(t *testing.T) {
			s, err := NewSyslog(discardLog(), "s", SyslogOptions{Address: "tcp://127.0.0.1:1", Payload: f})
			if err != nil {
				t.Fatal(err)
			}
			a := hostileAlert()
			a.ID = `id"]\x`
			msg := s.AppendMessage(nil, &a)
			m, err := rfc5424.NewParser().Parse(msg)
			if err != nil {
				t.Fatalf("parse %q: %v", msg, err)
			}
			sm := m.(*rfc5424.SyslogMessage)
			if sm.Message == nil {
				t.Fatalf("no MSG in %q", msg)
			}
			if got, want := *sm.Message, string(f(nil, &a)); got != want {
				t.Errorf("MSG = %q, want the payload %q", got, want)
			}
			if got, want := (*sm.StructuredData)[sdID]["id"], a.ID; got != want {
				t.Errorf("SD id = %q, want %q", got, want)
			}
			if got := recoverArgv(t, name, []byte(*sm.Message)); !slices.Equal(got, hostileArgv) {
				t.Errorf("argv through syslog = %q, want %q", got, hostileArgv)
			}
		})
	}
}

func TestCEFEscaping(t *testing.T) {
	tests := []struct {
		in, header, ext string
	}{
		{`a|b\c`, `a\|b\\c`, `a|b\\c`},
		{"x=y", "x=y", `x\=y`},
		{"l1\nl2\r", "l1\uFFFDl2\uFFFD", `l1\nl2\r`},
		{"nul\x00esc\x1b", "nul\uFFFDesc\uFFFD", "nul\uFFFDesc\uFFFD"},
		{"bad\xff", "bad\uFFFD", "bad\uFFFD"},
	}
	for _, tt := range tests {
		if got := string(appendCEFHeader(nil, tt.in)); got != tt.header {
			t.Errorf("appendCEFHeader(%q) = %q, want %q", tt.in, got, tt.header)
		}
		if got := string(appendCEFExt(nil, "k", tt.in)); got != " k="+tt.ext {
			t.Errorf("appendCEFExt(%q) = %q, want %q", tt.in, got, " k="+tt.ext)
		}
	}
}

func TestLEEFStripping(t *testing.T) {
	tests := []struct{ in, value, header string }{
		{"a\tb\r\nc", "abc", "abc"},
		{"p|ipe", "p|ipe", "pipe"},
		{"k=v", "k=v", "k=v"},
		{"\x00\x1b", "\uFFFD\uFFFD", "\uFFFD\uFFFD"},
	}
	for _, tt := range tests {
		if got := string(appendLEEF(nil, tt.in, false)); got != tt.value {
			t.Errorf("appendLEEF(%q, value) = %q, want %q", tt.in, got, tt.value)
		}
		if got := string(appendLEEF(nil, tt.in, true)); got != tt.header {
			t.Errorf("appendLEEF(%q, header) = %q, want %q", tt.in, got, tt.header)
		}
	}
}

func TestECSAndOCSFFields(t *testing.T) {
	a := testAlert()
	a.Ancestry = []detect.Process{{PID: 3100, PPID: 1, Exe: "/bin/bash", Argv: []string{"bash"}, UID: 0}}
	var ecs map[string]any
	if err := json.Unmarshal(allFormats["ecs"](nil, &a), &ecs); err != nil {
		t.Fatal(err)
	}
	var ocsf map[string]any
	if err := json.Unmarshal(allFormats["ocsf"](nil, &a), &ocsf); err != nil {
		t.Fatal(err)
	}
	get := func(m map[string]any, path string) any {
		var v any = m
		for _, k := range strings.Split(path, ".") {
			mm, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = mm[k]
		}
		return v
	}
	tests := []struct {
		doc  map[string]any
		path string
		want any
	}{
		{ecs, "event.kind", "alert"},
		{ecs, "event.category", []any{"process"}},
		{ecs, "event.type", []any{"start"}},
		{ecs, "event.id", a.ID},
		{ecs, "event.severity", 73.0},
		{ecs, "process.pid", 3120.0},
		{ecs, "process.args_count", 2.0},
		{ecs, "process.executable", "/usr/bin/base64"},
		{ecs, "process.name", "base64"},
		{ecs, "process.working_directory", "/home/alice"},
		{ecs, "process.user.id", "1000"},
		{ecs, "process.parent.pid", 3100.0},
		{ecs, "process.parent.executable", "/bin/bash"},
		{ecs, "rule.name", "data_encoder_exec"},
		{ecs, "rule.category", "defense_evasion"},
		{ecs, "threat.technique.id", []any{"T1027", "T1140"}},
		{ecs, "host.name", "web-1"},
		{ecs, "@timestamp", "2025-03-01T12:00:00.123456789Z"},
		{ocsf, "class_uid", 1007.0},
		{ocsf, "activity_id", 1.0},
		{ocsf, "category_uid", 1.0},
		{ocsf, "type_uid", 100701.0},
		{ocsf, "severity_id", 4.0},
		{ocsf, "time", float64(a.Time.UnixMilli())},
		{ocsf, "process.pid", 3120.0},
		{ocsf, "process.cmd_line", "base64 -d"},
		{ocsf, "process.file.path", "/usr/bin/base64"},
		{ocsf, "process.file.name", "base64"},
		{ocsf, "process.parent_process.pid", 3100.0},
		{ocsf, "process.parent_process.file.path", "/bin/bash"},
		{ocsf, "actor.user.uid", "1000"},
		{ocsf, "metadata.product.name", "encwatch"},
		{ocsf, "finding_info.analytic.name", "data_encoder_exec"},
	}
	for _, tt := range tests {
		if got := get(tt.doc, tt.path); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s = %#v, want %#v", tt.path, got, tt.want)
		}
	}
}

func TestCodecRoundTrip(t *testing.T) {
	for _, a := range []detect.Alert{testAlert(), hostileAlert(), {ID: "bare"}} {
		a.Time = a.Time.UTC()
		if a.Event != nil {
			a.Event.Time = a.Event.Time.UTC()
		}
		a.Payload = &detect.Payload{Encoding: "base64", Length: 3, Kind: "text", Preview: "\x00x"}
		got, _ := spoolRoundTrip(t, &a)
		if !got.Time.Equal(a.Time) {
			t.Errorf("time = %v, want %v", got.Time, a.Time)
		}
		got.Time = a.Time
		if got.Event != nil {
			got.Event.Time = a.Event.Time
		}
		// gob leaves empty slices nil; argv keeps its empty arguments.
		if !reflect.DeepEqual(AppendJSON(nil, &got), AppendJSON(nil, &a)) {
			t.Errorf("round trip:\n got %s\nwant %s", AppendJSON(nil, &got), AppendJSON(nil, &a))
		}
		if a.Event != nil && !slices.Equal(got.Event.Argv, a.Event.Argv) {
			t.Errorf("argv = %q, want %q", got.Event.Argv, a.Event.Argv)
		}
	}
}

// FuzzFormats checks that no argv, exe or cwd makes any format emit more
// than one well-formed record, or lose argv.
func FuzzFormats(f *testing.F) {
	for _, s := range hostileArgv {
		f.Add(s, "/usr/bin/x", "/")
	}
	f.Fuzz(func(t *testing.T, arg, exe, cwd string) {
		a := testAlert()
		a.Time = time.Unix(1700000000, 0)
		a.Event.Argv = []string{"x", arg, arg + "\n" + exe}
		a.Event.Exe, a.Event.Cwd = exe, cwd
		for name, f := range allFormats {
			out := f(nil, &a)
			if got := recoverArgv(t, name, out); !slices.Equal(got, a.Event.Argv) {
				t.Fatalf("%s argv = %q, want %q", name, got, a.Event.Argv)
			}
		}
	})
}

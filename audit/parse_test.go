package audit

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestParseHeader(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		want     Header
		wantBody string
		wantErr  error
	}{
		{"plain", "audit(1795759259.157:6): a=b", Header{Time: time.Unix(1795759259, 157e6), Serial: 6}, " a=b", nil},
		{"eoe with space", "audit(1795759259.157:6): ", Header{Time: time.Unix(1795759259, 157e6), Serial: 6}, " ", nil},
		{"no body", "audit(1.000:1):", Header{Time: time.Unix(1, 0), Serial: 1}, "", nil},
		{"trailing NUL", "audit(1.5:18446744073709551615): x=1\x00", Header{Time: time.Unix(1, 5e8), Serial: 1<<64 - 1}, " x=1", nil},
		{"node prefix", "node=web-1 audit(2.001:3): x=1", Header{Time: time.Unix(2, 1e6), Serial: 3, Node: "web-1"}, " x=1", nil},
		{"msg prefix", "msg=audit(2.001:3): x=1", Header{Time: time.Unix(2, 1e6), Serial: 3}, " x=1", nil},
		{"empty", "", Header{}, "", errNoHeader},
		{"no audit", "type=SYSCALL x=1", Header{}, "", errNoHeader},
		{"no dot", "audit(1795759259:6): ", Header{}, "", errBadTime},
		{"no millis", "audit(1795759259.:6): ", Header{}, "", errBadTime},
		{"huge seconds", "audit(99999999999999999999999.000:6): ", Header{}, "", errBadTime},
		{"serial overflow", "audit(1.000:18446744073709551616): ", Header{}, "", errBadSerial},
		{"no serial", "audit(1.000:): ", Header{}, "", errBadSerial},
		{"no close", "audit(1.000:5 x=1", Header{}, "", errBadHeader},
		{"no colon (old auditd's DAEMON_*)", "audit(1.000:5) x=1", Header{Time: time.Unix(1, 0), Serial: 5}, " x=1", nil},
		{"no colon, no body", "audit(1.000:5)", Header{Time: time.Unix(1, 0), Serial: 5}, "", nil},
		{"junk after close", "audit(1.000:5)x=1", Header{}, "", errBadHeader},
		{"junk after colon-less close", "audit(1.000:5);", Header{}, "", errBadHeader},
		{"node without header", "node=x", Header{}, "", errBadNode},
		{"empty node", "node= audit(1.000:5):", Header{}, "", errBadNode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, body, err := parseHeaderValue([]byte(tt.in))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("parseHeaderValue(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if !got.Time.Equal(tt.want.Time) || got.Serial != tt.want.Serial || got.Node != tt.want.Node {
				t.Errorf("parseHeaderValue(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if string(body) != tt.wantBody {
				t.Errorf("parseHeaderValue(%q) body = %q, want %q", tt.in, body, tt.wantBody)
			}
		})
	}
}

func TestParseRecord(t *testing.T) {
	const hdr = "audit(1795759259.177:10): "
	tests := []struct {
		name         string
		typ          uint16
		body         string
		want         []Field
		wantEnriched []Field
		wantErr      error
	}{
		{
			name: "execve hex and quoted",
			typ:  RecExecve,
			body: `argc=3 a0="/bin/echo" a1=636166E9201B5B33316D0A2271756F74656422 a2=7461620968657265`,
			want: []Field{
				{"argc", "3", KindBare},
				{"a0", "/bin/echo", KindQuoted},
				{"a1", "caf\xe9 \x1b[31m\n\"quoted\"", KindHex},
				{"a2", "tab\there", KindHex},
			},
		},
		{
			name: "execve split argument and empty ones",
			typ:  RecExecve,
			body: ` a1="" a3_len=8 a3[0]=6162 a3[1]=6364 a4=""`,
			want: []Field{
				{"a1", "", KindQuoted},
				{"a3_len", "8", KindBare},
				{"a3[0]", "ab", KindHex},
				{"a3[1]", "cd", KindHex},
				{"a4", "", KindQuoted},
			},
		},
		{
			name: "syscall numbers stay numbers",
			typ:  RecSyscall,
			body: `arch=c000003e syscall=59 a0=7fb0777840 a3=0 tty=(none) comm=6120 exe=(null) key=? subj=unconfined`,
			want: []Field{
				{"arch", "c000003e", KindBare},
				{"syscall", "59", KindBare},
				{"a0", "7fb0777840", KindBare},
				{"a3", "0", KindBare},
				{"tty", "(none)", KindBare},
				{"comm", "a ", KindHex},
				{"exe", "", KindNull},
				{"key", "", KindUnset},
				{"subj", "unconfined", KindBare},
			},
		},
		{
			name: "bprm_fcaps capability masks stay numbers",
			typ:  RecBprmFcaps,
			body: `fver=0 old_pp=000001fffeffffff pe=000001fffeffffff`,
			want: []Field{{"fver", "0", KindBare}, {"old_pp", "000001fffeffffff", KindBare}, {"pe", "000001fffeffffff", KindBare}},
		},
		{
			name: "proctitle hex",
			typ:  RecProctitle,
			body: `proctitle=626173653634002D64`,
			want: []Field{{"proctitle", "base64\x00-d", KindHex}},
		},
		{
			name: "user record single quotes",
			typ:  1112,
			body: `pid=1 uid=0 msg='op=login acct="root" exe="/usr/sbin/sshd" res=success'`,
			want: []Field{
				{"pid", "1", KindBare},
				{"uid", "0", KindBare},
				{"msg", `op=login acct="root" exe="/usr/sbin/sshd" res=success`, KindQuoted},
			},
		},
		{
			name: "avc free text is skipped",
			typ:  1400,
			body: `avc:  denied  { read } for  pid=7 comm="cat" name=2F746D702F61`,
			want: []Field{{"pid", "7", KindBare}, {"comm", "cat", KindQuoted}, {"name", "/tmp/a", KindHex}},
		},
		{
			name: "enriched fields",
			typ:  RecSyscall,
			body: "arch=c000003e uid=0 key=\"k\"\x1dARCH=x86_64 UID=\"root\" key=6162\x1dAUID=\"unset\"",
			want: []Field{{"arch", "c000003e", KindBare}, {"uid", "0", KindBare}, {"key", "k", KindQuoted}},
			wantEnriched: []Field{
				{"ARCH", "x86_64", KindBare},
				{"UID", "root", KindQuoted},
				{"key", "6162", KindBare}, // never hex-decoded among enriched fields
				{"AUID", "unset", KindQuoted},
			},
		},
		{
			name: "empty bare value",
			typ:  RecConfigChange,
			body: `op= res=1`,
			want: []Field{{"op", "", KindBare}, {"res", "1", KindBare}},
		},
		{name: "unterminated quote", typ: RecCwd, body: `cwd="/tmp`, wantErr: errUnterm},
		{name: "junk after quote", typ: RecCwd, body: `cwd="/tmp"x`, wantErr: errAfterQuote},
		{name: "odd hex", typ: RecExecve, body: `argc=1 a0=616`, wantErr: errBadHex},
		{name: "not hex", typ: RecPath, body: `name=/tmp/x`, wantErr: errBadHex},
		{name: "empty key", typ: RecSyscall, body: `=5`, wantErr: errEmptyKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRecord(Record{Type: tt.typ, Data: []byte(hdr + tt.body)})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseRecord(%q) error = %v, want %v", tt.body, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got.Serial != 10 || got.Type != tt.typ {
				t.Errorf("ParseRecord(%q) serial, type = %d, %d, want 10, %d", tt.body, got.Serial, got.Type, tt.typ)
			}
			if !reflect.DeepEqual(got.Fields, tt.want) {
				t.Errorf("ParseRecord(%q) fields =\n%q\nwant\n%q", tt.body, got.Fields, tt.want)
			}
			if !reflect.DeepEqual(got.Enriched, tt.wantEnriched) {
				t.Errorf("ParseRecord(%q) enriched = %q, want %q", tt.body, got.Enriched, tt.wantEnriched)
			}
		})
	}
}

func TestParseRecordGet(t *testing.T) {
	p, err := ParseRecord(Record{Type: RecConfigChange, Data: []byte(`audit(1.000:3): op=set audit_enabled=0 old=1 res=1`)})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := p.Get("audit_enabled"); got != "0" || !ok {
		t.Errorf("Get(audit_enabled) = %q, %v, want \"0\", true", got, ok)
	}
	if got, ok := p.Get("missing"); got != "" || ok {
		t.Errorf("Get(missing) = %q, %v, want \"\", false", got, ok)
	}
}

func TestIsStringField(t *testing.T) {
	tests := []struct {
		typ  uint16
		key  string
		want bool
	}{
		{RecExecve, "a0", true},
		{RecExecve, "a12[3]", true},
		{RecExecve, "a12_len", false},
		{RecExecve, "argc", false},
		{RecSyscall, "a0", false},
		{RecSyscall, "arch", false},
		{RecSyscall, "comm", true},
		{RecPath, "name", true},
		{RecProctitle, "proctitle", true},
		{RecSyscall, "tty", false},
		{RecExecve, "a", false},
		{RecExecve, "ax", false},
		{RecExecve, "a1[x]", false},
	}
	for _, tt := range tests {
		if got := isStringField(tt.typ, tt.key); got != tt.want {
			t.Errorf("isStringField(%d, %q) = %v, want %v", tt.typ, tt.key, got, tt.want)
		}
	}
}

func TestTypeName(t *testing.T) {
	tests := []struct {
		num  uint16
		name string
	}{
		{RecSyscall, "SYSCALL"}, {RecPath, "PATH"}, {RecConfigChange, "CONFIG_CHANGE"},
		{RecCwd, "CWD"}, {RecExecve, "EXECVE"}, {RecEOE, "EOE"}, {RecBprmFcaps, "BPRM_FCAPS"},
		{RecProctitle, "PROCTITLE"}, {1400, "AVC"}, {1200, "DAEMON_START"}, {1112, "USER_LOGIN"},
		{1234, "UNKNOWN[1234]"}, {65535, "UNKNOWN[65535]"},
	}
	for _, tt := range tests {
		if got := typeName(tt.num); got != tt.name {
			t.Errorf("typeName(%d) = %q, want %q", tt.num, got, tt.name)
		}
		got, err := parseTypeName(tt.name)
		if err != nil || got != tt.num {
			t.Errorf("parseTypeName(%q) = %d, %v, want %d", tt.name, got, err, tt.num)
		}
	}
	for _, bad := range []string{"", "NOPE", "UNKNOWN[]", "UNKNOWN[65536]", "UNKNOWN[12", "UNKNOWN[-1]"} {
		if got, err := parseTypeName(bad); !errors.Is(err, errUnknownType) {
			t.Errorf("parseTypeName(%q) = %d, %v, want error %v", bad, got, err, errUnknownType)
		}
	}
}

func FuzzParseRecord(f *testing.F) {
	f.Add(uint16(RecExecve), []byte(`audit(1795759259.165:7): argc=4 a0="/bin/echo" a1="" a2="x" a3_len=8 a3[0]=5155 a3[1]=4A44`))
	f.Add(uint16(RecSyscall), []byte("node=h audit(1.000:1): arch=c000003e syscall=59 comm=\"x\" exe=(null) key=?\x1dUID=\"root\""))
	f.Fuzz(func(t *testing.T, typ uint16, data []byte) {
		orig := string(data)
		p, err := ParseRecord(Record{Type: typ, Data: data})
		if string(data) != orig {
			t.Fatalf("ParseRecord modified its input")
		}
		if err != nil {
			return
		}
		for _, fl := range p.Fields {
			if fl.Key == "" {
				t.Errorf("ParseRecord(%q) returned a field with an empty key", data)
			}
			if (fl.Kind == KindNull || fl.Kind == KindUnset) && fl.Value != "" {
				t.Errorf("ParseRecord(%q) placeholder %q has value %q", data, fl.Key, fl.Value)
			}
		}
		// A header that parsed must parse the same way on its own.
		h, _, err := parseHeaderValue(data)
		if err != nil || h.Serial != p.Serial || !h.Time.Equal(p.Time) || h.Node != p.Node {
			t.Errorf("parseHeaderValue(%q) = %+v, %v; ParseRecord gave %+v", data, h, err, p.Header)
		}
	})
}

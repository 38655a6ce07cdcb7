package netlink

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	libaudit "github.com/elastic/go-libaudit/v2"

	"github.com/encwatch/encwatch/audit"
)

// datagram builds a netlink datagram the way the kernel sends an audit
// record: nlmsg_len holds the payload length only.
func datagram(typ uint16, seq uint32, payload string) []byte {
	b := make([]byte, 16, 16+len(payload))
	binary.NativeEndian.PutUint32(b[0:], uint32(len(payload)))
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint32(b[8:], seq)
	return append(b, payload...)
}

func TestParseMessage(t *testing.T) {
	tests := []struct {
		name     string
		in       []byte
		wantOK   bool
		wantType uint16
		wantSeq  uint32
		wantData string
	}{
		{"record, payload-only length", datagram(audit.RecExecve, 0, `audit(1.2:3): argc=1 a0="x"`), true, audit.RecExecve, 0, `audit(1.2:3): argc=1 a0="x"`},
		{"empty payload", datagram(audit.RecEOE, 0, ""), true, audit.RecEOE, 0, ""},
		{"ack", datagram(2, 7, "\x00\x00\x00\x00"), true, 2, 7, "\x00\x00\x00\x00"},
		{"short header", make([]byte, 15), false, 0, 0, ""},
		{"nothing", nil, false, 0, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, data, ok := parseMessage(tt.in)
			if ok != tt.wantOK || h.Type != tt.wantType || h.Seq != tt.wantSeq || string(data) != tt.wantData {
				t.Errorf("parseMessage = type %d seq %d %q %v, want type %d seq %d %q %v",
					h.Type, h.Seq, data, ok, tt.wantType, tt.wantSeq, tt.wantData, tt.wantOK)
			}
		})
	}
}

func TestIsRecord(t *testing.T) {
	tests := []struct {
		typ  uint16
		want bool
	}{
		{1, false},                  // NLMSG_NOOP
		{2, false},                  // NLMSG_ERROR (ACKs)
		{3, false},                  // NLMSG_DONE
		{audit.MsgGet, false},       // replies to our own requests
		{audit.MsgListRules, false}, // rule list replies
		{audit.MsgReplace, false},   // the kernel pinging its daemon
		{1100, true},                // AUDIT_FIRST_USER_MSG
		{audit.RecSyscall, true},
		{audit.RecConfigChange, true},
		{audit.RecEOE, true},
		{1400, true}, // AUDIT_AVC
	}
	for _, tt := range tests {
		if got := isRecord(tt.typ); got != tt.want {
			t.Errorf("isRecord(%d) = %v, want %v", tt.typ, got, tt.want)
		}
	}
}

func TestTrimNUL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a=b\x00", "a=b"},
		{"a=b\x00\x00", "a=b"},
		{"a=b", "a=b"},
		{"\x00", ""},
		{"", ""},
		{"a\x00b", "a\x00b"},
	}
	for _, tt := range tests {
		if got := string(trimNUL([]byte(tt.in))); got != tt.want {
			t.Errorf("trimNUL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestStatusWireRoundTrip(t *testing.T) {
	want := libaudit.AuditStatus{
		Mask: libaudit.AuditStatusPID | libaudit.AuditStatusBacklogLimit, Enabled: 1, Failure: 2, PID: 4242,
		RateLimit: 5, BacklogLimit: 8192, Lost: 7, Backlog: 8, FeatureBitmap: 0x7f, BacklogWaitTime: 15000,
		BacklogWaitTimeActual: 9,
	}
	var got libaudit.AuditStatus
	if err := got.FromWireFormat(statusWire(want)); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("FromWireFormat(statusWire(%+v)) = %+v", want, got)
	}
}

func TestConfigDefaults(t *testing.T) {
	got, err := OwnerConfig{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := OwnerConfig{Settings: audit.Settings{
		BacklogLimit:  audit.DefaultBacklogLimit,
		RuleKey:       audit.DefaultRuleKey,
		GatherWindow:  audit.DefaultGatherWindow,
		ReceiveBuffer: audit.DefaultReceiveBuffer,
	}} // the zero value leaves the enabled flag alone
	if got.BacklogLimit != want.BacklogLimit || got.RuleKey != want.RuleKey ||
		got.GatherWindow != want.GatherWindow || got.ReceiveBuffer != want.ReceiveBuffer || got.Enabled != want.Enabled {
		t.Errorf("OwnerConfig{}.withDefaults() = %+v, want %+v", got, want)
	}
	for _, f := range []string{"", "silent", "printk", "panic"} {
		if _, err := (OwnerConfig{Settings: audit.Settings{Failure: f}}).withDefaults(); err != nil {
			t.Errorf("Failure %q: %v, want nil", f, err)
		}
	}
	for _, key := range []string{"has space", `q"uote`, strings.Repeat("k", 257)} {
		if _, err := (OwnerConfig{Settings: audit.Settings{RuleKey: key}}).withDefaults(); err == nil {
			t.Errorf("RuleKey %.20q: nil error, want one", key)
		}
	}
	if _, err := (OwnerConfig{Settings: audit.Settings{Failure: "log"}}).withDefaults(); err == nil || !strings.Contains(err.Error(), `"log"`) {
		t.Errorf("Failure \"log\": %v, want an error naming it", err)
	}
}

func TestPIDTakenErrorMessage(t *testing.T) {
	tests := []struct {
		err  PIDTakenError
		want string
	}{
		{PIDTakenError{PID: 812, Comm: "auditd"}, "process 812 (auditd), probably auditd"},
		{PIDTakenError{PID: 812}, "process 812, probably auditd"},
	}
	for _, tt := range tests {
		got := tt.err.Error()
		for _, want := range []string{tt.want, `audit { mode = "multicast" }`, "systemctl stop auditd"} {
			if !strings.Contains(got, want) {
				t.Errorf("%+v.Error() = %q, want it to contain %q", tt.err, got, want)
			}
		}
	}
}

func TestStatusFailureMode(t *testing.T) {
	tests := []struct {
		failure uint32
		want    string
	}{{0, "silent"}, {1, "printk"}, {2, "panic"}, {9, "unknown(9)"}}
	for _, tt := range tests {
		if got := (Status{Failure: tt.failure}).FailureMode(); got != tt.want {
			t.Errorf("Status{Failure: %d}.FailureMode() = %q, want %q", tt.failure, got, tt.want)
		}
	}
}

func TestBuildRules(t *testing.T) {
	got, err := buildRules("k1")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"-a always,exit -F arch=b64 -S execve,execveat -F key=k1",
		"-a always,exit -F arch=b32 -S execve,execveat -F key=k1",
	}
	if len(got) != len(want) {
		t.Fatalf("buildRules: %d rules, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].text != want[i] {
			t.Errorf("buildRules rule %d = %q, want %q", i, got[i].text, want[i])
		}
	}
	if _, err := buildRules("has space"); err == nil {
		t.Error(`buildRules("has space") = nil error, want one`)
	}
	got, err = buildRules("k1", "PROCTITLE", "BPRM_FCAPS")
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, "-a always,exclude -F msgtype=PROCTITLE", "-a always,exclude -F msgtype=BPRM_FCAPS")
	if len(got) != len(want) {
		t.Fatalf("buildRules with exclusions: %d rules, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].text != want[i] {
			t.Errorf("buildRules with exclusions, rule %d = %q, want %q", i, got[i].text, want[i])
		}
	}
	if _, err := buildRules("k1", "EXECVE"); err == nil {
		t.Error(`buildRules("k1", "EXECVE") = nil error, want one`)
	}
}

// TestConfigUsesAuditValidators checks that what `encwatch run` refuses is
// what the audit package's validators (and so `encwatch validate`) refuse,
// with the same message.
func TestConfigUsesAuditValidators(t *testing.T) {
	wait := func(n uint32) *uint32 { return &n }
	tests := []struct {
		name string
		cfg  OwnerConfig
		want error // the validator's verdict
	}{
		{"rule key with a colon", OwnerConfig{Settings: audit.Settings{RuleKey: "enc:watch"}}, audit.CheckRuleKey("enc:watch")},
		{"good rule key", OwnerConfig{Settings: audit.Settings{RuleKey: "enc-watch"}}, nil},
		{"failure", OwnerConfig{Settings: audit.Settings{Failure: "printf"}}, func() error { _, err := audit.ParseFailure("printf"); return err }()},
		{"backlog wait time", OwnerConfig{Settings: audit.Settings{BacklogWaitTime: wait(1 << 31)}}, audit.CheckBacklogWaitTime(1 << 31)},
		{"gather window", OwnerConfig{Settings: audit.Settings{GatherWindow: 2 * time.Second}}, audit.CheckGatherWindow(2 * time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.cfg.withDefaults()
			switch {
			case tt.want == nil && err != nil:
				t.Errorf("withDefaults() = %v, want nil", err)
			case tt.want != nil && (err == nil || !strings.Contains(err.Error(), tt.want.Error())):
				t.Errorf("withDefaults() = %v, want the validator's %q", err, tt.want)
			}
		})
	}
	if _, err := (MulticastConfig{Settings: audit.Settings{RuleKey: "enc:watch"}}).withDefaults(); err == nil {
		t.Error(`MulticastConfig{Settings: audit.Settings{RuleKey: "enc:watch"}}.withDefaults() = nil, want an error`)
	}
}

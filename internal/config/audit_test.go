package config

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/internal/input"
)

// TestAuditSettingsUseAuditValidators proves that `encwatch validate` (this
// package) and `encwatch run` (audit/netlink, which calls the same
// validators before it touches the kernel) agree on every kernel-facing
// setting: a bad value fails Parse with the audit validator's own message,
// and a good value passes both.
func TestAuditSettingsUseAuditValidators(t *testing.T) {
	// Values are Go values: a string is quoted into HCL (whose escapes are
	// Go's for these), a number written as it is.
	type values = []any
	str := func(check func(string) error) func(any) error {
		return func(v any) error { return check(v.(string)) }
	}
	integer := func(check func(int64) error) func(any) error {
		return func(v any) error { return check(v.(int64)) }
	}
	duration := func(check func(time.Duration) error) func(any) error {
		return func(v any) error {
			d, err := time.ParseDuration(v.(string))
			if err != nil {
				return err
			}
			return check(d)
		}
	}
	failure := func(s string) error { _, err := audit.ParseFailure(s); return err }
	tests := []struct {
		attr      string
		validator func(any) error
		good, bad values
	}{
		{"mode", str(input.CheckMode),
			values{"owner", "multicast", "audisp"}, values{"ownr", "", "Owner"}},
		{"rule_key", str(audit.CheckRuleKey),
			values{"encwatch", "enc-watch_1.2", strings.Repeat("k", 256)}, // AUDIT_MAX_KEY_LEN
			values{"enc:watch", "has space", `q"uote`, `back\slash`, "", strings.Repeat("k", 257)}},
		{"failure", str(failure),
			values{"silent", "printk", "panic"}, values{"printf", "", "log"}},
		{"backlog_limit", integer(audit.CheckBacklogLimit),
			values{int64(0), int64(8192), int64(1<<32 - 1)}, values{int64(-1), int64(1 << 32)}},
		{"backlog_wait_time", integer(audit.CheckBacklogWaitTime),
			values{int64(0), int64(60000), int64(audit.MaxBacklogWaitTime)}, values{int64(-1), int64(audit.MaxBacklogWaitTime + 1)}},
		{"rate_limit", integer(audit.CheckRateLimit),
			values{int64(0), int64(1000)}, values{int64(-5), int64(1 << 32)}},
		{"max_in_flight", integer(audit.CheckMaxInFlight),
			values{int64(1), int64(4096), int64(audit.MaxMaxInFlight)}, values{int64(0), int64(audit.MaxMaxInFlight + 1)}},
		{"gather_window", duration(audit.CheckGatherWindow),
			values{"0s", "20ms", "1s"}, values{"-1ms", "2s"}},
		{"event_timeout", duration(audit.CheckEventTimeout),
			values{"1ms", "2s", "1m"}, values{"0s", "500us", "2m"}},
	}
	parse := func(attr string, v any) error {
		text := fmt.Sprint(v)
		if s, ok := v.(string); ok {
			text = strconv.Quote(s)
		}
		_, err := Parse("audit.hcl", fmt.Appendf(nil, "audit {\n  %s = %s\n}\n", attr, text))
		return err
	}
	for _, tt := range tests {
		t.Run(tt.attr, func(t *testing.T) {
			for _, v := range tt.good {
				if err := tt.validator(v); err != nil {
					t.Errorf("audit validator(%s = %#v) = %v, want nil", tt.attr, v, err)
				}
				if err := parse(tt.attr, v); err != nil {
					t.Errorf("Parse(%s = %#v) = %v, want nil", tt.attr, v, err)
				}
			}
			for _, v := range tt.bad {
				verr := tt.validator(v)
				if verr == nil {
					t.Errorf("audit validator(%s = %#v) = nil, want an error", tt.attr, v)
					continue
				}
				if err := parse(tt.attr, v); err == nil || !strings.Contains(err.Error(), verr.Error()) {
					t.Errorf("Parse(%s = %#v) = %v, want the audit validator's %q", tt.attr, v, err, verr)
				}
			}
		})
	}
}

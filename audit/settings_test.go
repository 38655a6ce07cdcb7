package audit

import (
	"strings"
	"testing"
)

func TestFailureNames(t *testing.T) {
	for _, name := range FailureModes() {
		v, err := ParseFailure(name)
		if err != nil {
			t.Errorf("ParseFailure(%q) = %v, want nil", name, err)
			continue
		}
		if got := FailureName(v); got != name {
			t.Errorf("FailureName(ParseFailure(%q)) = %q, want %q", name, got, name)
		}
	}
	if got := FailureName(9); got != "unknown(9)" {
		t.Errorf("FailureName(9) = %q, want %q", got, "unknown(9)")
	}
	if _, err := ParseFailure("log"); err == nil || !strings.Contains(err.Error(), `"log"`) {
		t.Errorf(`ParseFailure("log") = %v, want an error naming it`, err)
	}
}

func TestCheckRuleKey(t *testing.T) {
	tests := []struct {
		key string
		ok  bool
	}{
		{"encwatch", true},
		{"enc-watch_1.2", true},
		{strings.Repeat("k", maxRuleKeyLen), true},
		{"", false},
		{"enc:watch", false}, // validate once accepted it, run refused it
		{"has space", false},
		{`q"uote`, false},
		{strings.Repeat("k", maxRuleKeyLen+1), false},
	}
	for _, tt := range tests {
		if err := CheckRuleKey(tt.key); (err == nil) != tt.ok {
			t.Errorf("CheckRuleKey(%.20q) = %v, want ok %v", tt.key, err, tt.ok)
		}
	}
}

func TestCheckExcludeRecords(t *testing.T) {
	for _, tc := range []struct {
		names []string
		ok    bool
	}{
		{nil, true},
		{[]string{"PROCTITLE"}, true},
		{[]string{"PROCTITLE", "BPRM_FCAPS"}, true},
		{[]string{"EXECVE"}, false},
		{[]string{"proctitle"}, false},
		{[]string{"PROCTITLE", "PROCTITLE"}, false},
	} {
		err := CheckExcludeRecords(tc.names)
		if got := err == nil; got != tc.ok {
			t.Errorf("CheckExcludeRecords(%q) = %v, want ok %v", tc.names, err, tc.ok)
		}
	}
}

package sink

import (
	"strings"
	"testing"

	"github.com/encwatch/encwatch/detect"
)

// TestModeField: an encoder alert's mode appears in every format, under
// process.mode in the native JSON; an alert without one adds nothing.
func TestModeField(t *testing.T) {
	tests := []struct {
		name   string
		format string
		want   string
		absent string // what an alert without a mode must not hold
	}{
		{"json", "json", `"exit":0,"mode":"encode"}`, `"mode":"`},
		{"ecs", "ecs", `"mode":"encode"`, `"mode":"`},
		{"ocsf", "ocsf", `"mode":"encode"`, `"mode":"`},
		{"cef", "cef", `flexString2Label=mode flexString2=encode`, "flexString2"},
		{"leef", "leef", "\tmode=encode", "\tmode="},
	}
	for _, tt := range tests {
		format, err := NewFormat(tt.format, FormatOptions{Version: "test"})
		if err != nil {
			t.Fatalf("NewFormat(%q): %v", tt.format, err)
		}
		a := hostileAlert()
		a.Event.Exit = 0
		a.Mode = detect.ModeEncode
		if got := string(format(nil, &a)); !strings.Contains(got, tt.want) {
			t.Errorf("%s = %s, want it to contain %s", tt.name, got, tt.want)
		}
		a.Mode = ""
		if got := string(format(nil, &a)); strings.Contains(got, tt.absent) {
			t.Errorf("%s without a mode = %s, want no mode field", tt.name, got)
		}
	}
}

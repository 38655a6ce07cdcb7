package sink

import (
	"strings"
	"testing"
)

// TestArgsSource checks that every format says when argv was split from
// PROCTITLE, and says nothing when it came from EXECVE.
func TestArgsSource(t *testing.T) {
	tests := []struct {
		format string
		want   string
	}{
		{"json", `"args_source":"proctitle"`},
		{"ecs", `"args_source":"proctitle"`},
		{"ocsf", `"args_source":"proctitle"`},
		{"cef", "cn2Label=argvFromProctitle cn2=1"},
		{"leef", "argsSource=proctitle"},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			f, err := NewFormat(tt.format, FormatOptions{Version: "test"})
			if err != nil {
				t.Fatal(err)
			}
			a := testAlert()
			if got := string(f(nil, &a)); strings.Contains(got, "roctitle") {
				t.Errorf("%s of an EXECVE argv = %s, want no args source", tt.format, got)
			}
			a.Event.ArgvFromProctitle = true
			if got := string(f(nil, &a)); !strings.Contains(got, tt.want) {
				t.Errorf("%s of a PROCTITLE argv = %s, want it to hold %s", tt.format, got, tt.want)
			}
		})
	}
}

// TestArgsSourceSpool checks that the spool keeps ArgvFromProctitle, and
// that a record written before the field existed decodes as EXECVE.
func TestArgsSourceSpool(t *testing.T) {
	a := testAlert()
	a.Event.ArgvFromProctitle = true
	got, rec := spoolRoundTrip(t, &a)
	if !got.Event.ArgvFromProctitle {
		t.Errorf("decodeAlert(encodeAlert(alert from proctitle)).Event.ArgvFromProctitle = false, want true")
	}
	old := strings.Replace(string(rec), `,"argv_from_proctitle":true`, "", 1)
	if old == string(rec) {
		t.Fatalf("spool record %s has no argv_from_proctitle", rec)
	}
	got, err := decodeAlert([]byte(old))
	if err != nil {
		t.Fatal(err)
	}
	if got.Event.ArgvFromProctitle {
		t.Errorf("decodeAlert(record without the field).Event.ArgvFromProctitle = true, want false")
	}
}

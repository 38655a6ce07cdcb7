package sink

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/encwatch/encwatch/detect"
)

// fixtureAlerts are the alerts in testdata/spool-gob-v1. The fixture was
// written by the gob-encoding code itself (commit 92cb1a8 holds the test
// that wrote it: OpenSpool, Append each of these, Close), before codec.go
// moved to version 2.
func fixtureAlerts() []detect.Alert {
	var out []detect.Alert
	for i := range 3 {
		a := hostileAlert()
		a.ID = "gob-" + strconv.Itoa(i)
		out = append(out, a)
	}
	a := testAlert()
	a.ID = "gob-full"
	a.User, a.LoginUser, a.ContainerID = "www-data", "alice", "3f4e5d6c7b8a"
	a.Payload = &detect.Payload{Encoding: "base64", Length: 12, Kind: "shell", Preview: "echo hi\x00"}
	a.Throttled = 7
	a.Related = []detect.Process{{PID: 9, PPID: 1, Exe: "/bin/sh", Argv: []string{"sh", "\xff"}, UID: 0}}
	out = append(out, a)
	return out
}

// TestSpoolReadsGobRecords opens a spool written by the release before
// versioned records (encoding/gob; testdata/spool-gob-v1, made by that code
// from fixtureAlerts) and reads every alert back exactly: an upgrade loses
// nothing that was spooled.
func TestSpoolReadsGobRecords(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"0000000000000001.wal", "ack"} {
		b, err := os.ReadFile(filepath.Join("testdata/spool-gob-v1", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, err := OpenSpool(SpoolOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A new record after the old ones: both versions in one segment.
	want := fixtureAlerts()
	extra := hostileAlert()
	extra.ID = "json-after-gob"
	if err := s.Append(&extra); err != nil {
		t.Fatal(err)
	}
	want = append(want, extra)
	got, _, skipped, err := s.Read(nil, 100)
	if err != nil || skipped != 0 {
		t.Fatalf("Read = %d alerts, %d skipped, %v; want %d, 0, nil", len(got), skipped, err, len(want))
	}
	if len(got) != len(want) {
		t.Fatalf("Read = %d alerts, want %d", len(got), len(want))
	}
	for i := range want {
		if g, w := AppendJSON(nil, &got[i]), AppendJSON(nil, &want[i]); !bytes.Equal(g, w) {
			t.Errorf("alert %d read back as\n%s\nwant\n%s", i, g, w)
		}
		if !reflect.DeepEqual(got[i].Event.Argv, want[i].Event.Argv) {
			t.Errorf("alert %d argv = %q, want %q", i, got[i].Event.Argv, want[i].Event.Argv)
		}
	}
}

// fill sets every field reachable from v to a distinct non-zero value, with
// invalid UTF-8 in every string, so that a field the spool codec forgets
// shows up as a difference.
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.String:
		v.SetString("s" + strconv.Itoa(*n) + "\xff\x00")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(*n))
	case reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(*n))
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fill(v.Index(i), n)
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Unix(1700000000, int64(*n)).UTC()))
			return
		}
		for i := range v.NumField() {
			fill(v.Field(i), n)
		}
	default:
		panic("fill: unhandled kind " + v.Kind().String())
	}
}

// spoolRoundTrip encodes a as a spool record and decodes it back; it
// returns the alert decoded and the record.
func spoolRoundTrip(t *testing.T, a *detect.Alert) (detect.Alert, []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := encodeAlert(&buf, a); err != nil {
		t.Fatal(err)
	}
	got, err := decodeAlert(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return got, buf.Bytes()
}

func TestSpoolCodecKeepsEveryField(t *testing.T) {
	var a detect.Alert
	n := 0
	fill(reflect.ValueOf(&a).Elem(), &n)
	got, _ := spoolRoundTrip(t, &a)
	if !reflect.DeepEqual(got, a) {
		t.Errorf("decodeAlert(encodeAlert(a)) =\n%+v\nwant\n%+v", got, a)
	}
}

// TestSpoolRecordGolden pins the version-2 record: a change to it is a
// change of the on-disk format, which needs a new version (docs/sinks.md).
func TestSpoolRecordGolden(t *testing.T) {
	a := hostileAlert()
	a.Time = a.Time.UTC()
	a.Event.Time = a.Event.Time.UTC()
	var buf bytes.Buffer
	if err := encodeAlert(&buf, &a); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "spool_v2.golden")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("spool record =\n%s\nwant\n%s", buf.Bytes(), want)
	}
}

func TestDecodeAlertRefusesUnknownVersion(t *testing.T) {
	for _, rec := range []string{`{"v":3,"alert":{}}`, `{"v":2}`, "{not json", ""} {
		if _, err := decodeAlert([]byte(rec)); err == nil {
			t.Errorf("decodeAlert(%q) = nil error, want one", rec)
		}
	}
}

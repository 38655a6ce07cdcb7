package sink

import (
	"os"
	"strconv"
	"testing"

	"github.com/encwatch/encwatch/detect"
)

// fixtureAlerts are the alerts in testdata/spool-gob-v1.
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

func TestWriteGobFixture(t *testing.T) {
	dir := os.Getenv("FIXTURE_DIR")
	if dir == "" {
		t.Skip()
	}
	s, err := OpenSpool(SpoolOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range fixtureAlerts() {
		if err := s.Append(&a); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

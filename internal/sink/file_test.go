package sink

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/encwatch/encwatch/detect"
)

// countingWriter counts Write calls.
type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

// readIDs parses a file of JSON lines and returns the alert IDs in order.
func readIDs(t *testing.T, b []byte) []string {
	t.Helper()
	var got []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var v struct{ ID string }
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("line %q: %v", sc.Bytes(), err)
		}
		got = append(got, v.ID)
	}
	return got
}

func hostileBatch() []detect.Alert {
	a, b := testAlert(), testAlert()
	a.ID, b.ID = "1", "2"
	a.Event.Argv = []string{"sh", "-c", "x\n{\"id\":\"forged\"}\n\u2028"}
	return []detect.Alert{a, b}
}

func TestStdoutOneWritePerBatch(t *testing.T) {
	var w countingWriter
	s := NewStdout("stdout", &w, nil)
	if err := s.Send(t.Context(), hostileBatch()); err != nil {
		t.Fatalf("Send = %v", err)
	}
	if w.writes != 1 {
		t.Errorf("Send made %d writes, want 1", w.writes)
	}
	if got, want := readIDs(t, w.Bytes()), []string{"1", "2"}; !slices.Equal(got, want) {
		t.Errorf("lines carry ids %q, want %q", got, want)
	}
}

func TestFileAppendModeAndDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "dir", "alerts.json")
	s, err := NewFile(discardLog(), "file", path, FileOptions{Sync: true})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.Send(t.Context(), hostileBatch()); err != nil {
			t.Fatalf("Send = %v", err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := readIDs(t, b), []string{"1", "2", "1", "2"}; !slices.Equal(got, want) {
		t.Errorf("file holds ids %q, want %q", got, want)
	}
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o750 | os.ModeDir} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode(); got != want {
			t.Errorf("mode of %s = %v, want %v", p, got, want)
		}
	}
}

func TestFileReopenAfterRotate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "alerts.json")
	s, err := NewFile(discardLog(), "file", path, FileOptions{Mode: 0o640})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	batch := hostileBatch()
	if err := s.Send(t.Context(), batch[:1]); err != nil {
		t.Fatalf("Send = %v", err)
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Reopen(); err != nil {
		t.Fatalf("Reopen = %v", err)
	}
	if err := s.Send(t.Context(), batch[1:]); err != nil {
		t.Fatalf("Send = %v", err)
	}
	for p, want := range map[string][]string{path + ".1": {"1"}, path: {"2"}} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := readIDs(t, b); !slices.Equal(got, want) {
			t.Errorf("%s holds ids %q, want %q", filepath.Base(p), got, want)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode() != 0o640 {
		t.Errorf("reopened file mode = %v (%v), want 0640", fi.Mode(), err)
	}
}

// TestFileDiskFull writes to /dev/full, which fails every write with ENOSPC.
func TestFileDiskFull(t *testing.T) {
	s, err := NewFile(discardLog(), "full", "/dev/full", FileOptions{})
	if err != nil {
		t.Fatalf("open /dev/full (Linux only): %v", err)
	}
	defer s.Close()
	err = s.Send(t.Context(), hostileBatch())
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Send to /dev/full = %v, want a disk full error wrapping ENOSPC", err)
	}
}

func TestFileCutTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alerts.json")
	s, err := NewFile(discardLog(), "file", path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.f.Write([]byte("{\"id\":\"1\"}\n{\"id\":\"2\"")); err != nil {
		t.Fatal(err)
	}
	s.cutTail(int64(len(`{"id":"2"`))) // as after a write torn by ENOSPC
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), "{\"id\":\"1\"}\n"; got != want {
		t.Errorf("file after cutTail = %q, want %q", got, want)
	}
}

func TestBuild(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		specs   []Config
		want    []string // sink names
		wantErr string
	}{
		{"stdout and file", []Config{{Type: "stdout"}, {Type: "file", Name: "local", Settings: &FileSettings{Path: filepath.Join(dir, "a.json")}}}, []string{"stdout", "local"}, ""},
		{"explicit json", []Config{{Type: "stdout", Common: Common{Format: "json"}}}, []string{"stdout"}, ""},
		{"none", nil, nil, ""},
		{"unknown type", []Config{{Type: "kafka", Name: "k"}}, nil, `sink "k": unknown type "kafka": want ` + strings.Join(Types(), ", ")},
		{"unknown format", []Config{{Type: "stdout", Common: Common{Format: "xml"}}}, nil, `sink "stdout": unknown format "xml": want json, ecs, ocsf, cef, leef, text`},
		{"unknown payload", []Config{{Type: "webhook", Name: "w", Common: Common{Format: "xml"}, Settings: &WebhookSettings{HTTPSettings{URL: "http://127.0.0.1:1"}, ""}}}, nil, `sink "w": payload: unknown format "xml": want json, ecs, ocsf, cef, leef, text`},
		{"duplicate", []Config{{Type: "stdout"}, {Type: "file", Name: "stdout", Settings: &FileSettings{Path: filepath.Join(dir, "b.json")}}}, nil, `sink "stdout": duplicate name`},
		{"file without path", []Config{{Type: "stdout"}, {Type: "file"}}, nil, `sink "file": no path`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sinks, err := Build(tt.specs, BuildOptions{Log: discardLog()})
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr || sinks != nil {
					t.Fatalf("Build = %v, %v; want nil, %q", sinks, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Build = %v", err)
			}
			var got []string
			for _, s := range sinks {
				got = append(got, s.Name())
				s.Close()
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Build made %q, want %q", got, tt.want)
			}
		})
	}
}

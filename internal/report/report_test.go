package report

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/sink"
)

// alertOf returns an alert of pid's exec of argv on host, at second sec.
func alertOf(host string, pid, ppid int, argv []string, sec int) detect.Alert {
	return detect.Alert{
		Time:      time.Unix(1795759259+int64(sec), 0),
		Host:      host,
		Signature: detect.SignatureInfo{Name: "data_encoder_exec", Description: "Data encoder execution", Importance: detect.High, MITRE: []string{"T1027"}},
		Event:     &audit.Event{PID: pid, PPID: ppid, Exe: "/usr/bin/" + argv[0], Argv: argv, Cwd: "/tmp"},
		Matches:   []detect.Match{{Field: "exe", Value: "/usr/bin/" + argv[0], Reason: "listed"}},
		Actions:   []string{"Identify the parent process"},
	}
}

func write(t *testing.T, r *Report) string {
	t.Helper()
	var b bytes.Buffer
	if err := r.Write(&b, Summary{Records: 7, Events: 1, Alerts: 1, Inputs: []Input{{Name: "audit.log", Records: 7}}}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

var scriptElem = regexp.MustCompile(`(?s)<script>(.*?)</script>`)

// TestPageScriptAllowedByItsPolicy checks the policy's hash is the hash of
// the script the page holds: else the filters would not run.
func TestPageScriptAllowedByItsPolicy(t *testing.T) {
	r := New(0)
	a := alertOf("vm", 10, 1, []string{"base64", "-d"}, 0)
	r.Add(&a)
	page := write(t, r)
	m := scriptElem.FindAllStringSubmatch(page, -1)
	if len(m) != 1 {
		t.Fatalf("%d script elements, want 1", len(m))
	}
	h := sha256.Sum256([]byte(m[0][1]))
	want := "'sha256-" + base64.StdEncoding.EncodeToString(h[:]) + "'"
	if !strings.Contains(page, "script-src "+strings.ReplaceAll(want, "'", "&#39;")) {
		t.Errorf("the policy does not allow the page's script by %s:\n%s", want, regexp.MustCompile(`Content-Security-Policy" content="[^"]*`).FindString(page))
	}
	if strings.Contains(page, "http://") || strings.Contains(page, "https://") || strings.Contains(page, "src=") {
		t.Error("the page refers to something outside itself")
	}
}

// TestHostileStringsAreText puts markup in every string of an alert that
// comes from a log: each must come out escaped, never as markup.
func TestHostileStringsAreText(t *testing.T) {
	evil := `"><script>alert(1)</script><img src=x onerror=alert(2)>'`
	a := alertOf(evil, 10, 1, []string{"base64", evil}, 0)
	a.Signature.Name, a.Signature.Description = evil, evil
	a.User, a.LoginUser, a.ContainerID, a.Mode = evil, evil, evil, evil
	a.Event.Exe, a.Event.Cwd = evil, evil
	a.Matches = []detect.Match{{Field: evil, Value: evil, Reason: evil}}
	a.Actions = []string{evil}
	a.Payload = &detect.Payload{Encoding: evil, Kind: evil, Preview: evil + "\n\x1b[2J"}
	a.Ancestry = []detect.Process{{PID: 1, Exe: evil, Argv: []string{evil}}}
	r := New(0)
	r.Add(&a)
	page := write(t, r)
	if n := strings.Count(page, "<script"); n != 1 {
		t.Errorf("%d <script in the page, want the page's own only", n)
	}
	for _, bad := range []string{"<img", "alert(1)</script>", "\x1b"} {
		if strings.Contains(page, bad) {
			t.Errorf("the page holds %q", bad)
		}
	}
	if !strings.Contains(page, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Error("the hostile string is not shown as escaped text")
	}
}

// TestCountsCoverEveryAlert caps the page at 2 alerts of 5: the counts
// still say 5.
func TestCountsCoverEveryAlert(t *testing.T) {
	r := New(2)
	for i := range 5 {
		a := alertOf("vm", 10+i, 1, []string{"base64"}, i)
		r.Add(&a)
	}
	page := write(t, r)
	if got := strings.Count(page, `<article class="alert`); got != 2 {
		t.Errorf("%d alerts shown, want 2", got)
	}
	if !strings.Contains(page, `<b id="total-alerts">5</b>`) || !strings.Contains(page, "shows the first 2 alerts of 5") {
		t.Error("the page does not say 2 of 5 alerts are shown")
	}
}

// TestRetriedBatchCountsOnce runs a stdout sink whose first write fails,
// as a broken pipe would: the batch it sends again is on the page once.
func TestRetriedBatchCountsOnce(t *testing.T) {
	r := New(0)
	var out bytes.Buffer
	w, format := r.Attach(&failOnce{w: &out}, nil)
	s := sink.NewStdout("replay", w, format)
	batch := []detect.Alert{alertOf("vm", 10, 1, []string{"base64"}, 0), alertOf("vm", 11, 1, []string{"base64"}, 1)}
	batch[0].ID, batch[1].ID = "433f877f9c24f48fd497d220ea4bf062", "696c65a51be973be72f5d096be2e0f80"
	if err := s.Send(context.Background(), batch); err == nil {
		t.Fatal("the first send did not fail")
	}
	if err := s.Send(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(out.String(), "\n"); got != 2 {
		t.Errorf("stdout has %d lines, want 2", got)
	}
	page := write(t, r)
	if got := strings.Count(page, `<article class="alert`); got != 2 {
		t.Errorf("%d alerts on the page, want 2", got)
	}
}

// failOnce fails its first write.
type failOnce struct {
	w      io.Writer
	failed bool
}

func (f *failOnce) Write(p []byte) (int, error) {
	if !f.failed {
		f.failed = true
		return 0, errors.New("broken pipe")
	}
	return f.w.Write(p)
}

// TestProcessTreeFromEarlierAlerts: without ancestry (a replay), an
// alert's parents that were alerted earlier on the same host make its
// tree; a same pid on another host does not.
func TestProcessTreeFromEarlierAlerts(t *testing.T) {
	sh := alertOf("vm", 100, 1, []string{"sh", "-c", "echo x | base64 -d | sh"}, 0)
	other := alertOf("web1", 100, 1, []string{"sh", "-c", "other host"}, 1)
	b64 := alertOf("vm", 101, 100, []string{"base64", "-d"}, 2)
	r := New(0)
	for _, a := range []*detect.Alert{&b64, &other, &sh} { // out of order: the page sorts by time
		r.Add(a)
	}
	page := write(t, r)
	tree := regexp.MustCompile(`(?s)<div class="tree">(.*?)</div>\n`).FindAllStringSubmatch(page, -1)
	if len(tree) != 3 {
		t.Fatalf("%d trees, want 3", len(tree))
	}
	got := regexp.MustCompile(`\[(\d+)`).FindAllStringSubmatch(tree[2][1], -1)
	if len(got) != 2 || got[0][1] != "100" || got[1][1] != "101" {
		t.Errorf("tree of the base64 alert: %q, want pids 100 then 101", got)
	}
	if strings.Contains(tree[2][1], "other host") {
		t.Error("a process of another host is in the tree")
	}
}

func TestShellQuote(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		want string
	}{
		{[]string{"base64", "-d", "/etc/hostname"}, "base64 -d /etc/hostname"},
		{[]string{"sh", "-c", "echo a | base64 -d"}, "sh -c 'echo a | base64 -d'"},
		{[]string{"echo", "it's", ""}, `echo 'it'\''s' ''`},
		{[]string{"x", "a\x1b[2Jb\u202e"}, `x $'a\x1b[2Jb\xe2\x80\xae'`},
		{[]string{"x", "\xff"}, `x $'\xff'`},
	} {
		if got := shellQuote(tc.argv); got != tc.want {
			t.Errorf("shellQuote(%q) = %s, want %s", tc.argv, got, tc.want)
		}
	}
}

// pageTags are the elements the page's template writes.
var pageTags = map[string]bool{}

func init() {
	for _, tag := range strings.Fields("html head meta title style body header h1 h2 h3 h4 div main section b i span p table tr th td code a select option label button article ul li pre br script") {
		pageTags[tag] = true
	}
}

var (
	tagName   = regexp.MustCompile(`<([a-zA-Z][a-zA-Z0-9-]*)`)
	tagText   = regexp.MustCompile(`<[a-zA-Z][^>]*>`)
	quoted    = regexp.MustCompile(`"[^"]*"`)
	eventAttr = regexp.MustCompile(`\son[a-zA-Z]+\s*=`)
)

// FuzzPageEscapes writes a page for an alert whose host, argv and user are
// arbitrary bytes: the page never holds a tag of theirs.
func FuzzPageEscapes(f *testing.F) {
	f.Add("vm", "base64 -d", "root")
	f.Add(`"><script>alert(1)</script>`, "<img src=x onerror=alert(1)>", "</title><svg onload=alert(1)>")
	f.Add("\xff\x00", "\u2028</script>", "<!--")
	f.Fuzz(func(t *testing.T, host, arg, user string) {
		a := alertOf(host, 10, 1, []string{"base64", arg}, 0)
		a.User = user
		r := New(0)
		r.Add(&a)
		var b bytes.Buffer
		if err := r.Write(&b, Summary{}); err != nil {
			t.Fatal(err)
		}
		page := b.String()
		for _, m := range tagName.FindAllStringSubmatch(page, -1) {
			if !pageTags[strings.ToLower(m[1])] {
				t.Fatalf("the page holds a <%s> tag of the input's", m[1])
			}
		}
		for _, tag := range tagText.FindAllString(page, -1) {
			if m := eventAttr.FindString(quoted.ReplaceAllString(tag, `""`)); m != "" {
				t.Fatalf("the page holds an event handler attribute: %q in %q", m, tag)
			}
		}
		if n := strings.Count(strings.ToLower(page), "<script"); n != 1 {
			t.Fatalf("%d <script in the page", n)
		}
		if n := strings.Count(page, "<article"); n != 1 {
			t.Fatalf("%d articles, want 1", n)
		}
	})
}

// BenchmarkWrite writes a page of DefaultMax alerts on 20 hosts and
// reports its size per alert.
func BenchmarkWrite(b *testing.B) {
	r := New(0)
	for i := range DefaultMax {
		a := alertOf(fmt.Sprintf("host%02d", i%20), 1000+i, 1, []string{"sh", "-c", "echo ZWNobyBoZWxsbwo= | base64 -d | sh"}, i)
		a.Payload = &detect.Payload{Encoding: "base64", Length: 11, Kind: "shell", Preview: "echo hello\n"}
		r.Add(&a)
	}
	var n int
	b.ReportAllocs()
	for b.Loop() {
		var w countWriter
		if err := r.Write(&w, Summary{}); err != nil {
			b.Fatal(err)
		}
		n = int(w)
	}
	b.ReportMetric(float64(n)/DefaultMax, "bytes/alert")
	b.ReportMetric(float64(n)/1e6, "MB/page")
}

type countWriter int

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

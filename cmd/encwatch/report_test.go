package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/encwatch/encwatch/internal/audittest"
)

// chromiumPage is what headless Chromium made of a page.
type chromiumPage struct {
	dom     string   // the DOM after the page's script ran (--dump-dom)
	console []string // every console message, errors and policy violations among them
}

// chromium returns Debian's chromium, skipping the test without it (failing
// it under CI: make test-deps installs it).
func chromium(t *testing.T) string {
	t.Helper()
	return audittest.Program(t, "chromium", "chromium")
}

// chromiumArgs are the flags of every run: no sandbox (root), no GPU, no
// network of its own (updates, sync, field trials), an empty profile.
func chromiumArgs(t *testing.T) []string {
	return []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
		"--disable-default-apps", "--mute-audio", "--user-data-dir=" + t.TempDir(),
	}
}

// consoleLine is how chromium logs a page's console message on stderr
// (with --enable-logging=stderr): uncaught errors, console.* calls and
// Content-Security-Policy violations all come this way.
var consoleLine = regexp.MustCompile(`:CONSOLE[:(][^\]]*\] (.*)`)

// openInChromium loads the file in headless Chromium and returns its DOM
// and console messages, and writes a screenshot to png when it is not "".
func openInChromium(t *testing.T, file, png string) chromiumPage {
	t.Helper()
	bin := chromium(t)
	url := "file://" + file
	cmd := exec.Command(bin, append(chromiumArgs(t), "--enable-logging=stderr", "--v=0", "--dump-dom", url)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium --dump-dom: %v\n%s", err, stderr.String())
	}
	p := chromiumPage{dom: stdout.String()}
	for _, m := range consoleLine.FindAllStringSubmatch(stderr.String(), -1) {
		p.console = append(p.console, m[1])
	}
	if png != "" {
		out, err := exec.Command(bin, append(chromiumArgs(t), "--hide-scrollbars", "--window-size=1280,1600", "--screenshot="+png, url)...).CombinedOutput()
		if err != nil {
			t.Fatalf("chromium --screenshot: %v\n%s", err, out)
		}
		if fi, err := os.Stat(png); err != nil || fi.Size() < 10000 {
			t.Fatalf("screenshot %s: %v (%d bytes), want a picture of the page", png, err, sizeOf(fi))
		}
	}
	return p
}

func sizeOf(fi os.FileInfo) int64 {
	if fi == nil {
		return 0
	}
	return fi.Size()
}

// replayReport runs encwatch replay --report on inputs and returns the
// report's path and the number of alerts written on stdout.
func replayReport(t *testing.T, inputs ...string) (string, int) {
	t.Helper()
	report := filepath.Join(t.TempDir(), "report.html")
	var stdout, stderr bytes.Buffer
	args := append([]string{"replay", "--config", "../../config.hcl", "--report", report}, inputs...)
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("replay: %v\n%s", err, stderr.String())
	}
	if fi, err := os.Stat(report); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("report %s: %v, want a file only its owner reads", report, err)
	}
	return report, strings.Count(stdout.String(), "\n")
}

// alertCount reads the page's count of shown alerts and its articles.
var alertCount = regexp.MustCompile(`<b id="alert-count">(\d+)</b>`)

// checkPage checks a loaded report: no console message at all, the script
// ran (allowed by the page's policy), the title is the page's own, and
// want alerts are shown and counted.
func checkPage(t *testing.T, p chromiumPage, want int) {
	t.Helper()
	if len(p.console) > 0 {
		t.Errorf("console messages while loading the report:\n%s", strings.Join(p.console, "\n"))
	}
	if !strings.Contains(p.dom, `data-filters="ready"`) {
		t.Error("the report's script did not run (no data-filters=ready on <html>)")
	}
	if !strings.Contains(p.dom, "<title>encwatch replay report</title>") {
		t.Errorf("title changed: %q", regexp.MustCompile(`<title>.*?</title>`).FindString(p.dom))
	}
	m := alertCount.FindStringSubmatch(p.dom)
	if m == nil || m[1] != fmt.Sprint(want) {
		t.Errorf("alert count %v, want %d", m, want)
	}
	if got := strings.Count(p.dom, `<article class="alert`); got != want {
		t.Errorf("%d alert articles, want %d", got, want)
	}
}

// TestReportInChromium replays the repository's captured logs with
// --report and opens the page in headless Chromium: no console message,
// the alert count of the golden log (testdata/replay-formats.golden holds
// one line per alert of testdata/replay-audit.log), and a screenshot in the
// test's temporary directory; then the filters, preselected by the link
// (?host=web1), hide every alert of the other host.
func TestReportInChromium(t *testing.T) {
	chromium(t)
	golden, err := os.ReadFile("../../testdata/replay-formats.golden")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Count(string(golden), "\n")
	report, printed := replayReport(t, "../../testdata/replay-audit.log")
	if printed != want {
		t.Fatalf("replay printed %d alerts, the golden file has %d", printed, want)
	}
	png := filepath.Join(t.TempDir(), "report.png")
	p := openInChromium(t, report, png)
	checkPage(t, p, want)
	for _, s := range []string{"/usr/bin/base64 --decode /etc/hostname", "Replay summary", "Timeline per host", "Recommended actions", "echo hello"} {
		if !strings.Contains(p.dom, s) {
			t.Errorf("the page lacks %q", s)
		}
	}
	t.Logf("screenshot: %s", png)

	// All the captured logs: several inputs, compressed, two hosts.
	report, printed = replayReport(t, "../../testdata/replay-audit.log", "../../testdata/replay-rotated/", "../../testdata/mixed/plain-and-rfc3164.log")
	p = openInChromium(t, report, "")
	checkPage(t, p, printed)
	if strings.Count(p.dom, `<div class="host">`) != 2 {
		t.Errorf("want a timeline for each of the 2 hosts (vm, web1)")
	}

	// The filters, preselected by the link: web1's alerts alone are shown.
	web1 := strings.Count(p.dom, `data-host="web1"`)
	if web1 == 0 || web1 == printed {
		t.Fatalf("%d of %d alerts on web1: want some, not all", web1, printed)
	}
	p = openInChromium(t, report+"?host=web1", "")
	if len(p.console) > 0 {
		t.Errorf("console messages:\n%s", strings.Join(p.console, "\n"))
	}
	if m := alertCount.FindStringSubmatch(p.dom); m == nil || m[1] != fmt.Sprint(web1) {
		t.Errorf("with ?host=web1 the count is %v, want %d", m, web1)
	}
	if got := len(regexp.MustCompile(`<article class="alert[^>]*data-host="vm"[^>]*hidden`).FindAllString(p.dom, -1)); got != printed-web1 {
		t.Errorf("with ?host=web1 %d of vm's %d alerts are hidden", got, printed-web1)
	}
}

// TestReportHostileLogRunsNoScript replays a log whose host name (node=)
// and argv carry markup and script: the page shows them as text, and no
// script of theirs runs (the title they would set stays, no <img> exists,
// and the console holds no policy violation).
func TestReportHostileLogRunsNoScript(t *testing.T) {
	chromium(t)
	b, err := os.ReadFile("../../testdata/replay-audit.log")
	if err != nil {
		t.Fatal(err)
	}
	host := `"><img/src=x/onerror=document.title='pwned-host'><script>document.title='pwned-host2'</script>`
	arg := `<script>document.title='pwned-argv'</script>"><img src=x onerror="document.title='pwned-img'">`
	var log strings.Builder
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.Contains(l, ":6): ") {
			continue
		}
		l = strings.Replace(l, `a2="/etc/hostname"`, "a2="+strings.ToUpper(hex.EncodeToString([]byte(arg))), 1)
		log.WriteString("node=" + host + " " + l + "\n")
	}
	path := filepath.Join(t.TempDir(), "hostile.log")
	if err := os.WriteFile(path, []byte(log.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	report, printed := replayReport(t, path)
	if printed == 0 {
		t.Fatal("the hostile log raised no alert: nothing to show")
	}
	p := openInChromium(t, report, "")
	checkPage(t, p, printed)
	// argv shell-quoted, as the page writes command lines; the host as it is.
	for _, s := range []string{`&lt;script&gt;document.title='\''pwned-argv'\''&lt;/script&gt;`, "&lt;img/src=x/onerror=document.title='pwned-host'&gt;&lt;script&gt;document.title='pwned-host2'&lt;/script&gt;"} {
		if !strings.Contains(p.dom, s) {
			t.Errorf("the page does not show %q as text", s)
		}
	}
	if strings.Contains(p.dom, "<img") {
		t.Error("an <img> element from the log is in the page")
	}
	if n := strings.Count(p.dom, "<script"); n != 1 {
		t.Errorf("%d <script> elements, want the page's own only", n)
	}
}

// TestReportUnwritableSaysWhere: a report that cannot be written is an
// error naming it; the alerts are still printed.
func TestReportUnwritableSaysWhere(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing-dir", "report.html")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"replay", "--config", "../../config.hcl", "--report", path, "../../testdata/replay-audit.log"}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "--report "+path) {
		t.Errorf("replay --report %s: %v, want an error naming the report", path, err)
	}
	if strings.Count(stdout.String(), "\n") == 0 {
		t.Error("no alert printed")
	}
}

package packaging

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// pkgFile is one path a package installs.
type pkgFile struct {
	path   string
	mode   fs.FileMode // type and permissions
	config bool        // a configuration file: kept by dpkg -r, never overwritten
}

// packaged is every path the packages install, with its type and mode; all
// are owned by root:root.
var packaged = []pkgFile{
	{"/usr/bin/encwatch", 0o755, false},
	{"/usr/lib/systemd/system/encwatch.service", 0o644, false},
	{"/usr/lib/systemd/system/encwatch-collect.service", 0o644, false},
	{"/etc/encwatch", fs.ModeDir | 0o750, false},
	{"/etc/encwatch/conf.d", fs.ModeDir | 0o750, false},
	{"/etc/encwatch/config.hcl", 0o600, true},
	{"/etc/encwatch/collect", fs.ModeDir | 0o750, false},
	{"/etc/encwatch/collect/collect.hcl", 0o600, true},
	{"/etc/audit/plugins.d/encwatch.conf", 0o640, true},
	{"/usr/share/man/man8/encwatch.8.gz", 0o644, false},
	{"/usr/share/doc/encwatch/README.md", 0o644, false},
	{"/usr/share/doc/encwatch/packaging.md", 0o644, false},
	{"/usr/share/doc/encwatch/fleet.md", 0o644, false},
	{"/usr/share/doc/encwatch/nats-encwatch.conf", 0o644, false},
	{"/usr/share/doc/encwatch/monitoring.md", 0o644, false},
	{"/usr/share/encwatch/prometheus/encwatch.rules.yml", 0o644, false},
	{"/usr/share/encwatch/grafana/encwatch-dashboard.json", 0o644, false},
	{"/usr/share/encwatch/grafana/encwatch-dashboards.yml", 0o644, false},
}

const (
	unitPath = "/usr/lib/systemd/system/encwatch.service"
	// collectUnitPath is the fleet's collector, installed disabled.
	collectUnitPath = "/usr/lib/systemd/system/encwatch-collect.service"
	enableLink      = "/etc/systemd/system/multi-user.target.wants/encwatch.service"
	spoolDir        = "/var/lib/encwatch"
)

var (
	buildOnce sync.Once
	dist      string
	buildErr  error
)

// packages returns the .deb and .rpm: from $ENCWATCH_DIST when `make
// package-test` built them, else built here with `make packages`.
func packages(t *testing.T) (deb, rpm string) {
	t.Helper()
	buildOnce.Do(func() {
		dist = os.Getenv("ENCWATCH_DIST")
		if dist != "" {
			return
		}
		if dist, buildErr = os.MkdirTemp("", "encwatch-dist-"); buildErr != nil {
			return
		}
		out, err := exec.Command("make", "-C", "..", "--no-print-directory", "packages", "DIST="+dist).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("make packages: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	find := func(pattern string) string {
		m, _ := filepath.Glob(filepath.Join(dist, pattern))
		if len(m) != 1 {
			t.Fatalf("want one %s in %s, found %q", pattern, dist, m)
		}
		return m[0]
	}
	return find("encwatch_*.deb"), find("encwatch-*.rpm")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if dist != "" && os.Getenv("ENCWATCH_DIST") == "" {
		os.RemoveAll(dist)
	}
	os.Exit(code)
}

// need fails the test under CI, and skips it elsewhere, when a tool or
// root is missing: CI must run every test.
func need(t *testing.T, what string, ok bool) {
	t.Helper()
	if ok {
		return
	}
	msg := fmt.Sprintf("this test needs %s (make test-deps installs the Debian packages)", what)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func have(tool string) bool {
	_, err := exec.LookPath(tool)
	return err == nil
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func installed() bool {
	out, err := exec.Command("dpkg-query", "-W", "-f=${db:Status-Status}", "encwatch").Output()
	return err == nil && strings.TrimSpace(string(out)) != "not-installed"
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// TestDebInstallRemovePurgeAsRoot installs the .deb on this machine with
// dpkg, checks every file, owner and mode, runs the installed encwatch
// validate, reinstalls over an edited policy, then removes (the
// configuration stays) and purges (nothing stays). The package is purged in
// Cleanup even when the test fails.
func TestDebInstallRemovePurgeAsRoot(t *testing.T) {
	need(t, "root, to install the .deb with dpkg", os.Geteuid() == 0)
	need(t, "dpkg", have("dpkg"))
	if installed() {
		t.Fatal("encwatch is already installed on this machine; this test installs and purges its own package and will not replace it (dpkg --purge encwatch first)")
	}
	deb, _ := packages(t)

	// What existed before, so that removal is checked only for what the
	// package brought.
	var debPaths []string
	for _, line := range strings.Split(strings.TrimSpace(run(t, "dpkg-deb", "-c", deb)), "\n") {
		f := strings.Fields(line)
		p := strings.TrimSuffix(strings.TrimPrefix(f[len(f)-1], "."), "/")
		if p != "" {
			debPaths = append(debPaths, p)
		}
	}
	before := map[string]bool{}
	for _, p := range append(debPaths, enableLink, spoolDir) {
		before[p] = exists(p)
	}
	t.Cleanup(func() {
		if installed() {
			if out, err := exec.Command("dpkg", "--purge", "encwatch").CombinedOutput(); err != nil {
				t.Errorf("cleanup: dpkg --purge encwatch: %v\n%s", err, out)
			}
		}
		if !before[spoolDir] {
			os.RemoveAll(spoolDir)
		}
	})

	run(t, "dpkg", "-i", deb)

	// Every file: listed by dpkg, with its type, mode and owner.
	listed := strings.Split(run(t, "dpkg", "-L", "encwatch"), "\n")
	for _, f := range packaged {
		if !slices.Contains(listed, f.path) {
			t.Errorf("dpkg -L encwatch does not list %s", f.path)
		}
		fi, err := os.Lstat(f.path)
		if err != nil {
			t.Errorf("after dpkg -i: %v", err)
			continue
		}
		if got := fi.Mode() & (fs.ModeType | fs.ModePerm); got != f.mode {
			t.Errorf("%s: mode %v, want %v", f.path, got, f.mode)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || st.Gid != 0 {
			t.Errorf("%s: owner %d:%d, want root:root", f.path, st.Uid, st.Gid)
		}
	}
	for _, p := range debPaths {
		if !slices.ContainsFunc(packaged, func(f pkgFile) bool {
			return f.path == p || strings.HasPrefix(f.path, p+"/")
		}) {
			t.Errorf("the .deb holds %s, which the test does not expect", p)
		}
	}
	conffiles := run(t, "dpkg-query", "-W", "-f=${Conffiles}", "encwatch")
	for _, f := range packaged {
		if got := strings.Contains(conffiles, " "+f.path+" "); got != f.config {
			t.Errorf("%s is a dpkg conffile: %v, want %v", f.path, got, f.config)
		}
	}
	if got, want := readFile(t, "/etc/encwatch/config.hcl"), readFile(t, "../config.hcl"); got != want {
		t.Errorf("/etc/encwatch/config.hcl differs from the repository's config.hcl")
	}
	checkManPage(t)

	// Enabled (offline when systemd is not running) but not started.
	if have("systemctl") && !exists(enableLink) {
		t.Errorf("after dpkg -i: %s missing: postinstall did not enable the unit", enableLink)
	}
	if pids := running("/usr/bin/encwatch"); len(pids) > 0 {
		t.Errorf("after dpkg -i: /usr/bin/encwatch runs as pid %v; install must not start the service", pids)
	}

	out := run(t, "/usr/bin/encwatch", "validate", "/etc/encwatch/config.hcl")
	if !strings.Contains(out, ": ok:") {
		t.Errorf("encwatch validate /etc/encwatch/config.hcl = %q, want an ok summary", out)
	}

	if have("promtool") {
		run(t, "promtool", "check", "rules", "/usr/share/encwatch/prometheus/encwatch.rules.yml")
	}
	if !json.Valid([]byte(readFile(t, "/usr/share/encwatch/grafana/encwatch-dashboard.json"))) {
		t.Error("/usr/share/encwatch/grafana/encwatch-dashboard.json is not JSON")
	}

	out = run(t, "/usr/bin/encwatch", "validate", "/etc/encwatch/collect/collect.hcl")
	if !strings.Contains(out, ": ok:") {
		t.Errorf("encwatch validate /etc/encwatch/collect/collect.hcl = %q, want an ok summary", out)
	}
	if _, err := os.Lstat("/etc/systemd/system/multi-user.target.wants/encwatch-collect.service"); err == nil {
		t.Error("after dpkg -i: encwatch-collect.service is enabled; the collector is for the operator to enable")
	}

	if have("systemd-analyze") {
		for _, unit := range []string{unitPath, collectUnitPath} {
			if out, err := exec.Command("systemd-analyze", "verify", unit).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
				t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
			}
		}
	} else {
		t.Log("systemd-analyze not found: unit not verified")
	}

	// An upgrade (here a reinstall) keeps the operator's policy.
	const edit = "\n# edited by the operator\n"
	appendFile(t, "/etc/encwatch/config.hcl", edit)
	run(t, "dpkg", "-i", deb)
	if got := readFile(t, "/etc/encwatch/config.hcl"); !strings.HasSuffix(got, edit) {
		t.Errorf("reinstalling replaced the edited /etc/encwatch/config.hcl")
	}
	if fi, err := os.Stat("/etc/encwatch/config.hcl"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("after reinstall: /etc/encwatch/config.hcl: %v, mode %v, want 0600", err, fi.Mode())
	}

	// A spool the daemon left, to see purge remove it.
	if !before[spoolDir] {
		mustMkdir(t, filepath.Join(spoolDir, "spool"))
		appendFile(t, filepath.Join(spoolDir, "spool", "000001.seg"), "alert\n")
	}

	run(t, "dpkg", "-r", "encwatch")
	kept := map[string]bool{"/etc/encwatch": true, "/etc/encwatch/config.hcl": true,
		"/etc/encwatch/collect": true, "/etc/encwatch/collect/collect.hcl": true,
		"/etc/audit": true, "/etc/audit/plugins.d": true, "/etc/audit/plugins.d/encwatch.conf": true}
	for _, p := range append(debPaths, enableLink) {
		if before[p] {
			continue
		}
		if got := exists(p); got != kept[p] {
			t.Errorf("after dpkg -r: %s exists: %v, want %v", p, got, kept[p])
		}
	}
	if got := readFile(t, "/etc/encwatch/config.hcl"); !strings.HasSuffix(got, edit) {
		t.Errorf("after dpkg -r: /etc/encwatch/config.hcl lost the operator's edit")
	}
	if !before[spoolDir] && !exists(spoolDir) {
		t.Errorf("after dpkg -r: %s is gone; only purge removes the spool", spoolDir)
	}

	run(t, "dpkg", "--purge", "encwatch")
	for _, p := range append(debPaths, enableLink, spoolDir) {
		if !before[p] && exists(p) {
			t.Errorf("after dpkg --purge: %s is still there", p)
		}
	}
	if installed() {
		t.Errorf("after dpkg --purge: dpkg still knows encwatch")
	}
}

// TestRPMContentsAndScriptlets queries the .rpm: its files with modes,
// owners and config flags, and its four scriptlets.
func TestRPMContentsAndScriptlets(t *testing.T) {
	need(t, "rpm", have("rpm"))
	_, rpm := packages(t)

	files := strings.Fields(run(t, "rpm", "-qlp", rpm))
	var want []string
	for _, f := range packaged {
		want = append(want, f.path)
	}
	slices.Sort(files)
	slices.Sort(want)
	if !slices.Equal(files, want) {
		t.Errorf("rpm -qlp = %q, want %q", files, want)
	}

	got := map[string]string{}
	out := run(t, "rpm", "-qp", "--qf", `[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILEFLAGS:fflags}/ %{FILENAMES}\n]`, rpm)
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		got[f[len(f)-1]] = strings.Join(f[:len(f)-1], " ")
	}
	for _, f := range packaged {
		flags := "/"
		if f.config {
			flags = "cn/" // %config(noreplace)
		}
		// fs.FileMode prints as rpm's perms do: drwxr-x---, -rw-------.
		if want := fmt.Sprintf("%v root:root %s", f.mode, flags); got[f.path] != want {
			t.Errorf("%s: rpm says %q, want %q", f.path, got[f.path], want)
		}
	}

	scripts := run(t, "rpm", "-qp", "--scripts", rpm)
	for _, s := range []struct{ section, file string }{
		{"preinstall scriptlet", "preinstall.sh"},
		{"postinstall scriptlet", "postinstall.sh"},
		{"preuninstall scriptlet", "preremove.sh"},
		{"postuninstall scriptlet", "postremove.sh"},
	} {
		i := strings.Index(scripts, s.section)
		if i < 0 {
			t.Errorf("rpm -qp --scripts: no %s", s.section)
			continue
		}
		body := strings.TrimSpace(readFile(t, filepath.Join("scripts", s.file)))
		if !strings.Contains(scripts[i:], body) {
			t.Errorf("rpm -qp --scripts: the %s is not scripts/%s", s.section, s.file)
		}
	}
}

// checkManPage checks the installed man page: gzip, a roff page for
// section 8, and a paragraph for every command `encwatch help` lists.
func checkManPage(t *testing.T) {
	t.Helper()
	f, err := os.Open("/usr/share/man/man8/encwatch.8.gz")
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Errorf("encwatch.8.gz: %v", err)
		return
	}
	b, err := io.ReadAll(z)
	if err != nil {
		t.Errorf("encwatch.8.gz: %v", err)
		return
	}
	page := string(b)
	if !strings.Contains(page, ".TH ENCWATCH 8") {
		t.Errorf("encwatch.8.gz has no .TH ENCWATCH 8 header")
	}
	help := run(t, "/usr/bin/encwatch", "help")
	_, cmds, _ := strings.Cut(help, "Commands:")
	for _, line := range strings.Split(cmds, "\n") {
		if !strings.HasPrefix(line, "  ") || strings.HasPrefix(line, "   ") {
			continue
		}
		name := strings.Fields(line)[0]
		if !strings.Contains(page, "\n.B "+name+"\n") {
			t.Errorf("the man page does not describe the %q command that encwatch help lists", name)
		}
	}
}

// running returns the pids whose executable is exe.
func running(exe string) []int {
	var pids []int
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		var pid int
		if _, err := fmt.Sscan(d.Name(), &pid); err != nil {
			continue
		}
		if l, err := os.Readlink(filepath.Join("/proc", d.Name(), "exe")); err == nil && l == exe {
			pids = append(pids, pid)
		}
	}
	return pids
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestNATSConfInFleetDoc: docs/fleet.md ships nats-encwatch.conf, the
// configuration the fleet tests run against, verbatim.
func TestNATSConfInFleetDoc(t *testing.T) {
	b, err := os.ReadFile("../docs/fleet.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "```text\n"+NATSConf+"```\n") {
		t.Error("docs/fleet.md does not hold packaging/nats-encwatch.conf verbatim in a text block")
	}
}

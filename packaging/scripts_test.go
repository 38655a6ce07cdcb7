package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestMaintainerScripts runs each maintainer script with dpkg's and rpm's
// arguments against a fake systemctl that only logs its calls, with and
// without a running systemd, and checks what it was asked to do: enable but
// not start on install, restart on upgrade, stop and disable on removal
// (the agent and the collector), and a purge deletes both spools.
func TestMaintainerScripts(t *testing.T) {
	const (
		reload  = "systemctl daemon-reload"
		enable  = "systemctl enable encwatch.service"
		disable = "systemctl disable encwatch.service encwatch-collect.service"
		stop    = "systemctl stop encwatch.service encwatch-collect.service"
		restart = "deb-systemd-invoke try-restart encwatch.service encwatch-collect.service"
		rpmRest = "systemctl try-restart encwatch.service encwatch-collect.service"
	)
	type step struct {
		script string
		args   []string
	}
	tests := []struct {
		name      string
		steps     []step
		running   bool // /run/systemd/system exists
		noDebHelp bool // no deb-systemd-invoke, as on an rpm system
		noSystemd bool // no systemctl at all
		want      []string
		wantSpool bool // /var/lib/encwatch still there afterwards
	}{
		{name: "deb install", running: true, steps: []step{{"preinstall", []string{"install"}}, {"postinstall", []string{"configure", ""}}}, want: []string{reload, enable}},
		{name: "deb install without systemd", steps: []step{{"preinstall", []string{"install"}}, {"postinstall", []string{"configure", ""}}}, want: []string{enable}},
		{name: "deb install without systemctl", noSystemd: true, steps: []step{{"postinstall", []string{"configure", ""}}}},
		{name: "deb upgrade", running: true, wantSpool: true, steps: []step{{"preremove", []string{"upgrade", "1.1"}}, {"preinstall", []string{"upgrade", "1.0"}}, {"postremove", []string{"upgrade", "1.1"}}, {"postinstall", []string{"configure", "1.0"}}}, want: []string{reload, restart}},
		{name: "deb upgrade without systemd", steps: []step{{"preinstall", []string{"upgrade", "1.0"}}, {"postinstall", []string{"configure", "1.0"}}}},
		{name: "deb reinstall after remove", running: true, steps: []step{{"preinstall", []string{"install", "1.0"}}, {"postinstall", []string{"configure", "1.0"}}}, want: []string{reload, enable}},
		{name: "deb abort-upgrade", running: true, steps: []step{{"postinstall", []string{"abort-upgrade", "1.1"}}}},
		{name: "deb remove", running: true, wantSpool: true, steps: []step{{"preremove", []string{"remove"}}, {"postremove", []string{"remove"}}}, want: []string{stop, disable, reload}},
		{name: "deb remove without systemd", wantSpool: true, steps: []step{{"preremove", []string{"remove"}}, {"postremove", []string{"remove"}}}, want: []string{disable}},
		{name: "deb purge", running: true, steps: []step{{"postremove", []string{"purge"}}}, want: []string{reload}},
		{name: "rpm install", running: true, noDebHelp: true, steps: []step{{"preinstall", []string{"1"}}, {"postinstall", []string{"1"}}}, want: []string{reload, enable}},
		{name: "rpm upgrade", running: true, noDebHelp: true, wantSpool: true, steps: []step{{"preinstall", []string{"2"}}, {"postinstall", []string{"2"}}, {"preremove", []string{"1"}}, {"postremove", []string{"1"}}}, want: []string{reload, rpmRest}},
		{name: "rpm remove", running: true, noDebHelp: true, wantSpool: true, steps: []step{{"preremove", []string{"0"}}, {"postremove", []string{"0"}}}, want: []string{stop, disable, reload}},
		{name: "rpm remove without systemd", noDebHelp: true, wantSpool: true, steps: []step{{"preremove", []string{"0"}}, {"postremove", []string{"0"}}}, want: []string{disable}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			bin := filepath.Join(root, "fakebin")
			logFile := filepath.Join(root, "calls")
			mustMkdir(t, bin, filepath.Join(root, "run"), filepath.Join(root, "var/lib/encwatch/spool"), filepath.Join(root, "var/lib/encwatch-collect/spool"))
			if tt.running {
				mustMkdir(t, filepath.Join(root, "run/systemd/system"))
			}
			// PATH holds only the fakes and rm: a real systemctl is never run.
			fake := "#!/bin/sh\necho \"$(basename \"$0\") $*\" >>\"$CALLS\"\n"
			if !tt.noSystemd {
				writeExec(t, filepath.Join(bin, "systemctl"), fake)
			}
			if !tt.noDebHelp && !tt.noSystemd {
				writeExec(t, filepath.Join(bin, "deb-systemd-invoke"), fake)
			}
			for _, tool := range []string{"rm", "basename"} {
				p, err := exec.LookPath(tool)
				if err != nil {
					t.Fatalf("%s: %v", tool, err)
				}
				if err := os.Symlink(p, filepath.Join(bin, tool)); err != nil {
					t.Fatal(err)
				}
			}
			for _, s := range tt.steps {
				cmd := exec.Command("/bin/sh", append([]string{filepath.Join("scripts", s.script+".sh")}, s.args...)...)
				cmd.Env = []string{"PATH=" + bin, "CALLS=" + logFile, "ENCWATCH_PKG_TESTROOT=" + root}
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("%s %q: %v\n%s", s.script, s.args, err, out)
				}
			}
			b, err := os.ReadFile(logFile)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			var got []string
			if s := strings.TrimSpace(string(b)); s != "" {
				got = strings.Split(s, "\n")
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("calls = %q, want %q", got, tt.want)
			}
			if _, err := os.Stat(filepath.Join(root, "run/encwatch-pkg-install")); err == nil {
				t.Errorf("preinstall's marker left in /run after postinstall")
			}
			for _, spool := range []string{"var/lib/encwatch", "var/lib/encwatch-collect"} {
				_, err = os.Stat(filepath.Join(root, spool))
				if gotSpool := err == nil; gotSpool != tt.wantSpool && slices.ContainsFunc(tt.steps, func(s step) bool { return s.script == "postremove" }) {
					t.Errorf("/%s kept = %v, want %v", spool, gotSpool, tt.wantSpool)
				}
			}
		})
	}
}

func mustMkdir(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func writeExec(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
}

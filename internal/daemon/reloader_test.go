package daemon

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/encwatch/encwatch/internal/doctest"
	"github.com/encwatch/encwatch/internal/input"

	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/internal/config"
)

// refusingKernel is a kernel input without a kernel: it reads records from
// a pipe like audisp, reports a healthy kernel and refuses any audit block
// with backlog_limit 4321, as a kernel refuses a setting it does not take.
type refusingKernel struct {
	input.Input              // audisp's
	calls       atomic.Int32 // Reconfigure calls
}

func (k *refusingKernel) Status() (input.Status, error) { return input.Status{Enabled: 1}, nil }
func (k *refusingKernel) Found() input.Status           { return input.Status{Enabled: 1} }

// Rules has no execve rule, so the daemon runs no canary.
func (k *refusingKernel) Rules() ([]string, error) { return nil, nil }

func (k *refusingKernel) Reconfigure(a audit.Settings) error {
	k.calls.Add(1)
	if a.BacklogLimit == 4321 {
		return errors.New("set backlog_limit 4321: operation not permitted")
	}
	return nil
}

var _ input.Reconfigurer = (*refusingKernel)(nil)

// TestReloadRefusedByKernelFails reloads a policy whose audit block the
// kernel refuses: the reload counts as failed and raises
// policy_reload_failed, although its signatures are applied; the same
// policy reloaded again (SIGHUP) is offered to the kernel again and fails
// again; a policy the kernel takes counts as ok.
func TestReloadRefusedByKernelFails(t *testing.T) {
	var k *refusingKernel
	sighup := make(chan os.Signal, 1)
	d := startAudisp(t, encoderPolicy, func(o *Options) {
		l := logrus.New()
		l.SetOutput(io.Discard)
		audisp, _ := input.Lookup("audisp")
		in, err := audisp.Open(input.Config{Stdin: o.Stdin, Log: logrus.NewEntry(l)})
		if err != nil {
			t.Fatal(err)
		}
		k = &refusingKernel{Input: in}
		o.input = k
		o.Reload = sighup
	})
	defer func() {
		if t.Failed() {
			t.Log(d.logs)
		}
	}()
	refused := xxdPolicy + "\naudit {\n  backlog_limit = 4321\n}\n"

	writeReplace(t, d.path, d.policy(refused))
	d.waitAlerts(t, "policy_reload_failed for the refused audit block", func(as []alert) bool {
		return countAlerts(as, sigReloadFailed) == 1
	})
	if !strings.Contains(d.logs.String(), "audit: set backlog_limit 4321: operation not permitted") {
		t.Errorf("logs do not name the audit reloader and the kernel's refusal")
	}
	d.exec(t, "/usr/bin/xxd", "-r", "-p")
	d.waitAlerts(t, "the xxd alert: the new signatures applied despite the refusal", func(as []alert) bool {
		return hasExeAlert(as, "/usr/bin/xxd")
	})

	sighup <- syscall.SIGHUP
	d.waitAlerts(t, "policy_reload_failed again for the same policy on SIGHUP", func(as []alert) bool {
		return countAlerts(as, sigReloadFailed) == 2
	})

	writeReplace(t, d.path, d.policy(xxdPolicy))
	waitFor(t, "the reload the kernel takes", func() (bool, error) {
		return strings.Contains(d.logs.String(), `"msg":"policy reloaded"`), nil
	})
	if got := k.calls.Load(); got != 3 {
		t.Errorf("Reconfigure calls = %d, want 3 (refused, refused again, taken)", got)
	}
	m := scrape(t, d.metrics+"/metrics")
	for _, want := range []string{`encwatch_reloads_total{result="failed"} 2`, `encwatch_reloads_total{result="ok"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics has no %q:\n%s", want, grepLines(m, "encwatch_reloads"))
		}
	}
}

// TestSameAudit checks the audit reloader's test for a changed block,
// BacklogWaitTime being a pointer compared by value.
func TestSameAudit(t *testing.T) {
	u := func(v uint32) *uint32 { return &v }
	base := config.Audit{Settings: audit.Settings{RuleKey: "encwatch", BacklogLimit: 8192}}
	with := func(f func(*config.Audit)) config.Audit {
		a := base
		f(&a)
		return a
	}
	tests := []struct {
		name string
		a, b config.Audit
		want bool
	}{
		{"equal", base, base, true},
		{"rule key", base, with(func(a *config.Audit) { a.RuleKey = "other" }), false},
		{"wait nil and set", base, with(func(a *config.Audit) { a.BacklogWaitTime = u(0) }), false},
		{"wait same value", with(func(a *config.Audit) { a.BacklogWaitTime = u(60000) }), with(func(a *config.Audit) { a.BacklogWaitTime = u(60000) }), true},
		{"wait other value", with(func(a *config.Audit) { a.BacklogWaitTime = u(1) }), with(func(a *config.Audit) { a.BacklogWaitTime = u(2) }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sameAudit(tt.a, tt.b); got != tt.want {
				t.Errorf("sameAudit(%+v, %+v) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

// environmentReloader is the worked example of
// docs/development.md: a part of the daemon that follows the
// policy's settings.environment. apply decides itself whether its part
// changed, and returns why it could not follow, never logs it: the reload
// does, and counts the failure.
type environmentReloader struct {
	current string
}

func (e *environmentReloader) apply(old, cfg *config.Config) error {
	if cfg.Settings.Environment == old.Settings.Environment {
		return nil
	}
	if cfg.Settings.Environment == "" {
		return fmt.Errorf("environment: empty")
	}
	e.current = cfg.Settings.Environment
	return nil
}

// TestAddingAReloader runs the example reloader with the daemon's
// applyReloaders, beside one that always fails: the example is applied
// although a reloader before it failed, and the failure comes back named.
func TestAddingAReloader(t *testing.T) {
	env := &environmentReloader{current: "ci"}
	rs := []reloader{
		{name: "broken", apply: func(_, _ *config.Config) error { return errors.New("refused") }},
		{name: "environment", apply: env.apply},
	}
	old := &config.Config{Settings: config.Settings{Environment: "ci"}}
	cfg := &config.Config{Settings: config.Settings{Environment: "production"}}
	l := logrus.New()
	l.SetOutput(io.Discard)

	err := applyReloaders(rs, old, cfg, logrus.NewEntry(l))
	if err == nil || err.Error() != "broken: refused" {
		t.Errorf("applyReloaders() = %v, want broken: refused", err)
	}
	if env.current != "production" {
		t.Errorf("environment after reload = %q, want production", env.current)
	}
}

// TestDevelopmentDocQuotesTheReloaderExample: the Go blocks of the lifecycle
// section of docs/development.md are verbatim from the reload code and its
// example test.
func TestDevelopmentDocQuotesTheReloaderExample(t *testing.T) {
	doctest.Quoted(t, "The daemon's lifecycle, and adding a reloader", "reload.go", "reloader_test.go")
}

// TestArchitectureDocQuotesTheReloaderExample: the reloader seam of
// docs/architecture.md quotes this example verbatim.
func TestArchitectureDocQuotesTheReloaderExample(t *testing.T) {
	doctest.Architecture(t, "Seam: reloader", "reloader_test.go")
}

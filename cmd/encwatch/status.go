package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/encwatch/encwatch/audit/netlink"
	"github.com/encwatch/encwatch/internal/config"
	"github.com/encwatch/encwatch/internal/endpoint"
)

func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", "[--config FILE] [--key KEY]", stderr)
	path := fs.String("config", defaultConfig, "policy file, for the rule key and the metrics address")
	key := fs.String("key", "", "rule key of encwatch's rules (default: the policy's audit.rule_key, else encwatch)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var cfg *config.Config
	if c, err := config.Load(*path, config.LoadOptions{}); err == nil {
		cfg = c
	} else if !os.IsNotExist(err) {
		fmt.Fprintf(stderr, "encwatch status: policy not loaded: %v\n", err)
	}
	if *key == "" {
		*key = config.DefaultRuleKey
		if cfg != nil {
			*key = cfg.Audit.RuleKey
		}
	}
	failed := false
	c, err := netlink.OpenControl()
	if err != nil {
		fmt.Fprintf(stdout, "kernel audit: unavailable: %v\n", err)
		failed = true
	} else {
		defer c.Close()
		if err := printKernel(c, *key, stdout); err != nil {
			fmt.Fprintf(stdout, "kernel audit: %v\n", err)
			failed = true
		}
	}
	m := config.Metrics{Address: config.DefaultMetricsAddress, ProbeSocket: config.DefaultProbeSocket}
	if cfg != nil {
		m = cfg.Metrics
	}
	if !printHealth(ctx, m, stdout) {
		failed = true
	}
	if failed {
		return exitCode(1)
	}
	return nil
}

func printKernel(c *netlink.Control, key string, w io.Writer) error {
	st, err := c.Status()
	if err != nil {
		return err
	}
	enabled := map[uint32]string{0: "0 (off)", 1: "1 (on)", 2: "2 (locked)"}[st.Enabled]
	owner := "none"
	if st.PID != 0 {
		owner = fmt.Sprint(st.PID)
		if comm := netlink.ProcessComm(st.PID); comm != "" {
			owner += " (" + comm + ")"
		}
	}
	fmt.Fprintf(w, "kernel audit:\n  enabled:           %s\n  audit pid:         %s\n  backlog:           %d of %d\n  lost:              %d\n  rate limit:        %d/s\n  backlog wait time: %d\n  failure:           %s\n",
		enabled, owner, st.Backlog, st.BacklogLimit, st.Lost, st.RateLimit, st.BacklogWaitTime, st.FailureMode())
	rules, err := c.Rules()
	if err != nil {
		return err
	}
	var mine []string
	for _, r := range rules {
		if hasKey(r, key) {
			mine = append(mine, r)
		}
	}
	fmt.Fprintf(w, "rules with key %q: %d of %d in the kernel\n", key, len(mine), len(rules))
	for _, r := range mine {
		fmt.Fprintf(w, "  %s\n", r)
	}
	return nil
}

// printHealth queries the daemon's /healthz and reports whether it is
// healthy: on the probe socket when it is there (no user's connections to
// the TCP port can hold it), else on the metrics address.
func printHealth(ctx context.Context, m config.Metrics, w io.Writer) bool {
	if m.Address == "" && m.ProbeSocket == "" {
		fmt.Fprintln(w, "daemon health: unknown (no metrics address or probe socket configured)")
		return false
	}
	var probeErr error
	if endpoint.ProbeAvailable(m.ProbeSocket) {
		ok, err := queryHealth(ctx, endpoint.ProbeClient(m.ProbeSocket, healthTimeout), "unix:"+m.ProbeSocket, w)
		if err == nil {
			return ok
		}
		probeErr = err
	}
	if m.Address == "" {
		if probeErr == nil {
			probeErr = fmt.Errorf("no socket at %s", m.ProbeSocket)
		}
		fmt.Fprintf(w, "daemon health: not reachable at unix:%s: %v\n", m.ProbeSocket, probeErr)
		return false
	}
	ok, err := queryHealth(ctx, &http.Client{Timeout: healthTimeout}, m.Address, w)
	if err != nil {
		if probeErr != nil {
			fmt.Fprintf(w, "daemon health: not reachable at unix:%s: %v\n", m.ProbeSocket, probeErr)
		}
		fmt.Fprintf(w, "daemon health: not reachable at %s: %v\n", m.Address, err)
		return false
	}
	return ok
}

// healthTimeout bounds one health query.
const healthTimeout = 3 * time.Second

// queryHealth asks /healthz through c (at where, for the output) and
// prints the answer; an error is no answer.
func queryHealth(ctx context.Context, c *http.Client, where string, w io.Writer) (bool, error) {
	host := where
	if strings.HasPrefix(where, "unix:") {
		host = "probe"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+"/healthz", nil)
	if err != nil {
		return false, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Fprintf(w, "daemon health (%s): %s\n", where, strings.TrimSpace(string(body)))
	return resp.StatusCode == http.StatusOK, nil
}

// hasKey reports whether rule, as auditctl prints it, carries key.
func hasKey(rule, key string) bool {
	for _, f := range strings.Fields(rule) {
		if f == "key="+key {
			return true
		}
	}
	return strings.HasSuffix(rule, " -k "+key) || strings.Contains(rule, " -k "+key+" ")
}

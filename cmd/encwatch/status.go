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
	addr := ""
	if cfg != nil {
		addr = cfg.Metrics.Address
	}
	if addr == "" {
		fmt.Fprintln(stdout, "daemon health: unknown (no metrics address configured)")
	} else if !printHealth(ctx, addr, stdout) {
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
// healthy.
func printHealth(ctx context.Context, addr string, w io.Writer) bool {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/healthz", nil)
	if err != nil {
		fmt.Fprintf(w, "daemon health: %v\n", err)
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(w, "daemon health: not reachable at %s: %v\n", addr, err)
		return false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Fprintf(w, "daemon health (%s): %s\n", addr, strings.TrimSpace(string(body)))
	return resp.StatusCode == http.StatusOK
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

package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/config"
	"github.com/encwatch/encwatch/internal/sink"
)

// cmdCheck prints what a command line would raise under a policy, without
// the kernel: `encwatch check --config FILE [--parent CMDLINE] [--user UID]
// [--json] -- ARGV...`. A single argument holding a pipeline or a list
// ("echo x | base64 -d | sh") is run as `sh -c` would run it. Exit status 0
// means the result was printed, whether or not anything matched.
func cmdCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", "--config FILE [--parent CMDLINE] [--user UID] [--cwd DIR] [--json] -- ARGV...", stderr)
	path := fs.String("config", defaultConfig, "policy file")
	parent := fs.String("parent", "", "command line of the parent process (default: an interactive bash)")
	user := fs.String("user", "1000", "uid the command runs as")
	cwd := fs.String("cwd", "/home/user", "working directory of the command")
	asJSON := fs.Bool("json", false, "print alerts as JSON lines instead of a summary")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	argv := fs.Args()
	if len(argv) == 0 {
		fmt.Fprintln(stderr, "encwatch check: give the command line after --")
		return exitCode(2)
	}
	if len(argv) == 1 {
		split, err := detect.SplitCommand(argv[0])
		if err != nil {
			fmt.Fprintf(stderr, "encwatch check: %v\n", err)
			return exitCode(2)
		}
		argv = split
	}
	uid, err := strconv.ParseUint(*user, 10, 32)
	if err != nil {
		fmt.Fprintf(stderr, "encwatch check: --user %q is not a numeric uid\n", *user)
		return exitCode(2)
	}
	var parentArgv []string
	if *parent != "" {
		if parentArgv, err = detect.SplitCommand(*parent); err != nil {
			fmt.Fprintf(stderr, "encwatch check: --parent: %v\n", err)
			return exitCode(2)
		}
	}
	cfg, err := config.Load(*path, config.LoadOptions{})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitCode(1)
	}
	cmd := detect.Command{Argv: argv, Parent: parentArgv, UID: uint32(uid), Cwd: *cwd}
	alerts := detect.DryRun(cfg.Policy, cmd, cfg.Settings.Hostname, time.Now())
	if *asJSON {
		for i := range alerts {
			line := sink.AppendJSON(nil, &alerts[i])
			if _, err := stdout.Write(append(line, '\n')); err != nil {
				return fmt.Errorf("check: %w", err)
			}
		}
		if len(alerts) == 0 {
			fmt.Fprintln(stderr, "no alerts")
		}
		return nil
	}
	if len(alerts) == 0 {
		fmt.Fprintln(stdout, "no alerts")
		return nil
	}
	for _, a := range alerts {
		fmt.Fprintf(stdout, "%s [%s] %s\n", a.Signature.Name, a.Signature.Importance, a.Signature.Description)
		fmt.Fprintf(stdout, "  process: %s\n", quoteArgv(a.Event.Argv))
		for _, m := range a.Matches {
			fmt.Fprintf(stdout, "  match:   %s=%s: %s\n", m.Field, strconv.Quote(m.Value), m.Reason)
		}
		if p := a.Payload; p != nil {
			fmt.Fprintf(stdout, "  payload: %s, %d bytes, %s: %s\n", p.Encoding, p.Length, p.Kind, p.Preview)
		}
		for _, act := range a.Actions {
			fmt.Fprintf(stdout, "  action:  %s\n", act)
		}
	}
	return nil
}

// quoteArgv renders argv for a terminal: every byte an attacker controls is
// quoted, so a control character cannot rewrite the screen.
func quoteArgv(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = strconv.QuoteToASCII(a)
	}
	return strings.Join(q, " ")
}

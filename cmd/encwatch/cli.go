package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/sirupsen/logrus"
	"golang.org/x/term"

	"github.com/encwatch/encwatch/internal/config"
	"github.com/encwatch/encwatch/internal/daemon"
	// The nats sink type and the heartbeat and collect blocks register
	// themselves: every command that loads a policy decodes them.
	_ "github.com/encwatch/encwatch/internal/fleet"
	"github.com/encwatch/encwatch/internal/input"
	"github.com/encwatch/encwatch/internal/sink"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const defaultConfig = "/etc/encwatch/config.hcl"

// exitCode is returned by a command that has already said why it failed and
// only needs the process to exit with that status.
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit status %d", int(c)) }

// usage is the command's usage text. The modes and formats in it are the
// registered ones, listed when it is printed: a test may register more.
func usage() string {
	return strings.NewReplacer("{modes}", strings.Join(modeNames(), "|"), "{formats}", strings.Join(sink.Formats(), "|")).Replace(usageTemplate)
}

const usageTemplate = `usage: encwatch COMMAND [flags]

Commands:
  run       --config FILE [--mode {modes}]
                                     watch execs and raise alerts (root); reloads on SIGHUP and on policy file changes
  collect   --config FILE            pull the fleet's alerts from NATS JetStream into the policy's sinks; raise agent_silent
  status    [--config FILE] [--key KEY]
                                     print the kernel audit status, encwatch's rules and the daemon's health
  replay    --config FILE [--format {formats}] [--since T] [--until T] [--journal] [LOG|DIR|GLOB...]
                                     replay audit logs (rotated, .gz/.zst/.xz, "-" for stdin, journal exports)
                                     and print the alerts; a summary goes to stderr
  validate  --config FILE | FILE     check a policy and run its test blocks; prints file:line:col diagnostics, exit 1 on error
  check     --config FILE [--parent CMDLINE] [--user UID] [--cwd DIR] [--json] -- ARGV...
                                     print the alerts a command line would raise, without the kernel
  version                            print the version

Run "encwatch COMMAND --help" for the flags of a command.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return exitCode(2)
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return cmdRun(ctx, rest, stderr)
	case "collect":
		return cmdCollect(ctx, rest, stderr)
	case "replay":
		return cmdReplay(ctx, rest, stdout, stderr)
	case "status":
		return cmdStatus(ctx, rest, stdout, stderr)
	case "validate":
		return cmdValidate(rest, stdout, stderr)
	case "check":
		return cmdCheck(rest, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "encwatch %s\n", version)
		return nil
	case "help", "--help", "-help", "-h":
		fmt.Fprint(stdout, usage())
		return nil
	default:
		fmt.Fprintf(stderr, "encwatch: unknown command %q\n%s", cmd, usage())
		return exitCode(2)
	}
}

// newFlags returns a flag set that prints its usage to stderr and reports
// errors instead of exiting.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: encwatch %s %s\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, turning -help into a clean exit.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitCode(0)
		}
		return exitCode(2)
	}
	return nil
}

func newLogger(level, format string, stderr io.Writer) (*logrus.Entry, error) {
	l := logrus.New()
	l.SetOutput(stderr)
	lv, err := logrus.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	l.SetLevel(lv)
	switch format {
	case "json":
		l.SetFormatter(&logrus.JSONFormatter{})
	case "text":
		l.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	case "auto":
		if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			l.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
		} else {
			l.SetFormatter(&logrus.JSONFormatter{})
		}
	default:
		return nil, fmt.Errorf("--log-format: want auto, json or text, not %q", format)
	}
	return logrus.NewEntry(l), nil
}

// daemonFlags are the flags of the commands that run as a daemon (run and
// collect): the policy file and how to log.
type daemonFlags struct {
	path, level, format *string
}

// addDaemonFlags registers the daemon flags on fs; configHelp describes
// the policy file.
func addDaemonFlags(fs *flag.FlagSet, configHelp string) daemonFlags {
	return daemonFlags{
		path:   fs.String("config", defaultConfig, configHelp),
		level:  fs.String("log-level", "info", "log level: debug, info, warning, error"),
		format: fs.String("log-format", "auto", "log format: auto (JSON unless stderr is a terminal), json, text"),
	}
}

// start parses args into fs, then makes the logger and loads the policy,
// which must be root-owned.
func (df daemonFlags) start(fs *flag.FlagSet, args []string, stderr io.Writer) (*config.Config, *logrus.Entry, error) {
	if err := parseFlags(fs, args); err != nil {
		return nil, nil, err
	}
	log, err := newLogger(*df.level, *df.format, stderr)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := config.Load(*df.path, config.LoadOptions{RequireRootOwned: true})
	if err != nil {
		return nil, nil, err
	}
	return cfg, log, nil
}

// modeNames are the audit modes run takes.
func modeNames() []string { return input.Modes() }

// modeHelp lists the modes with what each does: "owner (be the audit
// daemon), ...".
func modeHelp() string {
	var parts []string
	for _, k := range input.Kinds() {
		if k.Help == "" {
			parts = append(parts, k.Name)
			continue
		}
		parts = append(parts, k.Name+" ("+k.Help+")")
	}
	return strings.Join(parts, ", ")
}

func cmdRun(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlags("run", "--config FILE [--mode "+strings.Join(modeNames(), "|")+"]", stderr)
	df := addDaemonFlags(fs, "policy file")
	mode := fs.String("mode", "", "audit mode, overriding the policy's audit.mode: "+modeHelp())
	cfg, log, err := df.start(fs, args, stderr)
	if err != nil {
		return err
	}
	// SIGHUP reloads the policy; SIGINT and SIGTERM, caught in main, end
	// the daemon.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	return daemon.Run(ctx, cfg, log, daemon.Options{Mode: *mode, Reload: hup, Version: version})
}

func cmdValidate(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("validate", "--config FILE | FILE", stderr)
	path := fs.String("config", "", "policy file (default "+defaultConfig+")")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *path == "" && fs.NArg() == 1:
		*path = fs.Arg(0)
	case *path == "" && fs.NArg() == 0:
		*path = defaultConfig
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "encwatch validate: unexpected arguments %s\n", strings.Join(fs.Args(), " "))
		return exitCode(2)
	}
	cfg, err := config.Load(*path, config.LoadOptions{})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitCode(1)
	}
	for _, w := range config.Warnings(cfg) {
		fmt.Fprintln(stderr, "warning: "+w)
	}
	if err := runPolicyTests(cfg, stdout); err != nil {
		fmt.Fprintln(stderr, err)
		return exitCode(1)
	}
	fmt.Fprintf(stdout, "%s: ok: %d signatures, %d tests, %d sinks\n", *path, len(cfg.Policy.Signatures()), len(cfg.Tests), len(cfg.Sinks))
	return nil
}

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
)

// auditdConf is Debian's auditd.conf cut to what writing records locally
// needs: RAW records (no ENRICHED lookups), flushed as Debian ships it
// (incremental_async every 50 records: the kernel of the records reach the
// page cache, the disk at the next flush), no plugins, no network, and no
// action that could suspend or stop logging during the run.
const auditdConf = `local_events = yes
write_logs = yes
log_file = %s
log_group = root
log_format = RAW
flush = INCREMENTAL_ASYNC
freq = 50
max_log_file = 0
max_log_file_action = IGNORE
num_logs = 0
priority_boost = 4
name_format = NONE
space_left = 2
space_left_action = IGNORE
admin_space_left = 1
admin_space_left_action = IGNORE
disk_full_action = IGNORE
disk_error_action = IGNORE
use_libwrap = no
tcp_listen_queue = 5
tcp_max_per_addr = 1
tcp_client_max_idle = 0
transport = TCP
distribute_network = no
q_depth = 2000
overflow_action = IGNORE
max_restarts = 10
plugin_dir = %s
end_of_event_timeout = 2
`

// auditdBacklog is the backlog Debian's audit.rules sets (-b 8192), the same
// as encwatch's default policy.
const auditdBacklog = 8192

// auditRules are the storm's rules for auditd: every execve and execveat,
// 64- and 32-bit, as encwatch installs them.
var auditRules = [][]string{
	{"-a", "always,exit", "-F", "arch=b64", "-S", "execve,execveat", "-k", benchKey},
	{"-a", "always,exit", "-F", "arch=b32", "-S", "execve,execveat", "-k", benchKey},
}

func auditctl(args ...string) error {
	out, err := exec.Command("auditctl", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("auditctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// runAuditd measures auditd on one storm. It runs in the foreground with -n
// (no fork); not -f, which writes the records to stderr instead of the log.
func runAuditd(ctx context.Context, o options, p point, log *logrus.Entry) (measure, error) {
	release, err := takeKernel(log)
	if err != nil {
		return measure{}, err
	}
	found, err := kernelStatus()
	var m measure
	if err == nil {
		m, err = auditdPoint(ctx, o, p, log)
		// auditd enabled auditing and sets no backlog back: restore what
		// was found, so the snapshot finds nothing to repair.
		err = errors.Join(err,
			auditctl("-b", fmt.Sprint(found.BacklogLimit)),
			auditctl("-e", fmt.Sprint(found.Enabled)))
	}
	if rerr := release(); rerr != nil {
		log.WithError(rerr).Warn("kernel audit state repaired after auditd")
	}
	return m, err
}

// auditdPoint starts auditd on a fresh configuration, installs the storm's
// rules, measures one storm and counts the storm's records in auditd's log.
func auditdPoint(ctx context.Context, o options, p point, log *logrus.Entry) (measure, error) {
	dir, err := os.MkdirTemp("", "auditd-bench-")
	if err != nil {
		return measure{}, err
	}
	defer os.RemoveAll(dir)
	logFile, err := auditdFiles(dir)
	if err != nil {
		return measure{}, err
	}
	if err := auditctl("-b", fmt.Sprint(auditdBacklog)); err != nil {
		return measure{}, err
	}
	stderr, err := os.Create(filepath.Join(dir, "auditd.stderr"))
	if err != nil {
		return measure{}, err
	}
	defer stderr.Close()
	cmd := exec.Command("auditd", "-n", "-s", "enable", "-c", dir)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		return measure{}, fmt.Errorf("start auditd: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stop := func() error {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
			return errors.New("auditd did not stop within 30 s; killed")
		}
	}
	// auditd is ready once the kernel names it the audit daemon.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := kernelStatus()
		if err == nil && st.PID == cmd.Process.Pid {
			break
		}
		if time.Now().After(deadline) {
			stop()
			b, _ := os.ReadFile(stderr.Name())
			return measure{}, fmt.Errorf("auditd did not register as the audit daemon: %s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var added [][]string
	for _, r := range auditRules {
		if err = auditctl(r...); err != nil {
			break
		}
		added = append(added, r)
	}
	var m measure
	if err == nil {
		time.Sleep(300 * time.Millisecond)
		m, err = window(ctx, cmd.Process.Pid, newStorm(p, o, dir), "")
	}
	for _, r := range added {
		d := append([]string{"-d"}, r[1:]...)
		err = errors.Join(err, auditctl(d...))
	}
	if serr := stop(); serr != nil {
		err = errors.Join(err, fmt.Errorf("auditd stop: %w", serr))
	}
	m.daemon = "auditd"
	m.pipelineLost = -1
	all, own, cerr := countSyscalls(logFile, benchKey, m.gen.pid, p.workload == "mix")
	m.events, m.ownEvents = all, own
	return m, errors.Join(err, cerr)
}

// auditdFiles lays out auditd's configuration, plugin and log directories
// in dir and returns the log file's path.
func auditdFiles(dir string) (string, error) {
	plugins := filepath.Join(dir, "plugins.d")
	logFile := filepath.Join(dir, "log", "audit.log")
	for _, d := range []string{plugins, filepath.Dir(logFile)} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return "", err
		}
	}
	return logFile, os.WriteFile(filepath.Join(dir, "auditd.conf"), fmt.Appendf(nil, auditdConf, logFile, plugins), 0o600)
}

// countSyscalls counts the SYSCALL records with key in an auditd RAW log,
// all of them and the storm's: the successful execs of processes whose
// parent is ppid (the spawner) and whose comm is the static or dynamic
// true or base64, or, for the mix, every successful exec but auditctl's
// (the mix's programs have shells, env and a script as parents).
func countSyscalls(path, key string, ppid int, mix bool) (all uint64, own int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	k := fmt.Sprintf("key=%q", key)
	p := fmt.Sprintf(" ppid=%d ", ppid)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "type=SYSCALL ") || !strings.Contains(line, k) {
			continue
		}
		all++
		// auditctl runs are children too: count only the storm's programs.
		switch {
		case mix:
			if strings.Contains(line, " success=yes ") && !strings.Contains(line, ` comm="auditctl" `) {
				own++
			}
		case strings.Contains(line, p) && (strings.Contains(line, ` comm="true" `) || strings.Contains(line, ` comm="base64" `)):
			own++
		}
	}
	return all, own, sc.Err()
}

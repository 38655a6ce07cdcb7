package main

import (
	"bufio"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// spawnerSource is the C load generator and trueSource the program it runs.
// Go's ForkExec tops out near 260 execs/s on a small VM (a fork+exec+wait
// takes about 4 ms); posix_spawn from a few threads of a static, libc-free
// `true` reaches about 1,500 from one thread on this 2-CPU VM (about 400 with
// /bin/true, whose dynamic loading dominates). They live in a directory of
// their own because the go tool refuses C files in a package without cgo.
//
//go:embed spawner/spawner.c
var spawnerSource []byte

//go:embed spawner/true.c
var trueSource []byte

// buildSpawner compiles the spawner and its `true` with gcc into dir and
// returns the spawner's path; `true` sits beside it (trueBeside).
func buildSpawner(dir string) (string, error) {
	bin := filepath.Join(dir, "spawner")
	if err := gcc(dir, "spawner.c", spawnerSource, "-O2", "-Wall", "-o", bin, "-lpthread"); err != nil {
		return "", err
	}
	if err := gcc(dir, "true.c", trueSource, "-static", "-nostdlib", "-o", trueBeside(bin)); err != nil {
		return "", err
	}
	return bin, nil
}

// trueBeside is the path of the benign program built beside spawner.
func trueBeside(spawner string) string { return filepath.Join(filepath.Dir(spawner), "true") }

// gcc writes src as name in dir and compiles it with args.
func gcc(dir, name string, src []byte, args ...string) error {
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, src, 0o600); err != nil {
		return err
	}
	out, err := exec.Command("gcc", append([]string{path}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("compile %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// storm is one load generator run.
type storm struct {
	spawner  string  // the compiled spawner
	workload string  // static, true or mix (spawner.c)
	rate     float64 // execs per second; 0 is flat out
	workers  int     // parallel spawners
	duration time.Duration
	every    int    // every Nth exec is an encoder run
	runID    string // makes markers unique to this run
	dir      string // where the marker paths point
	// sent records when each marked encoder run was spawned.
	sent sync.Map // marker → time.Time
}

// stormResult is what the generator achieved.
type stormResult struct {
	execs    int64 // successful spawn+wait
	failed   int64
	encoders int64
	elapsed  time.Duration
	pid      int // the spawner's: the parent of every program it ran
}

func (r stormResult) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.execs) / r.elapsed.Seconds()
}

// run runs the spawner until the duration passes or ctx ends, recording
// when each marked run was spawned as the spawner reports it.
func (s *storm) run(ctx context.Context) (stormResult, error) {
	if s.workload == "mix" {
		// The mix's script file, root's, as a host's scripts are.
		if err := os.WriteFile(filepath.Join(s.dir, "storm-script.sh"), []byte("#!/bin/sh\n/bin/true\n"), 0o755); err != nil {
			return stormResult{}, err
		}
	}
	cmd := exec.CommandContext(ctx, s.spawner, strconv.FormatFloat(s.rate, 'f', -1, 64), strconv.Itoa(s.workers),
		strconv.FormatInt(s.duration.Milliseconds(), 10), strconv.Itoa(s.every), s.dir, s.runID,
		trueBeside(s.spawner), s.workload)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return stormResult{}, err
	}
	if err := cmd.Start(); err != nil {
		return stormResult{}, fmt.Errorf("start spawner: %w", err)
	}
	r := stormResult{pid: cmd.Process.Pid}
	done := false
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 3 && f[0] == "mark":
			ns, _ := strconv.ParseInt(f[2], 10, 64)
			s.sent.Store(f[1], time.Unix(0, ns))
		case len(f) == 5 && f[0] == "done":
			r.execs, _ = strconv.ParseInt(f[1], 10, 64)
			r.failed, _ = strconv.ParseInt(f[2], 10, 64)
			r.encoders, _ = strconv.ParseInt(f[3], 10, 64)
			ns, _ := strconv.ParseInt(f[4], 10, 64)
			r.elapsed = time.Duration(ns)
			done = true
		}
	}
	if err := cmd.Wait(); err != nil {
		return r, errors.Join(ctx.Err(), fmt.Errorf("spawner: %w", err))
	}
	if !done {
		return r, errors.New("spawner reported no result")
	}
	if s.rate > 0 {
		// A paced run ends on schedule even if the last exec came early.
		r.elapsed = max(r.elapsed, s.duration)
	}
	return r, ctx.Err()
}

// marker names the ith exec of run id, as the spawner does.
func marker(id string, i int64) string { return fmt.Sprintf("ewm%sx%d", id, i) }

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

// spawnerSource is the C load generator. Go's ForkExec tops out near 260
// execs/s on a small VM (a fork+exec+wait takes about 4 ms); posix_spawn
// from a few threads reaches well over 2000. It lives in a directory of its
// own because the go tool refuses C files in a package that does not use cgo.
//
//go:embed spawner/spawner.c
var spawnerSource []byte

// buildSpawner compiles the spawner with gcc into dir and returns its path.
func buildSpawner(dir string) (string, error) {
	src := filepath.Join(dir, "spawner.c")
	if err := os.WriteFile(src, spawnerSource, 0o600); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "spawner")
	out, err := exec.Command("gcc", "-O2", "-Wall", "-o", bin, src, "-lpthread").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("compile spawner: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return bin, nil
}

// storm is one load generator run.
type storm struct {
	spawner  string  // the compiled spawner
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
	cmd := exec.CommandContext(ctx, s.spawner, strconv.FormatFloat(s.rate, 'f', -1, 64), strconv.Itoa(s.workers),
		strconv.FormatInt(s.duration.Milliseconds(), 10), strconv.Itoa(s.every), s.dir, s.runID)
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

package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Programs the storm runs. true is the cheapest exec there is; base64 with
// --decode raises data_encoder_exec, and its file operand carries a marker
// that finds the alert again. The file does not exist: the exec, not the
// decoding, is what is audited.
const (
	truePath   = "/bin/true"
	base64Path = "/usr/bin/base64"
)

// storm is one load generator run.
type storm struct {
	rate     float64 // execs per second; 0 is flat out
	workers  int     // parallel spawners
	duration time.Duration
	every    int    // every Nth exec is an encoder run
	runID    string // makes markers unique to this run
	dir      string // where the marker paths point
	// sent records when each marked encoder run was forked.
	sent sync.Map // marker → time.Time
}

// stormResult is what the generator achieved.
type stormResult struct {
	execs    int64 // successful fork+exec+wait
	failed   int64
	encoders int64
	elapsed  time.Duration
}

func (r stormResult) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.execs) / r.elapsed.Seconds()
}

// marker names the ith exec of run id; parseMarker reads it back.
func marker(id string, i int64) string { return fmt.Sprintf("ewm%sx%d", id, i) }

// run spawns programs until the duration passes or ctx ends. With a rate,
// exec i is due at start + i/rate and a worker sleeps until then, so the
// workers share one schedule; flat out they spawn back to back.
func (s *storm) run(ctx context.Context) (stormResult, error) {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return stormResult{}, err
	}
	defer null.Close()
	fd := null.Fd()
	attr := &syscall.ProcAttr{Files: []uintptr{fd, fd, fd}, Env: []string{}}
	var next, execs, failed, encoders atomic.Int64
	start := time.Now()
	end := start.Add(s.duration)
	var last atomic.Int64 // unix nanos of the last completion
	var wg sync.WaitGroup
	for w := 0; w < s.workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if s.rate > 0 {
					due := start.Add(time.Duration(float64(i) / s.rate * float64(time.Second)))
					// A generator behind its schedule stops on time too.
					if due.After(end) || time.Now().After(end) {
						return
					}
					if d := time.Until(due); d > 0 {
						time.Sleep(d)
					}
				} else if time.Now().After(end) {
					return
				}
				path, argv := truePath, []string{"true"}
				var mark string
				if s.every > 0 && i%int64(s.every) == 0 {
					mark = marker(s.runID, i)
					path, argv = base64Path, []string{"base64", "--decode", s.dir + "/" + mark}
					s.sent.Store(mark, time.Now())
				}
				pid, err := syscall.ForkExec(path, argv, attr)
				if err != nil {
					failed.Add(1)
					continue
				}
				var ws syscall.WaitStatus
				for {
					_, err = syscall.Wait4(pid, &ws, 0, nil)
					if err != syscall.EINTR {
						break
					}
				}
				execs.Add(1)
				if mark != "" {
					encoders.Add(1)
				}
				last.Store(time.Now().UnixNano())
			}
		}()
	}
	wg.Wait()
	r := stormResult{execs: execs.Load(), failed: failed.Load(), encoders: encoders.Load()}
	if l := last.Load(); l > 0 {
		r.elapsed = time.Unix(0, l).Sub(start)
	}
	if s.rate > 0 {
		// A paced run ends on schedule even if the last exec came early.
		r.elapsed = max(r.elapsed, s.duration)
	}
	return r, ctx.Err()
}

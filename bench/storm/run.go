package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// options are the command-line settings shared by bench and soak.
type options struct {
	bin      string        // the encwatch binary
	config   string        // the policy to start from (the repo's config.hcl)
	duration time.Duration // per measured point (bench) or in total (soak)
	rates    []float64     // execs per second; 0 is flat out
	// workloads are measured in turn at every rate (spawner.c: mix,
	// true, static).
	workloads []string
	every     int    // every Nth exec is a marked encoder run
	out       string // markdown file to update; "" prints only
	auditd    bool   // also measure auditd
	reload    string // soak: "sighup", "rename" or "both"
	repeat    int    // bench: measurements of each daemon at each rate
	spawner   string // the compiled load generator
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 || (args[0] != "bench" && args[0] != "soak") {
		return errors.New("usage: storm bench|soak [flags]")
	}
	mode := args[0]
	fs := flag.NewFlagSet(mode, flag.ContinueOnError)
	var o options
	var rates, workloads string
	fs.StringVar(&o.bin, "bin", "bin/encwatch", "encwatch binary")
	fs.StringVar(&o.config, "config", "config.hcl", "policy to start from")
	def := 20 * time.Second
	if mode == "soak" {
		def = 10 * time.Minute
	}
	fs.DurationVar(&o.duration, "duration", def, "measured time per point (bench) or in total (soak)")
	fs.StringVar(&rates, "rates", "200,1000,max", "execs per second to measure; max is flat out")
	fs.StringVar(&workloads, "workloads", "mix,true,static", "bench: what the storm runs, in turn: mix (a host's dynamic programs, shells, a pipeline, a script), true (dynamic /bin/true), static (a static, libc-free true)")
	fs.IntVar(&o.every, "every", 50, "every Nth exec is a marked encoder run")
	fs.StringVar(&o.out, "out", "", "markdown file whose bench (or soak) section is replaced with the results")
	fs.BoolVar(&o.auditd, "auditd", true, "bench: measure auditd on the same storm")
	fs.IntVar(&o.repeat, "repeat", 2, "bench: how many times each daemon is measured at each rate, interleaved")
	fs.StringVar(&o.reload, "reload", "both", "soak: how to reload the policy each second: sighup, rename, both or none")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	switch o.reload {
	case "sighup", "rename", "both", "none":
	default:
		return fmt.Errorf("bad -reload %q: sighup, rename, both or none", o.reload)
	}
	for _, w := range strings.Split(workloads, ",") {
		switch w {
		case "mix", "true", "static":
			o.workloads = append(o.workloads, w)
		default:
			return fmt.Errorf("bad workload %q: mix, true or static", w)
		}
	}
	for _, f := range strings.Split(rates, ",") {
		if f == "max" {
			o.rates = append(o.rates, 0)
			continue
		}
		r, err := strconv.ParseFloat(f, 64)
		if err != nil || r <= 0 {
			return fmt.Errorf("bad rate %q", f)
		}
		o.rates = append(o.rates, r)
	}
	if os.Geteuid() != 0 {
		return errors.New("must run as root: it owns the kernel audit socket")
	}
	lg := logrus.New()
	lg.SetOutput(os.Stderr)
	log := logrus.NewEntry(lg).WithField("mode", mode)
	log.WithField("cpus", runtime.NumCPU()).Info("storm starting")
	tmp, err := os.MkdirTemp("", "storm-spawner-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if o.spawner, err = buildSpawner(tmp); err != nil {
		return err
	}
	if mode == "soak" {
		return soak(ctx, o, log)
	}
	return bench(ctx, o, log)
}

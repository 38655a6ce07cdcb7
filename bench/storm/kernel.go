package main

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/audit/netlink"
	"github.com/encwatch/encwatch/internal/audittest"
)

// kernelSession runs internal/audittest's Setup (the flock every kernel test
// on the machine shares, the preconditions, and the snapshot that restores
// the audit status and rules) outside a test. It stands in for testing.TB:
// audittest calls only the methods defined here; the embedded nil TB is
// never reached.
type kernelSession struct {
	testing.TB
	log      *logrus.Entry
	cleanups []func()
	errs     []error
}

// fatal is what Fatal and Skip panic with; takeKernel recovers it.
type fatal string

func (k *kernelSession) Helper()                   {}
func (k *kernelSession) Name() string              { return "storm" }
func (k *kernelSession) Cleanup(f func())          { k.cleanups = append(k.cleanups, f) }
func (k *kernelSession) Fatal(a ...any)            { panic(fatal(fmt.Sprint(a...))) }
func (k *kernelSession) Fatalf(f string, a ...any) { panic(fatal(fmt.Sprintf(f, a...))) }
func (k *kernelSession) Skip(a ...any)             { panic(fatal(fmt.Sprint(a...))) }
func (k *kernelSession) Logf(f string, a ...any) {
	k.log.Info(fmt.Sprintf(f, a...))
}
func (k *kernelSession) Errorf(f string, a ...any) {
	k.errs = append(k.errs, fmt.Errorf(f, a...))
}

// takeKernel locks the kernel audit subsystem for one measured run and
// snapshots its state; release restores the state, unlocks, and returns
// whatever had to be repaired.
func takeKernel(log *logrus.Entry) (release func() error, err error) {
	k := &kernelSession{log: log}
	release = func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				f, ok := r.(fatal)
				if !ok {
					panic(r)
				}
				err = errors.Join(err, errors.New(string(f)))
			}
		}()
		for _, f := range slices.Backward(k.cleanups) {
			f()
		}
		k.cleanups = nil
		return errors.Join(k.errs...)
	}
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(fatal)
			if !ok {
				panic(r)
			}
			err = errors.Join(errors.New(string(f)), release())
		}
	}()
	audittest.Setup(k)
	return release, nil
}

// kernelStatus reads the audit status from a socket of its own.
func kernelStatus() (netlink.Status, error) {
	c, err := netlink.OpenControl()
	if err != nil {
		return netlink.Status{}, err
	}
	defer c.Close()
	return c.Status()
}

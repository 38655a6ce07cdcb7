package daemon

import (
	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/proc"
)

// enrichment is the stage between detection and the router: it adds to an
// alert what detection leaves out because it is not needed to decide, only
// to read the alert: the user names and the container. It runs in the
// detection goroutine, once per alert (not per event).
//
// What detection does need from this machine it gets through its own
// lookups, set when the pipeline is built: the ancestry (proc.Cache) and the
// content hash of an executed file for the renamed-encoder check
// (proc.Hasher). Those decide whether there is an alert at all, so they
// cannot wait for this stage.
type enrichment interface {
	enrich(a *detect.Alert)
	// close releases what enrichment holds, once detection has ended.
	close()
}

// newEnrichment returns the enrichment for a pipeline: this machine's users
// and containers for a live stream; nothing for replayed events, which come
// from another time or host than this machine's passwd file and /proc.
func newEnrichment(live bool) enrichment {
	if !live {
		return noEnrichment{}
	}
	return &localEnrichment{users: proc.NewUsers(""), containers: proc.NewContainers("/proc")}
}

// noEnrichment leaves alerts as detection made them.
type noEnrichment struct{}

func (noEnrichment) enrich(*detect.Alert) {}
func (noEnrichment) close()               {}

// localEnrichment names users from this machine's passwd file and finds the
// container in its /proc.
type localEnrichment struct {
	users      *proc.Users
	containers *proc.Containers
}

// enrich adds the user names and the container. The process has usually
// exited by now (an encoder run lasts milliseconds), so its parent stands in
// for the container lookup; proc.Containers remembers a parent that lives on,
// so that alert after alert of one shell costs no /proc read.
func (l *localEnrichment) enrich(a *detect.Alert) {
	ev := a.Event
	if ev == nil {
		return // an alert about encwatch itself
	}
	a.User = l.users.Name(ev.UID)
	if ev.AUID != audit.Unset {
		a.LoginUser = l.users.Name(ev.AUID)
	}
	if a.ContainerID = l.containers.Of(ev.PID); a.ContainerID == "" {
		a.ContainerID = l.containers.Of(ev.PPID)
	}
}

func (l *localEnrichment) close() { l.containers.Close() }

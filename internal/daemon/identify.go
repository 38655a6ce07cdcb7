package daemon

import (
	"context"

	"github.com/encwatch/encwatch/internal/proc"
)

// runFiles runs the file identifier's workers until detection has stopped
// or ctx ends. They read executed files off the detection path; detection
// takes what they found from p.files.Done (reidentify).
func (p *pipeline) runFiles(ctx context.Context) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- p.files.Run(wctx) }()
	select {
	case <-p.detectDone:
	case <-ctx.Done():
	}
	cancel()
	return <-errc
}

// reidentify is detection's side of a finished file lookup: the identifier
// learns the file, and the event that asked for it is evaluated again for
// the signatures that depend on what the file is (a renamed encoder), so
// that it still alerts, once.
func (p *pipeline) reidentify(j *proc.Job) {
	ev := p.files.Learn(j)
	for _, a := range p.engine.Reevaluate(ev) {
		p.enrichment.enrich(&a)
		p.deliver(a)
	}
}

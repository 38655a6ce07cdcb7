package detect

import (
	"hash/maphash"
	"strconv"
	"strings"
	"time"

	"github.com/encwatch/encwatch/audit"
)

// Throttling reduces repetition and never hides something new:
//
//   - A signature's throttle blocks coalesce identical repeats: the same
//     executable with the same argv under the same parent (as the block's
//     per says) within its window. The first Max of them are raised; the
//     rest are counted and reported at the end of the window in one
//     SuppressedSignature alert.
//   - A command not seen before in the window is always raised, up to the
//     policy's safety cap of new alerts per host and minute (PolicySpec.
//     AlertCap). Past the cap, alerts are held per signature and reported
//     the same way when the minute ends.
//
// The engine reports a window's summary when an event arrives after the
// window has ended (Evaluate returns it with that event's alerts) or when
// the detection goroutine calls Flush on its timer, whichever comes first.

// SuppressedSignature names the summary alert that reports what throttles
// held back.
const SuppressedSignature = "alerts_suppressed"

// DefaultAlertCap is the safety cap on new alerts per host and minute when
// the policy does not set one.
const DefaultAlertCap = 1000

// capWindow is the period of the safety cap.
const capWindow = time.Minute

// groupKey names one coalescing group: a signature's throttle rule and a
// hash of what makes a repeat identical. rule -1 is the safety cap's
// overflow group of a signature on a host (hash of the host).
type groupKey struct {
	sig  string
	rule int
	hash uint64
}

// group is one window of one groupKey.
type group struct {
	sig    *signature
	key    string // readable: what the repeats share
	host   string
	end    time.Time
	raised int
	held   uint64
	// first and last are the first and last events held back; anc the
	// ancestry and mode of the last.
	first, last *audit.Event
	anc         []Process
	mode        string
}

// capState counts the new alerts of one host in the current minute.
type capState struct {
	start time.Time
	n     int
}

// throttles is the engine's throttle state, owned by the Evaluate goroutine.
type throttles struct {
	seed   maphash.Seed
	groups map[groupKey]*group
	caps   map[string]*capState
	// due are summaries of windows that ended, waiting to be returned.
	due []Alert
	// next is the earliest end of a window in groups; zero when none.
	next time.Time
}

// add files g under k.
func (th *throttles) add(k groupKey, g *group) {
	th.groups[k] = g
	if th.next.IsZero() || g.end.Before(th.next) {
		th.next = g.end
	}
}

func newThrottles() throttles {
	return throttles{seed: maphash.MakeSeed(), groups: make(map[groupKey]*group), caps: make(map[string]*capState)}
}

// admit decides whether s's alert on x at t is raised: false when it
// repeats one raised in the window, or when the host's safety cap is spent;
// what it holds back goes into a group's summary.
func (e *Engine) admit(x *evalCtx, s *signature, host string, t time.Time) bool {
	th := &e.thr
	e.rollDue(t)
	var keys []groupKey
	if len(s.throttles) > 0 {
		keys = make([]groupKey, len(s.throttles))
	}
	for i, spec := range s.throttles {
		per := throttleValue(x, spec.Per)
		keys[i] = groupKey{sig: s.info.Name, rule: i, hash: th.repeatHash(x.ev, per)}
		g := th.groups[keys[i]]
		if g == nil {
			if len(th.groups) >= maxThrottleKeys {
				// Too many distinct commands to remember: raise this one
				// unremembered rather than risk hiding it.
				continue
			}
			g = &group{sig: s, key: repeatKey(x.ev, spec.Per, per), host: host, end: t.Add(spec.Window)}
			th.add(keys[i], g)
		}
		if g.raised >= max(spec.Max, 1) {
			e.hold(g, x)
			return false
		}
	}
	c := th.caps[host]
	if c == nil || t.Sub(c.start) >= capWindow || t.Before(c.start) {
		if c == nil {
			if len(th.caps) >= maxThrottleKeys {
				clear(th.caps)
			}
			c = &capState{}
			th.caps[host] = c
		}
		c.start, c.n = t, 0
	}
	if !e.uncapped && c.n >= x.p.alertCap() {
		k := groupKey{sig: s.info.Name, rule: -1, hash: maphash.String(th.seed, host)}
		g := th.groups[k]
		if g == nil {
			g = &group{sig: s, key: "safety cap: " + strconv.Itoa(x.p.alertCap()) + " new alerts a minute on host " + host, host: host, end: c.start.Add(capWindow)}
			th.add(k, g)
		}
		e.hold(g, x)
		return false
	}
	c.n++
	for _, k := range keys {
		if g := th.groups[k]; g != nil {
			g.raised++
		}
	}
	return true
}

// hold counts x's alert into g.
func (e *Engine) hold(g *group, x *evalCtx) {
	ev := x.ev
	if x.orig != nil {
		ev = x.orig
	}
	if g.first == nil {
		g.first = ev
	}
	g.last, g.anc, g.mode = ev, x.ancestry(), x.alertMode()
	g.held++
	e.held[g.sig.info.Name]++
	count(&e.throttled, g.sig.info.Name)
}

// repeatHash hashes what makes two alerts of a rule identical: executable,
// argv and the rule's parent value. The seed is random per engine, so a
// local user cannot craft a command that collides with another.
func (th *throttles) repeatHash(ev *audit.Event, per string) uint64 {
	var h maphash.Hash
	h.SetSeed(th.seed)
	h.WriteString(ev.Exe)
	h.WriteByte(0)
	var n [8]byte
	for _, a := range ev.Argv {
		l := len(a)
		for i := range n {
			n[i] = byte(l >> (8 * i))
		}
		h.Write(n[:]) // length-prefixed: ["a b"] and ["a", "b"] differ
		h.WriteString(a)
	}
	h.WriteByte(0)
	h.WriteString(per)
	return h.Sum64()
}

// repeatKey says, for the summary, what the held repeats share.
func repeatKey(ev *audit.Event, perName, per string) string {
	k := "exe=" + ev.Exe
	if perName != "host" {
		k += " " + perName + "=" + strings.ReplaceAll(per, "\x00", ">")
	}
	return k
}

// rollDue moves the summaries of windows that ended by t into th.due and
// forgets those windows.
func (e *Engine) rollDue(t time.Time) {
	th := &e.thr
	if th.next.IsZero() || t.Before(th.next) {
		return
	}
	th.next = time.Time{}
	for k, g := range th.groups {
		if t.Before(g.end) {
			if th.next.IsZero() || g.end.Before(th.next) {
				th.next = g.end
			}
			continue
		}
		if g.held > 0 {
			e.thr.due = append(e.thr.due, e.summary(g))
		}
		delete(e.thr.groups, k)
	}
}

// Flush returns the summaries of throttle windows that ended by now: what
// was held back, per signature and key. The detection goroutine calls it on
// its timer, so that a summary does not wait for the next event; it is not
// safe to call concurrently with Evaluate.
func (e *Engine) Flush(now time.Time) []Alert {
	e.rollDue(now)
	out := e.thr.due
	e.thr.due = nil
	return out
}

// FlushAll returns the summaries of every window, ended or not, and forgets
// them: at shutdown or the end of a replay, so that nothing held back goes
// unreported.
func (e *Engine) FlushAll() []Alert {
	for _, g := range e.thr.groups {
		if g.held > 0 {
			e.thr.due = append(e.thr.due, e.summary(g))
		}
	}
	clear(e.thr.groups)
	e.thr.next = time.Time{}
	out := e.thr.due
	e.thr.due = nil
	return out
}

// summary is the SuppressedSignature alert for g: the held signature's
// importance and MITRE ids, so that triage ranks it like what it stands
// for; the last held event as its process; signature, key, count and the
// first and last argv as matches.
func (e *Engine) summary(g *group) Alert {
	info := g.sig.info
	p := e.policy.Load()
	n := strconv.FormatUint(g.held, 10)
	a := Alert{
		ID:          alertID(g.host, g.last, SuppressedSignature+"/"+info.Name),
		Time:        g.end,
		Host:        g.host,
		Environment: p.env,
		Signature: SignatureInfo{
			Name:        SuppressedSignature,
			Description: "Alerts of " + info.Name + " held back by a throttle",
			Category:    info.Category,
			Method:      info.Method,
			Importance:  info.Importance,
			MITRE:       info.MITRE,
		},
		Event:    g.last,
		Ancestry: g.anc,
		Matches: []Match{
			{Field: "suppressed.signature", Value: info.Name, Reason: n + " alerts held back"},
			{Field: "suppressed.key", Value: g.key, Reason: "what the held alerts share"},
			{Field: "suppressed.count", Value: n, Reason: "alerts held back in the window"},
			{Field: "suppressed.first_argv", Value: strings.Join(g.first.Argv, " "), Reason: "first held back"},
			{Field: "suppressed.last_argv", Value: strings.Join(g.last.Argv, " "), Reason: "last held back"},
		},
		Actions:   []string{"Review the held-back runs of " + info.Name + " as you would its alerts"},
		Throttled: g.held,
		Mode:      g.mode,
	}
	count(&e.alerts, SuppressedSignature)
	return a
}

// alertCap is the policy's safety cap on new alerts per host and minute.
func (p *Policy) alertCap() int {
	if p.cap > 0 {
		return p.cap
	}
	return DefaultAlertCap
}

package detect

import (
	"encoding/binary"
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
//     policy's safety cap of new alerts per source and minute (PolicySpec.
//     AlertCap). A source is one user on one host: the event's uid and
//     auid, so that one user's flood spends only that user's budget.
//     When a source passes its cap, one FloodSignature alert says so at
//     once; its further alerts are held per signature and reported the
//     same way when its minute ends. Critical alerts are never held by the
//     cap: they have a cap of their own, criticalCapFactor times higher,
//     so that a flood of them still cannot exhaust memory or the sinks.
//   - Every key includes the host (the event's node when a forwarded or
//     replayed record names one), so that identical commands on two hosts
//     never coalesce into one host's summary.
//
// The engine reports a window's summary when an event arrives after the
// window has ended (Evaluate returns it with that event's alerts) or when
// the detection goroutine calls Flush on its timer, whichever comes first.

// SuppressedSignature names the summary alert that reports what throttles
// held back.
const SuppressedSignature = "alerts_suppressed"

// FloodSignature names the alert raised at once when one source (a user on
// a host) passes the safety cap: it names the uid and auid, the host and the
// count, and is raised at most once per source and window.
const FloodSignature = "alert_flood"

// DefaultAlertCap is the safety cap on new alerts per source and minute
// when the policy does not set one.
const DefaultAlertCap = 1000

// criticalCapFactor makes the cap on a source's critical alerts this many
// times the cap on its others: critical alerts (correlations, fileless
// execs) are never held for another signature's flood, but a source that
// raises ten thousand distinct critical alerts a minute is still held.
const criticalCapFactor = 10

// maxSources bounds the sources whose caps the engine tracks. Unprivileged
// users cannot mint uids, but one with a subordinate uid range (user
// namespaces, newuidmap) runs processes under up to 65536 of them; past the
// bound, sources whose window ended are forgotten, and if none has, new
// sources share one overflow bucket rather than grow the table.
const maxSources = 4096

// capWindow is the period of the safety cap.
const capWindow = time.Minute

// groupKey names one coalescing group: a signature's throttle rule and a
// hash of what makes a repeat identical, the host included. rule -1 is the
// safety cap's overflow group of a signature for one source (hash of the
// sourceKey).
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

// sourceKey names a source of alerts for the safety cap: one user on one
// host. The uid is who ran the program; the auid, the login it came from,
// which a user cannot change, keeps root's processes under one login apart
// from root's daemons and from another login's sudo. shared is the
// overflow bucket of a full table (host and ids empty).
type sourceKey struct {
	host      string
	uid, auid uint32
	shared    bool
}

// capState counts the new alerts of one source in its current minute.
type capState struct {
	start time.Time
	// n and crit count the alerts raised in the window, critical ones
	// apart.
	n, crit int
	// flooded is set once the window's FloodSignature alert is raised.
	flooded bool
}

// throttles is the engine's throttle state, owned by the Evaluate goroutine.
type throttles struct {
	seed   maphash.Seed
	groups map[groupKey]*group
	caps   map[sourceKey]*capState
	// swept is when caps was last swept for ended windows (full table).
	swept time.Time
	// due are summaries of windows that ended, waiting to be returned.
	due []Alert
	// expiry holds every group's window end, earliest first
	// (throttle_expiry.go).
	expiry expiries
}

func newThrottles() throttles {
	return throttles{seed: maphash.MakeSeed(), groups: make(map[groupKey]*group), caps: make(map[sourceKey]*capState)}
}

// admit decides whether s's alert on x at t is raised: false when it
// repeats one raised in the window, or when the source's safety cap is
// spent; what it holds back goes into a group's summary.
func (e *Engine) admit(x *evalCtx, s *signature, host string, t time.Time) bool {
	th := &e.thr
	e.rollDue(t)
	var keys []groupKey
	if len(s.throttles) > 0 {
		keys = make([]groupKey, len(s.throttles))
	}
	for i, spec := range s.throttles {
		per := throttleValue(x, spec.Per)
		keys[i] = groupKey{sig: s.info.Name, rule: i, hash: th.repeatHash(x.ev, host, per)}
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
	if !e.uncapped {
		src, c := th.source(sourceOf(x.ev, host), t)
		critical := x.imp == Critical
		used, limit := &c.n, x.p.alertCap()
		if critical {
			used, limit = &c.crit, limit*criticalCapFactor
		}
		if *used >= limit {
			if !c.flooded {
				c.flooded = true
				th.due = append(th.due, e.flood(x, s, src, host, c, limit, t))
			}
			k := groupKey{sig: s.info.Name, rule: -1, hash: th.sourceHash(src)}
			g := th.groups[k]
			if g == nil {
				g = &group{sig: s, key: "safety cap: " + strconv.Itoa(limit) + " new alerts a minute from " + src.String(), host: host, end: c.start.Add(capWindow)}
				th.add(k, g)
			}
			e.hold(g, x)
			return false
		}
		*used++
	}
	for _, k := range keys {
		if g := th.groups[k]; g != nil {
			g.raised++
		}
	}
	return true
}

// sourceOf is the source of ev's alerts on host.
func sourceOf(ev *audit.Event, host string) sourceKey {
	return sourceKey{host: host, uid: ev.UID, auid: ev.AUID}
}

// String names the source for summaries.
func (k sourceKey) String() string {
	if k.shared {
		return "the sources past the engine's table of " + strconv.Itoa(maxSources)
	}
	return "uid " + strconv.FormatUint(uint64(k.uid), 10) + " (auid " + auidString(k.auid) + ") on host " + k.host
}

func auidString(auid uint32) string {
	if auid == audit.Unset {
		return "unset"
	}
	return strconv.FormatUint(uint64(auid), 10)
}

// source returns the cap state of k at t, its window restarted when it
// ended, and the key it is filed under: k, or the shared overflow bucket
// when the table is full of sources whose windows have not ended.
func (th *throttles) source(k sourceKey, t time.Time) (sourceKey, *capState) {
	c := th.caps[k]
	if c == nil {
		if len(th.caps) >= maxSources && t.Sub(th.swept) >= time.Second {
			// At most once a second: a full table of live sources
			// must not cost a sweep per alert.
			th.swept = t
			for sk, sc := range th.caps {
				if t.Sub(sc.start) >= capWindow || t.Before(sc.start) {
					delete(th.caps, sk)
				}
			}
		}
		if len(th.caps) >= maxSources {
			k = sourceKey{shared: true}
			c = th.caps[k]
		}
		if c == nil {
			c = &capState{start: t}
			th.caps[k] = c
		}
	}
	if t.Sub(c.start) >= capWindow || t.Before(c.start) {
		*c = capState{start: t}
	}
	return k, c
}

// sourceHash hashes a source for its safety-cap groups.
func (th *throttles) sourceHash(k sourceKey) uint64 {
	var h maphash.Hash
	h.SetSeed(th.seed)
	h.WriteString(k.host)
	var n [9]byte
	binary.LittleEndian.PutUint32(n[0:], k.uid)
	binary.LittleEndian.PutUint32(n[4:], k.auid)
	if k.shared {
		n[8] = 1
	}
	h.Write(n[:])
	return h.Sum64()
}

// flood is the FloodSignature alert for the source src that has just passed
// its cap of limit alerts in c's window with s's alert on x: critical, so
// that it is never held itself, and raised once per source and window.
func (e *Engine) flood(x *evalCtx, s *signature, src sourceKey, host string, c *capState, limit int, t time.Time) Alert {
	p := x.p
	ev := x.ev
	if x.orig != nil {
		ev = x.orig
	}
	kind := "new alerts"
	if x.imp == Critical {
		kind = "new critical alerts"
	}
	who := "uid " + strconv.FormatUint(uint64(ev.UID), 10)
	if src.shared {
		who = "the shared bucket of sources past " + strconv.Itoa(maxSources)
	}
	count(&e.alerts, FloodSignature)
	return Alert{
		ID:          alertID(host, ev, FloodSignature),
		Time:        t,
		Host:        host,
		Environment: p.env,
		Signature: SignatureInfo{
			Name:        FloodSignature,
			Description: "One user raised more " + kind + " than the safety cap allows; their further alerts are held and summarised, other users' are not",
			Category:    "Defense Evasion",
			Method:      "Impair Defenses",
			Importance:  Critical,
			MITRE:       []string{"T1562", "T1027"},
		},
		Event:    ev,
		Ancestry: x.keptAncestry(),
		Matches: []Match{
			{Field: "flood.uid", Value: strconv.FormatUint(uint64(ev.UID), 10), Reason: "the user whose alerts passed the cap (" + who + ")"},
			{Field: "flood.auid", Value: auidString(ev.AUID), Reason: "the login the user's processes came from"},
			{Field: "flood.host", Value: host, Reason: "the host the alerts came from"},
			{Field: "flood.count", Value: strconv.Itoa(limit), Reason: kind + " raised from this source since " + c.start.UTC().Format(time.RFC3339) + ", before the cap"},
			{Field: "flood.window", Value: capWindow.String(), Reason: "the cap's window; what is held is summarised in alerts_suppressed when it ends"},
			{Field: "flood.signature", Value: s.info.Name, Reason: "the first alert held"},
		},
		Actions: []string{
			"Find what this user is running in a loop (the process and its ancestry)",
			"Review the alerts_suppressed summaries of this user when the window ends",
			"Treat it as an attempt to blind detection unless the user has a reason to",
		},
		Mode: x.alertMode(),
	}
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
	g.last, g.anc, g.mode = ev, x.keptAncestry(), x.alertMode()
	g.held++
	e.held[g.sig.info.Name]++
	count(&e.throttled, g.sig.info.Name)
}

// repeatHash hashes what makes two alerts of a rule identical on host: the
// executed file, argv and the rule's parent value. The file is named by its
// identity (fileKey), not the exe path, so that "/tmp/x", "/tmp/x (deleted)"
// and "/dev/fd/3" of one file coalesce. The seed is random per engine, so a
// local user cannot craft a command that collides with another.
func (th *throttles) repeatHash(ev *audit.Event, host, per string) uint64 {
	var h maphash.Hash
	h.SetSeed(th.seed)
	h.WriteString(host)
	h.WriteByte(0)
	h.WriteString(fileKey(ev))
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

// fileKey names the executed file of ev for coalescing: the device and inode
// of the file named in the call (PATH item 0), which every path of it
// shares; without them, the exe path without the kernel's " (deleted)".
func fileKey(ev *audit.Event) string {
	if len(ev.Paths) > 0 && ev.Paths[0].Inode != 0 {
		return "inode " + ev.Paths[0].Dev + ":" + strconv.FormatUint(ev.Paths[0].Inode, 10)
	}
	return strings.TrimSuffix(ev.Exe, " (deleted)")
}

// repeatKey says, for the summary, what the held repeats share.
func repeatKey(ev *audit.Event, perName, per string) string {
	k := "exe=" + ev.Exe
	if f := fileKey(ev); f != ev.Exe {
		k += " file=" + f
	}
	if perName != "host" {
		k += " " + perName + "=" + strings.ReplaceAll(per, "\x00", ">")
	}
	return k
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
	e.thr.expiry = nil
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

// alertCap is the policy's safety cap on new alerts per source and minute.
func (p *Policy) alertCap() int {
	if p.cap > 0 {
		return p.cap
	}
	return DefaultAlertCap
}

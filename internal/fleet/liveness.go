package fleet

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/encwatch/encwatch/detect"
)

// Signatures the collector raises itself.
const (
	// SigForgery: a record whose host is not its subject's.
	SigForgery = "fleet_forgery"
	// SigMassSilence: more than massSilence hosts silent at one check.
	SigMassSilence = "agents_silent"
	// SigStalled: the collector gets nothing from its consumer.
	SigStalled = "collector_stalled"
)

// fleetSignature reports whether name is one of the fleet's own records,
// which carry no evidence of their own: a forged one is dropped.
func fleetSignature(name string) bool {
	switch name {
	case SigHeartbeat, SigStopped, SigSilent, SigBack, SigForgery, SigMassSilence, SigStalled:
		return true
	}
	return false
}

// massSilence is how many hosts silent at one check are raised one by one;
// more are one summary alert.
const massSilence = 10

// hostState is what the collector knows of one agent.
type hostState struct {
	host     string        // its name, from its last heartbeat
	last     time.Time     // when its last heartbeat was seen
	interval time.Duration // the interval it announced, within bounds
	beatID   string        // its last heartbeat's id
	subject  string        // where it publishes
	silent   bool          // agent_silent raised, agent_back not yet
	stopped  bool          // it said agent_stopped
}

// liveness follows every host's heartbeats, keyed by the host token of the
// subject they came on: a host's credentials may publish only there, so no
// other host can speak for it.
type liveness struct {
	silentAfter              time.Duration // 0: three of the host's intervals
	minInterval, maxInterval time.Duration
	forgetAfter              time.Duration
	maxHosts                 int
	mu                       sync.Mutex
	hosts                    map[string]*hostState // by subject host token
	paused                   bool                  // disconnected from NATS: silence proves nothing
	refused                  uint64                // heartbeats of hosts beyond maxHosts
}

func newLiveness(c *CollectSettings) *liveness {
	l := &liveness{
		silentAfter: c.SilentAfter, minInterval: c.MinInterval, maxInterval: c.MaxInterval,
		forgetAfter: c.ForgetAfter, maxHosts: c.MaxHosts, hosts: make(map[string]*hostState),
	}
	if l.minInterval <= 0 {
		l.minInterval = DefaultMinInterval
	}
	if l.maxInterval <= 0 {
		l.maxInterval = DefaultMaxInterval
	}
	if l.maxHosts <= 0 {
		l.maxHosts = DefaultMaxHosts
	}
	if l.forgetAfter <= 0 {
		l.forgetAfter = DefaultForgetAfter
	}
	return l
}

// seen records a heartbeat (or clean stop) a of the host whose subject
// token is token (the caller checked that a's host is that host), seen at
// now on subject. It returns agent_back when the host was silent.
func (l *liveness) seen(a *detect.Alert, token, subject string, now time.Time) *detect.Alert {
	l.mu.Lock()
	defer l.mu.Unlock()
	h, ok := l.hosts[token]
	if !ok {
		if len(l.hosts) >= l.maxHosts {
			l.refused++
			return nil
		}
		h = &hostState{}
		l.hosts[token] = h
	}
	h.interval = time.Minute
	for _, m := range a.Matches {
		if m.Field == HeartbeatInterval {
			if s, err := strconv.ParseFloat(m.Value, 64); err == nil && s > 0 && s < 1e9 {
				h.interval = time.Duration(s * float64(time.Second))
			}
		}
	}
	h.interval = min(max(h.interval, l.minInterval), l.maxInterval)
	// A heartbeat from a backlog counts from when it was sent.
	seenAt := now
	if a.Time.Before(now.Add(-l.after(h))) {
		seenAt = a.Time
	}
	if seenAt.After(h.last) {
		h.last = seenAt
	}
	h.host, h.beatID, h.subject = a.Host, a.ID, subject
	h.stopped = a.Signature.Name == SigStopped
	if !h.silent || h.stopped || seenAt != now {
		return nil
	}
	h.silent = false
	back := fleetAlert(SigBack, a.Host, now, "agent_back-"+a.ID, detect.Low,
		"encwatch on this host is sending heartbeats again after being silent",
		[]detect.Match{{Field: "agent.last_heartbeat", Value: a.Time.UTC().Format(time.RFC3339Nano), Reason: "the heartbeat that ended the silence"}})
	back.Subject = subject
	return &back
}

// hostOf names the host of a subject token: the name its own heartbeats
// gave, or the token itself.
func (l *liveness) hostOf(token string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h, ok := l.hosts[token]; ok && h.host != "" {
		return h.host
	}
	return token
}

// after is how long h may stay silent.
func (l *liveness) after(h *hostState) time.Duration {
	if l.silentAfter > 0 {
		return l.silentAfter
	}
	return 3 * h.interval
}

// overdue returns agent_silent for each host newly silent at now, and
// forgets hosts stopped or silent for longer than forgetAfter.
func (l *liveness) overdue(now time.Time) []detect.Alert {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.paused {
		return nil
	}
	var out []detect.Alert
	for token, h := range l.hosts {
		if (h.silent || h.stopped) && now.Sub(h.last) > l.forgetAfter {
			delete(l.hosts, token)
			continue
		}
		if h.silent || h.stopped || now.Sub(h.last) <= l.after(h) {
			continue
		}
		h.silent = true
		a := fleetAlert(SigSilent, h.host, now, "agent_silent-"+h.beatID, detect.Critical,
			"no heartbeat from encwatch on this host: the agent was killed, the host is down or cut off",
			[]detect.Match{
				{Field: "agent.last_heartbeat_seen", Value: h.last.UTC().Format(time.RFC3339Nano), Reason: "the last sign of life"},
				{Field: "agent.silent_seconds", Value: strconv.FormatInt(int64(now.Sub(h.last).Seconds()), 10), Reason: "more than silent_after (" + l.after(h).String() + ")"},
			})
		a.Subject = h.subject
		out = append(out, a)
	}
	return out
}

// massSilenceAlert is one critical alert for many hosts silent at once:
// how many, and the first massSilence of them by name.
func massSilenceAlert(ss []detect.Alert, now time.Time) detect.Alert {
	hosts := make([]string, len(ss))
	ids := make([]string, len(ss))
	for i, s := range ss {
		hosts[i], ids[i] = s.Host, s.ID
	}
	slices.Sort(hosts)
	slices.Sort(ids)
	first := hosts[:min(len(hosts), massSilence)]
	return fleetAlert(SigMassSilence, "", now, "agents_silent-"+claimKey(strings.Join(ids, "\n")), detect.Critical,
		"many hosts stopped sending heartbeats at once: a network or NATS outage, or a mass kill",
		[]detect.Match{
			{Field: "agents.silent", Value: strconv.Itoa(len(ss)), Reason: "hosts newly silent at one check"},
			{Field: "agents.first", Value: strings.Join(first, ","), Reason: "the first of them by name"},
		})
}

// pause stops silence checks while the collector is cut off from NATS;
// resume restarts the clocks at now, so that hosts are not blamed for the
// collector's own outage.
func (l *liveness) pause() {
	l.mu.Lock()
	l.paused = true
	l.mu.Unlock()
}

func (l *liveness) resume(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.paused = false
	for _, h := range l.hosts {
		if h.last.Before(now) {
			h.last = now
		}
	}
}

// counts returns how many hosts are alive, silent and stopped, and how
// many heartbeats were refused for the cap.
func (l *liveness) counts() (map[string]int, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := map[string]int{"alive": 0, "silent": 0, "stopped": 0}
	for _, h := range l.hosts {
		switch {
		case h.stopped:
			c["stopped"]++
		case h.silent:
			c["silent"]++
		default:
			c["alive"]++
		}
	}
	return c, l.refused
}

// fleetAlert is an alert the collector raises about a host.
func fleetAlert(name, host string, now time.Time, id string, imp detect.Importance, desc string, matches []detect.Match) detect.Alert {
	return detect.Alert{
		ID:   id,
		Time: now,
		Host: host,
		Signature: detect.SignatureInfo{
			Name: name, Description: desc, Category: "Agent Health", Method: "Heartbeat",
			Importance: imp, MITRE: []string{"T1562.001"},
		},
		Matches: matches,
		Actions: []string{"check the agent on the host: systemctl status encwatch; journalctl -u encwatch"},
	}
}

// forgeryLimiter raises fleet_forgery at most once a minute per subject
// (and for at most max subjects a minute); the ones held back are counted
// into the next.
type forgeryLimiter struct {
	mu   sync.Mutex
	max  int
	last map[string]*forgeries // by subject host token
	// overflow counts forgeries of subjects beyond max.
	overflow forgeries
}

type forgeries struct {
	at   time.Time
	held uint64
}

// forgeryEvery is how often one subject's forgeries are raised.
const forgeryEvery = time.Minute

func newForgeryLimiter(max int) *forgeryLimiter {
	return &forgeryLimiter{max: max, last: make(map[string]*forgeries)}
}

// raise returns the fleet_forgery alert for a (delivered under its
// subject's host, the claimed host kept), the seq-th message of the stream,
// or nil when one for its subject went out within forgeryEvery.
func (f *forgeryLimiter) raise(token string, a detect.Alert, seq uint64, now time.Time) *detect.Alert {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.last[token]
	if !ok {
		for k, v := range f.last {
			if now.Sub(v.at) > forgeryEvery && v.held == 0 {
				delete(f.last, k)
			}
		}
		if len(f.last) >= f.max {
			st = &f.overflow
		} else {
			st = &forgeries{}
			f.last[token] = st
		}
	}
	if !st.at.IsZero() && now.Sub(st.at) < forgeryEvery {
		st.held++
		return nil
	}
	held := st.held
	st.at, st.held = now, 0
	out := fleetAlert(SigForgery, a.Host, now, "fleet_forgery-"+token+"-"+strconv.FormatUint(seq, 10), detect.Critical,
		"a record on this host's subject claims another host: the host's credentials are used to deceive the fleet",
		[]detect.Match{
			{Field: "fleet.subject", Value: a.Subject, Reason: "the subject the server's permissions bind to the sender's credentials"},
			{Field: "fleet.claimed_host", Value: a.ClaimedHost, Reason: "the host the record claims"},
			{Field: "fleet.signature", Value: a.Signature.Name, Reason: "the forged record's signature"},
			{Field: "fleet.record_id", Value: a.ID, Reason: "the forged record's id"},
		})
	out.Subject, out.ClaimedHost, out.Throttled = a.Subject, a.ClaimedHost, held
	out.Actions = []string{"treat the host of this subject as compromised: revoke its NATS credentials and investigate it"}
	return &out
}

// Package report writes the alerts of a replay as one self-contained HTML
// page for an incident responder: the replay's summary, per host a
// timeline of the alerts by importance, filters by signature, host and
// user, and for each alert its process tree, decoded payload, matches and
// recommended actions.
//
// Every string in an alert may be attacker-chosen (argv, paths, host
// names), so the page is built with html/template, which escapes each by
// its context; its one inline script reads the page's elements, never
// builds markup from their text, and a Content-Security-Policy allows that
// script alone (by its hash) and no network access at all.
package report

import (
	"cmp"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/sink"
)

// DefaultMax is how many alerts a page shows by default; the counts cover
// every alert.
const DefaultMax = 20000

// Summary is what the replay read, for the top of the page.
type Summary struct {
	Inputs                  []Input
	Records, Events, Alerts uint64
	First, Last             time.Time
	Elapsed                 time.Duration
}

// Input is one input of the replay.
type Input struct {
	Name               string
	Records, Malformed uint64
}

// Report gathers alerts as a replay raises them. Its methods are safe for
// concurrent use.
type Report struct {
	max    int
	mu     sync.Mutex
	alerts []entry
	total  int
	// counts of every alert, shown or not
	byImportance map[detect.Importance]int
	bySignature  map[string]int
	byHost       map[string]int
	// pending are the alerts formatted for a write not yet done (Attach).
	pending []*detect.Alert
}

// New returns a report that keeps the first max alerts (DefaultMax when
// max <= 0).
func New(max int) *Report {
	if max <= 0 {
		max = DefaultMax
	}
	return &Report{max: max, byImportance: map[detect.Importance]int{}, bySignature: map[string]int{}, byHost: map[string]int{}}
}

// proc is one process of an alert's tree.
type proc struct {
	PID, PPID int
	Exe       string
	Cmd       string // the command line, quoted as a shell would take it
	UID       string
	Alerted   bool // the alert's own process
}

// entry is what the page shows of one alert: a copy, so that nothing of
// the pipeline's alert is kept.
type entry struct {
	N           int
	Time        time.Time
	Host        string
	Signature   string
	Description string
	Importance  detect.Importance
	MITRE       []string
	User        string
	LoginUser   string
	Mode        string
	Container   string
	Cwd         string
	Tree        []proc
	Matches     []detect.Match
	Payload     *detect.Payload
	Actions     []string
	Related     []proc
	Throttled   uint64
	Incomplete  bool
}

// Attach returns the writer and format a replay's output sink should use
// instead of w (os.Stdout when nil) and inner (JSON lines when nil): the report takes the alerts
// of each batch the sink formats once the sink's write of that batch has
// succeeded, so a batch the sink retries after a failed write is counted
// once. The sink must format a batch and then write it, one batch at a
// time (as sink.Stdout does).
func (r *Report) Attach(w io.Writer, inner sink.Format) (io.Writer, sink.Format) {
	if w == nil {
		w = os.Stdout
	}
	if inner == nil {
		inner = sink.AppendJSON
	}
	format := func(dst []byte, a *detect.Alert) []byte {
		r.mu.Lock()
		r.pending = append(r.pending, a)
		r.mu.Unlock()
		return inner(dst, a)
	}
	return writerFunc(func(p []byte) (int, error) {
		n, err := w.Write(p)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err == nil {
			for _, a := range r.pending {
				r.add(a)
			}
		}
		clear(r.pending)
		r.pending = r.pending[:0]
		return n, err
	}), format
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// Add adds one alert.
func (r *Report) Add(a *detect.Alert) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.add(a)
}

func (r *Report) add(a *detect.Alert) {
	r.total++
	r.byImportance[a.Signature.Importance]++
	r.bySignature[a.Signature.Name]++
	r.byHost[a.Host]++
	if len(r.alerts) >= r.max {
		return
	}
	e := entry{
		Time: a.Time, Host: a.Host, Signature: a.Signature.Name, Description: a.Signature.Description,
		Importance: a.Signature.Importance, MITRE: slices.Clone(a.Signature.MITRE),
		User: a.User, LoginUser: a.LoginUser, Mode: a.Mode, Container: a.ContainerID,
		Matches: slices.Clone(a.Matches), Actions: slices.Clone(a.Actions), Throttled: a.Throttled,
	}
	if a.Payload != nil {
		p := *a.Payload
		e.Payload = &p
	}
	// The tree, oldest ancestor first, down to the alerted process.
	for i := len(a.Ancestry) - 1; i >= 0; i-- {
		e.Tree = append(e.Tree, procOf(a.Ancestry[i], false))
	}
	if ev := a.Event; ev != nil {
		e.Cwd = ev.Cwd
		e.Incomplete = ev.Incomplete
		e.Tree = append(e.Tree, procOf(detect.Process{PID: ev.PID, PPID: ev.PPID, Exe: ev.Exe, Argv: ev.Argv, UID: ev.UID}, true))
		if e.User == "" {
			// A replay resolves no user names: the uid stands for one.
			e.User = "uid " + strconv.FormatUint(uint64(ev.UID), 10)
		}
	}
	for _, p := range a.Related {
		e.Related = append(e.Related, procOf(p, false))
	}
	r.alerts = append(r.alerts, e)
}

func procOf(p detect.Process, alerted bool) proc {
	return proc{PID: p.PID, PPID: p.PPID, Exe: printable(p.Exe), Cmd: shellQuote(p.Argv), UID: strconv.FormatUint(uint64(p.UID), 10), Alerted: alerted}
}

// Write writes the page for the alerts added so far and s.
func (r *Report) Write(w io.Writer, s Summary) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	alerts := slices.Clone(r.alerts)
	slices.SortStableFunc(alerts, func(a, b entry) int { return a.Time.Compare(b.Time) })
	linkAncestors(alerts)
	for i := range alerts {
		alerts[i].N = i + 1
	}
	v := view{
		Script:    template.JS(pageScript),
		CSP:       csp,
		Summary:   s,
		Generated: time.Now().UTC(),
		Total:     r.total,
		Shown:     len(alerts),
		Alerts:    alerts,
	}
	for imp := detect.Critical; imp >= detect.Info; imp-- {
		if n := r.byImportance[imp]; n > 0 {
			v.ByImportance = append(v.ByImportance, count{Name: imp.String(), N: n})
		}
	}
	v.BySignature = sortedCounts(r.bySignature)
	v.ByHost = sortedCounts(r.byHost)
	v.Users = distinct(alerts, func(e entry) string { return e.User })
	v.Signatures = distinct(alerts, func(e entry) string { return e.Signature })
	v.Hosts = timelines(alerts)
	if err := page.Execute(w, v); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// linkAncestors completes the trees of alerts that carry no ancestry (a
// replay looks nothing up on this machine) with the earlier alerted
// processes of the same host that are their parents, grandparents...
func linkAncestors(alerts []entry) {
	type key struct {
		host string
		pid  int
	}
	last := map[key]proc{}
	for i := range alerts {
		e := &alerts[i]
		if len(e.Tree) == 1 {
			seen := map[int]bool{e.Tree[0].PID: true}
			for p, ok := last[key{e.Host, e.Tree[0].PPID}]; ok && !seen[p.PID] && len(e.Tree) < 32; p, ok = last[key{e.Host, p.PPID}] {
				seen[p.PID] = true
				p.Alerted = false
				e.Tree = append([]proc{p}, e.Tree...)
			}
		}
		if n := len(e.Tree); n > 0 {
			last[key{e.Host, e.Tree[n-1].PID}] = e.Tree[n-1]
		}
	}
}

// view is what the template renders.
type view struct {
	Script                            template.JS
	CSP                               string
	Summary                           Summary
	Generated                         time.Time
	Total, Shown                      int
	ByImportance, BySignature, ByHost []count
	Signatures, Users                 []string
	Hosts                             []hostTimeline
	Alerts                            []entry
}

type count struct {
	Name string
	N    int
}

// hostTimeline is one host's alerts placed on the span of its own first
// to last alert.
type hostTimeline struct {
	Host        string
	First, Last time.Time
	Marks       []mark
}

// mark is one alert on a timeline: Left is its place in percent, Lane its
// importance's row (critical on top).
type mark struct {
	N          int
	Left       float64
	Lane       int
	Importance string
	Title      string
}

func timelines(alerts []entry) []hostTimeline {
	idx := map[string]int{}
	var hs []hostTimeline
	for _, e := range alerts {
		i, ok := idx[e.Host]
		if !ok {
			i = len(hs)
			idx[e.Host] = i
			hs = append(hs, hostTimeline{Host: e.Host, First: e.Time})
		}
		hs[i].Last = e.Time
	}
	for _, e := range alerts {
		h := &hs[idx[e.Host]]
		left := 50.0
		if span := h.Last.Sub(h.First); span > 0 {
			left = 1 + 98*float64(e.Time.Sub(h.First))/float64(span)
		}
		h.Marks = append(h.Marks, mark{
			N: e.N, Left: left, Lane: int(detect.Critical - e.Importance), Importance: e.Importance.String(),
			Title: e.Time.UTC().Format("15:04:05.000") + " " + e.Signature + " (" + e.Importance.String() + ")",
		})
	}
	slices.SortFunc(hs, func(a, b hostTimeline) int { return cmp.Compare(a.Host, b.Host) })
	return hs
}

func sortedCounts(m map[string]int) []count {
	var cs []count
	for k, n := range m {
		cs = append(cs, count{Name: k, N: n})
	}
	slices.SortFunc(cs, func(a, b count) int {
		if a.N != b.N {
			return b.N - a.N
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return cs
}

func distinct(alerts []entry, f func(entry) string) []string {
	var out []string
	for _, e := range alerts {
		if s := f(e); !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

//go:embed page.js
var pageScript string

//go:embed page.html
var pageHTML string

// csp allows the page's own script (by its SHA-256) and inline styles,
// and nothing else: no network, no other script, no plugin, no form.
var csp = "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-" + scriptHash() + "'; base-uri 'none'; form-action 'none'"

func scriptHash() string {
	h := sha256.Sum256([]byte(pageScript))
	return base64.StdEncoding.EncodeToString(h[:])
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"utc":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000 MST") },
	"span": func(a, b time.Time) string { return b.Sub(a).Round(time.Second).String() },
	"secs": func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) },
	"text": printable,
	"preview": func(s string) string {
		return strings.Map(func(r rune) rune {
			if r == '\n' || r == '\t' || unicode.IsPrint(r) {
				return r
			}
			return '\uFFFD'
		}, s)
	},
	"pct":    func(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) },
	"lane":   func(l int) string { return strconv.Itoa(4 + l*14) },
	"indent": func(i int) string { return strconv.Itoa(i * 18) },
	"orNone": func(s string) string {
		if s == "" {
			return "(unknown)"
		}
		return printable(s)
	},
	"join": strings.Join,
}).Parse(pageHTML))

// shellQuote writes argv as a shell would take it back: safe words as
// they are, others single-quoted, and those with control or invalid bytes
// as $'...' with \xHH escapes, so that nothing in a command line is
// hidden or reordered on screen.
func shellQuote(argv []string) string {
	var b strings.Builder
	for i, arg := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		switch {
		case arg == "":
			b.WriteString("''")
		case strings.Trim(arg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-") == "":
			b.WriteString(arg)
		case isPrintable(arg):
			b.WriteString("'" + strings.ReplaceAll(arg, "'", `'\''`) + "'")
		default:
			b.WriteString("$'")
			for j := 0; j < len(arg); {
				r, n := utf8.DecodeRuneInString(arg[j:])
				switch {
				case r == '\\' || r == '\'':
					b.WriteByte('\\')
					b.WriteRune(r)
				case r != utf8.RuneError && (unicode.IsPrint(r) || r == ' '):
					b.WriteString(arg[j : j+n])
				default:
					for k := j; k < j+n; k++ {
						fmt.Fprintf(&b, `\x%02x`, arg[k])
					}
				}
				j += n
			}
			b.WriteByte('\'')
		}
	}
	return b.String()
}

// isPrintable reports whether s is valid UTF-8 without control or format
// runes (bidi controls among them, which reorder text on screen).
func isPrintable(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) && r != ' ' {
			return false
		}
	}
	return true
}

// printable returns s when it is printable, else Go-quoted.
func printable(s string) string {
	if isPrintable(s) {
		return s
	}
	return strconv.Quote(s)
}

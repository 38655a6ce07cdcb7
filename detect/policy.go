package detect

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ThrottleSpec caps a signature's alerts: at most Max per Per key in each
// Window.
type ThrottleSpec struct {
	// Per is "parent_pid", "parent_exe", "ancestry" or "host".
	Per    string
	Max    int
	Window time.Duration
}

// Throttle keys.
var throttleKeys = []string{"parent_pid", "parent_exe", "ancestry", "host"}

// StepSpec is one step of a sequence.
type StepSpec struct {
	Name string
	Conditions
}

// SequenceSpec correlates two execs: Steps[0] then Steps[1] under the same
// parent (By "parent") or login session (By "session") within Within. Unless
// Ordered, the second step may come first: the processes of a pipeline exec
// in any order within a few milliseconds.
type SequenceSpec struct {
	By      string
	Within  time.Duration
	Ordered bool
	Steps   []StepSpec
	// Pipe, when set, asks for evidence that the steps' processes share a
	// pipe (pipes.go).
	Pipe *PipeSpec
}

// PipeSpec names the step whose standard output should be the other's
// standard input, From and To, and the importance a completed sequence is
// raised at when the descriptors show no such pipe.
type PipeSpec struct {
	From, To string
	Unpiped  Importance
}

// SignatureSpec is the uncompiled form of a signature: plain data, as the
// config package decodes it from HCL.
type SignatureSpec struct {
	Name        string
	Description string
	Category    string
	Method      string
	Importance  Importance
	MITRE       []string

	// Conditions must all hold. When Any is not empty, one of its entries
	// must hold as well: alternatives that share the conditions above.
	Conditions
	Any []Conditions

	// Sequence makes this a correlation signature; its conditions are
	// those of the steps, and Conditions and Any must be empty.
	Sequence *SequenceSpec

	Throttles []ThrottleSpec
	// Actions are the recommended actions per environment; the key
	// "default" serves environments without their own list.
	Actions map[string][]string
	// ModeActions are actions for an alert whose process.mode is the key
	// ("encode", "decode", "unknown"), per environment like Actions; they
	// take precedence over Actions for that mode.
	ModeActions map[string]map[string][]string
}

// AllowSpec suppresses alerts: an exec that matches Conditions raises none of
// Signatures (every signature when empty). Reason is kept in the metrics.
type AllowSpec struct {
	Name       string
	Reason     string
	Signatures []string
	Conditions
}

// EncoderIdentity identifies a known encoder binary on this machine, found at
// start-up or reload by whoever may do I/O (the config loader).
type EncoderIdentity struct {
	Name   string // the tool: "base64"
	Path   string // where it was found
	Dev    string // "fe:00", as audit PATH records print it
	Inode  uint64
	Size   int64
	SHA256 string // hex
	// BuildID is the hex GNU build id of the file, "" when it has none.
	BuildID string
	// Text is the hex SHA-256 of its executable PT_LOAD segments and
	// TextSize their size, "" and 0 when it has none (not ELF).
	Text     string
	TextSize int64
}

// PolicySpec is everything Compile needs to build a Policy.
type PolicySpec struct {
	// Environment is the deployment this policy runs in ("ci", "staging",
	// "production" or a custom word); every alert carries it.
	Environment string
	// AncestryDepth is how many ancestors an alert carries (default 8).
	AncestryDepth int
	Signatures    []SignatureSpec
	Allows        []AllowSpec
	Encoders      []EncoderIdentity
	// AlertCap is the safety cap on new alerts per source (a user on a host) and minute (0:
	// DefaultAlertCap); see throttle.go.
	AlertCap int
	// Table is the table of conditions the signatures and allow blocks
	// use; nil means Builtin.
	Table Table
}

// DefaultAncestryDepth is the ancestry an alert carries when the policy does
// not say.
const DefaultAncestryDepth = 8

// SignatureError is a Compile failure that concerns one signature; Index is
// its position in PolicySpec.Signatures, so a caller can point at its source.
type SignatureError struct {
	Index int
	Name  string
	Err   error
}

func (e *SignatureError) Error() string {
	return fmt.Sprintf("signature %q: %v", e.Name, e.Err)
}

func (e *SignatureError) Unwrap() error { return e.Err }

// AllowError is a Compile failure that concerns one allow block.
type AllowError struct {
	Index int
	Name  string
	Err   error
}

func (e *AllowError) Error() string { return fmt.Sprintf("allow %q: %v", e.Name, e.Err) }

func (e *AllowError) Unwrap() error { return e.Err }

// Policy is a compiled, immutable set of signatures. It is safe to share
// between goroutines; a reload compiles a new Policy and swaps it into the
// Engine.
type Policy struct {
	env   string
	depth int
	cap   int
	sigs  []*signature
	// byExe maps an executable basename to the signatures that name it, in
	// policy order, so that matching an event is one map lookup per name.
	byExe map[string][]*signature
	// scan are the signatures that name no executable: checked on every exec.
	scan []*signature
	// renamed are the signatures that ask for a renamed encoder, checked
	// when the executed file is a known encoder.
	renamed []*signature
	allows  []*allow

	// unidentified are the signatures that ask for an executed file that
	// could not be identified, checked when a lookup failed.
	unidentified []*signature

	byInode map[inodeKey]*EncoderIdentity
	byHash  map[string]*EncoderIdentity
	byText  map[string]*EncoderIdentity
	sizes   []int64
}

type inodeKey struct {
	dev   string
	inode uint64
}

// signature is the compiled form of a SignatureSpec.
type signature struct {
	index     int
	info      SignatureInfo
	all       *cond
	any       []*cond
	seq       *sequence
	throttles []ThrottleSpec
	actions   map[string][]string
	// modeActions are actions by process.mode, then environment.
	modeActions map[string]map[string][]string
}

type sequence struct {
	by      string
	within  time.Duration
	ordered bool
	steps   [2]*cond
	names   [2]string
	pipe    *seqPipe
}

// seqPipe is a compiled PipeSpec: from is the producer's step index.
type seqPipe struct {
	from    int
	unpiped Importance
	// capture: the consumer may run with the producer's output captured
	// by their shell (command substitution), so that is looked for.
	capture bool
}

type allow struct {
	name   string
	reason string
	sigs   map[string]bool
	c      *cond
}

// Compile checks spec and builds a Policy from it. Errors about a single
// signature are *SignatureError values, about an allow block *AllowError,
// joined with errors.Join.
func Compile(spec PolicySpec) (*Policy, error) {
	p := &Policy{
		env:     spec.Environment,
		depth:   spec.AncestryDepth,
		cap:     spec.AlertCap,
		sigs:    make([]*signature, 0, len(spec.Signatures)),
		byExe:   make(map[string][]*signature),
		byInode: make(map[inodeKey]*EncoderIdentity),
		byHash:  make(map[string]*EncoderIdentity),
		byText:  make(map[string]*EncoderIdentity),
	}
	if p.depth <= 0 {
		p.depth = DefaultAncestryDepth
	}
	t := spec.Table
	if t == nil {
		t = builtin
	}
	var errs []error
	seen := make(map[string]bool, len(spec.Signatures))
	for i, s := range spec.Signatures {
		sig, err := t.compileSignature(s, seen)
		if err != nil {
			errs = append(errs, &SignatureError{Index: i, Name: s.Name, Err: err})
			continue
		}
		seen[s.Name] = true
		sig.index = len(p.sigs)
		p.sigs = append(p.sigs, sig)
		p.index(sig)
	}
	for i, a := range spec.Allows {
		al, err := t.compileAllow(a, seen)
		if err != nil {
			errs = append(errs, &AllowError{Index: i, Name: a.Name, Err: err})
			continue
		}
		p.allows = append(p.allows, al)
	}
	for i := range spec.Encoders {
		id := spec.Encoders[i]
		if id.Name == "" {
			continue
		}
		if id.Dev != "" && id.Inode != 0 {
			p.byInode[inodeKey{id.Dev, id.Inode}] = &id
		}
		if id.SHA256 != "" {
			p.byHash[strings.ToLower(id.SHA256)] = &id
			if id.Size > 0 && !slices.Contains(p.sizes, id.Size) {
				p.sizes = append(p.sizes, id.Size)
			}
		}
		if id.Text != "" && id.TextSize > 0 {
			p.byText[strings.ToLower(id.Text)] = &id
			if !slices.Contains(p.sizes, id.TextSize) {
				p.sizes = append(p.sizes, id.TextSize)
			}
		}
	}
	slices.Sort(p.sizes)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// index files sig under every executable its conditions name; one that names
// none is checked on every exec.
func (p *Policy) index(sig *signature) {
	var conds []*cond
	if sig.seq != nil {
		conds = sig.seq.steps[:]
	} else if len(sig.all.exes) > 0 || len(sig.any) == 0 {
		conds = []*cond{sig.all}
	} else {
		conds = sig.any
	}
	scan, renamed, unidentified := false, false, false
	for _, c := range conds {
		if len(c.exes) == 0 {
			switch {
			case c.renamed && sig.seq == nil:
				renamed = true
			case c.unidentified && sig.seq == nil:
				unidentified = true
			default:
				scan = true
			}
		}
		for _, exe := range c.exes {
			// A name listed twice indexes the signature once.
			if !slices.Contains(p.byExe[exe], sig) {
				p.byExe[exe] = append(p.byExe[exe], sig)
			}
		}
	}
	if scan {
		p.scan = append(p.scan, sig)
	} else if renamed {
		p.renamed = append(p.renamed, sig)
	}
	if !scan && unidentified {
		p.unidentified = append(p.unidentified, sig)
	}
}

func (t Table) compileSignature(s SignatureSpec, seen map[string]bool) (*signature, error) {
	switch {
	case s.Name == "":
		return nil, errors.New("empty name")
	case seen[s.Name]:
		return nil, errors.New("defined twice")
	case s.Name == SuppressedSignature || s.Name == FloodSignature:
		// The engine raises these itself; a signature of the same name
		// would pass for its summaries or its flood alerts.
		return nil, errors.New("name is reserved for the engine's own alerts")
	case s.Importance < Info || s.Importance > Critical:
		return nil, fmt.Errorf("importance %d out of range", s.Importance)
	}
	sig := &signature{
		info: SignatureInfo{
			Name:        s.Name,
			Description: s.Description,
			Category:    s.Category,
			Method:      s.Method,
			Importance:  s.Importance,
			MITRE:       slices.Clone(s.MITRE),
		},
		throttles: slices.Clone(s.Throttles),
		actions:   make(map[string][]string, len(s.Actions)),
	}
	for env, acts := range s.Actions {
		sig.actions[env] = slices.Clone(acts)
	}
	if err := sig.compileModeActions(s.ModeActions); err != nil {
		return nil, err
	}
	for _, t := range s.Throttles {
		if !slices.Contains(throttleKeys, t.Per) {
			return nil, fmt.Errorf("throttle per %q: want one of %s", t.Per, strings.Join(throttleKeys, ", "))
		}
		if t.Max < 0 || t.Window <= 0 {
			return nil, fmt.Errorf("throttle per %s: max must be 0 or more and window positive", t.Per)
		}
	}
	var err error
	if s.Sequence != nil {
		if !t.Empty(s.Conditions) || len(s.Any) > 0 {
			return nil, errors.New("a sequence signature takes its conditions in its steps")
		}
		sig.all = &cond{}
		sig.seq, err = t.compileSequence(s.Sequence)
	} else {
		sig.all, sig.any, err = t.compileAlternatives(s.Conditions, s.Any)
	}
	if err != nil {
		return nil, err
	}
	return sig, nil
}

func (t Table) compileSequence(q *SequenceSpec) (*sequence, error) {
	if len(q.Steps) != 2 {
		return nil, fmt.Errorf("a sequence has 2 steps, got %d", len(q.Steps))
	}
	if q.By != "parent" && q.By != "session" && q.By != "lineage" {
		return nil, fmt.Errorf("sequence by %q: want parent, session or lineage", q.By)
	}
	if q.Within <= 0 {
		return nil, errors.New("sequence within must be positive")
	}
	seq := &sequence{by: q.By, within: q.Within, ordered: q.Ordered}
	for i, st := range q.Steps {
		if t.Empty(st.Conditions) {
			return nil, fmt.Errorf("step %d (%q) has no conditions", i+1, st.Name)
		}
		c, err := t.compileCond(st.Conditions)
		if err != nil {
			return nil, fmt.Errorf("step %q: %w", st.Name, err)
		}
		seq.steps[i], seq.names[i] = c, st.Name
	}
	if q.Pipe != nil {
		from := slices.Index(seq.names[:], q.Pipe.From)
		to := slices.Index(seq.names[:], q.Pipe.To)
		if from < 0 || to < 0 || from == to {
			return nil, fmt.Errorf("sequence pipe %q | %q: want the two step names, %q and %q", q.Pipe.From, q.Pipe.To, seq.names[0], seq.names[1])
		}
		seq.pipe = &seqPipe{from: from, unpiped: q.Pipe.Unpiped}
		// Within a lineage, the consumer may be run with the producer's
		// output, captured by their shell, as its code or arguments.
		seq.pipe.capture = q.By == "lineage"
	}
	return seq, nil
}

// compileAlternatives compiles a signature's conditions and its
// alternatives (match blocks).
func (t Table) compileAlternatives(all Conditions, alts []Conditions) (*cond, []*cond, error) {
	if t.Empty(all) && len(alts) == 0 {
		return nil, nil, errors.New("no executables: the signature could never match")
	}
	c, err := t.compileCond(all)
	if err != nil {
		return nil, nil, err
	}
	var out []*cond
	for i, alt := range alts {
		if t.Empty(alt) {
			return nil, nil, fmt.Errorf("alternative %d has no conditions", i+1)
		}
		cc, err := t.compileCond(alt)
		if err != nil {
			return nil, nil, fmt.Errorf("alternative %d: %w", i+1, err)
		}
		out = append(out, cc)
	}
	return c, out, nil
}

func (t Table) compileAllow(a AllowSpec, sigs map[string]bool) (*allow, error) {
	switch {
	case a.Reason == "":
		return nil, errors.New("no reason: every suppression must say why")
	case t.Empty(a.Conditions):
		return nil, errors.New("no conditions: it would suppress every alert")
	}
	al := &allow{name: a.Name, reason: a.Reason}
	if len(a.Signatures) > 0 {
		al.sigs = make(map[string]bool, len(a.Signatures))
		for _, s := range a.Signatures {
			if !sigs[s] {
				return nil, fmt.Errorf("unknown signature %q", s)
			}
			al.sigs[s] = true
		}
	}
	var err error
	al.c, err = t.compileCond(a.Conditions)
	return al, err
}

// compileCond compiles one block of conditions; an error names the first
// condition at fault.
func (t Table) compileCond(c Conditions) (*cond, error) {
	cc, errs := t.compile(c)
	if len(errs) > 0 {
		return nil, errs[0]
	}
	cc.exes, _ = c[attrExecutables].([]string)
	cc.exes = slices.Clone(cc.exes)
	cc.renamed, _ = c[attrRenamedEncoder].(bool)
	cc.unidentified, _ = c[attrUnidentifiedExec].(bool)
	return cc, nil
}

// Environment returns the environment alerts from this policy carry.
func (p *Policy) Environment() string { return p.env }

// Signatures returns what the policy's signatures say about themselves, in
// policy order. The slice is a copy.
func (p *Policy) Signatures() []SignatureInfo {
	out := make([]SignatureInfo, len(p.sigs))
	for i, s := range p.sigs {
		out[i] = s.info
		out[i].MITRE = slices.Clone(s.info.MITRE)
	}
	return out
}

// Encoders returns the known encoder identities the policy was compiled
// with.
func (p *Policy) Encoders() []EncoderIdentity {
	var out []EncoderIdentity
	seen := map[*EncoderIdentity]bool{}
	for _, m := range []map[inodeKey]*EncoderIdentity{p.byInode} {
		for _, id := range m {
			if !seen[id] {
				seen[id] = true
				out = append(out, *id)
			}
		}
	}
	for _, id := range p.byText {
		if !seen[id] {
			seen[id] = true
			out = append(out, *id)
		}
	}
	for _, id := range p.byHash {
		if !seen[id] {
			seen[id] = true
			out = append(out, *id)
		}
	}
	slices.SortFunc(out, func(a, b EncoderIdentity) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// AlertModes are the values of process.mode, the keys of mode actions.
var AlertModes = []string{ModeEncode, ModeDecode, ModeUnknown}

// compileModeActions copies actions keyed by mode, checking the modes.
func (sig *signature) compileModeActions(m map[string]map[string][]string) error {
	for mode, byEnv := range m {
		if !slices.Contains(AlertModes, mode) {
			return fmt.Errorf("actions for mode %q: want one of %s", mode, strings.Join(AlertModes, ", "))
		}
		if sig.modeActions == nil {
			sig.modeActions = make(map[string]map[string][]string, len(m))
		}
		sig.modeActions[mode] = make(map[string][]string, len(byEnv))
		for env, acts := range byEnv {
			sig.modeActions[mode][env] = slices.Clone(acts)
		}
	}
	return nil
}

package sink

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/hclbody"
)

// Kind describes one sink type: the TYPE of a `sink "TYPE" "NAME" { … }`
// block, how its block decodes into settings S, and how a sink is made of
// them. A type registers itself with Register from an init function in the
// file that implements it; nothing else in the program lists sink types.
// docs/development.md ("Adding a sink type") walks through adding one.
type Kind[S any] struct {
	// Name is the block's first label, e.g. "syslog".
	Name string
	// FormatAttr names the attribute that picks the alert encoding (json,
	// ecs, ocsf, cef, leef) for this type: "format" or "payload". "" means
	// the type takes no format.
	FormatAttr string
	// TLS says the block may hold a tls { … } block (Common.TLS).
	TLS bool
	// Decode reads the type's own attributes from b into s, which starts
	// as the zero value. The attributes every type shares (the format,
	// min_importance, tls, spool) are decoded apart: see Common.
	Decode func(b *Body, s *S)
	// New makes the sink. It may check what decoding cannot (a file that
	// must exist), and connects nothing: a sink connects on its first Send.
	New func(s *S, env Env) (Sink, error)
}

// Env is what a sink type's constructor gets beside its own settings.
type Env struct {
	Name    string        // the sink's name, unique
	Log     *logrus.Entry // with the field sink=Name
	Version string        // the product version, for formats and User-Agent
	Common  Common
	// Format encodes each alert, as Common.Format names it (default json),
	// ContentType is the format's MIME type (FormatKind.ContentType) and
	// JSONFormat says its output is a JSON object.
	Format      Format
	ContentType string
	JSONFormat  bool
}

// Common are the settings every sink type shares, decoded in one place.
type Common struct {
	Format        string            // alert encoding, "" for json; see Kind.FormatAttr
	MinImportance detect.Importance // alerts below are not sent here (counted as filtered)
	TLS           TLSOptions        // when Kind.TLS
	Spool         *SpoolSpec        // nil: an in-memory queue only
}

// SpoolSpec is a sink's disk spool; see SpoolOptions.
type SpoolSpec struct {
	Dir           string
	MaxBytes      int64
	FsyncInterval time.Duration
	WhenFull      string // "drop_newest" (default) or "block"
	BlockTimeout  time.Duration
}

// Config is one sink block, decoded: its type, its name, the common
// settings and the type's own (a *S of its Kind). It holds no HCL beyond
// Range, where it was declared.
type Config struct {
	Type, Name string
	Common
	Settings any
	Range    hcl.Range
}

// kind is a registered Kind with its settings type erased.
type kind struct {
	name       string
	formatAttr string
	tls        bool
	decode     func(b *Body) any
	build      func(settings any, env Env) (Sink, error)
}

// kinds holds every registered sink type, by name. It is written only by
// Register, from init functions.
var kinds = map[string]kind{}

// Register adds a sink type. It is meant for init functions and panics on
// a duplicate or incomplete type, a programming error.
func Register[S any](k Kind[S]) {
	if k.Name == "" || k.Decode == nil || k.New == nil {
		panic("sink: Register: a type needs a name, Decode and New")
	}
	if _, dup := kinds[k.Name]; dup {
		panic("sink: Register: duplicate type " + k.Name)
	}
	kinds[k.Name] = kind{
		name: k.Name, formatAttr: k.FormatAttr, tls: k.TLS,
		decode: func(b *Body) any {
			s := new(S)
			k.Decode(b, s)
			return s
		},
		build: func(settings any, env Env) (Sink, error) {
			s, ok := settings.(*S)
			if !ok || s == nil {
				s = new(S) // a Config made in Go with no settings: the defaults
			}
			return k.New(s, env)
		},
	}
}

// Types returns the names of the registered sink types, sorted.
func Types() []string { return slices.Sorted(maps.Keys(kinds)) }

// MaxTimeout bounds every timeout a sink block sets.
const MaxTimeout = 10 * time.Minute

// maxSpoolBytes bounds a spool's max_bytes.
const maxSpoolBytes = 1 << 40

// DecodeBlock decodes a `sink "TYPE" "NAME" { … }` block whose two labels
// the caller has checked. Diagnostics carry file:line:col; the Config is
// usable only when they hold no error.
func DecodeBlock(blk *hclsyntax.Block) (Config, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	typ, name := blk.Labels[0], blk.Labels[1]
	c := Config{Type: typ, Name: name, Range: hcl.RangeBetween(blk.TypeRange, blk.LabelRanges[1])}
	k, ok := kinds[typ]
	if !ok {
		b := newBody(&diags, blk.Body, "", blk.TypeRange)
		b.Errorf(blk.LabelRanges[0], "unknown sink type %q%s", typ, didYouMean(typ, Types()))
		return c, diags
	}
	b := newBody(&diags, blk.Body, fmt.Sprintf("sink %q", name), blk.TypeRange)
	if k.formatAttr != "" {
		b.Word(k.formatAttr, &c.Format, Formats()...)
	}
	c.Settings = k.decode(b)
	decodeCommon(b, k, &c.Common)
	b.Done()
	return c, diags
}

// decodeCommon decodes the attributes and blocks every sink type shares,
// but the format, decoded first.
func decodeCommon(b *Body, k kind, c *Common) {
	var imp string
	if rng, ok := b.String("min_importance", &imp); ok {
		if v, known := detect.ParseImportance(imp); known {
			c.MinImportance = v
		} else {
			b.Errorf(rng, "unknown importance %q%s", imp, didYouMean(imp, importances()))
		}
	}
	if k.tls {
		if tb := b.block("tls"); tb != nil {
			DecodeTLS(tb.Body, &c.TLS)
		}
	}
	if sb := b.block("spool"); sb != nil {
		sp := &SpoolSpec{}
		sb.Require("dir")
		sb.AbsPath("dir", &sp.Dir)
		if n, ok := sb.Int("max_bytes", 1<<20, maxSpoolBytes); ok {
			sp.MaxBytes = n
		}
		sb.Duration("fsync_interval", &sp.FsyncInterval, -time.Minute, time.Minute) // negative: fsync every alert
		sb.Word("when_full", &sp.WhenFull, "block", "drop_newest")
		sb.Duration("block_timeout", &sp.BlockTimeout, time.Millisecond, time.Minute)
		sb.Done()
		c.Spool = sp
	}
}

// DecodeTLS decodes a tls block (a sink's, or another TLS client's of the
// policy, such as internal/fleet's collect block) into t and reports what
// else the block holds.
func DecodeTLS(b *hclbody.Body, t *TLSOptions) {
	b.AbsPath("ca_file", &t.CAFile)
	b.AbsPath("cert_file", &t.CertFile)
	b.AbsPath("key_file", &t.KeyFile)
	b.String("server_name", &t.ServerName)
	b.Bool("insecure_skip_verify", &t.InsecureSkipVerify)
	if (t.CertFile == "") != (t.KeyFile == "") {
		b.Errorf(b.DefRange(), "%s needs both cert_file and key_file, or neither", b.What())
	}
	b.Done()
}

func importances() []string {
	var out []string
	for i := detect.Info; i <= detect.Critical; i++ {
		out = append(out, i.String())
	}
	return out
}

// BuildOptions are what every sink gets from the daemon.
type BuildOptions struct {
	Log     *logrus.Entry
	Version string // the product version; "" is "dev"
}

// Build makes the sinks configs describe, in order. A sink with a minimum
// importance or a spool comes wrapped (WithDelivery) for NewRouter. On error
// it closes the sinks it already made and returns none.
func Build(configs []Config, opts BuildOptions) ([]Sink, error) {
	if opts.Version == "" {
		opts.Version = "dev"
	}
	var sinks []Sink
	fail := func(err error) ([]Sink, error) {
		for _, s := range sinks {
			if cerr := s.Close(); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}
		return nil, err
	}
	seen := make(map[string]bool, len(configs))
	for _, c := range configs {
		name := c.Name
		if name == "" {
			name = c.Type
		}
		if seen[name] {
			return fail(fmt.Errorf("sink %q: duplicate name", name))
		}
		seen[name] = true
		s, err := build(c, name, opts)
		if err != nil {
			return fail(err)
		}
		sinks = append(sinks, s)
	}
	return sinks, nil
}

// build makes one sink and wraps it with its delivery policy. Its errors
// name the sink (the types' constructors name it themselves).
func build(c Config, name string, opts BuildOptions) (Sink, error) {
	k, ok := kinds[c.Type]
	if !ok {
		return nil, fmt.Errorf("sink %q: unknown type %q: want %s", name, c.Type, strings.Join(Types(), ", "))
	}
	env := Env{Name: name, Log: opts.Log.WithField("sink", name), Version: opts.Version, Common: c.Common}
	if k.formatAttr != "" {
		f, err := NewFormat(c.Format, FormatOptions{Version: opts.Version})
		switch {
		case err != nil && k.formatAttr == "format":
			return nil, fmt.Errorf("sink %q: %w", name, err)
		case err != nil:
			return nil, fmt.Errorf("sink %q: %s: %w", name, k.formatAttr, err)
		}
		fk, _ := LookupFormat(c.Format)
		env.Format, env.ContentType, env.JSONFormat = f, fk.ContentType, fk.ContentType == ContentJSON
	}
	s, err := k.build(c.Settings, env)
	if err != nil {
		return nil, err
	}
	if c.MinImportance == 0 && c.Spool == nil {
		return s, nil
	}
	d := Delivery{MinImportance: c.MinImportance}
	if sp := c.Spool; sp != nil {
		d.Spool, err = OpenSpool(SpoolOptions{
			Dir: sp.Dir, MaxBytes: sp.MaxBytes, FsyncInterval: sp.FsyncInterval,
			WhenFull: sp.WhenFull, BlockTimeout: sp.BlockTimeout, Log: env.Log,
		})
		if err != nil {
			_ = s.Close()
			return nil, fmt.Errorf("sink %q: %w", name, err)
		}
	}
	return WithDelivery(s, d), nil
}

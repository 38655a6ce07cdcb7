package detect

import (
	"regexp"
	"slices"
	"testing"
)

func TestRegexPrefilter(t *testing.T) {
	cases := []struct {
		expr string
		need []string // nil: no prefilter
	}{
		// The shipped fileless_exec expression: one literal per alternative.
		{`^/memfd:| \(deleted\)$|^/dev/fd/[0-9]+$|^/proc/(self|thread-self|[0-9]+)/fd/[0-9]+$`,
			[]string{"/memfd:", " (deleted)", "/dev/fd/", "/proc/"}},
		{`/(busybox|toybox)[^/]*$`, []string{"busybox", "toybox"}},
		{`foo(bar)+`, []string{"foo"}},
		{`x{2,}yz`, []string{"yz"}},
		{`(?i)memfd`, nil},         // case-folded: strings.Contains cannot tell
		{`^$|abc`, nil},            // the empty alternative matches anywhere
		{`(abc)?d`, []string{"d"}}, // only what every match holds
		{`a*`, nil},
		{`[ab]c`, []string{"c"}},
		{`\x{FFFD}x`, nil}, // the engine reads an invalid byte as U+FFFD
	}
	for _, c := range cases {
		r, err := newRegex(c.expr)
		if err != nil {
			t.Fatalf("%s: %v", c.expr, err)
		}
		if !slices.Equal(r.need, c.need) {
			t.Errorf("%s: prefilter %q, want %q", c.expr, r.need, c.need)
		}
	}
}

// The prefilter must never change an answer: for every expression and input
// the filtered match agrees with the engine's.
func FuzzRegexPrefilter(f *testing.F) {
	for _, s := range [][2]string{
		{`^/memfd:| \(deleted\)$|^/dev/fd/[0-9]+$`, "/memfd:x (deleted)"},
		{`/(busybox|toybox)[^/]*$`, "/bin/busybox-static"},
		{`\x{FFFD}`, "a\xffb"},
		{`(?i)ABC|d`, "xabcx"},
		{`a{0}b`, "b"},
		{`(?s).\n`, "x\n"},
		{`\bfoo\b`, "a foo b"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, expr, input string) {
		plain, err := regexp.Compile(expr)
		if err != nil {
			return
		}
		r, err := newRegex(expr)
		if err != nil {
			t.Fatalf("newRegex(%q) failed where regexp.Compile did not: %v", expr, err)
		}
		if got, want := r.MatchString(input), plain.MatchString(input); got != want {
			t.Fatalf("%q on %q: prefiltered %v, engine %v (prefilter %q)", expr, input, got, want, r.need)
		}
		if got, want := r.Match([]byte(input)), plain.MatchString(input); got != want {
			t.Fatalf("%q on %q as bytes: prefiltered %v, engine %v (prefilter %q)", expr, input, got, want, r.need)
		}
	})
}

func BenchmarkRegexNoMatch(b *testing.B) {
	const expr = `^/memfd:| \(deleted\)$|^/dev/fd/[0-9]+$|^/proc/(self|thread-self|[0-9]+)/fd/[0-9]+$`
	plain := regexp.MustCompile(expr)
	r, _ := newRegex(expr)
	const exe = "/usr/lib/x86_64-linux-gnu/some/longer/path/to/a/program"
	b.Run("engine", func(b *testing.B) {
		for b.Loop() {
			plain.MatchString(exe)
		}
	})
	b.Run("prefiltered", func(b *testing.B) {
		for b.Loop() {
			r.MatchString(exe)
		}
	})
}

package detect

import (
	"bytes"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"unicode/utf8"
)

// regex is a policy regular expression with a literal prefilter: strings
// one of which every match contains. Nearly every execution matches none of
// the policy's expressions, and a strings.Contains turns those away for a
// fraction of what the regexp engine costs: the shipped fileless_exec's
// exe_regex, tried on every exec, was 13 % of the daemon's CPU in the exec
// storm before the prefilter (docs/performance.md).
type regex struct {
	*regexp.Regexp
	need []string // nil: no prefilter, every string goes to the engine
	// needBytes is need for Match.
	needBytes [][]byte
}

// maxNeed bounds the prefilter's strings; an expression with more
// alternatives than this goes straight to the engine.
const maxNeed = 16

// newRegex compiles expr with its prefilter.
func newRegex(expr string) (*regex, error) {
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, err
	}
	r := &regex{Regexp: re}
	if parsed, err := syntax.Parse(expr, syntax.Perl); err == nil {
		r.need = required(parsed.Simplify())
	}
	for _, n := range r.need {
		r.needBytes = append(r.needBytes, []byte(n))
	}
	return r, nil
}

// MatchString reports whether s contains a match.
func (r *regex) MatchString(s string) bool {
	if r.need != nil && !containsAny(s, r.need) {
		return false
	}
	return r.Regexp.MatchString(s)
}

// Match reports whether b contains a match, as MatchString(string(b))
// would, without making the string.
func (r *regex) Match(b []byte) bool {
	if r.need != nil && !slices.ContainsFunc(r.needBytes, func(n []byte) bool { return bytes.Contains(b, n) }) {
		return false
	}
	return r.Regexp.Match(b)
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// required returns strings one of which every match of re contains, or nil
// when it cannot tell. It only ever answers from literals that a match must
// pass through: a case-folded literal, an empty alternative or an optional
// part gives nil for that part.
func required(re *syntax.Regexp) []string {
	switch re.Op {
	case syntax.OpLiteral:
		lit := string(re.Rune)
		// The engine reads an invalid byte as U+FFFD, which a literal
		// U+FFFD matches but strings.Contains would not find.
		if re.Flags&syntax.FoldCase != 0 || lit == "" || strings.ContainsRune(lit, utf8.RuneError) {
			return nil
		}
		return []string{lit}
	case syntax.OpCapture, syntax.OpPlus:
		return required(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return required(re.Sub[0])
		}
	case syntax.OpConcat:
		var best []string
		for _, sub := range re.Sub {
			if r := required(sub); r != nil && (best == nil || shortest(r) > shortest(best)) {
				best = r
			}
		}
		return best
	case syntax.OpAlternate:
		var all []string
		for _, sub := range re.Sub {
			r := required(sub)
			if r == nil || len(all)+len(r) > maxNeed {
				return nil
			}
			all = append(all, r...)
		}
		return all
	}
	return nil
}

// shortest is the length of the shortest string of set: the prefilter is
// as selective as its weakest string.
func shortest(set []string) int {
	n := len(set[0])
	for _, s := range set[1:] {
		n = min(n, len(s))
	}
	return n
}

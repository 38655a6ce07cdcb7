package hclbody

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Suggest returns the candidate closest to given, if it is close enough to
// be a misspelling (the same threshold as hcl's own suggestions).
func Suggest(given string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if d := levenshtein.Distance(given, c, nil); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// DidYouMean is the end of a message about an unknown word:
// "; did you mean "x"?" for a close candidate, else "; " + otherwise.
func DidYouMean(given string, candidates []string, otherwise string) string {
	if s := Suggest(given, candidates); s != "" {
		return fmt.Sprintf("; did you mean %q?", s)
	}
	return "; " + otherwise
}

// SortedAttrs returns b's attributes in source order, so that messages come
// out in the order a reader meets them.
func SortedAttrs(b *hclsyntax.Body) []*hclsyntax.Attribute {
	attrs := make([]*hclsyntax.Attribute, 0, len(b.Attributes))
	for _, a := range b.Attributes {
		attrs = append(attrs, a)
	}
	slices.SortFunc(attrs, func(x, y *hclsyntax.Attribute) int { return x.NameRange.Start.Byte - y.NameRange.Start.Byte })
	return attrs
}

// CheckAbsPath returns a message when s is not an absolute path, else "".
func CheckAbsPath(s string) string {
	if !filepath.IsAbs(s) || strings.ContainsRune(s, 0) {
		return fmt.Sprintf("path %q must be absolute", s)
	}
	return ""
}

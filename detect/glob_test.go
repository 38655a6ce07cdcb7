package detect

import (
	"path"
	"strings"
	"testing"
)

// globAnyByMatch is what a globList matches, as path.Match and the "deeper under DIR/*"
// rule say, with no fast path: the reference the fast path must agree with.
func globAnyByMatch(globs []string, s string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, s); ok {
			return true
		}
		if strings.HasSuffix(g, "/*") && strings.HasPrefix(s, g[:len(g)-1]) && !strings.ContainsAny(g[:len(g)-1], "*?[") {
			return true
		}
	}
	return false
}

func TestGlobListAgreesWithPathMatch(t *testing.T) {
	globs := []string{"/tmp/*", "/dev/shm/*", "/*", "/run/user/*/x", "/a\\b/*", "/opt/[ab]in/*", "/usr/bin/base64", "/var/tmp?/*", "relative/*", "/tmp/*/*"}
	paths := []string{"", "/", "/tmp", "/tmp/", "/tmp/x", "/tmp/x/y", "/tmpx/y", "/tm", "/dev/shm", "/dev/shm/a b", "/run/user/1000/x",
		"/run/user/1000/y", "/ab/c", "/a\\b/c", "/opt/bin/x", "/opt/cin/x", "/usr/bin/base64", "/usr/bin/base64x", "/var/tmp1/z",
		"relative/x", "relative", "x/tmp/y", "/tmp/\xff", "/tmp/a/b/c"}
	for _, g := range globs {
		for _, p := range paths {
			want := globAnyByMatch([]string{g}, p)
			if got := compileGlobs([]string{g}).match(p); got != want {
				t.Errorf("globList %q matching %q: %v, path.Match and the DIR/* rule say %v", g, p, got, want)
			}
		}
	}
	// Spot checks that the reference itself says what the policy means.
	for _, c := range []struct {
		glob, path string
		want       bool
	}{{"/tmp/*", "/tmp/a/b", true}, {"/tmp/*", "/tmpa", false}, {"/tmp/*", "/var/tmp/a", false}} {
		if got := compileGlobs([]string{c.glob}).match(c.path); got != c.want {
			t.Errorf("globList %q matching %q: %v, want %v", c.glob, c.path, got, c.want)
		}
	}
}

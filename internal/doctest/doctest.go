// Package doctest keeps the worked examples of docs/development.md and
// docs/architecture.md honest: a test reads the Go blocks of one section of
// a page and checks that each is quoted verbatim from the test file that
// runs it.
package doctest

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// page is docs/NAME, found from this file's place in the module so that a
// test in any package reads the same page.
func page(t testing.TB, name string) string {
	t.Helper()
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("doctest: cannot locate the module")
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(self), "..", "..", "docs", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// goBlocks returns the Go code blocks of the section of docs/NAME whose
// level-2 heading is heading, up to the next level-2 heading. It fails the
// test when the section or its code is missing.
func goBlocks(t testing.TB, name, heading string) []string {
	t.Helper()
	_, section, ok := strings.Cut(page(t, name), "\n## "+heading+"\n")
	if !ok {
		t.Fatalf("docs/%s has no section %q", name, heading)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var blocks []string
	for _, b := range strings.Split(section, "```go\n")[1:] {
		code, _, _ := strings.Cut(b, "```")
		blocks = append(blocks, code)
	}
	if len(blocks) == 0 {
		t.Fatalf("section %q of docs/%s quotes no Go code", heading, name)
	}
	return blocks
}

// Quoted fails t for each Go block of the section that is not verbatim in
// one of files (paths relative to the calling test's package). Indentation
// is not compared: the page may quote a statement from inside a function.
func Quoted(t testing.TB, heading string, files ...string) {
	t.Helper()
	quoted(t, "development.md", heading, files)
}

// Architecture is Quoted for a section of docs/architecture.md.
func Architecture(t testing.TB, heading string, files ...string) {
	t.Helper()
	quoted(t, "architecture.md", heading, files)
}

func quoted(t testing.TB, name, heading string, files []string) {
	t.Helper()
	var src strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src.WriteString(unindent(string(b)))
	}
	for i, code := range goBlocks(t, name, heading) {
		if !strings.Contains(src.String(), unindent(code)) {
			t.Errorf("Go block %d of %q in docs/%s is not verbatim in %v:\n%s", i+1, heading, name, files, code)
		}
	}
}

// unindent drops the leading tabs and spaces of every line of s.
func unindent(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimLeft(l, " \t")
	}
	return strings.Join(lines, "\n")
}

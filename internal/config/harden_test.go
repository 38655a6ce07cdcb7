package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

const oneSignature = "signature \"a\" {\n  importance = \"low\"\n  executables = [\"base64\"]\n}\n"

// TestDeepNestingRefused feeds hclsyntax input nested 100,000 levels deep,
// which overflows its stack and kills the process: Parse must refuse it
// first, with a file:line:col error.
func TestDeepNestingRefused(t *testing.T) {
	const n = 100000
	tests := []struct{ name, src string }{
		{"braces", "settings {\n  x = " + strings.Repeat("{a=", n) + "1" + strings.Repeat("}", n) + "\n}\n"},
		{"brackets", "a = " + strings.Repeat("[", n) + strings.Repeat("]", n)},
		{"parentheses", "a = " + strings.Repeat("(", n) + "1" + strings.Repeat(")", n)},
		{"unary not", "a = " + strings.Repeat("!", n) + "true"},
		{"unary minus", "a = " + strings.Repeat("- ", n) + "1"},
		{"interpolations", "a = " + strings.Repeat("\"${", n) + "1" + strings.Repeat("}\"", n)},
		{"heredoc interpolations", "a = <<EOT\n" + strings.Repeat("${[", n) + "\nEOT\n"},
		{"unclosed", "a = " + strings.Repeat("[", n)},
	}
	at := regexp.MustCompile(`^deep\.hcl:\d+:\d+: nested more than 100 levels deep`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("deep.hcl", []byte(tt.src))
			if err == nil || !at.MatchString(err.Error()) {
				t.Errorf("Parse(%d levels of %s) = %v, want a deep.hcl:LINE:COL nesting error", n, tt.name, err)
			}
		})
	}
}

// TestNestingScannerAcceptsRealPolicies: what the scanner skips (strings,
// comments, heredocs) must not count, so real policies still load.
func TestNestingScannerAcceptsRealPolicies(t *testing.T) {
	tests := []string{
		`a = "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["`,
		`a = "$${" # ((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((` + "\n",
		"/* " + strings.Repeat("{", 200) + " */\n",
		"a = <<-EOT\n  " + strings.Repeat("(", 200) + "\n  EOT\n",
		"a = \"\\\"" + strings.Repeat("[", 200) + "\"\n",
		"a = [" + strings.Repeat("[", 98) + strings.Repeat("]", 99) + "\n",
	}
	for _, src := range tests {
		if d := checkNesting("ok.hcl", []byte(src)); d != nil {
			t.Errorf("checkNesting(%.60q) = %v, want nil", src, d)
		}
	}
	for _, p := range []string{"../../config.hcl", "testdata/full.hcl"} {
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if d := checkNesting(p, src); d != nil {
			t.Errorf("checkNesting(%s) = %v, want nil", p, d)
		}
	}
}

// TestLoadStrictModesAsRoot builds real directory chains and symlinks, some
// owned by nobody or writable by others, as sshd's StrictModes would see
// them.
func TestLoadStrictModesAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("TestLoadStrictModesAsRoot needs root: it chowns files to nobody")
	}
	const nobody = 65534
	mkdir := func(t *testing.T, p string, mode os.FileMode, uid int) {
		t.Helper()
		if err := os.Mkdir(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, 0); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		make func(t *testing.T, base string) string // returns the main policy path
		want string                                 // regexp of the error, "" for none
	}{
		{"plain", func(t *testing.T, base string) string {
			p := filepath.Join(base, "config.hcl")
			writeFile(t, p, oneSignature, 0o644)
			return p
		}, ""},
		{"directory writable by others, policy swapped by a symlink", func(t *testing.T, base string) string {
			d := filepath.Join(base, "etc")
			mkdir(t, d, 0o777, 0)
			empty := filepath.Join(base, "empty.hcl")
			writeFile(t, empty, "", 0o644)
			p := filepath.Join(d, "config.hcl")
			if err := os.Symlink(empty, p); err != nil {
				t.Fatal(err)
			}
			return p
		}, `/etc: on the way to policy file .*: is writable by group or others \(mode 0777\); refusing to load it$`},
		{"grandparent owned by nobody", func(t *testing.T, base string) string {
			d := filepath.Join(base, "theirs")
			mkdir(t, d, 0o755, nobody)
			mkdir(t, filepath.Join(d, "etc"), 0o755, 0)
			p := filepath.Join(d, "etc", "config.hcl")
			writeFile(t, p, oneSignature, 0o644)
			return p
		}, `/theirs: on the way to policy file .*: is owned by uid 65534, not root; refusing to load it$`},
		{"symlink to a target in a directory writable by others", func(t *testing.T, base string) string {
			d := filepath.Join(base, "open")
			mkdir(t, d, 0o777, 0)
			target := filepath.Join(d, "real.hcl")
			writeFile(t, target, oneSignature, 0o644)
			p := filepath.Join(base, "config.hcl")
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			return p
		}, `/open: on the way to policy file .*: is writable by group or others`},
		{"symlink owned by nobody", func(t *testing.T, base string) string {
			target := filepath.Join(base, "real.hcl")
			writeFile(t, target, oneSignature, 0o644)
			p := filepath.Join(base, "config.hcl")
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			if err := os.Lchown(p, nobody, nobody); err != nil {
				t.Fatal(err)
			}
			return p
		}, `config\.hcl: policy file is owned by uid 65534, not root; refusing to load it$`},
		{"root symlink to a good target", func(t *testing.T, base string) string {
			target := filepath.Join(base, "real.hcl")
			writeFile(t, target, oneSignature, 0o644)
			p := filepath.Join(base, "config.hcl")
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			return p
		}, ""},
		{"conf.d entry symlinked to a file owned by nobody", func(t *testing.T, base string) string {
			p := filepath.Join(base, "config.hcl")
			writeFile(t, p, oneSignature, 0o644)
			mkdir(t, filepath.Join(base, "conf.d"), 0o755, 0)
			theirs := filepath.Join(base, "theirs.hcl")
			writeFile(t, theirs, "", 0o644)
			if err := os.Chown(theirs, nobody, nobody); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(theirs, filepath.Join(base, "conf.d", "10-x.hcl")); err != nil {
				t.Fatal(err)
			}
			return p
		}, `theirs\.hcl: on the way to policy file .*10-x\.hcl: is owned by uid 65534, not root`},
		{"conf.d owned by nobody", func(t *testing.T, base string) string {
			p := filepath.Join(base, "config.hcl")
			writeFile(t, p, oneSignature, 0o644)
			mkdir(t, filepath.Join(base, "conf.d"), 0o755, nobody)
			return p
		}, `conf\.d: conf\.d directory is owned by uid 65534, not root; refusing to load it$`},
		{"a fifo", func(t *testing.T, base string) string {
			p := filepath.Join(base, "config.hcl")
			if err := mkfifo(p); err != nil {
				t.Fatal(err)
			}
			return p
		}, `config\.hcl: policy file is not a regular file$`},
		{"no signatures", func(t *testing.T, base string) string {
			p := filepath.Join(base, "config.hcl")
			writeFile(t, p, "settings {\n  environment = \"ci\"\n}\n", 0o644)
			return p
		}, `config\.hcl: the policy has no signature blocks: it would detect nothing; refusing it$`},
		{"a forwarder's policy needs no signatures", func(t *testing.T, base string) string {
			p := filepath.Join(base, "config.hcl")
			writeFile(t, p, "forward {}\n", 0o644)
			return p
		}, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.make(t, t.TempDir())
			_, err := Load(p, LoadOptions{RequireRootOwned: true})
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Load(%s) = %v, want no error", p, err)
			case tt.want != "" && (err == nil || !regexp.MustCompile(tt.want).MatchString(err.Error())):
				t.Errorf("Load(%s) = %v, want an error matching %s", p, err, tt.want)
			}
		})
	}
}

func mkfifo(p string) error { return syscall.Mkfifo(p, 0o644) }

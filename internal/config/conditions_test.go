package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/encwatch/encwatch/detect"
)

// samples returns, for a condition, a value that asks something of an exec
// and one that asks nothing (an empty list, false, 0).
func samples(c *detect.Condition) (meaningful, vacuous any) {
	switch c.Type {
	case detect.Strings:
		v := "x"
		switch c.Check {
		case detect.FileName:
			v = "base64"
		case detect.Glob:
			v = "/tmp/*"
		case detect.OneOf:
			v = c.Allowed[0]
		}
		return []string{v}, []string{}
	case detect.String:
		if c.Check == detect.OneOf {
			return c.Allowed[0], ""
		}
		return "x", ""
	case detect.Int:
		return max(c.Min, 1), 0
	case detect.Bool:
		return true, false
	case detect.Uint32s:
		return []uint32{0}, []uint32{}
	}
	panic(fmt.Sprintf("condition %s: unknown type %d", c.Attr, c.Type))
}

// hclValue writes v, a condition's Go value, as HCL.
func hclValue(v any) string {
	switch v := v.(type) {
	case []string:
		q := make([]string, len(v))
		for i, s := range v {
			q[i] = strconv.Quote(s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	case []uint32:
		q := make([]string, len(v))
		for i, n := range v {
			q[i] = strconv.FormatUint(uint64(n), 10)
		}
		return "[" + strings.Join(q, ", ") + "]"
	case string:
		return strconv.Quote(v)
	}
	return fmt.Sprint(v)
}

// TestEveryConditionAlone proves that config and detect agree on every
// entry of the table: a signature or allow block whose only condition is
// that entry, with a value that asks something and one that asks nothing,
// loads if and only if detect compiles it, and when config refuses it the
// diagnostic points at the attribute or the block, never at the signature's
// label, where a Compile failure that slipped through config would land.
func TestEveryConditionAlone(t *testing.T) {
	table := detect.Builtin()
	for i := range table {
		cond := &table[i]
		meaningful, vacuous := samples(cond)
		for _, v := range []any{meaningful, vacuous} {
			for _, kind := range []string{"signature", "allow"} {
				t.Run(fmt.Sprintf("%s %s=%s", kind, cond.Attr, hclValue(v)), func(t *testing.T) {
					checkAlone(t, kind, cond.Attr, v)
				})
			}
		}
	}
}

func checkAlone(t *testing.T, kind, attr string, v any) {
	t.Helper()
	conds := detect.Conditions{attr: v}
	var spec detect.PolicySpec
	var src string
	if kind == "signature" {
		spec.Signatures = []detect.SignatureSpec{{Name: "s", Importance: detect.High, Conditions: conds}}
		src = fmt.Sprintf("signature \"s\" {\n  importance = \"high\"\n  %s = %s\n}\n", attr, hclValue(v))
	} else {
		spec.Allows = []detect.AllowSpec{{Name: "s", Reason: "r", Conditions: conds}}
		src = fmt.Sprintf("allow \"s\" {\n  reason = \"r\"\n  %s = %s\n}\n", attr, hclValue(v))
	}
	_, compileErr := detect.Compile(spec)
	cfg, err := Parse("p.hcl", []byte(src))
	if (err == nil) != (compileErr == nil) {
		t.Fatalf("config error = %v, detect.Compile error = %v: want both nil or both set\n%s", err, compileErr, src)
	}
	if err == nil {
		if cfg.Policy == nil {
			t.Fatalf("Parse(%q) compiled no policy", src)
		}
		return
	}
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("Parse(%q) = %T %v, want *Error", src, err, err)
	}
	for _, d := range cerr.Diagnostics {
		if got := d.Subject.Start; got.Line != 3 && got != (hcl.Pos{Line: 1, Column: 1, Byte: 0}) {
			t.Errorf("diagnostic at %s: %s, want it at the attribute (line 3) or the block (1:1)", at(*d.Subject), d.Summary)
		}
	}
}

// TestConditionErrors checks where and how config reports conditions that
// detect refuses.
func TestConditionErrors(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"needs", `executables = ["python"]
  payload_encodings = ["hex"]`, `p.hcl:4:23: payload_encodings needs payload in the same block: alone it means nothing`},
		{"depth alone", `executables = ["sh"]
  ancestor_depth = 3`, `p.hcl:4:20: ancestor_depth needs ancestor_executables in the same block: alone it means nothing`},
		{"max below min", `executables = ["sh"]
  min_args = 3
  max_args = 1`, `p.hcl:5:14: max_args is less than min_args`},
		{"glob element", `tty = ["pts*", "[" ]`, `p.hcl:3:18: tty: bad glob "[": syntax error in pattern`},
		{"regex", `args_regex = "("`, "p.hcl:3:16: args_regex: bad regular expression: error parsing regexp: missing closing ): `(`"},
		{"one of", `executables = ["base64"]
  mode = "decod"`, `p.hcl:4:10: unknown mode "decod"; did you mean "decode"?`},
		{"list of one of", `executables = ["sh"]
  payload = ["elf", "exe"]`, `p.hcl:4:21: unknown payload "exe"; did you mean "elf"?`},
		{"empty match", `match {
    min_args = 0
  }`, `p.hcl:3:3: match block of signature "s" has no conditions`},
		{"nothing asked", `renamed_encoder = false`, `p.hcl:1:1: signature "s" has no conditions: give executables, paths, exe_regex, match blocks or a sequence`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "signature \"s\" {\n  importance = \"high\"\n  " + tt.body + "\n}\n"
			_, err := Parse("p.hcl", []byte(src))
			if err == nil || err.Error() != tt.want {
				t.Errorf("Parse:\n%s\n= %v, want %s", src, err, tt.want)
			}
		})
	}
}

// TestEmptyStepRefused checks that config, not a detect fallback, refuses a
// sequence step that asks nothing.
func TestEmptyStepRefused(t *testing.T) {
	src := `signature "s" {
  importance = "high"
  sequence {
    step "a" {
      executables = ["base64"]
    }
    step "b" {
      min_args = 0
    }
  }
}
`
	want := `p.hcl:7:5: step "b" of signature "s" has no conditions`
	if _, err := Parse("p.hcl", []byte(src)); err == nil || err.Error() != want {
		t.Errorf("Parse = %v, want %s", err, want)
	}
}

// TestConditionErrorsAllReported checks that one load reports a problem in
// every condition, not only the first.
func TestConditionErrorsAllReported(t *testing.T) {
	src := `signature "s" {
  importance = "high"
  mode       = 3
  exe_regex  = "("
  payload    = 4
  payload_encodings = ["hex"]
}
`
	want := strings.Join([]string{
		`p.hcl:3:16: mode must be a string, got number`,
		`p.hcl:5:16: payload must be a list of strings, got number`,
		"p.hcl:4:16: exe_regex: bad regular expression: error parsing regexp: missing closing ): `(`",
	}, "\n")
	if _, err := Parse("p.hcl", []byte(src)); err == nil || err.Error() != want {
		t.Errorf("Parse = %v, want\n%s", err, want)
	}
}

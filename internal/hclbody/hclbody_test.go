package hclbody

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// decode parses src as the body of a block "b", runs dec on it and ends
// it with Done; it returns the diagnostics as "line:col: summary".
func decode(t *testing.T, src string, dec func(b *Body)) []string {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte("b {\n"+src+"\n}\n"), "t.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("parse %q: %v", src, diags)
	}
	blk := f.Body.(*hclsyntax.Body).Blocks[0]
	var out hcl.Diagnostics
	b := New(&out, blk.Body, "b block", blk.TypeRange)
	dec(b)
	b.Done("nested")
	var got []string
	for _, d := range out {
		got = append(got, fmt.Sprintf("%d:%d: %s", d.Subject.Start.Line, d.Subject.Start.Column, d.Summary))
	}
	return got
}

func TestBodyReportsWhereAndWhat(t *testing.T) {
	even := func(n int64) error {
		if n%2 != 0 {
			return errors.New("n must be even")
		}
		return nil
	}
	positive := func(d time.Duration) error {
		if d <= 0 {
			return errors.New("d must be positive")
		}
		return nil
	}
	dec := func(b *Body) {
		var s string
		var on bool
		var d time.Duration
		var list []string
		b.Require("name")
		b.String("name", &s)
		b.String("s", &s)
		b.Bool("on", &on)
		b.Int("i", 1, 10)
		b.CheckedInt("n", even)
		b.Duration("d", &d, time.Millisecond, time.Second)
		b.CheckedDuration("pd", &d, positive)
		b.Strings("list", &list)
		b.AbsPath("path", &s)
	}
	tests := []struct {
		name, src string
		want      []string
	}{
		{"all good", `name = "x"
s = "a"
on = true
i = 3
n = 4
d = "20ms"
pd = "1s"
list = ["a", "b"]
path = "/etc/x"`, nil},
		{"missing required", ``, []string{`1:1: b block needs attribute "name"`}},
		{"wrong types", `name = 1
s = 2
on = "yes"`, []string{
			`2:8: name must be a string, got number`,
			`3:5: s must be a string, got number`,
			`4:6: on must be a bool, got string`,
		}},
		{"numbers", `name = "x"
i = 11
n = 3
list = ["a", 1]`, []string{
			`3:5: i must be a whole number from 1 to 10`,
			`4:5: n must be even`,
			`5:14: list must be a list of strings, got number at index 1`,
		}},
		{"durations and paths", `name = "x"
d = "2h"
pd = "soon"
path = "rel"`, []string{
			`3:5: d must be from 1ms to 1s, got 2h0m0s`,
			`4:6: bad duration "soon" for pd; write a number and a unit, e.g. "20ms" or "2s"`,
			`5:8: path: path "rel" must be absolute`,
		}},
		{"unknown names", `name = "x"
nmae = "y"
nested = 1
other = 2
s {
}
nestd {
}
zzz {
}`, []string{
			`3:1: unknown attribute "nmae"; did you mean "name"?`,
			`4:1: "nested" is a block, not an attribute: write nested { ... }`,
			`5:1: unknown attribute "other" in b block`,
			`6:1: "s" is an attribute, not a block: write s = ...`,
			`8:1: unknown block "nestd"; did you mean "nested"?`,
			`10:1: unknown block "zzz" in b block`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decode(t, tt.src, dec)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestBlockTakesOneWithoutLabels(t *testing.T) {
	src := `tls {
  x = 1
}
tls {
}
`
	var n *Body
	got := decode(t, src, func(b *Body) {
		if n = b.Block("tls"); n != nil {
			n.Done()
		}
	})
	want := []string{
		`5:1: more than one tls block in b block`,
		`3:3: unknown attribute "x" in tls block of b block`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

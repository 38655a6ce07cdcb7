package detect

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestBuiltinTableIsConsistent checks what the compiler cannot: every entry
// of the table is complete and says what config needs to decode it.
func TestBuiltinTableIsConsistent(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range builtin {
		if c.Attr == "" || seen[c.Attr] {
			t.Errorf("entry %+v: attribute empty or listed twice", c)
		}
		seen[c.Attr] = true
		if (c.Compile == nil) == (c.Needs == "") {
			t.Errorf("%s: Compile nil = %v, Needs = %q: want a predicate, or a condition it modifies", c.Attr, c.Compile == nil, c.Needs)
		}
		if (c.Check == OneOf) != (len(c.Allowed) > 0) {
			t.Errorf("%s: Check = %d with %d allowed words, want OneOf exactly when words are listed", c.Attr, c.Check, len(c.Allowed))
		}
		if (c.Check == FileName || c.Check == OneOf) && c.Noun == "" {
			t.Errorf("%s: no Noun for its messages", c.Attr)
		}
		if c.Check != AnyString && c.Type != Strings && c.Type != String {
			t.Errorf("%s: a value check on a value of type %d, which holds no strings", c.Attr, c.Type)
		}
		if c.Type == Int && c.Max <= c.Min {
			t.Errorf("%s: bounds %d to %d", c.Attr, c.Min, c.Max)
		}
	}
	for _, c := range builtin {
		if _, ok := Builtin().Lookup(c.Needs); c.Needs != "" && !ok {
			t.Errorf("%s needs %q, which is not in the table", c.Attr, c.Needs)
		}
	}
}

// TestBuiltinTableIsDocumented checks that docs/policy.md names every
// condition.
func TestBuiltinTableIsDocumented(t *testing.T) {
	b, err := os.ReadFile("../docs/policy.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(b), "### Conditions")
	section, _, _ = strings.Cut(section, "\n### ")
	for _, attr := range Builtin().Attrs() {
		if !strings.Contains(section, "`"+attr) {
			t.Errorf("docs/policy.md's Conditions section does not document %s", attr)
		}
	}
}

// TestPredicatesRunCheapestFirst checks that a block's predicates run in
// order of cost whatever the table's order, while its match reasons keep
// the table's order.
func TestPredicatesRunCheapestFirst(t *testing.T) {
	var ran []string
	entry := func(attr string, cost Cost) Condition {
		return Condition{Attr: attr, Type: Bool, Cost: cost, Compile: func(any, Conditions) (*Predicate, error) {
			return &Predicate{
				Holds:   func(*Exec) bool { ran = append(ran, attr); return true },
				Explain: func(_ *Exec, ms []Match) []Match { return append(ms, Match{Field: attr}) },
			}, nil
		}}
	}
	table := Table{entry("identity", CostIdentity), entry("regex", CostRegex), entry("compare", CostCompare), entry("payload", CostPayload)}
	p := mustCompile(t, PolicySpec{Table: table, Signatures: []SignatureSpec{{Name: "s", Importance: High,
		Conditions: Conditions{"identity": true, "regex": true, "compare": true, "payload": true}}}})
	alerts := NewEngine(p, "host", fixedNow).Evaluate(execEvent("/usr/bin/ls", "ls"))
	if len(alerts) != 1 {
		t.Fatalf("Evaluate raised %d alerts, want 1", len(alerts))
	}
	if want := []string{"compare", "regex", "payload", "identity"}; !reflect.DeepEqual(ran, want) {
		t.Errorf("predicates ran in order %q, want %q", ran, want)
	}
	var reasons []string
	for _, m := range alerts[0].Matches {
		reasons = append(reasons, m.Field)
	}
	if want := []string{"identity", "regex", "compare", "payload"}; !reflect.DeepEqual(reasons, want) {
		t.Errorf("match reasons in order %q, want %q (the table's)", reasons, want)
	}
}

// TestCompileRefusesBadConditions checks the refusals a Go caller of
// Compile meets; config reports the same ones at their source.
func TestCompileRefusesBadConditions(t *testing.T) {
	tests := []struct {
		name  string
		conds Conditions
		want  string
	}{
		{"unknown", Conditions{"executables": []string{"a"}, "exectuables": []string{"b"}}, `signature "s": exectuables is not a condition`},
		{"type", Conditions{"executables": "base64"}, `signature "s": executables must be a []string, got string`},
		{"range", Conditions{"executables": []string{"a"}, "ancestor_executables": []string{"sh"}, "ancestor_depth": 99}, `signature "s": ancestor_depth must be from 1 to 64, got 99`},
		{"modifier alone", Conditions{"payload_encodings": []string{"hex"}}, `signature "s": payload_encodings needs payload in the same block: alone it means nothing`},
		{"one of", Conditions{"executables": []string{"a"}, "mode": "decrypt"}, `signature "s": mode "decrypt": want one of decode, encode`},
		{"max below min", Conditions{"min_args": 2, "max_args": 1}, `signature "s": max_args is less than min_args`},
		{"nothing asked", Conditions{"renamed_encoder": false, "paths": []string{}}, `signature "s": no executables: the signature could never match`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(PolicySpec{Signatures: []SignatureSpec{{Name: "s", Importance: High, Conditions: tt.conds}}})
			if err == nil || err.Error() != tt.want {
				t.Errorf("Compile(%v) = %v, want %s", tt.conds, err, tt.want)
			}
		})
	}
}

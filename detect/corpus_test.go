package detect_test

import (
	"flag"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/config"
)

var update = flag.Bool("update", false, "rewrite the expected alerts of testdata/corpus.txt")

type corpusLine struct {
	n           int
	class, want string
	command     string
	raw         string
	isEntry     bool
}

func readCorpus(t *testing.T) []corpusLine {
	t.Helper()
	b, err := os.ReadFile("testdata/corpus.txt")
	if err != nil {
		t.Fatal(err)
	}
	var out []corpusLine
	for i, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		cl := corpusLine{n: i + 1, raw: l}
		if l != "" && !strings.HasPrefix(l, "#") {
			f := strings.SplitN(l, "\t", 3)
			if len(f) != 3 || (f[0] != "attack" && f[0] != "benign" && f[0] != "encode") {
				t.Fatalf("corpus.txt:%d: want CLASS<TAB>EXPECTED<TAB>COMMAND, got %q", i+1, l)
			}
			cl.class, cl.want, cl.command, cl.isEntry = f[0], f[1], f[2], true
		}
		out = append(out, cl)
	}
	return out
}

func defaultPolicy(t testing.TB) *detect.Policy {
	t.Helper()
	// Parse does no I/O: no encoder identities from this machine, so the
	// corpus gives the same result everywhere.
	src, err := os.ReadFile("../config.hcl")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("config.hcl", src)
	if err != nil {
		t.Fatalf("Parse(config.hcl): %v", err)
	}
	return cfg.Policy
}

// raisedImp runs one corpus command through a fresh engine and returns the
// signatures it raised, and the critical ones among them.
func raisedImp(t *testing.T, p *detect.Policy, command string) (names, critical []string) {
	t.Helper()
	argv, err := detect.SplitCommand(command)
	if err != nil {
		t.Fatalf("SplitCommand(%q): %v", command, err)
	}
	for _, a := range detect.DryRun(p, detect.Command{Argv: argv, UID: 1000}, "corpus", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)) {
		if !slices.Contains(names, a.Signature.Name) {
			names = append(names, a.Signature.Name)
		}
		if a.Signature.Importance == detect.Critical && !slices.Contains(critical, a.Signature.Name) {
			critical = append(critical, a.Signature.Name)
		}
	}
	slices.Sort(names)
	return names, critical
}

func TestCorpus(t *testing.T) {
	p := defaultPolicy(t)
	lines := readCorpus(t)
	var attacks, detected, benign, falsePos, encodes, falseCrit, critAttacks int
	var rewritten []string
	for _, l := range lines {
		if !l.isEntry {
			rewritten = append(rewritten, l.raw)
			continue
		}
		got, crit := raisedImp(t, p, l.command)
		if l.class != "attack" && len(crit) > 0 {
			// A critical alert wakes someone up: never on everyday work.
			falseCrit++
			t.Errorf("corpus.txt:%d: %s (%s) raised the critical %s", l.n, l.command, l.class, strings.Join(crit, ","))
		}
		if l.class == "attack" && len(crit) > 0 {
			critAttacks++
		}
		gotStr := strings.Join(got, ",")
		if gotStr == "" {
			gotStr = "-"
		}
		rewritten = append(rewritten, l.class+"\t"+gotStr+"\t"+l.command)
		switch l.class {
		case "attack":
			attacks++
			if len(got) > 0 {
				detected++
			}
		case "benign":
			benign++
			if len(got) > 0 {
				falsePos++
			}
		case "encode":
			// Everyday work that runs an encoder: the recipe raises
			// data_encoder_exec on it; quieting it is an allow block's
			// job, not the default policy's.
			encodes++
			if !slices.Contains(got, "data_encoder_exec") {
				t.Errorf("corpus.txt:%d: %s runs an encoder but raised %s, want data_encoder_exec among them", l.n, l.command, gotStr)
			}
		}
		if !*update && gotStr != l.want {
			t.Errorf("corpus.txt:%d: %s raised %s, want %s", l.n, l.command, gotStr, l.want)
		}
	}
	if *update {
		if err := os.WriteFile("testdata/corpus.txt", []byte(strings.Join(rewritten, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if attacks < 40 || benign < 40 {
		t.Errorf("corpus has %d attack and %d benign lines, want at least 40 of each", attacks, benign)
	}
	t.Logf("detection rate: %d/%d attack lines raised an alert (%.1f%%)", detected, attacks, 100*float64(detected)/float64(attacks))
	t.Logf("false positives: %d/%d benign lines raised an alert (%.1f%%)", falsePos, benign, 100*float64(falsePos)/float64(benign))
	t.Logf("encoder runs: %d everyday lines, each raising data_encoder_exec", encodes)
	t.Logf("critical: %d/%d attack lines; false criticals: %d/%d benign and everyday lines", critAttacks, attacks, falseCrit, benign+encodes)
}

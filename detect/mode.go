package detect

import "strings"

// gnuEncoders are the tools that take GNU base64's flags: -d/--decode to
// decode (-D on macOS), -w COLS to wrap, -i to ignore garbage.
var gnuEncoders = map[string]bool{
	"base64": true, "base32": true, "basenc": true, "base16": true, "base58": true,
	"base32hex": true, "base32plain": true, "base64url": true, "base64mime": true,
	"base64pem": true, "base64plain": true, "basez": true, "ascii85": true,
}

// opensslCiphers are prefixes of the cipher commands openssl accepts in place
// of "enc" ("openssl aes-256-cbc -d -a").
var opensslCiphers = []string{"aes", "aria", "bf", "camellia", "cast", "chacha", "des", "rc2", "rc4", "rc5", "seed", "sm4", "idea"}

// toolMode reads what an encoder tool was asked to do from its flags: decode
// or encode, with a short reason; "" when tool is not an encoder, or only asked
// for help or its version.
func toolMode(tool string, argv []string) (mode, why string) {
	var args []string
	if len(argv) > 1 {
		args = argv[1:]
	}
	if helpOrVersion(args) {
		return "", ""
	}
	switch {
	case gnuEncoders[tool]:
		if f, ok := gnuDecodeFlag(args); ok {
			return "decode", "decodes (" + f + ")"
		}
		return "encode", "encodes (no decode flag)"
	case tool == "uudecode":
		return "decode", "decodes"
	case tool == "uuencode":
		return "encode", "encodes"
	case tool == "xxd":
		return xxdMode(args)
	case tool == "openssl":
		return opensslMode(args)
	case strings.HasPrefix(tool, "python") && len(args) >= 2 && args[0] == "-m" && (args[1] == "base64" || args[1] == "binascii"):
		// python -m base64 takes -d/-e like the GNU tool.
		if _, ok := gnuDecodeFlag(args[2:]); ok {
			return "decode", "decodes (-m base64 -d)"
		}
		return "encode", "encodes (-m base64)"
	}
	return "", ""
}

// helpOrVersion reports whether args ask only for help or a version, which
// neither decodes nor encodes anything.
func helpOrVersion(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "--help" || a == "--version" || a == "-help" || a == "-version" {
			return true
		}
	}
	return false
}

// gnuDecodeFlag finds a decode flag: -d, -D, a cluster holding d ("-di"), or
// --decode and its unambiguous prefixes (getopt_long accepts "--dec").
func gnuDecodeFlag(args []string) (string, bool) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return "", false
		case strings.HasPrefix(a, "--"):
			name, _, _ := strings.Cut(a[2:], "=")
			if len(name) >= 2 && strings.HasPrefix("decode", name) {
				return a, true
			}
			if name == "wrap" && !strings.Contains(a, "=") {
				i++ // --wrap COLS
			}
		case len(a) > 1 && a[0] == '-':
			for j := 1; j < len(a); j++ {
				c := a[j]
				if c == 'd' || c == 'D' {
					return a, true
				}
				if c == 'w' {
					if j == len(a)-1 {
						i++ // -w COLS
					}
					break
				}
			}
		}
	}
	return "", false
}

// xxdMode: xxd reverts (decodes) with -r or -revert, with -p for plain hex;
// it compares only the first letters of a flag, so "-rp" is -r. Without -r
// it dumps, which encodes ("xxd -p" alone is plain hex encoding).
func xxdMode(args []string) (string, string) {
	revert, plain := false, false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			i = len(args)
		case strings.HasPrefix(a, "-r"):
			revert = true
			if strings.HasPrefix(a, "-rp") {
				plain = true
			}
		case strings.HasPrefix(a, "-p"):
			plain = true
		case a == "-c" || a == "-g" || a == "-l" || a == "-s" || a == "-o" || a == "-n" || a == "-seek" || a == "-len" || a == "-cols" || a == "-name":
			i++ // takes a value
		}
	}
	switch {
	case revert && plain:
		return "decode", "reverts plain hex (-r -p)"
	case revert:
		return "decode", "reverts a hex dump (-r)"
	case plain:
		return "encode", "dumps plain hex (-p)"
	}
	return "encode", "dumps hex"
}

// opensslMode: "openssl base64 [-d]", "openssl enc -a|-base64 [-d|-e]" or a
// cipher command with -a. Encryption without -a is not encoding.
func opensslMode(args []string) (string, string) {
	if len(args) == 0 {
		return "", ""
	}
	sub := strings.TrimPrefix(args[0], "-")
	rest := args[1:]
	has := func(flags ...string) bool {
		for _, a := range rest {
			for _, f := range flags {
				if a == f {
					return true
				}
			}
		}
		return false
	}
	isCipher := sub == "enc"
	for _, c := range opensslCiphers {
		if strings.HasPrefix(sub, c) {
			isCipher = true
		}
	}
	switch {
	case sub == "base64":
		if has("-d") {
			return "decode", "base64 -d decodes"
		}
		return "encode", "base64 encodes"
	case isCipher && has("-a", "-base64", "-A"):
		if has("-d") {
			return "decode", sub + " -d -a decodes base64"
		}
		return "encode", sub + " -a encodes base64"
	}
	return "", ""
}

// anyFlag returns the first of flags present in argv.
func anyFlag(argv []string, flags []string) (string, bool) {
	for _, f := range flags {
		if hasFlag(argv, f) {
			return f, true
		}
	}
	return "", false
}

// hasFlag reports whether flag is among argv's options, before any "--".
func hasFlag(argv []string, flag string) bool {
	if len(argv) < 2 {
		return false
	}
	short := len(flag) == 2 && flag[0] == '-' && flag[1] != '-'
	for _, a := range argv[1:] {
		if a == "--" {
			return false
		}
		if a == flag {
			return true
		}
		if len(a) > len(flag) && strings.HasPrefix(a, flag) && a[len(flag)] == '=' {
			return true
		}
		if short && len(a) > 2 && a[0] == '-' && a[1] != '-' && isLetters(a[1:]) && strings.IndexByte(a[1:], flag[1]) >= 0 {
			return true
		}
	}
	return false
}

func isLetters(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

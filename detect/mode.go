package detect

import (
	"slices"
	"strings"
)

// Modes an alert reports in process.mode.
const (
	ModeEncode  = "encode"
	ModeDecode  = "decode"
	ModeUnknown = "unknown"
)

// gnuEncoders are the tools that take GNU base64's flags: -d/--decode to
// decode (-D on macOS), -w COLS to wrap, -i to ignore garbage.
var gnuEncoders = map[string]bool{
	"base64": true, "base32": true, "basenc": true, "base16": true, "base58": true,
	"base32hex": true, "base32plain": true, "base64url": true, "base64mime": true,
	"base64pem": true, "base64plain": true, "basez": true, "ascii85": true,
}

// encoderTools are the names whose every run is an encoder run, whatever
// its flags: an alert on one carries a mode, "unknown" when the flags do
// not say.
var encoderTools = map[string]bool{"uuencode": true, "uudecode": true, "xxd": true, "urlencode": true}

// opensslCiphers are prefixes of the cipher commands openssl accepts in place
// of "enc" ("openssl aes-256-cbc -d -a").
var opensslCiphers = []string{"aes", "aria", "bf", "camellia", "cast", "chacha", "des", "rc2", "rc4", "rc5", "seed", "sm4", "idea"}

// toolMode reads what an encoder tool was asked to do from its flags, the
// way the tool's own option parser reads them: decode or encode, with a
// short reason; "unknown" when the parser would reject the command line;
// "" when tool is not an encoder, or only asked for help or its version.
func toolMode(tool string, argv []string) (mode, why string) {
	var args []string
	if len(argv) > 1 {
		args = argv[1:]
	}
	switch {
	case coreutilsOpts[tool] != nil:
		return getoptMode(coreutilsOpts[tool], args)
	case gnuEncoders[tool]:
		// Not coreutils: parse like GNU base64, but an option this table
		// does not know is the tool's own, not an error.
		return getoptMode(&lenientOpts, args)
	case tool == "uudecode" || tool == "uuencode":
		if helpOrVersion(args) {
			return "", ""
		}
		if tool == "uudecode" {
			return ModeDecode, "decodes"
		}
		return ModeEncode, "encodes"
	case tool == "xxd":
		return xxdMode(args)
	case tool == "openssl":
		return opensslMode(args)
	case tool == "gpg" || tool == "gpg2":
		return gpgMode(args)
	case unversioned(tool) == "python" || unversioned(tool) == "pypy":
		return pythonModuleMode(argv)
	}
	return "", ""
}

// pythonModules are the standard library modules whose command line
// encodes or decodes (Lib/base64.py, Lib/uu.py, Lib/quopri.py): each
// decodes with -d (base64 also -u) and encodes otherwise.
var pythonModules = map[string]string{"base64": "du", "uu": "d", "quopri": "d"}

// pythonModuleMode reads "python3 [options] -m MODULE [args]": a module of
// pythonModules is an encoder tool, as the GNU ones are.
func pythonModuleMode(argv []string) (string, string) {
	src, ok := programSource("python", argv)
	if !ok || src.Kind != SourceModule {
		return "", ""
	}
	dec, ok := pythonModules[src.Arg]
	if !ok {
		return "", ""
	}
	// The module's own arguments follow its name.
	var args []string
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		if a == src.Arg && i > 0 && argv[i-1] == "-m" || strings.HasSuffix(a, "m"+src.Arg) && strings.HasPrefix(a, "-") {
			args = argv[i+1:]
			break
		}
	}
	for _, a := range args {
		if a == "--" || len(a) < 2 || a[0] != '-' || a[1] == '-' {
			if a == "-h" || a == "--help" {
				return "", ""
			}
			continue
		}
		if a == "-h" {
			return "", ""
		}
		if strings.ContainsAny(a[1:], dec) {
			return ModeDecode, "decodes (-m " + src.Arg + " " + a + ")"
		}
	}
	return ModeEncode, "encodes (-m " + src.Arg + ")"
}

// gpgMode: gpg --enarmor wraps any data in base64 ASCII armour. Its
// inverse, --dearmor, is how every apt keyring is installed and is left
// out (no mode). gpg takes an unambiguous prefix of a long option ("--enarm");
// options end at "--".
func gpgMode(args []string) (string, string) {
	for _, a := range args {
		if a == "--" {
			break
		}
		name, _, _ := strings.Cut(a, "=")
		switch {
		case len(name) >= len("--ena") && strings.HasPrefix("--enarmor", name),
			len(name) >= len("--enarmour") && strings.HasPrefix("--enarmour", name):
			return ModeEncode, "wraps data in base64 armour (" + a + ")"
		case name == "--help" || name == "--version" || name == "-h":
			return "", ""
		}
	}
	return "", ""
}

// helpOrVersion reports whether args ask only for help or a version, which
// neither decodes nor encodes anything; used for tools whose option table
// is not known, so only the exact spellings count.
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

// optTable is a GNU getopt_long option table: short option letters (a
// letter followed by ':' takes an argument) and long options. decode are the
// options that make the tool decode.
type optTable struct {
	short   string
	long    []longOpt
	decode  string // option names (short letters or long names) that decode, space-separated
	lenient bool   // unknown options are the tool's own, not errors
}

type longOpt struct {
	name string
	arg  bool
	is   string // the short option it stands for, or its own name
}

// coreutilsOpts are the option tables of coreutils 9's base64, base32 and
// basenc (src/basenc.c), checked against the tools on this machine: "-di",
// "--d", "--dec" and "base64 file -d" decode; "-wd0" is a wrap size of "d0";
// "base64 -- -d" encodes a file named "-d"; "--base6" is ambiguous in basenc.
// -D is not GNU (macOS base64 decodes with it); it is read as decode all the
// same, which can only raise, never hide, an alert.
var coreutilsOpts = map[string]*optTable{
	"base64": &base64Opts,
	"base32": &base64Opts,
	"basenc": {
		short: "diDw:",
		long: append(slices.Clone(base64Opts.long),
			longOpt{"base64", false, "base64"}, longOpt{"base64url", false, "base64url"},
			longOpt{"base32", false, "base32"}, longOpt{"base32hex", false, "base32hex"},
			longOpt{"base16", false, "base16"}, longOpt{"base2msbf", false, "base2msbf"},
			longOpt{"base2lsbf", false, "base2lsbf"}, longOpt{"z85", false, "z85"}),
		decode: "d D",
	},
}

var base64Opts = optTable{
	short: "diDw:",
	long: []longOpt{
		{"decode", false, "d"}, {"ignore-garbage", false, "i"}, {"wrap", true, "w"},
		{"help", false, "help"}, {"version", false, "version"},
	},
	decode: "d D",
}

// lenientOpts read a tool that takes GNU base64's flags but whose full table
// is not known (basez, base58, busybox applets).
var lenientOpts = optTable{short: base64Opts.short, long: base64Opts.long, decode: "d D", lenient: true}

// getoptMode walks args as GNU getopt_long does with permutation (options
// after operands count; "--" ends them; "-" is an operand), in order, and
// stops where the tool would: at --help or --version (nothing processed,
// mode ""), or at an option the parser rejects (mode "unknown").
func getoptMode(t *optTable, args []string) (string, string) {
	var decodeFlag string
	for i := 0; i < len(args); i++ {
		a := args[i]
		var names []string
		switch {
		case a == "--":
			i = len(args)
			continue
		case len(a) < 2 || a[0] != '-':
			continue // an operand
		case a[1] == '-':
			name, takes, err := t.longName(a[2:])
			if err != "" {
				return ModeUnknown, "rejected option " + a + " (" + err + ")"
			}
			if takes && !strings.Contains(a, "=") {
				if i++; i == len(args) {
					return ModeUnknown, "option " + a + " lacks its argument"
				}
			}
			names = []string{name}
		default:
			for j := 1; j < len(a); j++ {
				k := strings.IndexByte(t.short, a[j])
				if k < 0 || a[j] == ':' {
					if t.lenient {
						continue
					}
					return ModeUnknown, "rejected option -" + a[j:j+1]
				}
				names = append(names, a[j:j+1])
				if k+1 < len(t.short) && t.short[k+1] == ':' {
					// The rest of the cluster, or the next argument, is
					// the option's value: "-wd0" wraps at "d0".
					if j == len(a)-1 {
						if i++; i == len(args) {
							return ModeUnknown, "option -" + a[j:j+1] + " lacks its argument"
						}
					}
					break
				}
			}
		}
		for _, n := range names {
			switch {
			case n == "help" || n == "version":
				return "", ""
			case decodeFlag == "" && slices.Contains(strings.Fields(t.decode), n):
				decodeFlag = a
			}
		}
	}
	if decodeFlag != "" {
		return ModeDecode, "decodes (" + decodeFlag + ")"
	}
	return ModeEncode, "encodes (no decode flag)"
}

// longName resolves a long option ("dec", "wrap=0") as getopt_long does: an
// exact name, else the one option it is a prefix of; err says why the
// parser would reject it.
func (t *optTable) longName(s string) (name string, takesArg bool, err string) {
	n, _, hasValue := strings.Cut(s, "=")
	var found *longOpt
	for i := range t.long {
		o := &t.long[i]
		if o.name == n {
			found = o
			break
		}
		if strings.HasPrefix(o.name, n) && n != "" {
			if found != nil && found.is != o.is {
				return "", false, "ambiguous"
			}
			found = o
		}
	}
	switch {
	case found == nil && t.lenient:
		return n, false, ""
	case found == nil:
		return "", false, "unrecognized"
	case hasValue && !found.arg:
		return "", false, "takes no argument"
	}
	return found.is, found.arg, ""
}

// xxdMode reads xxd's flags the way xxd.c does: each option is recognised
// by its first two characters ("-r", "-revert", "-rx" revert; "-rp" is
// -r only, "-pr" is -p only; "--revert" is "-revert"), -c -g -l -n -o -s
// take a value (attached, "-c4", or the next argument unless spelt out,
// "-cols 4"), and the first operand or "--" ends the options: in
// "xxd -p - -r" the "-r" is the output file. -h and -v print usage or
// version; any other option is rejected. Checked against xxd 2022-01-14.
func xxdMode(args []string) (string, string) {
	revert, plain := "", false
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "--") && len(a) > 2 {
			a = a[1:]
		}
		if a == "--" || len(a) < 2 || a[0] != '-' {
			break
		}
		switch a[1] {
		case 'r':
			revert = args[i]
		case 'p':
			plain = true
		case 'h', 'v':
			return "", ""
		case 'a', 'b', 'e', 'u', 'i', 'C', 'd', 'E':
		case 'c', 'g', 'l', 'n', 'o', 's':
			if xxdTakesNext(a) {
				if i++; i == len(args) {
					return ModeUnknown, "option " + a + " lacks its value"
				}
			}
		default:
			return ModeUnknown, "rejected option " + a
		}
	}
	switch {
	case revert != "" && plain:
		return ModeDecode, "reverts plain hex (" + revert + " -p)"
	case revert != "":
		return ModeDecode, "reverts a hex dump (" + revert + ")"
	case plain:
		return ModeEncode, "dumps plain hex (-p)"
	}
	return ModeEncode, "dumps hex"
}

// xxdTakesNext reports whether xxd reads the value of option a (one of -c
// -g -l -n -o -s) from the next argument: when nothing follows the letter,
// or the long name does ("-cols", "-len", "-seek"); "-capitalize" takes none.
func xxdTakesNext(a string) bool {
	long := map[byte][]string{'c': {"ols"}, 'g': {"roup"}, 'l': {"en"}, 'n': {"ame"}, 'o': {"ffset"}, 's': {"kip", "eek"}}
	rest := a[2:]
	if rest == "" {
		return true
	}
	if a[1] == 'c' && strings.HasPrefix(rest, "apitalize") {
		return false
	}
	for _, l := range long[a[1]] {
		if strings.HasPrefix(rest, l) {
			return true
		}
	}
	return false
}

// opensslValueOpts are the options of openssl enc (and its cipher and
// base64 aliases) that take the next argument as their value.
var opensslValueOpts = map[string]bool{
	"-in": true, "-out": true, "-pass": true, "-k": true, "-kfile": true, "-md": true,
	"-iter": true, "-S": true, "-K": true, "-iv": true, "-bufsize": true, "-engine": true,
	"-provider": true, "-provider-path": true, "-propquery": true, "-rand": true,
	"-writerand": true, "-saltlen": true, "-skeyopt": true, "-skeymgmt": true,
}

// opensslMode: "openssl base64 [-d]", "openssl enc -a|-base64 [-d|-e]" or a
// cipher command with -a. Encryption without -a is not encoding. OpenSSL 3
// reads options in order up to "--" or the first operand, takes "--d" for
// "-d", and prints usage for -help (checked against openssl 3.0 here).
func opensslMode(args []string) (string, string) {
	if len(args) == 0 {
		return "", ""
	}
	sub := strings.TrimPrefix(args[0], "-")
	decode, b64 := false, sub == "base64"
	for i := 1; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "--") && len(a) > 2 {
			a = a[1:]
		}
		if a == "--" || len(a) < 2 || a[0] != '-' {
			break
		}
		switch {
		case a == "-help":
			return "", ""
		case a == "-d":
			decode = true
		case a == "-e":
			decode = false
		case a == "-a" || a == "-A" || a == "-base64":
			b64 = true
		case opensslValueOpts[a]:
			i++
		}
	}
	isCipher := sub == "enc"
	for _, c := range opensslCiphers {
		if strings.HasPrefix(sub, c) {
			isCipher = true
		}
	}
	switch {
	case !b64 || (sub != "base64" && !isCipher):
		return "", ""
	case decode:
		return ModeDecode, sub + " -d decodes base64"
	}
	return ModeEncode, sub + " encodes base64"
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

// alertMode is the process.mode an alert on this event carries: what the
// encoder tool was asked to do; "unknown" for an encoder whose flags do not
// say (help, an option its parser rejects, a tool whose flags are not
// known); "" for a process that is not an encoder.
func (x *evalCtx) alertMode() string {
	if _, m, _ := x.mode(); m != "" {
		return m
	}
	names := [...]string{x.exeBase, x.argv0Base, x.fileBase, ""}
	if id := x.identity(); id != nil {
		names[3] = id.Name
	}
	for _, n := range names {
		if n != "" && (gnuEncoders[n] || encoderTools[n]) {
			return ModeUnknown
		}
	}
	return ""
}

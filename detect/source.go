package detect

import (
	"strconv"
	"strings"
)

// Where an interpreter's program comes from. "echo … | base64 -d | sh" runs
// the decoded text; "base64 -d f.b64 | gunzip" does not, although Debian's
// gunzip is the shell script the kernel runs as `sh /usr/bin/gunzip`: its
// standard input is the script's data. The difference is in argv, read per
// interpreter family the way the interpreter's own option parser reads it:
//
//	family   inline code            module    standard input                 script
//	sh       -c (any cluster)        -         -s, "-", no operand, -i        first operand
//	bash     -c, as sh; --rcfile F   -         as sh                          first operand
//	zsh      -c, as sh               -         as sh                          first operand
//	python   -c CODE                 -m MOD    "-", no operand                first operand
//	perl     -e/-E CODE              -         "-", no operand                first operand
//	ruby     -e CODE                 -         "-", no operand                first operand
//	php      -r, -B/-R/-E CODE       -         no operand                     -f FILE, first operand
//	node     -e/-p, --eval/--print   -         "-", no operand                first operand
//	lua      -e CODE                 -         "-", no operand                first operand
//	tcl      -c CODE (expect)        -         "-", no operand                first operand, -f FILE
//	pwsh     -c/-Command, -e/-EncodedCommand   "-Command -", no operand       -f/-File FILE, first operand
//
// A script operand that names standard input ("/dev/stdin", "/dev/fd/0",
// "/proc/self/fd/0") is standard input; one that names another descriptor
// ("/dev/fd/3", "/proc/self/fd/3", "/proc/thread-self/fd/3", the bash
// process substitution "/dev/fd/63") is that descriptor, whose pipe
// evidence is read like standard input's. Asking for help or a version
// runs nothing (SourceNone).

// SourceKind is where an interpreter reads its program.
type SourceKind uint8

// Program sources.
const (
	// SourceNone: not an interpreter this table knows, or a command line
	// that runs no program (--version, --help).
	SourceNone SourceKind = iota
	// SourceStdin: the program is read from standard input.
	SourceStdin
	// SourceFD: the program is read from another descriptor, ProgramSource.FD.
	SourceFD
	// SourceInline: the program is in argv (-c, -e, ...).
	SourceInline
	// SourceScript: the program is a file.
	SourceScript
	// SourceModule: the program is an installed module (python -m).
	SourceModule
)

// SourceNames are the words program_from takes, by SourceKind.
var SourceNames = []string{"none", "stdin", "fd", "inline", "script", "module"}

func (k SourceKind) String() string {
	if int(k) < len(SourceNames) {
		return SourceNames[k]
	}
	return "unknown"
}

// ProgramSource is where one command line's interpreter reads its program.
type ProgramSource struct {
	Kind SourceKind
	// FD is the descriptor of SourceStdin (0) and SourceFD.
	FD int
	// Arg is the argument that decided: the script, the module, the
	// option of the inline code; "" when there was none (no operand).
	Arg string
}

// familyOpts is how one interpreter family parses its options.
type familyOpts struct {
	// shell: POSIX option clusters ("-xc", "+e"), -c and -s anywhere in
	// them, -o/+o/-O/+O taking the next argument.
	shell bool
	// inline are the short letters that take inline code (the rest of the
	// argument or the next one).
	inline string
	// value are the short letters that take a value (the rest of the
	// argument or the next one) that is not code; rest those whose value
	// is the rest of the argument only (perl -i.bak), digits those that
	// take the digits that follow them, the cluster going on after them
	// (perl -l -0777: "-lne" is -l -n -e).
	value, rest, digits string
	// module is the letter that names a module (python's m).
	module byte
	// scriptOpt is the letter that names the script file (php -f).
	scriptOpt byte
	// longInline, longValue, longScript: long options ("--eval") that take
	// inline code, a value, or the script file as their next argument
	// (or after "=").
	longInline, longValue, longScript []string
	// noRun are the arguments that print something and exit.
	noRun []string
	// restIsArgs: after the inline code, the rest are its arguments
	// (python -c, php -r); otherwise options go on (perl -e -e).
	restIsArgs bool
}

// families maps an interpreter's name (without a version) to how it parses
// its options.
var families = map[string]*familyOpts{}

func init() {
	posix := &familyOpts{shell: true, noRun: []string{"--help", "--version"}}
	bash := &familyOpts{shell: true, longValue: []string{"--rcfile", "--init-file"}, noRun: []string{"--help", "--version"}}
	python := &familyOpts{inline: "c", value: "WX", module: 'm', longValue: []string{"--check-hash-based-pycs"},
		noRun: []string{"-V", "-VV", "--version", "-h", "-?", "--help", "--help-all", "--help-env", "--help-xoptions"}, restIsArgs: true}
	perl := &familyOpts{inline: "eE", value: "MmI", rest: "ixdDC", digits: "l0", noRun: []string{"-v", "-V", "-h", "--help", "--version"}}
	ruby := &familyOpts{inline: "e", value: "rICE", rest: "FxKTW", digits: "0", noRun: []string{"-v", "--version", "-h", "--help"}, longValue: []string{"--encoding", "--external-encoding", "--internal-encoding"}}
	php := &familyOpts{inline: "rBRE", value: "dczcDtSF", scriptOpt: 'f', noRun: []string{"-v", "--version", "-h", "--help", "-i", "--info", "-m", "--modules", "-l", "--syntax-check"}, restIsArgs: true,
		longInline: []string{"--run", "--process-begin", "--process-code", "--process-end"}, longValue: []string{"--define", "--php-ini", "--zend-extension"}, longScript: []string{"--file"}}
	node := &familyOpts{inline: "ep", value: "rC", noRun: []string{"-v", "--version", "-h", "--help", "--v8-options", "-c", "--check"},
		longInline: []string{"--eval", "--print"}, longValue: []string{"--require", "--import", "--loader", "--experimental-loader", "--input-type", "--title", "--conditions", "--inspect-port", "--env-file", "--redirect-warnings", "--cpu-prof-dir", "--diagnostic-dir"}, restIsArgs: true}
	lua := &familyOpts{inline: "e", value: "l", noRun: []string{"-v"}}
	tcl := &familyOpts{inline: "c", value: "", scriptOpt: 'f', longValue: []string{"-encoding"}, noRun: []string{"-version", "--version", "-help", "--help"}}
	for name, f := range map[string]*familyOpts{
		"sh": posix, "dash": posix, "ash": posix, "ksh": posix, "mksh": posix, "pdksh": posix, "yash": posix, "posh": posix, "ksh93": posix,
		"bash": bash, "rbash": bash, "zsh": posix, "fish": posix,
		"python": python, "pypy": python,
		"perl": perl,
		"ruby": ruby,
		"php":  php, "php-cgi": php,
		"node": node, "nodejs": node, "bun": node,
		"lua": lua, "luajit": lua,
		"tclsh": tcl, "wish": tcl, "expect": tcl,
	} {
		families[name] = f
	}
}

// isPowerShell reports whether name runs PowerShell.
func isPowerShell(name string) bool {
	name = strings.TrimSuffix(strings.ToLower(name), ".exe")
	return name == "pwsh" || name == "powershell" || strings.HasPrefix(name, "pwsh-")
}

// programSource returns where the interpreter of argv, called name (a
// basename; a version suffix is ignored), reads its program. ok is false
// when name is no interpreter the table knows.
func programSource(name string, argv []string) (ProgramSource, bool) {
	if isPowerShell(name) {
		return pwshSource(argv), true
	}
	f, ok := families[name]
	if !ok {
		if f, ok = families[unversioned(name)]; !ok {
			return ProgramSource{}, false
		}
	}
	var args []string
	if len(argv) > 1 {
		args = argv[1:]
	}
	if f.shell {
		return shellSource(f, args), true
	}
	return optSource(f, args), true
}

// operandSource is the source of a script operand: standard input or
// another descriptor when it names one, else a script.
func operandSource(arg string) ProgramSource {
	if arg == "-" {
		return ProgramSource{Kind: SourceStdin, Arg: arg}
	}
	if arg == "/dev/stdin" {
		return ProgramSource{Kind: SourceStdin, Arg: arg}
	}
	rest, ok := strings.CutPrefix(arg, "/dev/fd/")
	if !ok {
		for _, p := range [...]string{"/proc/self/fd/", "/proc/thread-self/fd/"} {
			if rest, ok = strings.CutPrefix(arg, p); ok {
				break
			}
		}
	}
	if ok {
		if n, err := strconv.Atoi(rest); err == nil && n >= 0 && rest[0] != '+' {
			if n == 0 {
				return ProgramSource{Kind: SourceStdin, Arg: arg}
			}
			return ProgramSource{Kind: SourceFD, FD: n, Arg: arg}
		}
	}
	return ProgramSource{Kind: SourceScript, Arg: arg}
}

// shellSource reads a shell's argv: option clusters in which c means inline
// code (the first operand) and s or i standard input; o and O take the next
// argument; the first operand is the script; "-" and "--" end the options.
func shellSource(f *familyOpts, args []string) ProgramSource {
	inline, stdin := "", ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--" || a == "-":
			// POSIX: a single "-" ends the options like "--" and is
			// ignored; the script, if any, is the next operand.
			return shellOperand(inline, stdin, args[i+1:], a)
		case strings.HasPrefix(a, "--"):
			for _, n := range f.noRun {
				if a == n {
					return ProgramSource{Kind: SourceNone, Arg: a}
				}
			}
			name, _, hasValue := strings.Cut(a, "=")
			for _, v := range f.longValue {
				if name == v && !hasValue {
					i++
				}
			}
		case len(a) > 1 && (a[0] == '-' || a[0] == '+'):
			for j := 1; j < len(a); j++ {
				switch a[j] {
				case 'c':
					if a[0] == '-' {
						inline = a
					}
				case 's', 'i':
					if a[0] == '-' && stdin == "" {
						stdin = a
					}
				case 'o', 'O':
					i++
				}
			}
		default:
			return shellOperand(inline, stdin, args[i:], "")
		}
	}
	return shellOperand(inline, stdin, nil, "")
}

// shellOperand decides a shell's source from its flags and operands.
func shellOperand(inline, stdin string, operands []string, dash string) ProgramSource {
	switch {
	case inline != "":
		return ProgramSource{Kind: SourceInline, Arg: inline}
	case stdin != "":
		return ProgramSource{Kind: SourceStdin, Arg: stdin}
	case len(operands) > 0:
		return operandSource(operands[0])
	}
	return ProgramSource{Kind: SourceStdin, Arg: dash}
}

// optSource reads the argv of a non-shell interpreter: options until the
// first operand or "--"; inline code, a module or a script option decide;
// else the first operand is the script, and without one the program is
// read from standard input.
func optSource(f *familyOpts, args []string) ProgramSource {
	var found *ProgramSource
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			if found != nil {
				return *found
			}
			if i+1 < len(args) {
				return operandSource(args[i+1])
			}
			return ProgramSource{Kind: SourceStdin}
		}
		if a == "-" || len(a) < 2 || a[0] != '-' {
			if found != nil {
				return *found
			}
			return operandSource(a)
		}
		for _, n := range f.noRun {
			if a == n {
				return ProgramSource{Kind: SourceNone, Arg: a}
			}
		}
		if name, _, hasValue := strings.Cut(a, "="); a[1] == '-' || containsStr(f.longValue, name) {
			// A long option; Tcl's take one dash (-encoding).
			switch {
			case containsStr(f.longInline, name):
				if found == nil {
					found = &ProgramSource{Kind: SourceInline, Arg: name}
				}
				if !hasValue {
					i++
				}
				if f.restIsArgs {
					return *found
				}
			case containsStr(f.longScript, name):
				if !hasValue {
					i++
				}
				if found == nil {
					v := ""
					if hasValue {
						v = a[len(name)+1:]
					} else if i < len(args) {
						v = args[i]
					}
					src := operandSource(v)
					return src
				}
			case containsStr(f.longValue, name) && !hasValue:
				i++
			}
			continue
		}
		// A cluster of letters: up to one that takes a value, whose value
		// is the rest of the argument or the next one.
		for j := 1; j < len(a); j++ {
			c := a[j]
			takesNext := j == len(a)-1
			val := a[j+1:]
			if takesNext && i+1 < len(args) {
				val = args[i+1]
			}
			switch {
			case strings.IndexByte(f.inline, c) >= 0:
				if found == nil {
					found = &ProgramSource{Kind: SourceInline, Arg: "-" + string(c)}
				}
				if takesNext {
					i++
				}
				if f.restIsArgs {
					return *found
				}
			case f.module != 0 && c == f.module:
				if found == nil {
					return ProgramSource{Kind: SourceModule, Arg: val}
				}
				return *found
			case f.scriptOpt != 0 && c == f.scriptOpt:
				if takesNext {
					i++
				}
				if found == nil {
					return operandSource(val)
				}
			case strings.IndexByte(f.value, c) >= 0:
				if takesNext {
					i++
				}
			case strings.IndexByte(f.rest, c) >= 0:
			case strings.IndexByte(f.digits, c) >= 0:
				for j+1 < len(a) && a[j+1] >= '0' && a[j+1] <= '9' {
					j++
				}
				continue
			default:
				continue
			}
			break
		}
	}
	if found != nil {
		return *found
	}
	return ProgramSource{Kind: SourceStdin}
}

func containsStr(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// pwshParam reports whether arg ("-enc", "/EC", "--Command") is a prefix
// PowerShell's command-line parser accepts for the parameter long, whose
// shortest unambiguous form is short, or one of its aliases; the
// comparison ignores case, as PowerShell does.
func pwshParam(arg, long, short string, aliases ...string) (value string, ok bool) {
	k := strings.ToLower(arg)
	switch {
	case strings.HasPrefix(k, "--"):
		k = k[2:]
	case strings.HasPrefix(k, "-") || strings.HasPrefix(k, "/"):
		k = k[1:]
	default:
		return "", false
	}
	k, value, _ = strings.Cut(k, ":")
	if k == "" {
		return "", false
	}
	if strings.HasPrefix(long, k) && strings.HasPrefix(k, short) {
		return value, true
	}
	for _, a := range aliases {
		if k == a {
			return value, true
		}
	}
	return "", false
}

// pwshEncodedCommand returns the value of PowerShell's -EncodedCommand
// (-e, -ec, -en, -enc ... in any case, with -, -- or /), the base64 of the
// UTF-16LE script; ok is false when argv has none.
func pwshEncodedCommand(argv []string) (arg, value string, ok bool) {
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		if v, ok := pwshParam(a, "encodedcommand", "e", "ec"); ok {
			if v == "" && i+1 < len(argv) {
				v = argv[i+1]
			}
			return a, v, true
		}
		if _, ok := pwshParam(a, "command", "c"); ok {
			return "", "", false // the rest is the command
		}
		if _, ok := pwshParam(a, "file", "f"); ok {
			return "", "", false
		}
	}
	return "", "", false
}

// pwshSource reads PowerShell's argv: -Command (- for standard input),
// -EncodedCommand, -File, or the first operand (a file for pwsh).
func pwshSource(argv []string) ProgramSource {
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		next := ""
		if i+1 < len(argv) {
			next = argv[i+1]
		}
		if _, ok := pwshParam(a, "encodedcommand", "e", "ec"); ok {
			return ProgramSource{Kind: SourceInline, Arg: a}
		}
		if v, ok := pwshParam(a, "command", "c"); ok {
			if v == "-" || v == "" && next == "-" {
				return ProgramSource{Kind: SourceStdin, Arg: a}
			}
			return ProgramSource{Kind: SourceInline, Arg: a}
		}
		if v, ok := pwshParam(a, "file", "f"); ok {
			if v == "" {
				v = next
			}
			return operandSource(v)
		}
		if _, ok := pwshParam(a, "version", "v"); ok {
			return ProgramSource{Kind: SourceNone, Arg: a}
		}
		if _, ok := pwshParam(a, "help", "h", "?"); ok {
			return ProgramSource{Kind: SourceNone, Arg: a}
		}
		if len(a) > 0 && a[0] != '-' && a[0] != '/' {
			return operandSource(a)
		}
		for _, p := range [...][2]string{{"configurationname", "config"}, {"executionpolicy", "ex"}, {"inputformat", "inp"}, {"outputformat", "o"},
			{"settingsfile", "settings"}, {"workingdirectory", "wd"}, {"windowstyle", "w"}, {"custompipename", "cus"}, {"encodedarguments", "encodeda"}} {
			if v, ok := pwshParam(a, p[0], p[1]); ok {
				if v == "" {
					i++
				}
				break
			}
		}
	}
	return ProgramSource{Kind: SourceStdin}
}

// source is where x's interpreter reads its program: by the executed
// file's name, else by argv[0]'s (a shebang script runs as "/bin/sh
// /usr/bin/gunzip": the exe is dash, argv[0] sh, the program the script).
func (x *Exec) source() (ProgramSource, bool) {
	if !x.srcDone {
		x.srcDone = true
		for _, n := range [...]string{x.exeBase, x.argv0Base} {
			if n == "" {
				continue
			}
			if s, ok := programSource(n, x.ev.Argv); ok {
				x.src, x.srcOK = s, true
				break
			}
		}
	}
	return x.src, x.srcOK
}

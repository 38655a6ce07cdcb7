package detect

import "testing"

// TestToolModeSpellings: every spelling below was run against the tools on
// this machine (coreutils 9.1, xxd 2022-01-14, OpenSSL 3.0) before it was
// written down; the comment says what the tool did.
func TestToolModeSpellings(t *testing.T) {
	tests := []struct {
		argv []string
		want string
	}{
		{[]string{"base64", "-id"}, "decode"},             // cluster, d last
		{[]string{"base64", "-dw0"}, "decode"},            // d, then w with value 0
		{[]string{"base64", "-wd0"}, "encode"},            // wrap size "d0" (rejected later, not a decode)
		{[]string{"base64", "-w0d"}, "encode"},            // wrap size "0d"
		{[]string{"base64", "--d"}, "decode"},             // unambiguous prefix
		{[]string{"base64", "--de"}, "decode"},            // prefix
		{[]string{"base64", "--deco"}, "decode"},          // prefix
		{[]string{"base64", "--decode=x"}, "unknown"},     // "doesn't allow an argument"
		{[]string{"base64", "f", "-d"}, "decode"},         // option after an operand
		{[]string{"base64", "-", "-d"}, "decode"},         // "-" is an operand
		{[]string{"base64", "--", "-d"}, "encode"},        // a file named -d
		{[]string{"base64", "-d", "--"}, "decode"},        // -- after the option
		{[]string{"base64", "-w", "-d"}, "encode"},        // -d is the wrap value
		{[]string{"base64", "--wrap", "-d"}, "encode"},    // likewise
		{[]string{"base64", "--w=0", "--d"}, "decode"},    // prefixes with values
		{[]string{"base64", "--i", "-d"}, "decode"},       // --ignore-garbage prefix
		{[]string{"base64", "--he"}, ""},                  // help prefix: usage, no data
		{[]string{"base64", "--v"}, ""},                   // version prefix
		{[]string{"base64", "-d", "--help"}, ""},          // help wins, in order
		{[]string{"base64", "-x"}, "unknown"},             // invalid option
		{[]string{"base64", "-w"}, "unknown"},             // value missing
		{[]string{"base64", "--", "--help"}, "encode"},    // a file named --help
		{[]string{"basenc", "--base64", "--d"}, "decode"}, // --d is only decode in basenc
		{[]string{"basenc", "--d", "--base64"}, "decode"},
		{[]string{"basenc", "--base6", "-d"}, "unknown"}, // ambiguous: base64, base64url
		{[]string{"basenc", "--base64"}, "encode"},
		{[]string{"base32", "-di"}, "decode"},
		{[]string{"xxd", "-rp"}, "decode"},                    // -r only (xxd compares two characters)
		{[]string{"xxd", "-pr"}, "encode"},                    // -p only
		{[]string{"xxd", "-revert", "-plain"}, "decode"},      // long spellings
		{[]string{"xxd", "--revert", "--ps"}, "decode"},       // "--x" is "-x"
		{[]string{"xxd", "-rx", "-p"}, "decode"},              // any -r...
		{[]string{"xxd", "-p", "-", "-r"}, "encode"},          // -r is the output file: options end at the first operand
		{[]string{"xxd", "--", "-r"}, "encode"},               // a file named -r
		{[]string{"xxd", "-c", "-r", "-p"}, "encode"},         // -r is -c's value
		{[]string{"xxd", "-c4", "-r", "-p"}, "decode"},        // attached value
		{[]string{"xxd", "-cols", "4", "-r", "-p"}, "decode"}, // spelt-out name takes the next argument
		{[]string{"xxd", "-seek", "0", "-r", "-p"}, "decode"}, // likewise
		{[]string{"xxd", "-x", "-r"}, "unknown"},              // usage error
		{[]string{"xxd", "-h"}, ""},                           // usage
		{[]string{"openssl", "base64", "--d"}, "decode"},      // "--d" is "-d"
		{[]string{"openssl", "enc", "-in", "x", "-a", "-d"}, "decode"},
		{[]string{"openssl", "enc", "-a", "-d", "-help"}, ""},  // usage
		{[]string{"openssl", "base64", "-in", "-d"}, "encode"}, // -d is the input file
		{[]string{"openssl", "enc", "-a", "-d", "-e"}, "encode"},
		{[]string{"uuencode", "f", "f"}, "encode"},
		{[]string{"uudecode", "--help"}, ""},
	}
	for _, tt := range tests {
		if got, why := toolMode(basename(tt.argv[0]), tt.argv); got != tt.want {
			t.Errorf("toolMode(%q) = %q (%s), want %q", tt.argv, got, why, tt.want)
		}
	}
}

// TestAlertMode: an alert on an encoder always carries a mode, "unknown"
// when its flags do not say; one on another process carries none.
func TestAlertMode(t *testing.T) {
	spec := encoderSpec
	exes := encoderSpec.Conditions["executables"].([]string)
	spec.Conditions = Conditions{"executables": append(exes[:len(exes):len(exes)], "sh")}
	e := NewEngine(mustCompile(t, PolicySpec{Signatures: []SignatureSpec{spec}}), "h", fixedNow)
	tests := []struct {
		argv []string
		want string
	}{
		{[]string{"base64"}, "encode"},
		{[]string{"base64", "-d"}, "decode"},
		{[]string{"base64", "-d", "--help"}, "unknown"},
		{[]string{"urlencode", "x"}, "unknown"},
		{[]string{"uudecode", "x"}, "decode"},
		{[]string{"sh", "-c", "true"}, ""},
	}
	for i, tt := range tests {
		ev := execEvent("/usr/bin/"+tt.argv[0], tt.argv...)
		ev.Serial = uint64(i)
		got := e.Evaluate(ev)
		if len(got) != 1 || got[0].Mode != tt.want {
			t.Errorf("Evaluate(%q) = %+v, want one alert with mode %q", tt.argv, got, tt.want)
		}
	}
}

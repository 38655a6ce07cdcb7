package detect

import (
	"strings"

	"github.com/encwatch/encwatch/audit"
)

// contentIdentity finds the executed file among the known encoders by what
// the engine's Files read of it: its build id (which survives renaming,
// copying and bytes appended), else its SHA-256, else the SHA-256 of its
// executable code (which survives a patched or stripped build id). A
// lookup still pending marks x so that the engine evaluates the event
// again once it is done; a file that could not be read is kept in
// x.unread.
func (x *evalCtx) contentIdentity() (*EncoderIdentity, string) {
	if x.e.files == nil || len(x.p.byInode)+len(x.p.byHash)+len(x.p.byText) == 0 || !x.ev.Success {
		return nil, ""
	}
	ids, l := x.e.files.Identify(x.ev, x.p.sizes)
	x.idPending = l == Pending
	for _, f := range ids {
		if f.Unread != "" && x.unread == nil {
			x.unread = x.unreadPath(f)
		}
	}
	for _, f := range ids {
		if f.BuildID == "" {
			continue
		}
		for _, m := range [...]map[inodeKey]*EncoderIdentity{x.p.byInode} {
			for _, e := range m {
				if e.BuildID == f.BuildID {
					return e, "build id"
				}
			}
		}
		for _, e := range x.p.byHash {
			if e.BuildID == f.BuildID {
				return e, "build id"
			}
		}
	}
	for _, f := range ids {
		if id, ok := x.p.byHash[f.SHA256]; ok && f.SHA256 != "" {
			return id, "SHA-256"
		}
	}
	for _, f := range ids {
		if id, ok := x.p.byText[f.Text]; ok && f.Text != "" {
			return id, "executable code"
		}
	}
	return nil, ""
}

// unreadPath returns the PATH record of the file f could not read, with
// why, when someone other than root could have made it; nil otherwise.
func (x *evalCtx) unreadPath(f FileID) *unreadFile {
	for i := range x.ev.Paths {
		pa := &x.ev.Paths[i]
		if pa.Dev == f.Dev && pa.Inode == f.Inode && userWritable(pa) {
			return &unreadFile{path: pa, why: f.Unread}
		}
	}
	return nil
}

// unreadFile is an executed file Files could not read.
type unreadFile struct {
	path *audit.Path
	why  string
}

// userWritable reports whether a PATH record names a file that a user
// other than root owns or may write: one that anyone could have made a
// renamed copy of an encoder.
func userWritable(pa *audit.Path) bool {
	return pa.OUID != 0 || pa.Mode&0o022 != 0
}

// launcherView returns ev as the program it really runs when ev execs a
// launcher that runs another program inside the same process, without an
// exec of its own that the kernel would report:
//
//   - a multi-call binary (busybox, toybox) called under its own name, or
//     any name starting with it ("busybox-x base64 -d"), with the applet as
//     its first argument: busybox dispatches on that prefix, so a renamed
//     copy keeps working under it. Under an applet's name (a link, or
//     exec -a base64) argv[0] already names the applet and needs no view;
//   - the dynamic loader run as a program ("ld-linux-x86-64.so.2
//     /usr/bin/base64 -d"): the kernel's exe is ld.so, which maps and runs
//     its first non-option argument.
//
// Wrappers that exec the tool themselves (env, nice, nohup, stdbuf, exec -a)
// need no view: the kernel reports the tool's own exec. The view returns
// nil for every other event, the common case, without allocating.
func launcherView(ev *audit.Event) *audit.Event {
	if len(ev.Argv) < 2 {
		return nil
	}
	if v := appletView(ev); v != nil {
		return v
	}
	return loaderView(ev)
}

// multiCallName reports whether name calls a multi-call binary's own main,
// which runs the applet named by its first argument.
func multiCallName(name string) bool {
	return strings.HasPrefix(name, "busybox") || strings.HasPrefix(name, "toybox")
}

// appletView returns ev with argv shifted by one, so that argv[0] names the
// applet and its flags are where the tool's own would be.
func appletView(ev *audit.Event) *audit.Event {
	if ev.Argv[1] == "" || ev.Argv[1][0] == '-' || !multiCallName(basename(ev.Argv[0])) {
		return nil
	}
	v := *ev
	v.Argv = ev.Argv[1:]
	if v.Argc > 0 {
		v.Argc--
	}
	return &v
}

// isLoader reports whether name is a dynamic loader's file name: glibc's
// ld-linux*.so.N and ld.so, musl's ld-musl-ARCH.so.1, ld64.so.N.
func isLoader(name string) bool {
	return name == "ld.so" || strings.HasPrefix(name, "ld-linux") && strings.Contains(name, ".so") ||
		strings.HasPrefix(name, "ld-musl-") || strings.HasPrefix(name, "ld64.so")
}

// loaderOptionsWithValue are the options of glibc's ld.so that take the
// next argument as their value (elf/rtld.c, dl_main).
var loaderOptionsWithValue = map[string]bool{
	"--library-path": true, "--inhibit-rpath": true, "--audit": true, "--preload": true,
	"--argv0": true, "--glibc-hwcaps-prefix": true, "--glibc-hwcaps-mask": true,
}

// loaderView returns ev as the program the dynamic loader runs: exe the
// program (made absolute against the cwd, as ld.so opens it), argv from the
// program on (argv[0] the --argv0 value when given), and no PATH records
// (those describe ld.so). ld.so --list and --verify inspect a program
// without running it (ldd), and give no view.
func loaderView(ev *audit.Event) *audit.Event {
	exe := ev.Exe
	if !ev.Success || exe == "" {
		return nil
	}
	if !isLoader(basename(exe)) {
		return nil
	}
	args := ev.Argv[1:]
	argv0 := ""
	i := 0
options:
	for ; i < len(args) && strings.HasPrefix(args[i], "--"); i++ {
		switch a := args[i]; {
		case a == "--":
			i++
			break options
		case a == "--list" || a == "--verify" || a == "--help" || a == "--version" ||
			strings.HasPrefix(a, "--list-"):
			return nil
		case loaderOptionsWithValue[a]:
			i++
			if a == "--argv0" && i < len(args) {
				argv0 = args[i]
			}
		}
	}
	if i >= len(args) || args[i] == "" {
		return nil
	}
	prog := args[i]
	if prog[0] != '/' && ev.Cwd != "" {
		prog = strings.TrimSuffix(ev.Cwd, "/") + "/" + prog
	}
	v := *ev
	v.Exe = prog
	v.Argv = append([]string{prog}, args[i+1:]...)
	if argv0 != "" {
		v.Argv[0] = argv0
	}
	v.Argc = len(v.Argv)
	v.Paths = []audit.Path{{Item: 0, Name: prog, Nametype: "NORMAL"}}
	return &v
}

package proc

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/detect"
)

// execEventFor is the exec event of pid running path, with the PATH record
// the kernel writes for it.
func execEventFor(t *testing.T, pid int, path string) *audit.Event {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return &audit.Event{Syscall: 59, Success: true, PID: pid, PPID: os.Getpid(), Exe: path, Argv: []string{path},
		Paths: []audit.Path{{Name: path, Dev: AuditDev(st.Dev), Inode: st.Ino, Mode: st.Mode, Nametype: "NORMAL"}}}
}

// waitJob waits for the identifier's next finished lookup.
func waitJob(t *testing.T, i *Identifier) *Job {
	t.Helper()
	select {
	case j := <-i.Done():
		return j
	case <-time.After(10 * time.Second):
		t.Fatal("no lookup finished within 10 s")
		return nil
	}
}

// TestIdentifierRenamedCopy: a running renamed copy of base64 is read
// through the process, off the caller's goroutine; a root-owned file is then
// known by device and inode, a world-writable one is read again each time.
func TestIdentifierRenamedCopy(t *testing.T) {
	b, err := os.ReadFile("/usr/bin/base64")
	if err != nil {
		t.Skipf("no /usr/bin/base64: %v", err)
	}
	want := fileID(t, "/usr/bin/base64", nil).BuildID
	for _, tt := range []struct {
		name   string
		mode   os.FileMode
		cached bool
	}{
		{"root-owned", 0o755, true},
		{"world-writable", 0o777, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "innocent")
			if err := os.WriteFile(path, append(b, 0), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(path, "-d")
			stdin, err := cmd.StdinPipe() // base64 -d waits on it
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { stdin.Close(); cmd.Wait() }()

			i := NewIdentifier(IdentifierOptions{})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go i.Run(ctx)
			ev := execEventFor(t, cmd.Process.Pid, path)
			if _, l := i.Identify(ev, nil); l != detect.Pending {
				t.Fatalf("first Identify = %v, want Pending", l)
			}
			if got := i.Learn(waitJob(t, i)); got != ev {
				t.Fatalf("Learn returned %p, want the event asked about %p", got, ev)
			}
			ids, l := i.Identify(ev, nil)
			if l != detect.Known || len(ids) != 1 || ids[0].BuildID != want {
				t.Fatalf("Identify after Learn = %+v, %v, want build id %s, Known", ids, l, want)
			}
			again := execEventFor(t, cmd.Process.Pid, path)
			ids, l = i.Identify(again, nil)
			if got := l == detect.Known; got != tt.cached {
				t.Fatalf("second exec answered %v (%+v), want known from the cache: %v", l, ids, tt.cached)
			}
			if tt.cached && (len(ids) != 1 || ids[0].BuildID != want) {
				t.Errorf("second exec ids = %+v, want build id %s", ids, want)
			}
		})
	}
}

// TestIdentifierFIFO: a FIFO under the executed path, as a user swaps it in,
// is refused at once rather than waited on.
func TestIdentifierFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "x")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	i := NewIdentifier(IdentifierOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go i.Run(ctx)
	ev := execEventFor(t, os.Getpid(), fifo)
	ev.Paths[0].Mode = 0o100755 // as recorded when it was a regular file
	if _, l := i.Identify(ev, []int64{1}); l != detect.Pending {
		t.Fatalf("Identify = %v, want Pending", l)
	}
	i.Learn(waitJob(t, i))
	if ids, l := i.Identify(ev, nil); l != detect.Known || len(ids) != 1 || ids[0].Unread == "" || ids[0].BuildID != "" {
		t.Errorf("Identify of a FIFO = %+v, %v, want one unread id, Known", ids, l)
	}
	if st := i.Stats(); st.Failed != 1 {
		t.Errorf("Stats.Failed = %d, want 1", st.Failed)
	}
}

// TestIdentifierQueueFull: with no worker free, a lookup is dropped and
// counted, and answered Unknown at once.
func TestIdentifierQueueFull(t *testing.T) {
	i := NewIdentifier(IdentifierOptions{Queue: 1})
	ev := execEventFor(t, os.Getpid(), "/usr/bin/base64")
	if _, l := i.Identify(ev, nil); l != detect.Pending {
		t.Fatalf("first Identify = %v, want Pending", l)
	}
	if _, l := i.Identify(ev, nil); l != detect.Unknown {
		t.Fatalf("Identify with a full queue = %v, want Unknown", l)
	}
	if st := i.Stats(); st.Dropped != 1 || st.Queued != 1 {
		t.Errorf("Stats = %+v, want 1 queued, 1 dropped", st)
	}
	offline := NewIdentifier(IdentifierOptions{Offline: true})
	if _, l := offline.Identify(ev, nil); l != detect.Unknown {
		t.Errorf("offline Identify = %v, want Unknown", l)
	}
}

// TestIdentifierByteBudget: lookups hold their events, so past the byte
// budget a lookup is dropped, and Learn gives the budget back.
func TestIdentifierByteBudget(t *testing.T) {
	i := NewIdentifier(IdentifierOptions{MaxBytes: 3 << 20})
	big := execEventFor(t, os.Getpid(), "/usr/bin/base64")
	big.Argv = append(big.Argv, strings.Repeat("A", 2<<20))
	if _, l := i.Identify(big, nil); l != detect.Pending {
		t.Fatalf("first Identify = %v, want Pending", l)
	}
	if _, l := i.Identify(big, nil); l != detect.Unknown {
		t.Fatalf("Identify past the byte budget = %v, want Unknown", l)
	}
	j := <-i.jobs // as a worker would, without reading
	i.Learn(j)
	again := execEventFor(t, os.Getpid(), "/usr/bin/base64")
	again.Argv = big.Argv
	if _, l := i.Identify(again, nil); l != detect.Pending {
		t.Errorf("Identify after Learn = %v, want Pending", l)
	}
}

// goneProcess returns the pid of a process that has exited and been
// reaped.
func goneProcess(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// TestIdentifierGoneProcess: a renamed copy whose process and parent have
// exited before the worker looks is read through a live ancestor's root;
// deleted, or replaced by another file, it is reported unread with why,
// never identified as the other file.
func TestIdentifierGoneProcess(t *testing.T) {
	b, err := os.ReadFile("/usr/bin/base64")
	if err != nil {
		t.Skipf("no /usr/bin/base64: %v", err)
	}
	want := fileID(t, "/usr/bin/base64", nil).BuildID
	for _, tt := range []struct {
		name      string
		ancestors []int // nil: none known, only init's root is left
		after     func(path string)
		unread    string
	}{
		{"kept, live ancestor", []int{os.Getpid()}, func(string) {}, ""},
		{"kept, no ancestor known", nil, func(string) {}, ""},
		{"deleted", []int{os.Getpid()}, func(p string) { os.Remove(p) }, "it was gone, and its process too, when it was read"},
		{"replaced", []int{os.Getpid()}, func(p string) {
			// Made before the rename, the new file cannot reuse the
			// old one's inode.
			os.WriteFile(p+".new", b, 0o755)
			os.Rename(p+".new", p)
		}, "another file stood at its path when it was read"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.ancestors == nil {
				fd, err := unix.Open("/proc/1/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
				if err != nil {
					t.Skipf("init's root cannot be opened here (%v): only ancestors serve", err)
				}
				unix.Close(fd)
			}
			dir := t.TempDir()
			path := filepath.Join(dir, "kitty")
			if err := os.WriteFile(path, b, 0o755); err != nil {
				t.Fatal(err)
			}
			ev := execEventFor(t, goneProcess(t), path)
			ev.PPID = goneProcess(t)
			ev.Paths[0].Name, ev.Cwd = "kitty", dir // relative, as a shell runs ./kitty
			tt.after(path)
			i := NewIdentifier(IdentifierOptions{Ancestors: func(int) []int { return tt.ancestors }})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go i.Run(ctx)
			if _, l := i.Identify(ev, nil); l != detect.Pending {
				t.Fatalf("first Identify = %v, want Pending", l)
			}
			i.Learn(waitJob(t, i))
			ids, l := i.Identify(ev, nil)
			if l != detect.Known || len(ids) != 1 {
				t.Fatalf("Identify after Learn = %+v, %v, want one id, Known", ids, l)
			}
			got := ids[0]
			if got.Unread != tt.unread {
				t.Errorf("Unread = %q, want %q", got.Unread, tt.unread)
			}
			if tt.unread == "" && got.BuildID != want {
				t.Errorf("BuildID = %q, want %s (base64's)", got.BuildID, want)
			}
			if tt.unread != "" && (got.BuildID != "" || got.Dev != ev.Paths[0].Dev || got.Inode != ev.Paths[0].Inode) {
				t.Errorf("unread id = %+v, want no content, the record's device and inode", got)
			}
		})
	}
}

// TestIdentifierCacheAnswersOnlyItsFile: a cached root binary answers an
// exec of the same device and inode, owner root and mode, by whatever path;
// a freed inode number taken by a user's file (another owner or mode), or
// an entry past knownFor, is looked up again.
func TestIdentifierCacheAnswersOnlyItsFile(t *testing.T) {
	learned := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	cached := audit.Path{Name: "/tmp/go-build1/b001/x.test", Dev: "fe:00", Inode: 9978163, Mode: 0o100755, Nametype: "NORMAL"}
	for _, tt := range []struct {
		name  string
		path  func(*audit.Path)
		after time.Duration
		want  detect.Lookup
	}{
		{"the same file", func(*audit.Path) {}, time.Second, detect.Known},
		{"inode taken by a user's file", func(p *audit.Path) { p.OUID = 65534 }, time.Second, detect.Pending},
		{"inode taken with another mode", func(p *audit.Path) { p.Mode = 0o100700 }, time.Second, detect.Pending},
		{"the same file by another path", func(p *audit.Path) { p.Name = "/tmp/./go-build1//b001/x.test" }, time.Second, detect.Known},
		{"entry aged out", func(*audit.Path) {}, knownFor, detect.Pending},
		{"event older than the entry", func(*audit.Path) {}, -time.Second, detect.Pending},
	} {
		t.Run(tt.name, func(t *testing.T) {
			i := NewIdentifier(IdentifierOptions{}) // no worker: a miss stays queued
			first := &audit.Event{Time: learned, PID: 4242, Paths: []audit.Path{cached}}
			i.Learn(&Job{ev: first, results: []fileResult{{key: fileKey{cached.Dev, cached.Inode},
				id: detect.FileID{BuildID: "aa"}, stable: true, mode: cached.Mode}}})
			i.Identify(first, nil) // takes the finished lookup back, as detection does
			p := cached
			tt.path(&p)
			ev := &audit.Event{Time: learned.Add(tt.after), PID: 4243, Paths: []audit.Path{p}}
			ids, got := i.Identify(ev, nil)
			if got != tt.want {
				t.Fatalf("Identify = %v (%+v), want %v", got, ids, tt.want)
			}
			if got == detect.Known && (len(ids) != 1 || ids[0].BuildID != "aa") {
				t.Errorf("Identify ids = %+v, want the cached build id aa", ids)
			}
		})
	}
}

// TestIdentifierRemembersRootFailures: a lookup that failed (the process
// and every root gone) is remembered for a file only root can have made, so
// that its next exec costs no open; a user's file, or one writable by
// others, is looked up again on every exec.
func TestIdentifierRemembersRootFailures(t *testing.T) {
	for _, tt := range []struct {
		name string
		path func(*audit.Path)
		want detect.Lookup // of the second exec
	}{
		{"root-owned", func(*audit.Path) {}, detect.Known},
		{"user-owned", func(p *audit.Path) { p.OUID = 65534 }, detect.Pending},
		{"root-owned, group writable", func(p *audit.Path) { p.Mode = 0o100775 }, detect.Pending},
	} {
		t.Run(tt.name, func(t *testing.T) {
			procfs := t.TempDir() // no process at all: every lookup fails
			i := NewIdentifier(IdentifierOptions{Root: procfs})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go i.Run(ctx)
			pa := audit.Path{Name: "/usr/bin/gone", Dev: "fe:00", Inode: 4242, Mode: 0o100755, Nametype: "NORMAL"}
			tt.path(&pa)
			at := time.Date(2026, 12, 8, 3, 0, 0, 0, time.UTC)
			first := &audit.Event{Time: at, Success: true, PID: 100, PPID: 99, Paths: []audit.Path{pa}}
			if _, l := i.Identify(first, nil); l != detect.Pending {
				t.Fatalf("first Identify = %v, want Pending", l)
			}
			i.Learn(waitJob(t, i))
			i.Identify(first, nil) // takes the finished lookup back
			opened := i.Stats().Opened
			if opened == 0 {
				t.Fatalf("the failed lookup opened nothing: Stats = %+v", i.Stats())
			}
			again := &audit.Event{Time: at.Add(time.Second), Success: true, PID: 101, PPID: 99, Paths: []audit.Path{pa}}
			ids, l := i.Identify(again, nil)
			if l != tt.want {
				t.Fatalf("second exec Identify = %v (%+v), want %v", l, ids, tt.want)
			}
			if l == detect.Known && (len(ids) != 1 || ids[0].Unread == "" || ids[0].Inode != pa.Inode) {
				t.Errorf("second exec ids = %+v, want the remembered failure", ids)
			}
			if l == detect.Pending {
				i.Learn(waitJob(t, i))
				if got := i.Stats().Opened; got <= opened {
					t.Errorf("Opened = %d after a second lookup, want more than %d", got, opened)
				}
			}
		})
	}
}

// TestIdentifierSkipsSystemLoader: the ELF interpreter of a dynamic
// program, root's, is not looked up; one a user made (or made writable),
// or ld.so run as the program itself, is.
func TestIdentifierSkipsSystemLoader(t *testing.T) {
	prog := audit.Path{Item: 0, Name: "/usr/bin/true", Dev: "fe:00", Inode: 11, Mode: 0o100755, Nametype: "NORMAL"}
	loader := audit.Path{Item: 1, Name: "/lib64/ld-linux-x86-64.so.2", Dev: "fe:00", Inode: 12, Mode: 0o100755, Nametype: "NORMAL"}
	for _, tt := range []struct {
		name    string
		paths   []audit.Path
		pending bool
	}{
		{"root's loader of a known program", []audit.Path{prog, loader}, false},
		{"a user's loader", []audit.Path{prog, func() audit.Path { l := loader; l.OUID = 1000; return l }()}, true},
		{"a writable loader", []audit.Path{prog, func() audit.Path { l := loader; l.Mode = 0o100777; return l }()}, true},
		{"ld.so run as the program", []audit.Path{func() audit.Path { l := loader; l.Item = 0; return l }()}, true},
		{"a script interpreter", []audit.Path{prog, {Item: 1, Name: "/bin/sh", Dev: "fe:00", Inode: 13, Mode: 0o100755, Nametype: "NORMAL"}}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			i := NewIdentifier(IdentifierOptions{Root: t.TempDir()}) // no worker: a miss stays queued
			at := time.Date(2026, 12, 8, 3, 0, 0, 0, time.UTC)
			// The program itself is known.
			i.Learn(&Job{ev: &audit.Event{Time: at}, results: []fileResult{{key: fileKey{prog.Dev, prog.Inode},
				id: detect.FileID{BuildID: "aa"}, stable: true, mode: prog.Mode}}})
			ev := &audit.Event{Time: at, Success: true, PID: 100, PPID: 99, Paths: tt.paths}
			i.Identify(ev, nil) // takes the learned job back
			ev = &audit.Event{Time: at, Success: true, PID: 101, PPID: 99, Paths: tt.paths}
			_, l := i.Identify(ev, nil)
			if got := l == detect.Pending; got != tt.pending {
				t.Errorf("Identify = %v, want a lookup queued: %v", l, tt.pending)
			}
		})
	}
}

func TestDescriptorPath(t *testing.T) {
	for _, tc := range []struct {
		name       string
		pid        int
		holder     int
		fd         string
		descriptor bool
	}{
		{"/proc/123/fd/3", 7, 123, "3", true},
		{"/proc/self/fd/4", 7, 7, "4", true},
		{"/proc/thread-self/fd/5", 7, 7, "5", true},
		{"/dev/fd/6", 7, 7, "6", true},
		{"/proc/123/exe", 7, 0, "", false},
		{"/proc/123/fd/x", 7, 0, "", false},
		{"/proc/0/fd/3", 7, 0, "", false},
		{"/proc/123/fd/../../1/root/bin/sh", 7, 0, "", false},
		{"/usr/bin/base64", 7, 0, "", false},
		{"/dev/fd/3", 0, 0, "", false},
	} {
		holder, fd, ok := descriptorPath(tc.name, tc.pid)
		if ok != tc.descriptor || ok && (holder != tc.holder || fd != tc.fd) {
			t.Errorf("descriptorPath(%q, %d) = %d, %q, %v, want %d, %q, %v", tc.name, tc.pid, holder, fd, ok, tc.holder, tc.fd, tc.descriptor)
		}
	}
}

// TestOpenHeld: a descriptor another process holds is opened only when it
// is the record's regular file; a device or another file behind it is
// refused before anything but an O_PATH descriptor is opened.
func TestOpenHeld(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prog")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	held, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(held.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	key := fileKey{dev: AuditDev(st.Dev), ino: st.Ino}
	link := "/proc/self/fd/" + strconv.Itoa(int(held.Fd()))
	f, _, err := openHeld(link, key)
	if err != nil {
		t.Fatalf("openHeld(%s) of the record's file: %v", link, err)
	}
	f.Close()

	dev, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	devLink := "/proc/self/fd/" + strconv.Itoa(int(dev.Fd()))
	if _, _, err := openHeld(devLink, key); err != errNotTheFile {
		t.Errorf("openHeld(%s) of a device = %v, want %v", devLink, err, errNotTheFile)
	}
	if _, _, err := openHeld(link, fileKey{dev: key.dev, ino: key.ino + 1}); err != errNotTheFile {
		t.Errorf("openHeld of another inode = %v, want %v", err, errNotTheFile)
	}
}

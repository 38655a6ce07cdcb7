package proc

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/detect"
)

// fakeProc writes a process into a fake /proc tree.
func fakeProc(t *testing.T, root string, pid, ppid int, comm, exe string, argv []string, uid int) {
	t.Helper()
	dir := filepath.Join(root, strconv.Itoa(pid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	stat := strconv.Itoa(pid) + " (" + comm + ") S " + strconv.Itoa(ppid) + " 1 1 0 -1\n"
	cmdline := ""
	for _, a := range argv {
		cmdline += a + "\x00"
	}
	status := "Name:\t" + comm + "\nUid:\t" + strconv.Itoa(uid) + "\t0\t0\t0\n"
	for name, data := range map[string]string{"stat": stat, "cmdline": cmdline, "status": status} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if exe != "" {
		if err := os.Symlink(exe, filepath.Join(dir, "exe")); err != nil {
			t.Fatal(err)
		}
	}
}

func execEv(pid, ppid int, exe string, argv ...string) *audit.Event {
	return &audit.Event{Arch: audit.ArchX86_64, Syscall: 59, Success: true, PID: pid, PPID: ppid, Exe: exe, Argv: argv, UID: 1000}
}

func TestAncestryFromObservedAndProc(t *testing.T) {
	root := t.TempDir()
	fakeProc(t, root, 1, 0, "systemd", "/usr/lib/systemd/systemd", []string{"/sbin/init"}, 0)
	fakeProc(t, root, 50, 1, "sshd: a (b)", "/usr/sbin/sshd", []string{"sshd: user [priv]"}, 0)
	now := time.Unix(1000, 0)
	c := New(Options{Root: root, Now: func() time.Time { return now }})
	c.Observe(execEv(60, 50, "/usr/bin/bash", "-bash"))
	c.Observe(execEv(70, 60, "/usr/bin/sh", "sh", "-c", "echo x | base64 -d | sh"))

	got := c.Ancestry(70, 8)
	want := []detect.Process{
		{PID: 70, PPID: 60, Exe: "/usr/bin/sh", Argv: []string{"sh", "-c", "echo x | base64 -d | sh"}, UID: 1000},
		{PID: 60, PPID: 50, Exe: "/usr/bin/bash", Argv: []string{"-bash"}, UID: 1000},
		{PID: 50, PPID: 1, Exe: "/usr/sbin/sshd", Argv: []string{"sshd: user [priv]"}, UID: 0},
		{PID: 1, PPID: 0, Exe: "/usr/lib/systemd/systemd", Argv: []string{"/sbin/init"}, UID: 0},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Ancestry(70) = %+v\nwant %+v", got, want)
	}
	if got := c.Ancestry(70, 2); len(got) != 2 {
		t.Errorf("Ancestry(70, 2) has %d entries, want 2", len(got))
	}
	if got := c.Ancestry(12345, 8); got != nil {
		t.Errorf("Ancestry(unknown) = %+v, want nil", got)
	}
	st := c.Stats()
	if st.Reads != 2 || st.Entries != 4 {
		t.Errorf("Stats = %+v, want 2 reads from /proc and 4 entries", st)
	}
}

// TestOfflineNeverReadsProc: a replay cache knows only the execs it saw; the
// pids of an old log name other processes on this machine now.
func TestOfflineNeverReadsProc(t *testing.T) {
	root := t.TempDir()
	fakeProc(t, root, 50, 1, "sshd", "/usr/sbin/sshd", []string{"sshd"}, 0)
	c := New(Options{Root: root, Offline: true})
	c.Observe(execEv(70, 50, "/usr/bin/sh", "sh"))
	got := c.Ancestry(70, 8)
	if len(got) != 1 || got[0].PID != 70 {
		t.Errorf("offline Ancestry(70) = %+v, want only the observed pid 70", got)
	}
	if st := c.Stats(); st.Reads != 0 {
		t.Errorf("offline cache read /proc %d times, want 0", st.Reads)
	}
}

func TestAgeOutAndBound(t *testing.T) {
	root := t.TempDir()
	now := time.Unix(1000, 0)
	c := New(Options{Root: root, MaxEntries: 2, TTL: time.Minute, Now: func() time.Time { return now }})
	c.Observe(execEv(10, 1, "/usr/bin/a", "a"))
	now = now.Add(2 * time.Minute)
	// Exited (no /proc entry) and aged out: unknown.
	if p, ok := c.Process(10); ok {
		t.Errorf("Process(10) after TTL = %+v, want unknown", p)
	}
	c.Observe(execEv(11, 1, "/usr/bin/b", "b"))
	c.Observe(execEv(12, 1, "/usr/bin/c", "c"))
	c.Observe(execEv(13, 1, "/usr/bin/d", "d"))
	if _, ok := c.Process(11); ok {
		t.Error("Process(11) still cached past MaxEntries, want evicted")
	}
	if st := c.Stats(); st.Entries != 2 || st.Evictions != 1 {
		t.Errorf("Stats = %+v, want 2 entries and 1 eviction", st)
	}
	// A failed exec changes nothing.
	failed := execEv(13, 1, "/usr/bin/sh", "x")
	failed.Success = false
	c.Observe(failed)
	if p, _ := c.Process(13); p.Exe != "/usr/bin/d" {
		t.Errorf("after a failed exec, Process(13).Exe = %q, want /usr/bin/d", p.Exe)
	}
}

func TestParsers(t *testing.T) {
	if got, err := ParseStatPPID([]byte("42 (a) b) c) S 7 42 42 0")); err != nil || got != 7 {
		t.Errorf("ParseStatPPID = %d, %v, want 7", got, err)
	}
	if _, err := ParseStatPPID([]byte("42 no comm")); err == nil {
		t.Error("ParseStatPPID without comm succeeded")
	}
	if got, want := ParseCmdline([]byte("a\x00\x00b\x00")), []string{"a", "", "b"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ParseCmdline = %q, want %q", got, want)
	}
	if got, ok := ParseStatusUID([]byte("Name:\tx\nUid:\t1001\t0\t0\t0\n")); !ok || got != 1001 {
		t.Errorf("ParseStatusUID = %d, %v, want 1001", got, ok)
	}
	users := ParsePasswd([]byte("root:x:0:0::/root:/bin/bash\n# c\nbad\nalice:x:1000:1000::/home/a:/bin/sh\nalias:x:1000:1000::/:/bin/sh\n"))
	if want := map[uint32]string{0: "root", 1000: "alice"}; !reflect.DeepEqual(users, want) {
		t.Errorf("ParsePasswd = %v, want %v", users, want)
	}
}

func TestUsers(t *testing.T) {
	p := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(p, []byte("root:x:0:0::/root:/bin/bash\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	u := NewUsers(p)
	u.now = func() time.Time { return now }
	if got := u.Name(0); got != "root" {
		t.Errorf("Name(0) = %q, want root", got)
	}
	if got := u.Name(4242); got != "" {
		t.Errorf("Name(4242) = %q, want \"\" (unknown)", got)
	}
	// A user added later is found once the re-read interval has passed.
	if err := os.WriteFile(p, []byte("root:x:0:0::/root:/bin/bash\nalice:x:4242:4242::/home/alice:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := u.Name(4242); got != "" {
		t.Errorf("Name(4242) right after a read = %q, want \"\": the file is re-read at most once a minute", got)
	}
	now = now.Add(usersReread)
	if got := u.Name(4242); got != "alice" {
		t.Errorf("Name(4242) after %v = %q, want alice", usersReread, got)
	}
}

func TestParseCgroupContainerID(t *testing.T) {
	const id = "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa00112233445566778899"
	tests := []struct{ name, cgroup, want string }{
		{"host, cgroup v2", "0::/user.slice/user-1000.slice/session-3.scope\n", ""},
		{"docker v2", "0::/system.slice/docker-" + id + ".scope\n", id},
		{"docker v1", "12:pids:/docker/" + id + "\n11:cpu:/docker/" + id + "\n", id},
		{"containerd k8s", "0::/kubepods.slice/kubepods-burstable.slice/kubepods-pod1.slice/cri-containerd-" + id + ".scope\n", id},
		{"crio", "0::/kubepods/burstable/pod1/crio-" + id + ".scope\n", id},
		{"too short", "0::/docker/" + id[:63] + "\n", ""},
		{"not hex", "0::/docker/" + strings.Repeat("g", 64) + "\n", ""},
		{"garbage", "no colons here", ""},
	}
	for _, tt := range tests {
		if got := ParseCgroupContainerID([]byte(tt.cgroup)); got != tt.want {
			t.Errorf("%s: ParseCgroupContainerID(%q) = %q, want %q", tt.name, tt.cgroup, got, tt.want)
		}
	}
}

func TestReadFileID(t *testing.T) {
	dir := t.TempDir()
	data := []byte("#!/bin/sh\necho not really base64\n")
	p := filepath.Join(dir, "x")
	if err := os.WriteFile(p, data, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])
	if got := fileID(t, p, []int64{1, int64(len(data))}).SHA256; got != want {
		t.Errorf("SHA256 = %q, want %q", got, want)
	}
	if got := fileID(t, p, []int64{5}).SHA256; got != "" {
		t.Errorf("SHA256 of a file of another size = %q, want none", got)
	}
	// Rewritten in place: same inode, new size, new hash.
	data2 := []byte("#!/bin/sh\necho changed contents here\n")
	if err := os.WriteFile(p, data2, 0o755); err != nil {
		t.Fatal(err)
	}
	sum2 := sha256.Sum256(data2)
	if got := fileID(t, p, []int64{int64(len(data)), int64(len(data2))}).SHA256; got != hex.EncodeToString(sum2[:]) {
		t.Errorf("SHA256 after rewrite = %q, want the new sum", got)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := readFileID(f, int64(len(data2)), []int64{int64(len(data2))}, time.Now().Add(-time.Second)); err != errDeadline {
		t.Errorf("readFileID past its deadline: %v, want errDeadline", err)
	}
}

// TestArgvBoundedByBytes: an exec with megabytes of arguments costs the
// cache a few KiB, and the cache as a whole stays within its byte budget.
func TestArgvBoundedByBytes(t *testing.T) {
	big := strings.Repeat("A", 1<<20)
	c := New(Options{Offline: true, MaxArgvBytes: 4096, MaxBytes: 64 << 10})
	for pid := 100; pid < 200; pid++ {
		c.Observe(execEv(pid, 1, "/usr/bin/true", "true", big, big))
	}
	st := c.Stats()
	if st.Bytes > 64<<10 {
		t.Errorf("Stats.Bytes = %d, want at most %d", st.Bytes, 64<<10)
	}
	if st.Entries == 0 || st.Evictions == 0 {
		t.Errorf("Stats = %+v, want some entries kept and some evicted", st)
	}
	p, ok := c.Process(199)
	if !ok {
		t.Fatal("Process(199) not found, want the latest exec")
	}
	n := 0
	for _, a := range p.Argv {
		n += len(a)
	}
	if n > 4096 || len(p.Argv) != 2 || p.Argv[0] != "true" {
		t.Errorf("argv kept %d bytes in %d args (argv[0] %q), want at most 4096 in 2 starting with true", n, len(p.Argv), p.Argv[0])
	}
}

func TestClipArgv(t *testing.T) {
	for _, tt := range []struct {
		argv []string
		max  int
		want []string
	}{
		{nil, 10, nil},
		{[]string{"a", "bc"}, 10, []string{"a", "bc"}},
		{[]string{"abcdef", "gh"}, 4, []string{"abcd"}},
		{[]string{"ab", "", "cdef"}, 4, []string{"ab", "", "cd"}},
	} {
		if got := ClipArgv(tt.argv, tt.max); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ClipArgv(%q, %d) = %q, want %q", tt.argv, tt.max, got, tt.want)
		}
	}
}

// The cache's copy of a process: exe whole, argv clipped, none of it in the
// event's memory, in two allocations.
func TestClipCopy(t *testing.T) {
	exe := string([]byte("/usr/bin/base64"))
	argv := []string{string([]byte("base64")), string([]byte("-d")), string([]byte("payload"))}
	gotExe, gotArgv := clipCopy(exe, argv, 10)
	if gotExe != exe || !reflect.DeepEqual(gotArgv, []string{"base64", "-d", "pa"}) {
		t.Fatalf("clipCopy = %q, %q; want %q, [base64 -d pa]", gotExe, gotArgv, exe)
	}
	if unsafe.StringData(gotExe) == unsafe.StringData(exe) || unsafe.StringData(gotArgv[0]) == unsafe.StringData(argv[0]) {
		t.Fatal("clipCopy shares memory with its input")
	}
	if n := testing.AllocsPerRun(100, func() { clipCopy(exe, argv, 4096) }); n > 2 {
		t.Errorf("clipCopy made %.0f allocations, want at most 2", n)
	}
}

// TestKnownAncestors: the ancestors the cache holds, nearest first, with
// no /proc read, stopping at the first it does not know or at init.
func TestKnownAncestors(t *testing.T) {
	root := t.TempDir()
	fakeProc(t, root, 50, 1, "sshd", "/usr/sbin/sshd", []string{"sshd"}, 0)
	c := New(Options{Root: root})
	c.Observe(execEv(60, 50, "/usr/bin/bash", "bash"))
	c.Observe(execEv(70, 60, "/usr/bin/sh", "sh"))
	c.Observe(execEv(80, 70, "/tmp/kitty", "kitty"))
	if got, want := c.KnownAncestors(80, 8), []int{70, 60, 50}; !slices.Equal(got, want) {
		t.Errorf("KnownAncestors(80, 8) = %v, want %v", got, want)
	}
	if got, want := c.KnownAncestors(80, 2), []int{70, 60}; !slices.Equal(got, want) {
		t.Errorf("KnownAncestors(80, 2) = %v, want %v", got, want)
	}
	if got := c.KnownAncestors(99, 8); len(got) != 0 {
		t.Errorf("KnownAncestors(99) = %v, want none", got)
	}
	if st := c.Stats(); st.Reads != 0 {
		t.Errorf("KnownAncestors read /proc %d times, want 0", st.Reads)
	}
}

// BenchmarkObserve records an exec of a new pid into a full cache, a
// daemon's steady state (pids are seldom reused within the TTL), and of a
// pid the cache holds already.
func BenchmarkObserve(b *testing.B) {
	for _, tc := range []struct {
		name string
		pids int
	}{{"full", 1 << 30}, {"known", 8}} {
		b.Run(tc.name, func(b *testing.B) {
			c := New(Options{Offline: true, MaxEntries: 1024})
			ev := execEv(2, 1, "/usr/bin/true", "/bin/true", "x")
			for i := 0; b.Loop(); i++ {
				ev.PID = 2 + i%tc.pids
				c.Observe(ev)
			}
		})
	}
}

package proc

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/encwatch/encwatch/detect"
)

func TestParseStream(t *testing.T) {
	long := "/" + strings.Repeat("a", 300)
	tests := []struct {
		in   string
		want detect.Stream
	}{
		{"pipe:[12345]", detect.Stream{Kind: detect.StreamPipe, Ino: 12345}},
		{"socket:[9]", detect.Stream{Kind: detect.StreamSocket, Ino: 9}},
		{"/dev/null", detect.Stream{Kind: detect.StreamOther, Name: "/dev/null"}},
		{"/tmp/pipe:[1]", detect.Stream{Kind: detect.StreamOther, Name: "/tmp/pipe:[1]"}},
		{"pipe:[12x]", detect.Stream{Kind: detect.StreamOther, Name: "pipe:[12x]"}},
		{"pipe:[1", detect.Stream{Kind: detect.StreamOther, Name: "pipe:[1"}},
		{"anon_inode:[eventfd]", detect.Stream{Kind: detect.StreamOther, Name: "anon_inode:[eventfd]"}},
		{long, detect.Stream{Kind: detect.StreamOther, Name: long[:maxLinkName]}},
	}
	for _, tt := range tests {
		if got := ParseStream([]byte(tt.in)); got != tt.want {
			t.Errorf("ParseStream(%.40q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestParseChildren(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want []int
	}{
		{"25147 25200 ", 8, []int{25147, 25200}},
		{"1 2 3 4", 2, []int{1, 2}},
		{"", 8, nil},
		{"7 x -3 0 9", 8, []int{7, 9}},
	}
	for _, tt := range tests {
		got := ParseChildren([]byte(tt.in), tt.max)
		if len(got) != len(tt.want) {
			t.Errorf("ParseChildren(%q, %d) = %v, want %v", tt.in, tt.max, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("ParseChildren(%q, %d) = %v, want %v", tt.in, tt.max, got, tt.want)
			}
		}
	}
}

// FuzzParseStream feeds link targets, which a path's owner names: the
// result is a pipe or socket only for the kernel's own form, and a name is
// never longer than the bound.
func FuzzParseStream(f *testing.F) {
	f.Add([]byte("pipe:[1]"))
	f.Add([]byte("socket:[18446744073709551615]"))
	f.Add([]byte("/tmp/x (deleted)"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := ParseStream(b)
		switch s.Kind {
		case detect.StreamPipe, detect.StreamSocket:
			if s.Name != "" || !strings.HasSuffix(string(b), "]") || !(strings.HasPrefix(string(b), "pipe:[") || strings.HasPrefix(string(b), "socket:[")) {
				t.Fatalf("ParseStream(%q) = %+v: a channel from a target not of the kernel's form", b, s)
			}
		case detect.StreamOther:
			if len(s.Name) > maxLinkName || !strings.HasPrefix(string(b), s.Name) {
				t.Fatalf("ParseStream(%q) = %+v: name not a bounded prefix of the target", b, s)
			}
		default:
			t.Fatalf("ParseStream(%q) = %+v: unread", b, s)
		}
	})
}

// TestDescriptorsOfALivePipeline reads a real pipeline from /proc: the
// shell's two children, the writer's stdout and the reader's stdin one
// pipe; a wrong comm or a gone pid reads nothing.
func TestDescriptorsOfALivePipeline(t *testing.T) {
	sh := exec.Command("sh", "-c", "sleep 30 | sleep 31")
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sh.Process.Kill(); sh.Wait() }()
	d := NewDescriptors("")
	var kids []int
	for range 500 {
		if kids, _ = d.Children(sh.Process.Pid, 8); len(kids) == 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(kids) != 2 {
		t.Fatalf("Children(sh) = %v, want the pipeline's two sleeps", kids)
	}
	defer func() {
		for _, k := range kids {
			syscall.Kill(k, syscall.SIGKILL)
		}
	}()
	// Forked, the children are sh until they exec sleep: read as gone.
	a, b := d.Stdio(kids[0], "sleep"), d.Stdio(kids[1], "sleep")
	for i := 0; i < 500 && (a.In.Kind == detect.StreamUnread || b.In.Kind == detect.StreamUnread); i++ {
		time.Sleep(10 * time.Millisecond)
		a, b = d.Stdio(kids[0], "sleep"), d.Stdio(kids[1], "sleep")
	}
	if a.Out.Kind != detect.StreamPipe {
		a, b = b, a // kids[1] is the writer
	}
	if a.Out.Kind != detect.StreamPipe || a.Out != b.In {
		t.Errorf("writer stdout %+v, reader stdin %+v, want one pipe", a.Out, b.In)
	}
	if got := d.Stdio(kids[0], "base64"); got != (detect.Stdio{}) {
		t.Errorf("Stdio with another comm = %+v, want nothing read", got)
	}
	sh.Process.Kill()
	sh.Wait()
	syscall.Kill(kids[0], syscall.SIGKILL)
	// Dead (a zombie, or reaped and gone), it has no descriptors to read.
	got := d.Stdio(kids[0], "")
	for i := 0; i < 500 && got != (detect.Stdio{}); i++ {
		time.Sleep(10 * time.Millisecond)
		got = d.Stdio(kids[0], "")
	}
	if got != (detect.Stdio{}) {
		t.Errorf("Stdio of a killed process = %+v, want nothing read", got)
	}
}

// A process holding a pipe on descriptor 3 (as a shell reads a command
// substitution, or sh /dev/fd/3 its program): FD reads it, Holds finds it,
// and Children says when it listed every child.
func TestDescriptorsBeyondStdio(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	cmd := exec.Command("sleep", "30")
	cmd.ExtraFiles = []*os.File{r}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	d := NewDescriptors("")
	pid := cmd.Process.Pid
	var got detect.Stream
	for i := 0; i < 500; i++ {
		if got = d.FD(pid, "sleep", 3); got.Kind == detect.StreamPipe {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got.Kind != detect.StreamPipe {
		t.Fatalf("FD(sleep, 3) = %+v, want a pipe", got)
	}
	if held, complete := d.Holds(pid, got, 64); !held || !complete {
		t.Errorf("Holds(sleep, %v) = %v, %v, want true, true", got, held, complete)
	}
	if held, _ := d.Holds(pid, detect.Stream{Kind: detect.StreamPipe, Ino: got.Ino + 1}, 64); held {
		t.Errorf("Holds(sleep, another pipe) = true")
	}
	if got := d.FD(pid, "base64", 3); got != (detect.Stream{}) {
		t.Errorf("FD with another comm = %+v, want nothing read", got)
	}
	if _, complete := d.Children(os.Getpid(), 1<<10); !complete {
		t.Errorf("Children(test, 1024) not complete")
	}
	// This test has at least the sleep as a child: asked for none, the
	// list cannot be complete.
	if kids, complete := d.Children(os.Getpid(), 1); len(kids) > 1 {
		t.Errorf("Children(test, 1) = %v, %v: more than asked", kids, complete)
	}
}

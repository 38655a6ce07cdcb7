package proc

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// A remembered process answers from memory while it lives, and is
// forgotten once it has exited, so that no later process with its pid gets
// its container.
func TestContainersRememberLiveProcesses(t *testing.T) {
	const id = "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa00112233445566778899"
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	// A fake /proc whose entry for the live child says it is in a container.
	root := t.TempDir()
	cgroup := filepath.Join(root, strconv.Itoa(pid), "cgroup")
	if err := os.MkdirAll(filepath.Dir(cgroup), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cgroup, []byte("0::/system.slice/docker-"+id+".scope\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := NewContainers(root)
	defer c.Close()
	if got := c.Of(pid); got != id {
		t.Fatalf("Of(live child) = %q, want %q", got, id)
	}
	if c.Len() != 1 {
		t.Fatalf("remembered %d processes, want 1", c.Len())
	}
	// From memory: the file is no longer read while the process lives.
	if err := os.WriteFile(cgroup, []byte("0::/user.slice\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := c.Of(pid); got != id {
		t.Fatalf("Of(live child) a second time = %q, want the remembered %q", got, id)
	}
	cmd.Process.Kill()
	cmd.Wait()
	// Gone: forgotten, and the file (now the host's) is not consulted for a
	// pid that names no process.
	if got := c.Of(pid); got != "" {
		t.Fatalf("Of(exited child) = %q, want \"\"", got)
	}
	if c.Len() != 0 {
		t.Fatalf("remembered %d processes after the exit, want 0", c.Len())
	}
}

// The bound holds: more live processes than maxContainers keep at most
// maxContainers pidfds open, and every answer is the one a read gives.
func TestContainersBounded(t *testing.T) {
	c := NewContainers("/proc")
	defer c.Close()
	for range maxContainers + 10 {
		cmd := exec.Command("sleep", "60")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		if got := c.Of(cmd.Process.Pid); got != ContainerID("/proc", cmd.Process.Pid) {
			t.Fatalf("Of(%d) = %q, differs from a direct read", cmd.Process.Pid, got)
		}
		if c.Len() > maxContainers {
			t.Fatalf("remembered %d processes, bound %d", c.Len(), maxContainers)
		}
	}
	// Full of live processes, a sweep forgets a quarter of them: the
	// cache stays between three quarters of the bound and the bound.
	if c.Len() < maxContainers*3/4 || c.Len() > maxContainers {
		t.Fatalf("remembered %d live processes, want between %d and %d", c.Len(), maxContainers*3/4, maxContainers)
	}
}

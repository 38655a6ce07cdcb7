package abuse

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// runHelper runs one attacker helper; the test binary runs it as nobody.
func runHelper(name string, args []string) error {
	switch name {
	case "swap":
		return swapFIFO(args)
	case "bigexec":
		return bigExec(args)
	case "lease":
		return holdLease(args)
	case "listen":
		return holdPort(args)
	case "keepalive":
		return idleConns(args)
	case "fdexec":
		return fdExec(args)
	case "fdpipe":
		return fdPipe(args)
	case "halfopen":
		return halfOpen(args)
	case "dialunix":
		return dialUnix(args)
	}
	return fmt.Errorf("unknown helper %q", name)
}

// copyFile copies src to dst, executable.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// swapFIFO (dir, seconds): a copy of base64 at dir/x, run (x --version:
// no alert, not a decode), then swapped with a FIFO by atomic renames as
// fast as it goes for a while, when the daemon looks at the file the exec
// record names; over and over. Swapping during the exec itself would
// leave the record naming "x (deleted)".
func swapFIFO(args []string) error {
	dir := args[0]
	secs, err := strconv.ParseFloat(args[1], 64)
	if err != nil {
		return err
	}
	file, fifo, x, tmp := filepath.Join(dir, "file"), filepath.Join(dir, "fifo"), filepath.Join(dir, "x"), filepath.Join(dir, "t")
	if err := copyFile("/usr/bin/base64", file); err != nil {
		return err
	}
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		return err
	}
	swapTo := func(src string) bool {
		os.Remove(tmp)
		return os.Link(src, tmp) == nil && os.Rename(tmp, x) == nil
	}
	end := time.Now().Add(time.Duration(secs * float64(time.Second)))
	swaps, execs := 0, 0
	for time.Now().Before(end) {
		if !swapTo(file) {
			return fmt.Errorf("swap %s back in", file)
		}
		if exec.Command(x, "--version").Run() == nil {
			execs++
		}
		for phase := time.Now().Add(60 * time.Millisecond); time.Now().Before(phase); {
			for _, src := range [...]string{fifo, file} {
				if swapTo(src) {
					swaps++
				}
			}
		}
	}
	fmt.Printf("%d swaps, %d execs of the copy\n", swaps, execs)
	return nil
}

// bigExec (count, bytes): runs /bin/true count times with bytes of
// arguments, in arguments of 120 KiB (MAX_ARG_STRLEN is 128 KiB).
func bigExec(args []string) error {
	n, err := strconv.Atoi(args[0])
	if err != nil {
		return err
	}
	size, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	const chunk = 120 << 10
	var argv []string
	for left := size; left > 0; left -= chunk {
		argv = append(argv, strings.Repeat("A", min(left, chunk)))
	}
	for i := range n {
		if err := exec.Command("/bin/true", argv...).Run(); err != nil {
			return fmt.Errorf("exec %d: %w", i, err)
		}
	}
	return nil
}

// holdLease (path, marker, seconds): runs a copy of base64 at path as a
// decoder, then renames over path a second copy on which it holds a write
// lease, ignoring the SIGIO of a lease break, for seconds. A daemon that
// opens the path after the exec meets the lease (the rename is done long
// before it looks; taking the lease on the executed copy itself would race
// with it).
func holdLease(args []string) error {
	path, marker := args[0], args[1]
	secs, err := strconv.ParseFloat(args[2], 64)
	if err != nil {
		return err
	}
	leased := path + ".leased"
	for _, p := range []string{path, leased} {
		if err := copyFile("/usr/bin/base64", p); err != nil {
			return err
		}
	}
	signal.Ignore(syscall.SIGIO)
	f, err := os.Open(leased)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, _, e := unix.Syscall(unix.SYS_FCNTL, f.Fd(), unix.F_SETLEASE, unix.F_WRLCK); e != 0 {
		return fmt.Errorf("write lease: %w", e)
	}
	exec.Command(path, "-d", "/nonexistent-"+marker).Run()
	if err := os.Rename(leased, path); err != nil {
		return err
	}
	fmt.Println("leased")
	time.Sleep(time.Duration(secs * float64(time.Second)))
	return nil
}

// fdExec (path, count, marker): copies base64 to path, keeps it open,
// unlinks it and runs it count times through its descriptor
// (/proc/PID/fd/N, as fexecve does) as "base64 -d /nonexistent-marker":
// each exec is of the same file, whose exe the kernel reports as
// "path (deleted)". It prints how many ran.
func fdExec(args []string) error {
	path, marker := args[0], args[2]
	n, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	f, err := unlinkedBase64(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fd := fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd())
	ran := 0
	for range n {
		cmd := exec.Command(fd)
		cmd.Args = []string{"base64", "-d", "/nonexistent-" + marker}
		var exit *exec.ExitError
		if err := cmd.Run(); err == nil || errors.As(err, &exit) {
			ran++
		}
	}
	fmt.Printf("%d execs of %s\n", ran, fd)
	return nil
}

// unlinkedBase64 copies base64 to path and returns it open, the path
// already removed: a file only its descriptor names.
func unlinkedBase64(path string) (*os.File, error) {
	if err := copyFile("/usr/bin/base64", path); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if err := os.Remove(path); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// fdPipe (path, input, marker): copies base64 to path, keeps it open,
// unlinks it and runs it through its descriptor (as fexecve does) under
// the name "kworker", decoding input into "sh -s marker": a decoder no
// name shows, piped to a shell. The shell's input is held open a moment
// (as a slow download would) so that both are read alive.
func fdPipe(args []string) error {
	path, input, marker := args[0], args[1], args[2]
	f, err := unlinkedBase64(path)
	if err != nil {
		return err
	}
	defer f.Close()
	in, err := os.Open(input)
	if err != nil {
		return err
	}
	defer in.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	dec := exec.Command(fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd()))
	dec.Args = []string{"kworker", "-d"}
	dec.Stdin, dec.Stdout = in, w
	sh := exec.Command("sh", "-s", marker)
	sh.Stdin = r
	if err := sh.Start(); err != nil {
		return err
	}
	r.Close()
	if err := dec.Start(); err != nil {
		return err
	}
	dec.Wait()
	time.Sleep(300 * time.Millisecond)
	w.Close()
	return sh.Wait()
}

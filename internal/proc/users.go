package proc

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// usersReread is how long an unknown uid waits before the passwd file is
// read again: a user added since is then found, and a flood of unknown uids
// costs one read a minute.
const usersReread = time.Minute

// Users maps uids to user names from a passwd file, read on first use and
// again when an unknown uid turns up (at most once per usersReread). It is
// owned by one goroutine, the detection stage.
type Users struct {
	path  string
	now   func() time.Time
	read  time.Time
	names map[uint32]string
}

// NewUsers returns Users reading path ("/etc/passwd" when empty).
func NewUsers(path string) *Users {
	if path == "" {
		path = "/etc/passwd"
	}
	return &Users{path: path, now: time.Now}
}

// Name returns the user name of uid, or "" when the passwd file has none.
func (u *Users) Name(uid uint32) string {
	if n, ok := u.names[uid]; ok {
		return n
	}
	if now := u.now(); u.names == nil || now.Sub(u.read) >= usersReread {
		u.read = now
		if b, err := os.ReadFile(u.path); err == nil {
			u.names = ParsePasswd(b)
		} else if u.names == nil {
			u.names = map[uint32]string{}
		}
	}
	return u.names[uid]
}

// ParsePasswd reads name:password:uid:... lines; the first name for a uid
// wins, as getpwuid returns it.
func ParsePasswd(b []byte) map[uint32]string {
	out := make(map[uint32]string)
	for line := range strings.SplitSeq(string(b), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.SplitN(line, ":", 4)
		if len(f) < 4 || f[0] == "" {
			continue
		}
		uid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			continue
		}
		if _, dup := out[uint32(uid)]; !dup {
			out[uint32(uid)] = f[0]
		}
	}
	return out
}

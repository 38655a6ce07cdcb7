package proc

import (
	"os"
	"strconv"
	"strings"
	"sync"
)

// Users maps uids to user names from a passwd file, read once on first use.
type Users struct {
	path  string
	once  sync.Once
	names map[uint32]string
}

// NewUsers returns Users reading path ("/etc/passwd" when empty).
func NewUsers(path string) *Users {
	if path == "" {
		path = "/etc/passwd"
	}
	return &Users{path: path}
}

// Name returns the user name of uid, or its number when unknown.
func (u *Users) Name(uid uint32) string {
	u.once.Do(func() {
		b, err := os.ReadFile(u.path)
		if err == nil {
			u.names = ParsePasswd(b)
		}
	})
	if n, ok := u.names[uid]; ok {
		return n
	}
	return strconv.FormatUint(uint64(uid), 10)
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

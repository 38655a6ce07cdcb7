package proc

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"slices"
	"syscall"

	"github.com/encwatch/encwatch/detect"
)

// maxHashEntries bounds the Hasher's cache; past it the cache starts over.
const maxHashEntries = 8192

// Hasher hashes executed files for the renamed-encoder check. It implements
// detect.Files: a file is hashed only when its size is that of a known
// encoder, once per device, inode, size and modification time. It is owned
// by one goroutine, the detection stage.
type Hasher struct {
	cache map[fileKey]hashResult
	ids   map[fileKey]hashResult // build ids, see BuildID
}

type fileKey struct {
	dev, ino   uint64
	size       int64
	mtimeNanos int64
}

type hashResult struct {
	sum string
	ok  bool
}

var (
	_ detect.Files    = (*Hasher)(nil)
	_ detect.BuildIDs = (*Hasher)(nil)
)

// NewHasher returns a Hasher with an empty cache.
func NewHasher() *Hasher {
	return &Hasher{cache: make(map[fileKey]hashResult), ids: make(map[fileKey]hashResult)}
}

// Hash returns the hex SHA-256 of the regular file at path if its size is
// one of sizes.
func (h *Hasher) Hash(path string, sizes []int64) (string, bool) {
	if len(sizes) == 0 {
		return "", false
	}
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return "", false
	}
	if _, found := slices.BinarySearch(sizes, fi.Size()); !found {
		return "", false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", false
	}
	k := fileKey{dev: st.Dev, ino: st.Ino, size: fi.Size(), mtimeNanos: fi.ModTime().UnixNano()}
	r, hit := h.cache[k]
	if hit {
		return r.sum, r.ok
	}
	r = hashFile(path, fi.Size())
	if len(h.cache) >= maxHashEntries {
		clear(h.cache)
	}
	h.cache[k] = r
	return r.sum, r.ok
}

func hashFile(path string, size int64) hashResult {
	f, err := os.Open(path)
	if err != nil {
		return hashResult{}
	}
	defer f.Close()
	s := sha256.New()
	// The size was checked; a file growing meanwhile is cut at it.
	if _, err := io.Copy(s, io.LimitReader(f, size)); err != nil {
		return hashResult{}
	}
	return hashResult{sum: hex.EncodeToString(s.Sum(nil)), ok: true}
}

package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/proc"
)

// DefaultEncoderBinaries are the encoder tools identified when the policy
// lists none; those missing on this machine are skipped.
var DefaultEncoderBinaries = []string{
	"/usr/bin/base64", "/usr/bin/base32", "/usr/bin/basenc", "/usr/bin/xxd",
	"/usr/bin/uuencode", "/usr/bin/uudecode", "/usr/bin/base58",
}

// maxEncoderSize bounds the binaries hashed: an encoder is a small program.
const maxEncoderSize = 64 << 20

// identifyEncoders stats and hashes the encoder binaries at paths (the
// defaults when nil). It skips what is missing, and drops an identity two
// different tools share (a multi-call binary such as a single-binary
// coreutils or busybox would make every tool it provides look like a renamed
// encoder), as well as symbolic links, for the same reason. It returns what it
// could not use, with why.
func identifyEncoders(paths []string) ([]detect.EncoderIdentity, []string) {
	if paths == nil {
		paths = DefaultEncoderBinaries
	}
	var ids []detect.EncoderIdentity
	var problems []string
	for _, p := range paths {
		id, err := identify(p)
		if err != nil {
			if !os.IsNotExist(err) {
				problems = append(problems, fmt.Sprintf("%s: %v", p, err))
			}
			continue
		}
		ids = append(ids, id)
	}
	// Drop identities shared by different tool names.
	shared := map[string]bool{}
	for i := range ids {
		for j := range ids {
			if ids[i].Name != ids[j].Name && (ids[i].SHA256 == ids[j].SHA256 || ids[i].Dev == ids[j].Dev && ids[i].Inode == ids[j].Inode ||
				ids[i].BuildID != "" && ids[i].BuildID == ids[j].BuildID || ids[i].Text != "" && ids[i].Text == ids[j].Text) {
				shared[ids[i].Path] = true
			}
		}
	}
	out := ids[:0]
	for _, id := range ids {
		if shared[id.Path] {
			problems = append(problems, fmt.Sprintf("%s: the same file as another encoder (a multi-call binary); not used to spot renamed copies", id.Path))
			continue
		}
		out = append(out, id)
	}
	return out, problems
}

func identify(path string) (detect.EncoderIdentity, error) {
	lfi, err := os.Lstat(path)
	if err != nil {
		return detect.EncoderIdentity{}, err
	}
	if lfi.Mode()&os.ModeSymlink != 0 {
		return detect.EncoderIdentity{}, fmt.Errorf("a symbolic link, likely to a multi-call binary; list the file itself")
	}
	f, err := os.Open(path)
	if err != nil {
		return detect.EncoderIdentity{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return detect.EncoderIdentity{}, err
	}
	if !fi.Mode().IsRegular() || fi.Size() > maxEncoderSize {
		return detect.EncoderIdentity{}, fmt.Errorf("not a regular file of at most %d bytes", maxEncoderSize)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return detect.EncoderIdentity{}, fmt.Errorf("no device and inode")
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return detect.EncoderIdentity{}, err
	}
	buildID, _ := proc.ReadBuildID(f) // "" for a file without one
	text, textSize, err := textHash(f)
	if err != nil {
		return detect.EncoderIdentity{}, err
	}
	return detect.EncoderIdentity{
		Name:     filepath.Base(path),
		Path:     path,
		Dev:      proc.AuditDev(st.Dev),
		Inode:    st.Ino,
		Size:     fi.Size(),
		SHA256:   hex.EncodeToString(h.Sum(nil)),
		BuildID:  buildID,
		Text:     text,
		TextSize: textSize,
	}, nil
}

// textHash is the SHA-256 of f's executable segments and their size: ""
// and 0 for a file that is not ELF.
func textHash(f *os.File) (string, int64, error) {
	segs, total, err := proc.ExecSegments(f)
	if err != nil {
		return "", 0, nil
	}
	h := sha256.New()
	for _, seg := range segs {
		if _, err := io.Copy(h, io.NewSectionReader(f, seg.Off, seg.Size)); err != nil {
			return "", 0, err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), total, nil
}

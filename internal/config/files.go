package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/hashicorp/hcl/v2"
)

// source is one policy file's bytes and the name diagnostics give it.
type source struct {
	name string
	src  []byte
}

// readPolicyFile reads a policy file. The checks run on the opened file, so
// the bytes read are those of the file checked even if the path is swapped
// underneath.
func readPolicyFile(path string, requireRoot bool) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fileError(path, "policy file is not a regular file")
	}
	if requireRoot {
		if err := checkOwner(path, "policy file", fi); err != nil {
			return nil, err
		}
	}
	src, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	if len(src) > maxFileSize {
		return nil, fileError(path, fmt.Sprintf("policy file is larger than %d bytes", maxFileSize))
	}
	return src, nil
}

// confDir lists the *.hcl files of dir in lexical order; none if dir does
// not exist.
func confDir(dir string, requireRoot bool) ([]string, error) {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if !fi.IsDir() {
		return nil, fileError(dir, "conf.d is not a directory")
	}
	if requireRoot {
		// Whoever can add a file to conf.d can add an allow-everything policy.
		if err := checkOwner(dir, "conf.d directory", fi); err != nil {
			return nil, err
		}
	}
	entries, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var names []string
	for _, e := range entries {
		// Skip editor droppings such as ".#config.hcl".
		if strings.HasPrefix(e.Name(), ".") || !strings.HasSuffix(e.Name(), ".hcl") {
			continue
		}
		names = append(names, filepath.Join(dir, e.Name()))
	}
	return names, nil
}

// checkOwner refuses what is not owned by root or is writable by group or
// others, as auditd does with its own configuration.
func checkOwner(path, what string, fi fs.FileInfo) error {
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fileError(path, fmt.Sprintf("%s is writable by group or others (mode %04o); refusing to load it", what, perm))
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileError(path, fmt.Sprintf("%s: cannot tell its owner; refusing to load it", what))
	}
	if st.Uid != 0 {
		return fileError(path, fmt.Sprintf("%s is owned by uid %d, not root; refusing to load it", what, st.Uid))
	}
	return nil
}

// fileError is a problem with a whole file, reported as "file: message".
func fileError(path, msg string) *Error {
	return &Error{Diagnostics: hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  msg,
		Subject:  &hcl.Range{Filename: path},
	}}}
}

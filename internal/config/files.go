package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/hashicorp/hcl/v2"

	"github.com/encwatch/encwatch/internal/sink"
)

// source is one policy file's bytes and the name diagnostics give it.
type source struct {
	name string
	src  []byte
}

// readPolicyFile reads a policy file. With requireRoot, the path is first
// checked like sshd's StrictModes (trustedPath), the resolved file is
// opened without following a link or blocking on a FIFO, and the checks run
// on the opened file, so the bytes read are those of the file checked.
func readPolicyFile(path string, requireRoot bool) ([]byte, error) {
	open := path
	flag := os.O_RDONLY
	if requireRoot {
		real, err := trustedPath(path, "policy file")
		if err != nil {
			return nil, err
		}
		open, flag = real, flag|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_NOCTTY
	}
	f, err := os.OpenFile(open, flag, 0)
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

// trustedPath checks that no one but root can change what path names: every
// directory from / down, every symbolic link on the way and its target (see
// sink.CheckTrustedPath). It returns the resolved path.
func trustedPath(path, what string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("config: %w", err)
	}
	real, _, err := sink.CheckTrustedPath(abs)
	var ue *sink.UntrustedError
	switch {
	case err == nil:
		return real, nil
	case errors.As(err, &ue) && ue.Path == abs:
		return "", fileError(path, fmt.Sprintf("%s %s; refusing to load it", what, ue.Reason))
	case errors.As(err, &ue):
		return "", fileError(ue.Path, fmt.Sprintf("on the way to %s %s: %s; refusing to load it", what, path, ue.Reason))
	}
	return "", fmt.Errorf("config: %w", err)
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
		if _, err := trustedPath(dir, "conf.d directory"); err != nil {
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
// others (sink.CheckOwnedFile), as auditd does with its own configuration.
func checkOwner(path, what string, fi fs.FileInfo) error {
	err := sink.CheckOwnedFile(path, fi, false)
	var ue *sink.UntrustedError
	if errors.As(err, &ue) {
		return fileError(path, fmt.Sprintf("%s %s; refusing to load it", what, ue.Reason))
	}
	return err
}

// fileError is a problem with a whole file, reported as "file: message".
func fileError(path, msg string) *Error {
	return &Error{Diagnostics: hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  msg,
		Subject:  &hcl.Range{Filename: path},
	}}}
}

// maxNesting bounds how deeply a policy file nests brackets, braces,
// parentheses, strings with template interpolations and runs of unary
// operators. hclsyntax parses each level recursively: 100,000 levels (a
// few hundred KB) overflow its goroutine's 1 GB stack, which kills the
// process, and a reload must never kill the daemon. A real policy nests a
// handful of levels.
const maxNesting = 100

// nestScanner follows just enough of the HCL native syntax to measure
// nesting without recursion: comments, quoted strings with escapes and
// interpolations, heredocs, brackets.
type nestScanner struct {
	src       []byte
	i         int
	pos       hcl.Pos
	stack     []byte   // '{', '[', '(', 'i' (interpolation), 's' (string), 'h' (heredoc)
	heredocs  []string // the terminators of the open heredocs
	unary     int      // the current run of '!' and '-'
	deepest   hcl.Pos
	exceeded  bool
	lineStart bool
}

// checkNesting returns an error diagnostic at the first place src nests
// deeper than maxNesting, or nil. It runs before hclsyntax.ParseConfig.
func checkNesting(name string, src []byte) *hcl.Diagnostic {
	s := &nestScanner{src: src, pos: hcl.InitialPos, lineStart: true}
	for s.i < len(s.src) && !s.exceeded {
		var top byte
		if len(s.stack) > 0 {
			top = s.stack[len(s.stack)-1]
		}
		switch top {
		case 's':
			s.inString()
		case 'h':
			s.inHeredoc()
		default:
			s.inCode()
		}
	}
	if !s.exceeded {
		return nil
	}
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf("nested more than %d levels deep; refusing to parse the file", maxNesting),
		Subject:  &hcl.Range{Filename: name, Start: s.deepest, End: s.deepest},
	}
}

// advance moves n bytes on, keeping the position.
func (s *nestScanner) advance(n int) {
	for ; n > 0 && s.i < len(s.src); n-- {
		c := s.src[s.i]
		s.i++
		s.pos.Byte++
		s.lineStart = c == '\n'
		if c == '\n' {
			s.pos.Line++
			s.pos.Column = 1
		} else if c < 0x80 || c >= 0xc0 { // count runes, not UTF-8 continuation bytes
			s.pos.Column++
		}
	}
}

func (s *nestScanner) has(prefix string) bool { return bytes.HasPrefix(s.src[s.i:], []byte(prefix)) }

func (s *nestScanner) push(kind byte) {
	s.stack = append(s.stack, kind)
	s.check()
}

func (s *nestScanner) pop() {
	if len(s.stack) > 0 {
		if s.stack[len(s.stack)-1] == 'h' {
			s.heredocs = s.heredocs[:len(s.heredocs)-1]
		}
		s.stack = s.stack[:len(s.stack)-1]
	}
}

func (s *nestScanner) check() {
	if len(s.stack)+s.unary > maxNesting {
		s.exceeded, s.deepest = true, s.pos
	}
}

// inCode scans one token's worth of expression or structure.
func (s *nestScanner) inCode() {
	c := s.src[s.i]
	switch {
	case c == '#' || s.has("//"):
		for s.i < len(s.src) && s.src[s.i] != '\n' {
			s.advance(1)
		}
		return
	case s.has("/*"):
		s.advance(2)
		for s.i < len(s.src) && !s.has("*/") {
			s.advance(1)
		}
		s.advance(2)
		return
	case c == ' ' || c == '\t' || c == '\r' || c == '\n':
		s.advance(1)
		return
	case c == '!' || c == '-':
		s.unary++
		s.check()
		s.advance(1)
		return
	}
	s.unary = 0
	switch {
	case c == '"':
		s.push('s')
	case s.has("<<"):
		s.heredoc()
		return
	case c == '{' || c == '[' || c == '(':
		s.push(c)
	case c == '}' || c == ']' || c == ')':
		s.pop()
	}
	s.advance(1)
}

// heredoc opens <<ID or <<-ID: its body runs from the next line to a line
// holding only ID.
func (s *nestScanner) heredoc() {
	s.advance(2)
	if s.has("-") {
		s.advance(1)
	}
	start := s.i
	for s.i < len(s.src) && s.src[s.i] != '\n' && s.src[s.i] != '\r' {
		s.advance(1)
	}
	s.heredocs = append(s.heredocs, strings.TrimSpace(string(s.src[start:s.i])))
	s.push('h')
	s.advance(1) // the newline: the body starts on the next line
}

// interpolation opens ${ or %{ (a $${ or %%{ is a literal); it reports
// whether it consumed anything.
func (s *nestScanner) interpolation() bool {
	switch {
	case s.has("$${") || s.has("%%{"):
		s.advance(3)
	case s.has("${") || s.has("%{"):
		s.push('i')
		s.advance(2)
	default:
		return false
	}
	return true
}

func (s *nestScanner) inString() {
	switch c := s.src[s.i]; {
	case c == '\\':
		s.advance(2)
	case c == '"' || c == '\n':
		s.pop()
		s.advance(1)
	case s.interpolation():
	default:
		s.advance(1)
	}
}

func (s *nestScanner) inHeredoc() {
	if s.lineStart {
		end := bytes.IndexByte(s.src[s.i:], '\n')
		if end < 0 {
			end = len(s.src) - s.i
		}
		if strings.TrimSpace(string(s.src[s.i:s.i+end])) == s.heredocs[len(s.heredocs)-1] {
			s.pop()
			s.advance(end)
			return
		}
	}
	if !s.interpolation() {
		s.advance(1)
	}
}

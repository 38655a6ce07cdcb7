package proc

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
)

// ELF constants, from include/uapi/linux/elf.h and the System V gABI.
const (
	elfClass32     = 1 // ELFCLASS32
	elfClass64     = 2 // ELFCLASS64
	elfData2LSB    = 1 // ELFDATA2LSB
	elfData2MSB    = 2 // ELFDATA2MSB
	ptLoad         = 1 // PT_LOAD
	ptNote         = 4 // PT_NOTE
	pfX            = 1 // PF_X: the segment is executable
	ntGNUBuildID   = 3 // NT_GNU_BUILD_ID, elf.h in glibc
	elf64HdrSize   = 64
	elf32HdrSize   = 52
	maxPhnum       = 256     // program headers read; real binaries have ~15
	maxNoteSegment = 4 << 10 // bytes of one PT_NOTE segment read; a build-id note is 36
	maxBuildID     = 64      // bytes of a build id; GNU ld writes 20 (sha1) or 16 (md5)
)

// errNoBuildID is returned for a file that is not ELF or carries no GNU
// build-id note.
var errNoBuildID = errors.New("no gnu build-id note")

// ReadBuildID returns the lowercase hex GNU build id of the ELF file r: the
// NT_GNU_BUILD_ID note that the linker writes into a PT_NOTE segment
// (.note.gnu.build-id). The note is part of the loaded image, so it
// survives renaming, copying, stripping and bytes appended to the file,
// and identifies a renamed copy of a binary independently of its size.
// Every read is bounded: at most maxPhnum program headers and
// maxNoteSegment bytes of each note segment.
func ReadBuildID(r io.ReaderAt) (string, error) {
	var hdr [elf64HdrSize]byte
	n, err := r.ReadAt(hdr[:], 0)
	if n < elf32HdrSize {
		if err == nil || err == io.EOF {
			err = errNoBuildID
		}
		return "", err
	}
	h, err := parseELFHeader(hdr[:n])
	if err != nil {
		return "", err
	}
	phs := make([]byte, int(h.phnum)*int(h.phentsize))
	if _, err := r.ReadAt(phs, int64(h.phoff)); err != nil {
		return "", errNoBuildID
	}
	for i := 0; i < int(h.phnum); i++ {
		off, size, ok := h.noteSegment(phs[i*int(h.phentsize):])
		if !ok {
			continue
		}
		seg := make([]byte, min(size, maxNoteSegment))
		n, _ := r.ReadAt(seg, int64(off))
		if id, ok := parseBuildIDNotes(seg[:n], h.order); ok {
			return id, nil
		}
	}
	return "", errNoBuildID
}

// elfHeader is what ReadBuildID needs of an ELF file header.
type elfHeader struct {
	class     byte
	order     binary.ByteOrder
	phoff     uint64
	phentsize uint16
	phnum     uint16
}

// parseELFHeader reads the identification and program header table fields
// of an ELF header, 32- or 64-bit, either byte order.
func parseELFHeader(b []byte) (elfHeader, error) {
	if len(b) < elf32HdrSize || string(b[:4]) != "\x7fELF" {
		return elfHeader{}, errNoBuildID
	}
	h := elfHeader{class: b[4]}
	switch b[5] {
	case elfData2LSB:
		h.order = binary.LittleEndian
	case elfData2MSB:
		h.order = binary.BigEndian
	default:
		return elfHeader{}, errNoBuildID
	}
	var want uint16
	switch {
	case h.class == elfClass64 && len(b) >= elf64HdrSize:
		h.phoff = h.order.Uint64(b[32:])
		h.phentsize, h.phnum, want = h.order.Uint16(b[54:]), h.order.Uint16(b[56:]), 56
	case h.class == elfClass32:
		h.phoff = uint64(h.order.Uint32(b[28:]))
		h.phentsize, h.phnum, want = h.order.Uint16(b[42:]), h.order.Uint16(b[44:]), 32
	default:
		return elfHeader{}, errNoBuildID
	}
	if h.phentsize < want || h.phnum == 0 || h.phnum > maxPhnum || h.phoff > 1<<40 {
		return elfHeader{}, errNoBuildID
	}
	return h, nil
}

// noteSegment returns the file offset and size of the program header ph
// when it is a PT_NOTE segment.
func (h elfHeader) noteSegment(ph []byte) (off, size uint64, ok bool) {
	if h.order.Uint32(ph) != ptNote {
		return 0, 0, false
	}
	if h.class == elfClass64 {
		off, size = h.order.Uint64(ph[8:]), h.order.Uint64(ph[32:])
	} else {
		off, size = uint64(h.order.Uint32(ph[4:])), uint64(h.order.Uint32(ph[16:]))
	}
	return off, size, size > 0 && off <= 1<<40
}

// parseBuildIDNotes walks the notes of one PT_NOTE segment (namesz, descsz,
// type, then name and descriptor each padded to 4 bytes) and returns the
// descriptor of the GNU build-id note in hex.
func parseBuildIDNotes(b []byte, order binary.ByteOrder) (string, bool) {
	for len(b) >= 12 {
		namesz, descsz, typ := uint64(order.Uint32(b)), uint64(order.Uint32(b[4:])), order.Uint32(b[8:])
		b = b[12:]
		nameEnd := align4(namesz)
		if nameEnd > uint64(len(b)) {
			return "", false
		}
		name := b[:namesz]
		b = b[nameEnd:]
		descEnd := align4(descsz)
		if descEnd > uint64(len(b)) {
			return "", false
		}
		if typ == ntGNUBuildID && string(name) == "GNU\x00" && descsz > 0 && descsz <= maxBuildID {
			return hex.EncodeToString(b[:descsz]), true
		}
		b = b[descEnd:]
	}
	return "", false
}

func align4(n uint64) uint64 { return (n + 3) &^ 3 }

// errNoCode is returned for a file that is not ELF or has no executable
// segment.
var errNoCode = errors.New("no executable elf segment")

// Segment is a range of an ELF file's bytes.
type Segment struct {
	Off, Size int64
}

// ExecSegments returns the file ranges of the executable PT_LOAD segments
// of the ELF file r (the code the kernel maps to run), in program header
// order, and their total size. Their bytes are the program: a build id
// note patched or removed, a stripped symbol table or bytes appended
// leave them as they were, which identifies a doctored copy of a binary
// whose code was not touched. At most maxPhnum program headers are read.
func ExecSegments(r io.ReaderAt) ([]Segment, int64, error) {
	var hdr [elf64HdrSize]byte
	n, _ := r.ReadAt(hdr[:], 0)
	h, err := parseELFHeader(hdr[:n])
	if err != nil {
		return nil, 0, errNoCode
	}
	phs := make([]byte, int(h.phnum)*int(h.phentsize))
	if _, err := r.ReadAt(phs, int64(h.phoff)); err != nil {
		return nil, 0, errNoCode
	}
	var segs []Segment
	var total int64
	for i := 0; i < int(h.phnum); i++ {
		ph := phs[i*int(h.phentsize):]
		if h.order.Uint32(ph) != ptLoad {
			continue
		}
		var flags uint32
		var off, size uint64
		if h.class == elfClass64 {
			flags, off, size = h.order.Uint32(ph[4:]), h.order.Uint64(ph[8:]), h.order.Uint64(ph[32:])
		} else {
			flags, off, size = h.order.Uint32(ph[24:]), uint64(h.order.Uint32(ph[4:])), uint64(h.order.Uint32(ph[16:]))
		}
		if flags&pfX == 0 || size == 0 {
			continue
		}
		if off > 1<<40 || size > 1<<40 {
			return nil, 0, errNoCode
		}
		segs = append(segs, Segment{Off: int64(off), Size: int64(size)})
		total += int64(size)
	}
	if len(segs) == 0 {
		return nil, 0, errNoCode
	}
	return segs, total, nil
}

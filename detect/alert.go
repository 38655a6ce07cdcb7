// Package detect evaluates compiled encoder signatures against audit events
// and produces alerts. It does no I/O: process lookups come through a small
// interface supplied by the caller.
package detect

import (
	"time"

	"github.com/encwatch/encwatch/audit"
)

// Importance levels, lowest first.
type Importance int

const (
	Info Importance = iota
	Low
	Medium
	High
	Critical
)

var importanceNames = [...]string{"info", "low", "medium", "high", "critical"}

func (i Importance) String() string {
	if i < 0 || int(i) >= len(importanceNames) {
		return "unknown"
	}
	return importanceNames[i]
}

// ParseImportance returns the Importance named s.
func ParseImportance(s string) (Importance, bool) {
	for i, n := range importanceNames {
		if n == s {
			return Importance(i), true
		}
	}
	return 0, false
}

// SignatureInfo is what an alert says about the signature that raised it.
type SignatureInfo struct {
	Name        string
	Description string
	Category    string
	Method      string
	Importance  Importance
	MITRE       []string
}

// Process is one link of an alert's ancestry chain.
type Process struct {
	PID  int
	PPID int
	Exe  string
	Argv []string
	UID  uint32
}

// Match says what part of the event a condition matched, and why it matters.
type Match struct {
	Field  string // "exe", "argv", "parent.exe", ...
	Value  string // the matched text
	Reason string
}

// Payload is an inline blob the engine decoded from a command line.
type Payload struct {
	Encoding string // "base64", "base32", "hex"
	Length   int    // decoded length in bytes
	Kind     string // "shebang", "elf", "shell", "blob", "text", "binary"
	Preview  string // safe, bounded preview of the decoded bytes
}

// Alert is one detection. It owns its Event: nothing else mutates it once the
// engine has returned it.
type Alert struct {
	ID          string // stable across retries, for receiver-side dedupe
	Time        time.Time
	Host        string
	Environment string
	Signature   SignatureInfo
	Event       *audit.Event
	Ancestry    []Process
	Matches     []Match
	Actions     []string // recommended actions for Environment
	Payload     *Payload
	Throttled   uint64 // alerts of this signature suppressed since the last one that passed
	// Mode is what the encoder tool that ran was asked to do: ModeEncode,
	// ModeDecode or ModeUnknown; "" when the process is not an encoder.
	Mode string

	// User and LoginUser name the event's uid and auid ("" when unknown or
	// unset), ContainerID the container the process ran in ("" on the
	// host). The daemon fills them in from the machine; detection does no
	// I/O.
	User, LoginUser string
	ContainerID     string
	// Related are the other processes of a correlated sequence: the first
	// step, when this alert's event completed it.
	Related []Process

	// Subject is the NATS subject a collector received the alert on (""
	// for an agent's own alert): the server's permissions tie it to the
	// publisher's credentials. ClaimedHost is the host the record named
	// when that disagreed with the subject's; Host is then the subject's.
	Subject, ClaimedHost string
}

// Package audit owns encwatch's side of the Linux kernel audit subsystem: the
// netlink data and control sockets, kernel status and tuning, the execve rules,
// the byte-level record parser and the assembler that turns the records of one
// audit serial into an Event.
//
// Everything after Source is pure data transformation and is tested without a
// kernel; the socket and rule code is tested against the real kernel.
package audit

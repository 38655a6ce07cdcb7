// Package audit is encwatch's pure side of the Linux kernel audit subsystem:
// the record types (one block of constants, in types.go), the byte-level
// record parser, the assembler that turns the records of one audit serial
// into an Event, the auditd log reader, and the validation and defaults of
// every kernel-facing setting of the policy's audit block (settings.go),
// which internal/config and audit/netlink both call.
//
// It makes no syscalls: everything here is data transformation, tested
// without a kernel. The sockets live in audit/netlink.
package audit

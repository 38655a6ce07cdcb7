// Package netlink is encwatch's kernel side of audit: the NETLINK_AUDIT
// sockets (all opened by one function), the Owner that registers as the
// kernel's audit daemon and owns its settings and execve rules, the
// Multicast reader that reads beside auditd, and the read-only Control
// client of `encwatch status`. Owner and Multicast share the batched data
// path (reader.go) and the rule set (rules.go).
//
// It checks every setting with the audit package's validators before it
// touches the kernel, and is tested against the real kernel as root.
package netlink

// Package abuse is the fault and abuse suite: each test runs the built
// encwatch daemon on the live kernel audit (owner mode, its own rule key,
// restoring the audit state it found) and attacks it for real as an
// unprivileged user (runuser -u nobody), then checks that an ordinary
// base64 -d still alerts, once, and that memory stays within its budget.
//
// The daemon runs with the shipped unit's view of the system where it
// matters: in a mount namespace of its own with private tmpfs on /tmp and
// /var/tmp (as
// PrivateTmp=yes gives it), and with the unit's capability bounding set.
// The attacks are the ones issue 10 lists: FIFOs swapped under an encoder
// copy's path, execs with megabytes of arguments, a renamed copy in /tmp,
// a write lease held on an encoder copy; and issue 18's short-lived
// renamed copies (kept, exec -a, in /tmp, deleted right after exec, build
// id patched) beside a benign user binary that must stay quiet.
//
// The tests need root and the kernel audit subsystem; they build the daemon
// from this tree unless ENCWATCH_ABUSE_BIN names a binary (to check that a
// test fails on an older build). There is no non-test code.
package abuse

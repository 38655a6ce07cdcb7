// Package packaging holds what the encwatch .deb and .rpm are built from (the
// nfpm configuration, the systemd unit, the maintainer scripts, the auditd
// plugin file and the man page) and the tests that build the packages,
// install the .deb on this machine and query the .rpm.
package packaging

#!/bin/sh
# encwatch preremove: deb prerm (remove | upgrade NEW-VERSION | deconfigure |
# failed-upgrade) and rpm %preun ($1: 0 removal, 1 or more upgrade).
#
# On removal, stop and disable encwatch.service and encwatch-collect.service
# (the collector is the same binary: left running, it would run a removed
# file); on upgrade leave them running for postinstall to restart. ENCWATCH_PKG_TESTROOT prefixes every path, for
# packaging/package_test.go.
set -e
root="${ENCWATCH_PKG_TESTROOT:-}"
units="encwatch.service encwatch-collect.service"

case "$1" in
remove | 0) ;;
*) exit 0 ;;
esac

command -v systemctl >/dev/null 2>&1 || exit 0
if [ -d "$root/run/systemd/system" ]; then
	systemctl stop $units || true
fi
# disable works offline too: it removes the symlinks enable made.
systemctl disable $units || true
exit 0

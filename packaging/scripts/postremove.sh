#!/bin/sh
# encwatch postremove: deb postrm (remove | purge | upgrade NEW-VERSION |
# abort-* | disappear) and rpm %postun ($1: 0 removal, 1 or more upgrade).
#
# After a removal, systemd forgets the unit (daemon-reload). A deb purge also
# deletes the disk spools, /var/lib/encwatch and the collector's
# /var/lib/encwatch-collect (dpkg removes the configuration
# itself); alerts written to /var/log/encwatch are evidence and stay. rpm has
# no purge: its spool stays until removed by hand. ENCWATCH_PKG_TESTROOT
# prefixes every path, for packaging/package_test.go.
set -e
root="${ENCWATCH_PKG_TESTROOT:-}"

case "$1" in
remove | purge | 0) ;;
*) exit 0 ;;
esac

if [ -d "$root/run/systemd/system" ] && command -v systemctl >/dev/null 2>&1; then
	systemctl daemon-reload || true
fi
if [ "$1" = purge ]; then
	rm -rf "$root/var/lib/encwatch" "$root/var/lib/encwatch-collect"
fi
exit 0

#!/bin/sh
# encwatch preinstall: deb preinst (install [OLD-VERSION] | upgrade
# OLD-VERSION | abort-upgrade NEW-VERSION) and rpm %pre ($1: 1 install, 2 or
# more upgrade).
#
# dpkg passes postinst the last configured version even when the package was
# removed and only its configuration was left, so postinst cannot tell that
# reinstall from an upgrade. preinst can ("install" versus "upgrade"): it
# leaves a marker in /run for postinst. rpm needs none: %post gets $1 = 1.
# ENCWATCH_PKG_TESTROOT prefixes every path, for packaging/package_test.go.
set -e
root="${ENCWATCH_PKG_TESTROOT:-}"

case "$1" in
install)
	if [ -d "$root/run" ]; then
		: >"$root/run/encwatch-pkg-install"
	fi
	;;
esac
exit 0

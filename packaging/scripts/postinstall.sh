#!/bin/sh
# encwatch postinstall: deb postinst (configure [OLD-VERSION] | abort-*) and
# rpm %post ($1: 1 install, 2 or more upgrade).
#
# First install: enable encwatch.service but do not start it; the operator
# picks the audit mode first (owner mode conflicts with auditd). Upgrade:
# restart the services that are running (encwatch.service and, where the
# operator enabled it, encwatch-collect.service). Without a running systemd (container,
# chroot, image build) the unit is still enabled, offline, and nothing is
# restarted. ENCWATCH_PKG_TESTROOT prefixes every path, for
# packaging/package_test.go.
set -e
root="${ENCWATCH_PKG_TESTROOT:-}"
unit=encwatch.service
marker="$root/run/encwatch-pkg-install"

case "$1" in
configure)
	# $2 is empty on a first install; the marker is preinst's word that this
	# is an install over configuration left by a removal.
	if [ -z "$2" ] || [ -e "$marker" ]; then
		action=install
	else
		action=upgrade
	fi
	rm -f "$marker"
	;;
1) action=install ;;
[0-9]*) action=upgrade ;;
*) exit 0 ;; # abort-upgrade, abort-remove, abort-deconfigure: nothing was stopped
esac

command -v systemctl >/dev/null 2>&1 || exit 0
running=no
[ -d "$root/run/systemd/system" ] && running=yes

if [ "$running" = yes ]; then
	systemctl daemon-reload || true
fi
case "$action" in
install)
	# enable only creates the symlinks; it works without a running systemd.
	systemctl enable "$unit" || echo "encwatch: could not enable $unit" >&2
	;;
upgrade)
	if [ "$running" = yes ]; then
		# deb-systemd-invoke honours policy-rc.d, as Debian asks.
		if command -v deb-systemd-invoke >/dev/null 2>&1; then
			deb-systemd-invoke try-restart "$unit" encwatch-collect.service || true
		else
			systemctl try-restart "$unit" encwatch-collect.service || true
		fi
	fi
	;;
esac
exit 0

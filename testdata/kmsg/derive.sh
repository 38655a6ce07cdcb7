#!/bin/sh
# derive.sh: rewrite a plain auditd log as the kernel prints its records
# when no audit daemon listens (kauditd_printk_skb, kernel/audit.c):
# "audit: type=NUMBER audit(SEC.MS:SERIAL): fields", the type a number
# (include/uapi/linux/audit.h) and no msg=. This machine's kernel records go
# to encwatch's own test daemon, not printk, so the form is derived, not
# captured. Writes NAME.kmsg (as dmesg -t or journalctl -k -o cat print it)
# and NAME.journal-short (as journalctl -k -o short prints it, with the
# capture's time and host in the syslog-style header).
#
#   testdata/kmsg/derive.sh testdata/replay-audit.log testdata/kmsg
set -eu
log=$1
outdir=$2
name=$(basename "$log" .log)
sed -e 's/^type=SYSCALL msg=/audit: type=1300 /' \
    -e 's/^type=PATH msg=/audit: type=1302 /' \
    -e 's/^type=CONFIG_CHANGE msg=/audit: type=1305 /' \
    -e 's/^type=CWD msg=/audit: type=1307 /' \
    -e 's/^type=EXECVE msg=/audit: type=1309 /' \
    -e 's/^type=EOE msg=/audit: type=1320 /' \
    -e 's/^type=BPRM_FCAPS msg=/audit: type=1321 /' \
    -e 's/^type=PROCTITLE msg=/audit: type=1327 /' \
    "$log" >"$outdir/$name.kmsg"
if grep -v '^audit: type=[0-9]* audit(' "$outdir/$name.kmsg" | grep -q .; then
  echo "derive.sh: a record type is missing from the table" >&2
  exit 1
fi
sed -e 's/^/Nov 27 06:00:59 vm kernel: /' "$outdir/$name.kmsg" >"$outdir/$name.journal-short"

#!/bin/sh
# capture.sh: forward a plain auditd log through a private rsyslogd, as
# audisp-syslog or an rsyslog relay would, and keep what rsyslog writes.
#
#   testdata/syslog/capture.sh testdata/replay-audit.log testdata/syslog
#
# It starts rsyslogd (no root needed) on 127.0.0.1 with its own config in a
# temporary directory, sends each line of the log with logger(1) over TCP,
# once as RFC 3164 and once as RFC 5424, and writes, for LOG named NAME.log:
#   NAME.rfc3164.log  RSYSLOG_TraditionalFileFormat (Mmm dd hh:mm:ss HOST TAG: MSG)
#   NAME.rfc3339.log  RSYSLOG_FileFormat (RFC 3339 timestamp HOST TAG: MSG)
#   NAME.rfc5424.log  RSYSLOG_SyslogProtocol23Format (<PRI>1 TIMESTAMP HOST APP ...)
set -eu
log=$1
outdir=$2
port=${PORT:-51514}
tmp=$(mktemp -d)
trap 'kill "$(cat "$tmp/pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$tmp"' EXIT
cat >"$tmp/rsyslog.conf" <<CONF
global(workDirectory="$tmp" maxMessageSize="64k")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="$port" ruleset="audit")
ruleset(name="audit") {
  if \$syslogtag startswith "audispd" then {
    action(type="omfile" file="$tmp/rfc3164.log" template="RSYSLOG_TraditionalFileFormat")
    action(type="omfile" file="$tmp/rfc3339.log" template="RSYSLOG_FileFormat")
  } else {
    action(type="omfile" file="$tmp/rfc5424.log" template="RSYSLOG_SyslogProtocol23Format")
  }
}
CONF
/usr/sbin/rsyslogd -n -f "$tmp/rsyslog.conf" -i "$tmp/pid" &
i=0
until logger -n 127.0.0.1 -P "$port" -T --rfc3164 -t probe probe 2>/dev/null; do
  i=$((i + 1)); [ $i -lt 100 ] || { echo "rsyslogd did not start" >&2; exit 1; }
  sleep 0.1
done
send() {
  if [ -n "${AS_HOST:-}" ]; then
    unshare -u sh -c 'hostname "$1" && shift && exec logger "$@"' sh "$AS_HOST" "$@"
  else
    logger "$@"
  fi
}
# audispd's RFC 3164 messages; audisp-syslog writes "audispd:" before the record.
send -n 127.0.0.1 -P "$port" -T --rfc3164 -S 65000 -p authpriv.info -t audispd -f "$log"
send -n 127.0.0.1 -P "$port" -T --rfc5424 -S 65000 -p authpriv.info -t audit-fwd --msgid audit -f "$log"
want=$(grep -c . "$log")
i=0
while :; do
  n3=$(grep -c 'msg=audit' "$tmp/rfc3164.log" 2>/dev/null || true)
  n5=$(grep -c 'msg=audit' "$tmp/rfc5424.log" 2>/dev/null || true)
  [ "${n3:-0}" -ge "$want" ] && [ "${n5:-0}" -ge "$want" ] && break
  i=$((i + 1)); [ $i -lt 100 ] || { echo "rsyslog wrote $n3 and $n5 of $want lines" >&2; exit 1; }
  sleep 0.1
done
kill "$(cat "$tmp/pid")"
wait
mkdir -p "$outdir"
name=$(basename "$log" .log)
for f in rfc3164 rfc3339 rfc5424; do
  grep -v ' probe' "$tmp/$f.log" >"$outdir/$name.$f.log"
done

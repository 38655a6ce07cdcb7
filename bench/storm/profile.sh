#!/bin/sh
# profile.sh: syscalls, context switches and a CPU profile per exec of a
# running encwatch during an exec storm (root). It starts `storm bench` for
# encwatch alone at RATE, attaches to the daemon once it runs, and divides
# by every execve on the machine over the same window (the daemon audits
# them all).
#
#   bench/storm/profile.sh [RATE] [SECONDS]     e.g. bench/storm/profile.sh 1000 10
#
# It prints perf stat's context switches and CPU clock, strace -c's
# syscall table (a second window: strace slows the daemon down, so its
# figures are counts, not times) and perf report's top symbols.
set -eu
RATE=${1:-1000}
SECS=${2:-10}
OUT=${OUT:-/tmp/encwatch-profile}
mkdir -p "$OUT"
./bin/storm bench -bin "${BIN:-bin/encwatch}" -config config.hcl -auditd=false -repeat 1 \
	-rates "$RATE" -duration "$((SECS * 3 + 5))s" >"$OUT/storm.txt" 2>&1 &
storm=$!
pid=""
for _ in $(seq 3000); do
	pid=$(pgrep -f ' run --config /tmp/encwatch-bench-' | head -1 || true)
	[ -n "$pid" ] && break
	sleep 0.1
done
[ -n "$pid" ] || { echo "encwatch did not start"; cat "$OUT/storm.txt"; exit 1; }
sleep 3 # the daemon's start-up and the baseline storm are not measured
perf stat -e context-switches,cpu-clock -p "$pid" -o "$OUT/perfstat.txt" -- sleep "$SECS" &
perf stat -a -e syscalls:sys_enter_execve,syscalls:sys_enter_execveat -o "$OUT/execs.txt" -- sleep "$SECS"
wait %2 2>/dev/null || true
perf record -g -p "$pid" -o "$OUT/perf.data" -- sleep "$SECS" 2>/dev/null
perf stat -a -e syscalls:sys_enter_execve,syscalls:sys_enter_execveat -o "$OUT/execs2.txt" -- sleep "$SECS" &
timeout "$SECS" strace -c -f -p "$pid" -o "$OUT/strace.txt" || true
wait
wait "$storm" || true
execs=$(awk '/sys_enter_execve/ { gsub(",", "", $1); n += $1 } END { print n }' "$OUT/execs.txt")
execs2=$(awk '/sys_enter_execve/ { gsub(",", "", $1); n += $1 } END { print n }' "$OUT/execs2.txt")
echo "execs on the machine: $execs in the perf stat window, $execs2 in the strace window"
awk -v n="$execs" '/context-switches|cpu-clock/ { gsub(",", "", $1); printf "%s per exec: %.3f\n", ($2 == "msec" ? "cpu-clock ms" : $2), $1 / n }' "$OUT/perfstat.txt"
awk -v n="$execs2" '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ { printf "%-16s %8d calls  %.3f per exec\n", $NF, $4, $4 / n }' "$OUT/strace.txt"
tail -3 "$OUT/strace.txt"
perf report -i "$OUT/perf.data" --no-children --sort symbol --stdio 2>/dev/null | grep -E '^ +[0-9.]+%' | head -25

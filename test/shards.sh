#!/bin/sh
# Runs a GoogleTest binary as N processes at once, each with its share of the
# tests (GTEST_TOTAL_SHARDS / GTEST_SHARD_INDEX). The C suites mostly wait on
# servers and timers (about 26 s of CPU in 90 s), so on 2 cores two shards take
# about half the wall time. The shards' outputs are joined, shard by shard,
# into LOG; the caller prints what it wants of it.
#   test/shards.sh N LOG command [args...]
# Exits with the first failing shard's status.
set -u
n=$1 log=$2
shift 2
pids=
i=0
while [ "$i" -lt "$n" ]; do
  GTEST_TOTAL_SHARDS=$n GTEST_SHARD_INDEX=$i "$@" > "$log.$i" 2>&1 &
  pids="$pids $!"
  i=$((i + 1))
done
rc=0 failed=
i=0
for pid in $pids; do
  wait "$pid" || { s=$?; [ "$rc" = 0 ] && rc=$s; failed="$failed $i (exit $s)"; }
  i=$((i + 1))
done
: > "$log"
i=0
while [ "$i" -lt "$n" ]; do
  { echo "---- shard $i of $n"; cat "$log.$i"; } >> "$log"
  rm -f "$log.$i"
  i=$((i + 1))
done
if [ "$rc" = 0 ]; then echo "---- all $n shards passed" >> "$log"
else echo "---- failed shards:$failed" >> "$log"; fi
exit "$rc"

#!/usr/bin/env bash
# Quern next to graphile-worker and pg-boss, in one run, on one PostgreSQL
# (the peers' cluster: ../shared/bench/peers/pg.sh, socket /tmp/peers/sock,
# port 55433, fsync and synchronous_commit on). Set up the peers first:
#   cp -r ../shared/bench/peers /tmp/peers && cd /tmp/peers && npm ci && ./pg.sh init && ./pg.sh start
# Usage: tests/bench/side_by_side.sh [BUILD_DIR] [RESULTS_FILE] [quick]
# Every measurement waits until the machine is idle (peers' waitidle.sh) and
# recreates its database. Results: one JSON line each, in RESULTS_FILE.
set -uo pipefail
BUILD=${1:-build}
RESULTS=${2:-/tmp/peers/results/side_by_side.jsonl}
PEERS=${PEERS_DIR:-/tmp/peers}
mkdir -p "$(dirname "$RESULTS")"
export RESULTS_FILE=$RESULTS
quern() {  # quern TEST JOBS CONC
  "$PEERS/waitidle.sh" >/dev/null
  "$BUILD/bin/quern_bench" --host "$PEERS/sock" --port 55433 --results "$RESULTS" "$@"
}
peer() {  # peer SYSTEM JOBS CONC TEST
  (cd "$PEERS" && ./bench.sh "$@" | tail -1)
}
for c in 1 10 50; do
  quern noop 20000 $c
  peer graphile 20000 $c noop
done
quern noop 20000 50
GW_LOCAL_QUEUE=500 GW_COMPLETE_DELAY=0 peer graphile 20000 50 noop
peer pgboss 20000 50 noop
for c in 10 50; do
  quern sleep 3000 $c
  peer graphile 3000 $c sleep
done
quern bash-sleep 3000 50
quern bash-noop 5000 10
quern latency 200 1
peer graphile 200 1 latency
quern bash-latency 200 1
quern enqueue-batch 20000 1
peer graphile 20000 1 enqueue-batch
# Many single-slot worker processes (issue 17): load, idle cost, wake-up
# latency, due times, a key's capacity. W = 200 needs max_connections of at
# least 2 W + 10 (the peers' cluster has 300).
workers() {  # workers ARGS...
  "$PEERS/waitidle.sh" >/dev/null
  "$BUILD/bin/quern_workers_bench" --host "$PEERS/sock" --port 55433 "$@" >> "$RESULTS"
}
for w in 10 50; do workers --workers $w --jobs $((w * 20)) --job-ms 100 --idle-seconds 10; done
workers --workers 10 --jobs 200 --job-ms 100 --kind bash
workers --mode latency --workers 20 --samples 300
workers --mode due --workers 10 --samples 20 --delay-ms 1500 --retry-jobs 5
workers --mode keyed --workers 2 --slots 4 --jobs 20 --job-ms 500 --max-running 2
workers --mode keyed --workers 2 --slots 4 --jobs 20 --job-ms 500 --rate-max 4 --rate-window-ms 1000
if [ "${3:-}" != quick ]; then
  # Long drain: shows whether the claim rate decays as dead tuples pile up (docs/ARCHITECTURE.md §2).
  quern --window 10 --duration 75 noop 20000 50
fi

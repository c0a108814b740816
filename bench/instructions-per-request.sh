#!/usr/bin/env bash
# bench/instructions-per-request.sh — user-space instructions per proxied request, counted
# by valgrind's callgrind, for one or more ballast builds.
#
# Requests per second and even CPU time per request move by several percent between
# identical runs on a shared machine; an instruction count does not (the same binary and
# load gave 25,799 and 25,795 per request in two runs, whatever else ran). So this is
# the figure to decide a small change by, before confirming it with bench/peers.sh. It
# sees user space only: the kernel's share (about three quarters of a proxied request's
# CPU on loopback) is not in it.
#
# Usage: bench/instructions-per-request.sh BINARY [BINARY...]
#   Each BINARY runs as `BINARY proxy --threads 1 --balance $BALANCE --to ...` under
#   callgrind, with instrumentation switched on only once it answers (start-up is not
#   counted); wrk then sends D seconds of HTTP/1.1 keep-alive requests over CONNS
#   connections (valgrind runs the proxy ~50x slower, so that is a few tens of thousands).
# Knobs: D [10] seconds, CONNS [16], BALANCE [round-robin], KEEP [unset]: keep the
#   callgrind output (the path is printed; read it with callgrind_annotate).
# Output: one line per binary: requests, instructions, instructions per request.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PEERS=${PEERS_DIR:-$ROOT/../shared/bench/peers}
D=${D:-10} CONNS=${CONNS:-16} BALANCE=${BALANCE:-round-robin}
(($#)) || { echo "usage: $0 BINARY [BINARY...]" >&2; exit 2; }
for t in nginx wrk valgrind callgrind_control callgrind_annotate curl; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install nginx wrk valgrind curl)" >&2; exit 1; }
done
for b in "$@"; do [[ -x $b ]] || { echo "not an executable: $b" >&2; exit 2; }; done

BENCH_NAME=ir
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

start_backends

i=0
for b in "$@"; do
  i=$((i + 1))
  port=$(free_port) out="$RUN/callgrind.$i.out"
  # The allocator setting ballast would re-execute itself for, set up front: valgrind
  # then follows one process.
  MIMALLOC_ARENA_EAGER_COMMIT=0 valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" \
    "$b" proxy --threads 1 --balance "$BALANCE" --listen "127.0.0.1:$port" \
    --to 127.0.0.1:9101 --to 127.0.0.1:9102 --to 127.0.0.1:9103 >"$RUN/proxy.$i.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  wait_up "$port" 30
  callgrind_control -i on "$pid" >/dev/null 2>&1
  n=$(wrk -t1 -c"$CONNS" -d"${D}s" "http://127.0.0.1:$port/" | awk '/requests in/{print $1}')
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  ir=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",", "", $1); print $1}')
  awk -v b="$b" -v n="$n" -v ir="$ir" 'BEGIN{printf "%-40s requests %7d  instructions %13d  per request %7.0f\n", b, n, ir, ir / n}'
done
[[ -z ${KEEP:-} ]] || echo "callgrind output kept in $RUN"

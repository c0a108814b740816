#!/usr/bin/env bash
# bench/cpu-per-request.sh — CPU time per proxied request (user and system, µs), ballast
# builds beside HAProxy, alternating rounds in one run.
#
# Requests per second swing by ±10% between identical runs on a shared machine; the CPU a
# proxy spends per request (from /proc/PID/stat over a wrk run) moves far less, so it is
# the figure to compare two builds by. Layout as the peer harness's 1-thread rows: nginx
# backends (the harness's config) and wrk on core 0, the proxy alone on core 1.
#
# Usage: bench/cpu-per-request.sh BINARY [BINARY...]
#   Each BINARY runs as `BINARY proxy --threads 1 --balance $BALANCE --to ...`; HAProxy
#   (nbthread 1, same balance) runs too unless HAPROXY=0.
# Knobs: ROUNDS [3] alternating rounds, D [5] seconds per load run, CONNS [64],
#   BALANCE [round-robin] (HAProxy gets roundrobin, or leastconn for least-request),
#   WRK_ARGS [] extra wrk flags (e.g. "-H 'Connection: close'" is NOT supported),
#   PROTO [h1] h1 (wrk) or h2c (h2load, 8 connections x 8 streams; CONNS and WRK_ARGS unused).
# Output: one line per run, then the median µs/request per proxy and its ratio to HAProxy.
# Run it under `flock /work/notes/bench.lock` when others share the machine.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PEERS=${PEERS_DIR:-$ROOT/../shared/bench/peers}
ROUNDS=${ROUNDS:-3} D=${D:-5} CONNS=${CONNS:-64} BALANCE=${BALANCE:-round-robin} HAPROXY=${HAPROXY:-1} PROTO=${PROTO:-h1}
(($#)) || { echo "usage: $0 BINARY [BINARY...]" >&2; exit 2; }
[[ $PROTO == h1 || $PROTO == h2c ]] || { echo "PROTO must be h1 or h2c, got '$PROTO'" >&2; exit 2; }
load=wrk; [[ $PROTO == h2c ]] && load=h2load
for t in nginx haproxy taskset "$load"; do command -v "$t" >/dev/null || { echo "missing $t (see bench/peers.sh)" >&2; exit 1; }; done
for b in "$@"; do [[ -x $b ]] || { echo "not an executable: $b" >&2; exit 2; }; done

BENCH_NAME=cpu
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

# Backends: the harness's nginx config (core 0).
start_backends 0

NAMES=() PORTS=()
for b in "$@"; do
  port=$(free_port)
  taskset -c 1 "$b" proxy --threads 1 --balance "$BALANCE" --listen "127.0.0.1:$port" \
    --to 127.0.0.1:9101 --to 127.0.0.1:9102 --to 127.0.0.1:9103 >"$RUN/proxy.$port.log" 2>&1 &
  PIDS+=($!) NAMES+=("$b") PORTS+=("$port")
done
if [[ $HAPROXY == 1 ]]; then
  port=$(free_port)
  haproxy_config "$port" "$BALANCE" "$RUN/haproxy.cfg"
  taskset -c 1 haproxy -db -f "$RUN/haproxy.cfg" >"$RUN/haproxy.log" 2>&1 &
  PIDS+=($!) NAMES+=(haproxy) PORTS+=("$port")
fi
for p in "${PORTS[@]}"; do wait_up "$p"; done

VS_LAST=$HAPROXY cpu_rounds

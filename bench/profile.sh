#!/usr/bin/env bash
# bench/profile.sh — where a proxied request's CPU goes, ballast beside HAProxy: CPU µs per
# request (user and kernel, from /proc) and a flat `perf` profile of each proxy grouped by
# component (kernel, the h2 crate, hyper, http, tokio, the allocator, memory copies,
# ballast's own code; HAProxy's own code).
#
# Layout as the peer harness's 1-thread rows: nginx backends (the harness's config) and the
# load generator on core 0, the proxy alone on core 1, one proxy at a time.
#
# Usage: bench/profile.sh BINARY
# Knobs: PROTO [h1] h1 (wrk, 64 connections) or h2c (h2load, 8 connections x 8 streams);
#   D [8] seconds of load per proxy (perf samples the middle 5 s); BALANCE [round-robin];
#   KEEP=1 keeps the perf data (the path is printed; `perf report -i` reads it);
#   FLAME=DIR also records call stacks (DWARF, 300 samples a second) and writes the
#   flamegraphs DIR/ballast-PROTO.svg and DIR/haproxy-PROTO.svg (inferno; installed with
#   `cargo install inferno` when missing).
# Needs perf (Debian's linux-perf); software cpu-clock sampling, so no hardware counters.
# Run it under `flock /work/notes/bench.lock` when others share the machine.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PEERS=${PEERS_DIR:-$ROOT/../shared/bench/peers}
PROTO=${PROTO:-h1} D=${D:-8} BALANCE=${BALANCE:-round-robin}
(($# == 1)) || { echo "usage: $0 BINARY" >&2; exit 2; }
[[ -x $1 ]] || { echo "not an executable: $1" >&2; exit 2; }
[[ $PROTO == h1 || $PROTO == h2c ]] || { echo "PROTO must be h1 or h2c, got '$PROTO'" >&2; exit 2; }
[[ $D =~ ^[0-9]+$ ]] && ((D >= 7)) || { echo "D must be a whole number of seconds, at least 7, got '$D'" >&2; exit 2; }
load=wrk; [[ $PROTO == h2c ]] && load=h2load
for t in nginx haproxy perf taskset "$load"; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install nginx haproxy linux-perf wrk nghttp2-client)" >&2; exit 1; }
done
RECORD=(-F 999)
if [[ -n ${FLAME:-} ]]; then
  mkdir -p "$FLAME"
  FLAME=$(cd "$FLAME" && pwd)
  RECORD=(-F 300 --call-graph dwarf,16384)
  if ! command -v inferno-flamegraph >/dev/null; then
    cargo install --quiet --locked inferno --root "$ROOT/target/tools"
    export PATH=$ROOT/target/tools/bin:$PATH
  fi
fi

BENCH_NAME=profile
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
start_backends 0
TCK=$(getconf CLK_TCK)

# Profiles one proxy: NAME then its command (run on core 1, listening on $port).
profile() { # NAME CMD...
  local name=$1 pid loader u0 s0 u1 s1 n
  shift
  taskset -c 1 "$@" >"$RUN/$name.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  wait_up "$port"
  # Warm up: connections to the backends opened, allocator caches filled.
  load_run "$port" 2 >/dev/null
  read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$pid/stat")
  load_run "$port" "$D" >"$RUN/$name.requests" &
  loader=$!
  sleep 1
  perf record -q -e cpu-clock "${RECORD[@]}" -p "$pid" -o "$RUN/$name.perf" -- sleep 5 >/dev/null 2>&1
  wait "$loader"
  read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$pid/stat")
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  read -r n _ _ <"$RUN/$name.requests"
  ((n > 0)) || { echo "$name answered no request" >&2; exit 1; }
  awk -v n="$n" -v du=$((u1 - u0)) -v ds=$((s1 - s0)) -v t="$TCK" -v name="$name" -v d="$D" \
    'BEGIN{printf "%s: %d requests/s, CPU per request %.2f µs (user %.2f, kernel %.2f)\n", name, n/d, (du+ds)/t*1e6/n, du/t*1e6/n, ds/t*1e6/n}' |
    tee "$RUN/$name.cpu"
  perf report -i "$RUN/$name.perf" --no-children --sort dso,sym --stdio -g none 2>/dev/null >"$RUN/$name.report"
  if [[ -n ${FLAME:-} ]]; then
    perf script -i "$RUN/$name.perf" 2>/dev/null | inferno-collapse-perf |
      inferno-flamegraph --title "$name, $PROTO, 1 thread" >"$FLAME/$name-$PROTO.svg"
    echo "flamegraph: $FLAME/$name-$PROTO.svg"
  fi
}

port=$(free_port)
profile ballast "$1" proxy --threads 1 --balance "$BALANCE" --listen "127.0.0.1:$port" \
  --to 127.0.0.1:9101 --to 127.0.0.1:9102 --to 127.0.0.1:9103
haproxy_config "$port" "$BALANCE" "$RUN/haproxy.cfg"
profile haproxy haproxy -db -f "$RUN/haproxy.cfg"

python3 "$ROOT/bench/profile_report.py" "$RUN/ballast.report" "$RUN/ballast.cpu" "$RUN/haproxy.report" "$RUN/haproxy.cpu"
[[ -n ${KEEP:-} ]] && echo "perf data kept in $RUN"
exit 0

#!/usr/bin/env bash
# bench/peers.sh — ballast beside HAProxy and nginx, same machine, same run.
#
# Plugs `ballast proxy` into the shared peer harness (../shared/bench/peers/bench.sh, see
# its header for the PROXY_CMD interface) once per mode and prints one table:
#   1. main, 1 thread:  haproxy nbthread 1, nginx 1 worker, ballast --threads 1 (core 1)
#   2. main, 2 threads: haproxy nbthread 2, nginx 2 workers, ballast --threads 2 (cores 0,1)
#      (HTTP/1.1 keep-alive with wrk and h2c with h2load for every row)
#   3. hetero: backend :9103 answers SLOW_MS later; ballast least-request, peak-ewma, adaptive
#      (and round-robin) beside HAProxy leastconn/roundrobin and nginx least_conn.
#   4. hetero5: the same with the slow backend 5 ms late.
#   5. guarded: hetero through `ballast serve` with health checks, outlier detection,
#      circuit breakers and the retry budget on (bench/ballast-guarded.sh).
#   6. homog: 3 equal backends (the main case, HTTP/1.1), ballast round-robin and adaptive
#      alternately (HOMOG_PAIRS pairs, default 3), 1 thread; prints adaptive's RPS over
#      round-robin's per pair and the median (adaptive must not cost more than 5% where
#      there is nothing to adapt to).
#   The slow backend recovering mid-run is bench/recovery.sh (the harness cannot do it).
# Each row reports RPS, p50, p90, p99 and the proxy's peak RSS; `ratio` columns compare
# ballast with HAProxy of the same thread count in the same invocation.
#
# Usage: bench/peers.sh [main1|main2|hetero|hetero5|guarded|homog|all]   (default all; ~12 min)
# Knobs: DURATION, CONNS, SLOW_MS, ... pass through to bench.sh. BALLAST=path/to/binary
# (default: builds target/release/ballast); BALLAST_ARGS: extra `ballast proxy` flags.
# OUT (default target/bench-peers/<stamp>).
# RUNS=N (default 1) runs each chosen mode (except homog, which pairs by itself) N times
# in turn (main1, main2, ..., then again): this shared machine's speed drifts by ±20%
# within minutes, so one run's ratio can land either side of a target. The report then
# adds, per ballast row, every run's ratio to HAProxy and their median.
# BRACKET=1 (default; 0 = off): main and hetero modes run HAProxy again right after
# ballast (see `bracket`), ~40 s more per mode.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HARNESS=${HARNESS:-$ROOT/../shared/bench/peers/bench.sh}
WHAT=${1:-all}
RUNS=${RUNS:-1}
[[ $RUNS =~ ^[1-9][0-9]{0,2}$ ]] || { echo "RUNS must be a whole number from 1 to 999, got \"$RUNS\"" >&2; exit 2; }
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=${OUT:-$ROOT/target/bench-peers/$STAMP}
mkdir -p "$OUT"

[[ -x $HARNESS ]] || { echo "peer harness not found at $HARNESS (set HARNESS=)" >&2; exit 1; }

# The harness's tools, from Debian's packages.
need=()
for t in haproxy nginx wrk h2load curl taskset; do command -v "$t" >/dev/null || need+=("$t"); done
[[ -f /usr/lib/nginx/modules/ngx_http_echo_module.so ]] || need+=(echo-module)
if ((${#need[@]})); then
  echo "installing peer tools (missing: ${need[*]})"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy nginx wrk nghttp2-client \
    libnginx-mod-http-echo util-linux curl >/dev/null
fi

if [[ -z ${BALLAST:-} ]]; then
  (cd "$ROOT" && cargo build --release -q -p ballast)
  BALLAST=$ROOT/target/release/ballast
fi
export BALLAST

# ballast's command for the harness (single quotes: the harness expands the variables).
# BALLAST_ARGS: more `ballast proxy` flags for every ballast row (e.g. the forwarding
# switches, to add no more to requests than the peers' configs do).
export BALLAST_ARGS=${BALLAST_ARGS:-}
CMD='exec $BALLAST proxy --listen 127.0.0.1:$PROXY_PORT --to $BACKENDS --balance $LB_POLICY --threads $BALLAST_THREADS $BALLAST_ARGS'
export BALLAST_THREADS=1

# The harness gives every session it starts the priority NICE, but it writes the session's
# autogroup nice right after forking, racing the child's own setsid(), and renices only
# the main thread. On a busy machine a proxy can thus run at nice 0 while the load
# generator runs at NICE (seen here: ballast's worker thread, started before the renice,
# stayed at 0). This watcher applies NICE to every thread and session of every process
# under test (load generators, backends, all proxies alike: every descendant of this
# script) while a mode runs.
#
# Both watchers are bench/watch.py: each wakes once a second and reads a process in full
# only in its first seconds, so that neither stalls the proxy sharing its core. Measured
# with HAProxy and ballast alike (wrk alone, 1 thread, 2 rounds of 3 rows): with no
# watchers both proxies' p99 was 1.7-2.9 ms; with the first ones (every 0.2 s a ps and a
# renice for every thread of every process, and a /proc scan) 3.8-5.6 ms, and 10-30% less
# throughput; with the same scans once a second 2.8-4.4 ms. Pinned to the load
# generator's core (at 0.2 s), they stalled wrk instead: 4.5-5.3 ms.
PRIO=
start_prio() {
  [[ ${NICE:-0} != 0 ]] || return 0
  python3 "$ROOT/bench/watch.py" nice $$ "$NICE" &
  PRIO=$!
}
stop_prio() { [[ -n $PRIO ]] && kill "$PRIO" 2>/dev/null; wait "$PRIO" 2>/dev/null || true; PRIO=; }

# Peak memory (VmHWM) of every proxy (ballast, haproxy, nginx workers summed) while a mode runs.
SAMPLER=
start_rss() { python3 "$ROOT/bench/watch.py" rss "$1" & SAMPLER=$!; }
stop_rss() { kill -TERM "$SAMPLER" 2>/dev/null; wait "$SAMPLER" 2>/dev/null || true; }
trap 'stop_rss; stop_prio' EXIT

# Output directory of one mode's run: NAME, or NAME.rK when RUNS > 1 (K = RUN).
RUN=1
run_dir() { if ((RUNS > 1)); then echo "$OUT/$1.r$RUN"; else echo "$OUT/$1"; fi; }

run_main() { # threads
  local nt=$1 cpus peers dir
  if [[ $nt == 1 ]]; then cpus=1 peers="haproxy-nt1 nginx-w1"; else cpus=0,1 peers="haproxy-nt2 nginx-w2"; fi
  dir=$(run_dir "main-t$nt")
  start_rss "$OUT/rss-${dir##*/}.tsv"
  BALLAST_THREADS=$nt PEERS=$peers PROXY_NAME=ballast-t$nt PROXY_H2=1 PROXY_CPUS=$cpus \
    PROXY_POLICIES=round-robin PROXY_CMD=$CMD OUT=$dir "$HARNESS" main
  stop_rss
  bracket "$dir" main PEERS="haproxy-nt$nt"
}

# HAProxy once more right after a mode's run (BRACKET=1, the default), so ballast's row
# sits between two HAProxy rows: the report then compares it with their mean and prints
# how far HAProxy moved from one to the other. On this shared machine the speed drifts
# by ±20% within minutes; a ratio taken across a large drift says more about the
# machine than about the proxies, and the report says which runs drifted.
bracket() { # run-dir harness-mode VAR=value...
  local dir=$1 mode=$2
  shift 2
  ((${BRACKET:-1})) || return 0
  env "$@" PROXY_CMD= OUT="$(dirname "$dir")/after-$(basename "$dir")" "$HARNESS" "$mode"
}

run_hetero() { # [out-name]
  local dir
  dir=$(run_dir "${1:-hetero}")
  PROXY_NAME=ballast PROXY_POLICIES=${BALLAST_POLICIES:-"round-robin least-request peak-ewma adaptive"} \
    HETERO_ROWS=${HETERO_ROWS:-"haproxy-nt1@roundrobin haproxy-nt1@leastconn haproxy-nt1@random(2) nginx-w1@least_conn"} \
    PROXY_CMD=$CMD OUT=$dir "$HARNESS" hetero
  bracket "$dir" hetero HETERO_ROWS="haproxy-nt1@leastconn"
}

# The same heterogeneous case through `ballast serve` with health checks, outlier
# detection, circuit breakers and the retry budget on: what the guards cost.
run_guarded() {
  PROXY_NAME=ballast-guarded PROXY_POLICIES=${BALLAST_POLICIES:-"least-request peak-ewma adaptive"} \
    HETERO_ROWS=${HETERO_ROWS:-"haproxy-nt1@leastconn"} \
    PROXY_CMD="exec $ROOT/bench/ballast-guarded.sh" OUT=$(run_dir guarded) "$HARNESS" hetero
}

# Equal backends: round-robin and adaptive alternately, HOMOG_PAIRS times (default 3),
# same harness settings; prints each pair's RPS ratio and their median. Pairs, because
# the machine's speed drifts between harness invocations by more than the 5% looked for.
run_homog() {
  local k pol
  for ((k = 1; k <= ${HOMOG_PAIRS:-3}; k++)); do
    for pol in round-robin adaptive; do
      PEERS= H2=0 PROXY_NAME=ballast-$pol PROXY_POLICIES=$pol PROXY_CMD=$CMD \
        OUT=$OUT/homog$k-$pol "$HARNESS" main
    done
  done
}

# "homog: adaptive/round-robin rps ..." from the homog summaries. Each run's ballast RPS
# is taken relative to the no-proxy (direct) row measured just before it in the same
# run, so a pair compares the two policies net of the machine's speed at that moment
# (the direct row alone moved between 47k and 70k req/s from one run to the next).
homog_ratio() {
  python3 - "$OUT" <<'PY'
import csv, glob, os, statistics, sys
ratios = []
for rr in sorted(glob.glob(os.path.join(sys.argv[1], "homog*-round-robin"))):
    rps, direct = {}, {}
    for pol in ("round-robin", "adaptive"):
        path = os.path.join(rr.removesuffix("-round-robin") + f"-{pol}", "summary.tsv")
        for r in csv.DictReader(open(path), delimiter="\t"):
            if r["row"].startswith("ballast"):
                rps[pol] = float(r["rps"])
            elif r["row"] == "direct":
                direct[pol] = float(r["rps"])
    if len(rps) == 2 and len(direct) == 2 and min(rps.values()) > 0 and min(direct.values()) > 0:
        net = {pol: rps[pol] / direct[pol] for pol in rps}
        ratios.append(net["adaptive"] / net["round-robin"])
        print(f"homog pair {len(ratios)}: adaptive {rps['adaptive']:.0f} ({net['adaptive']:.2f}x direct)"
              f" / round-robin {rps['round-robin']:.0f} ({net['round-robin']:.2f}x direct) = {ratios[-1]:.3f}")
if ratios:
    print(f"homog: adaptive/round-robin rps, each relative to its run's direct row, median of {len(ratios)} pairs = {statistics.median(ratios):.3f}")
PY
}

start_prio
for ((RUN = 1; RUN <= RUNS; RUN++)); do
  case $WHAT in
    main1) run_main 1 ;;
    main2) run_main 2 ;;
    hetero) run_hetero ;;
    hetero5) SLOW_MS=5 run_hetero hetero5 ;;
    guarded) run_guarded ;;
    homog) ((RUN > 1)) || run_homog ;;
    all) run_main 1; run_main 2; run_hetero; SLOW_MS=5 run_hetero hetero5; run_guarded; ((RUN > 1)) || run_homog ;;
    *) echo "usage: $0 [main1|main2|hetero|hetero5|guarded|homog|all]" >&2; exit 2 ;;
  esac
done

python3 "$ROOT/bench/peers_report.py" "$OUT" | tee "$OUT/report.txt"
if [[ $WHAT == homog || $WHAT == all ]]; then homog_ratio | tee -a "$OUT/report.txt"; fi

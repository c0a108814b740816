#!/usr/bin/env bash
# bench/recovery.sh — does a slow backend that recovers get its traffic back, and how fast?
#
# The shared peer harness cannot change a backend mid-run, so this script runs its own
# three demo backends (ports 9401–9403): two answer at once, the third answers SLOW_MS
# late for the first half of the run only (`--slow-for`), then as fast as the others.
# By default the three are one `ballast demo-backend` process (the third's port plus two
# `--extra-port`s), as the harness's backends are one nginx: three processes on the core
# that wrk saturates do not behave like three hosts. There an idle one waits for the core
# behind the busy ones and answers 2-7x slower *because* it is idle, so a latency-aware
# balancer keeps avoiding it. BACKEND_PROCS=3 runs them as three processes anyway.
# In front of them, one proxy per row (port 9400): ballast with each of $POLICIES, and
# HAProxy with each of $HAPROXY_POLICIES (the shared harness's haproxy.cfg.in, 1 thread).
# wrk drives CONNS keep-alive connections for DURATION seconds; every second the
# backends' request counters (GET /stats) are read, and the script prints, per row, the
# recovered backend's share of the requests in each second, its share while slow, and the
# time from the recovery until its share first reaches 80% of a fair share (1/3).
#
# Usage: bench/recovery.sh            (~25 s per row; run under the bench lock:
#        flock /work/notes/bench.lock env NICE=-10 bench/recovery.sh)
# Knobs: DURATION [20] RECOVER_AT [DURATION/2] SLOW_MS [20] CONNS [64] BACKEND_PROCS [1]
#        POLICIES ["adaptive peak-ewma least-request"] HAPROXY_POLICIES [leastconn]
#        BALLAST (default target/release/ballast, built if missing) OUT NICE [0]
#        PIN [1]: wrk and the backends on core LG_CPUS [0], the proxy on PX_CPUS [1].
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-20}
RECOVER_AT=${RECOVER_AT:-$((DURATION / 2))}
SLOW_MS=${SLOW_MS:-20}
CONNS=${CONNS:-64}
POLICIES=${POLICIES-"adaptive peak-ewma least-request"}
HAPROXY_POLICIES=${HAPROXY_POLICIES-leastconn}
NICE=${NICE:-0}
PIN=${PIN:-1}
BACKEND_PROCS=${BACKEND_PROCS:-1}
LG_CPUS=${LG_CPUS:-0}
PX_CPUS=${PX_CPUS:-1}
SETUP=3 # seconds between the backends' start and the measured run (proxy start-up)
HAPROXY_CONF=${HAPROXY_CONF:-$ROOT/../shared/bench/peers/conf/haproxy.cfg.in}
OUT=${OUT:-$ROOT/target/bench-recovery/$(date +%Y%m%d-%H%M%S)}
PORT=9400
BE_PORTS=(9401 9402 9403)
mkdir -p "$OUT"

for v in DURATION RECOVER_AT SLOW_MS CONNS; do
  [[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || { echo "$v must be a positive whole number, got '${!v}'" >&2; exit 2; }
done
[[ $BACKEND_PROCS == 1 || $BACKEND_PROCS == 3 ]] || { echo "BACKEND_PROCS must be 1 or 3, got '$BACKEND_PROCS'" >&2; exit 2; }
((RECOVER_AT < DURATION)) || { echo "RECOVER_AT ($RECOVER_AT) must be below DURATION ($DURATION)" >&2; exit 2; }
for t in wrk curl python3 taskset; do command -v "$t" >/dev/null || { echo "missing tool: $t" >&2; exit 1; }; done
if [[ -n $HAPROXY_POLICIES ]]; then
  command -v haproxy >/dev/null || { echo "missing tool: haproxy (or set HAPROXY_POLICIES=)" >&2; exit 1; }
  [[ -f $HAPROXY_CONF ]] || { echo "HAProxy template not found: $HAPROXY_CONF" >&2; exit 1; }
fi
if [[ -z ${BALLAST:-} ]]; then
  BALLAST=$ROOT/target/release/ballast
  [[ -x $BALLAST ]] || (cd "$ROOT" && cargo build --release -q -p ballast)
fi

pin() { if [[ $PIN == 1 ]]; then echo "taskset -c $1"; fi; }
# Like the harness: with sched_autogroup each session needs its own autogroup niceness.
set_prio() {
  [[ $NICE == 0 ]] && return 0
  renice -n "$NICE" -p "$1" >/dev/null 2>&1 || true
  if [[ -w /proc/$1/autogroup ]]; then echo "$NICE" >"/proc/$1/autogroup" 2>/dev/null || true; fi
}
set_prio $$

# Every process we start, by PID (each in its own session, so PID = process group).
PIDS=()
start_bg() { # name cpus cmd...
  local name=$1 cpus=$2; shift 2
  # shellcheck disable=SC2046
  setsid $(pin "$cpus") "$@" >"$OUT/$name.log" 2>&1 </dev/null &
  PIDS+=("$!")
  set_prio "$!"
  LAST_PID=$!
}
stop_all() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}
trap stop_all EXIT

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for() { # what cmd... : bounded poll (15 s) until cmd succeeds
  local what=$1; shift
  for _ in $(seq 150); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "$what did not come up; logs in $OUT" >&2
  return 1
}

start_backends() { # row
  local i slow
  for p in "${BE_PORTS[@]}" $PORT; do port_free "$p" || { echo "port $p busy" >&2; exit 1; }; done
  local recovers=(--latency "${SLOW_MS}ms" --slow-for "$((SETUP + RECOVER_AT))s")
  if ((BACKEND_PROCS == 1)); then
    start_bg "$1.backends" "$LG_CPUS" "$BALLAST" demo-backend --port "${BE_PORTS[2]}" --name b3 \
      "${recovers[@]}" --extra-port "${BE_PORTS[0]}" --extra-port "${BE_PORTS[1]}"
  else
    for i in 0 1 2; do
      slow=()
      ((i == 2)) && slow=("${recovers[@]}")
      start_bg "$1.backend$((i + 1))" "$LG_CPUS" "$BALLAST" demo-backend --port "${BE_PORTS[i]}" \
        --name "b$((i + 1))" "${slow[@]}"
    done
  fi
  T0=$(date +%s.%N)
  for i in 0 1 2; do wait_for "backend ${BE_PORTS[i]}" curl -sf "http://127.0.0.1:${BE_PORTS[i]}/health"; done
}

start_proxy() { # row kind policy
  local backends servers
  backends=$(printf '127.0.0.1:%s,' "${BE_PORTS[@]}")
  case $2 in
    ballast)
      start_bg "$1.proxy" "$PX_CPUS" "$BALLAST" proxy --listen "127.0.0.1:$PORT" --to "${backends%,}" \
        --balance "$3" --threads 1 ;;
    haproxy)
      servers=$(printf '    server b%s 127.0.0.1:%s\n' 1 9401 2 9402 3 9403)
      sed -e "s#@NBTHREAD@#1#" -e "s#@PORT@#$PORT#" -e "s#@BALANCE@#$3#" "$HAPROXY_CONF" |
        awk -v s="$servers" '{ if ($0=="@SERVERS@") print s; else print }' >"$OUT/$1.haproxy.cfg"
      start_bg "$1.proxy" "$PX_CPUS" haproxy -db -f "$OUT/$1.haproxy.cfg" ;;
  esac
  wait_for "$1 proxy" curl -sf "http://127.0.0.1:$PORT/"
}

# Samples the three counters once a second from START for DURATION seconds: TSV lines
# "second b1 b2 b3" (requests completed in that second).
sample() { # start
  python3 - "$1" "$DURATION" "${BE_PORTS[@]}" <<'PY'
import json, sys, time, urllib.request
start, duration, ports = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
def counts():
    out = []
    for p in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{p}/stats", timeout=2) as r:
            out.append(json.load(r)["requests"])
    return out
time.sleep(max(0.0, start - time.time()))
prev = counts()
for k in range(1, duration + 1):
    time.sleep(max(0.0, start + k - time.time()))
    now = counts()
    print(k, *[b - a for a, b in zip(prev, now)], sep="\t", flush=True)
    prev = now
PY
}

# Prints one row's summary from its per-second TSV and wrk output.
summarize() { # row tsv wrk
  python3 - "$1" "$2" "$3" "$RECOVER_AT" <<'PY'
import re, sys
row, tsv, wrk, recover = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
secs = [list(map(int, l.split("\t"))) for l in open(tsv) if l.strip()]
share = {s[0]: (s[3] / sum(s[1:4]) if sum(s[1:4]) else 0.0) for s in secs}
fair = 1 / 3
slow = [s for s in secs if 2 < s[0] <= recover]
slow_share = sum(s[3] for s in slow) / max(1, sum(sum(s[1:4]) for s in slow))
after = [k for k in sorted(share) if k - 1 >= recover]
back = next((k for k in after if share[k] >= 0.8 * fair), None)
tail = after[-3:]
tail_share = sum(share[k] for k in tail) / max(1, len(tail))
text = open(wrk).read()
rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M)
back_txt = f"{back - recover} s" if back is not None else "never"
print(f"{row:28} rps {float(rps.group(1)) if rps else 0:>8.0f}  p99 {p99.group(1) if p99 else '-':>8}  "
      f"share while slow {100 * slow_share:5.2f}%  back to >=80% of fair share after {back_txt:>5}  "
      f"last 3 s {100 * tail_share:4.1f}%")
print("  per second (%): " + " ".join(f"{100 * share[k]:.0f}" for k in sorted(share)))
PY
}

run_row() { # kind policy
  local row=$1-$2 start
  start_backends "$row"
  start_proxy "$row" "$1" "$2"
  start=$(python3 -c "print($T0 + $SETUP)")
  sample "$start" >"$OUT/$row.tsv" &
  local sampler=$!
  python3 -c "import time; time.sleep(max(0.0, $start - time.time()))"
  # shellcheck disable=SC2046
  $(pin "$LG_CPUS") timeout $((DURATION + 15)) wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency \
    "http://127.0.0.1:$PORT/" >"$OUT/$row.wrk.txt" 2>&1 || true
  wait "$sampler" || echo "$row: the counter sampler failed" >&2
  stop_all
  summarize "$row" "$OUT/$row.tsv" "$OUT/$row.wrk.txt" | tee -a "$OUT/report.txt"
}

echo "# recovery: backend 3 is ${SLOW_MS} ms late until ${RECOVER_AT} s into a ${DURATION} s run; $CONNS connections" |
  tee "$OUT/report.txt"
for pol in $POLICIES; do run_row ballast "$pol"; done
for pol in $HAPROXY_POLICIES; do run_row haproxy "$pol"; done
echo "# results in $OUT"

# bench/lib.sh — sourced by bench/cpu-per-request.sh, bench/instructions-per-request.sh and
# bench/profile.sh: a scratch directory and a list of started processes, both cleaned up on
# exit; free ports; readiness waits; the shared harness's nginx backends on ports 9101-9103
# and an HAProxy config in front of them.
# Before sourcing, set PEERS (the harness directory) and BENCH_NAME (names the scratch
# directory). KEEP=1 keeps the scratch directory.

RUN=$(mktemp -d "/tmp/ballast-$BENCH_NAME.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [[ -n ${KEEP:-} ]] || rm -rf "$RUN"
}
trap cleanup EXIT

# A port the OS has free right now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits until GET / on PORT answers 2xx, at most SECONDS (default 10).
wait_up() { # PORT [SECONDS]
  local tries=$((${2:-10} * 10))
  for _ in $(seq "$tries"); do curl -sf -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.1; done
  echo "nothing answers on :$1" >&2
  return 1
}

# The harness's nginx backends (1 worker, ports 9101-9103, body "ok\n"), pinned to CPUS
# when given; waits until they answer.
start_backends() { # [CPUS]
  local pin=()
  [[ -n ${1:-} ]] && pin=(taskset -c "$1")
  mkdir -p "$RUN/tmp"
  sed -e "s#@RUN@#$RUN#g" -e "s#@LOAD_ECHO@##" "$PEERS/conf/backends.nginx.conf.in" |
    awk '{ if ($0=="@SERVER_9103@") print "    server { listen 127.0.0.1:9103; location / { return 200 \"ok\\n\"; } }"; else print }' >"$RUN/backends.conf"
  "${pin[@]}" nginx -e "$RUN/be.err" -p "$RUN" -c "$RUN/backends.conf" >/dev/null 2>&1 &
  PIDS+=($!)
  wait_up 9101
}

# Writes to OUT a one-thread HAProxy config from the harness's template, listening on PORT
# in front of the backends and balancing as ballast's BALANCE does (leastconn for
# least-request, else roundrobin).
haproxy_config() { # PORT BALANCE OUT
  local balance=roundrobin servers
  [[ $2 == least-request ]] && balance=leastconn
  servers=$(printf '    server b%s 127.0.0.1:%s\n' 1 9101 2 9102 3 9103)
  sed -e "s#@NBTHREAD@#1#" -e "s#@PORT@#$1#" -e "s#@BALANCE@#$balance#" "$PEERS/conf/haproxy.cfg.in" |
    awk -v s="$servers" '{ if ($0=="@SERVERS@") print s; else print }' >"$3"
}

# One load run on PORT for SECONDS from core 0: PROTO=h1 is wrk (CONNS connections, extra
# flags from WRK_ARGS), PROTO=h2c is h2load (8 connections x 8 streams). Prints one line:
# requests answered, requests per second, and failures (non-2xx/3xx answers, socket
# errors, failed or errored streams).
load_run() { # PORT SECONDS
  local out
  if [[ ${PROTO:-h1} == h1 ]]; then
    out=$(taskset -c 0 wrk -t1 -c"${CONNS:-64}" -d"$2s" ${WRK_ARGS:-} "http://127.0.0.1:$1/")
    awk '/requests in/ { n = $1 } /Requests\/sec/ { rps = $2 } /Non-2xx/ { bad += $NF }
      /Socket errors/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) bad += $i }
      END { print n + 0, rps + 0, bad + 0 }' <<<"$out"
  else
    out=$(taskset -c 0 h2load -c8 -m8 -D "$2" "http://127.0.0.1:$1/")
    awk '/^requests:/ { n = $8; bad = $10 + $12 } /^finished in/ { rps = $4 }
      END { print n + 0, rps + 0, bad + 0 }' <<<"$out"
  fi
}

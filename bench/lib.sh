# bench/lib.sh — sourced by bench/cpu-per-request.sh, bench/h2-server-cost.sh,
# bench/instructions-per-request.sh and bench/profile.sh: a scratch directory and a list of
# started processes, both cleaned up on exit; free ports; readiness waits; the shared
# harness's nginx backends on ports 9101-9103 and an HAProxy config in front of them; load
# runs, and rounds of them that measure the CPU each server spends per request.
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

# Waits until GET / on PORT answers 2xx, at most SECONDS (default 10); asked in HTTP/2
# (prior knowledge) when PROTO=h2c, for servers that speak nothing else.
wait_up() { # PORT [SECONDS]
  local tries=$((${2:-10} * 10)) h2=()
  [[ ${PROTO:-h1} == h2c ]] && h2=(--http2-prior-knowledge)
  for _ in $(seq "$tries"); do curl -sf "${h2[@]}" -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.1; done
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
  PROTO=h1 wait_up 9101  # nginx here speaks HTTP/1.1 only
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

# The PID of the process listening on PORT.
pid_on() { ss -ltnpH "sport = :$1" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2; }

# The median of the numbers on stdin (whitespace-separated).
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }

# ROUNDS alternating rounds: loads each server of the caller's arrays NAMES and PORTS in turn
# for D seconds (load_run: PROTO picks wrk or h2load) and prints the user, system and total
# CPU µs its process spent per request, read from /proc; then each one's median total, with
# its ratio to the last server's when VS_LAST=1 (the scripts put HAProxy last).
cpu_rounds() {
  local tck r i port pid u0 s0 u1 s1 n rps failed errs us sy tot m h last
  local -A all
  tck=$(getconf CLK_TCK)
  for r in $(seq "$ROUNDS"); do
    for i in "${!PORTS[@]}"; do
      port=${PORTS[$i]} pid=$(pid_on "${PORTS[$i]}")
      read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$pid/stat")
      read -r n rps failed < <(load_run "$port" "$D")
      read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$pid/stat")
      ((n > 0)) || { echo "round $r: ${NAMES[$i]} answered no request" >&2; return 1; }
      errs=; ((failed == 0)) || errs="($failed failed)"
      read -r us sy tot < <(awk -v n="$n" -v du=$((u1 - u0)) -v ds=$((s1 - s0)) -v t="$tck" \
        'BEGIN{printf "%.2f %.2f %.2f\n", du/t*1e6/n, ds/t*1e6/n, (du+ds)/t*1e6/n}')
      printf 'round %s  %-40s rps %8.0f  user %5.2f  sys %5.2f  total %5.2f us/req %s\n' "$r" "${NAMES[$i]}" \
        "$rps" "$us" "$sy" "$tot" "$errs"
      all[$i]="${all[$i]:-} $tot"
    done
  done
  last=$((${#PORTS[@]} - 1))
  echo "median µs/request over $ROUNDS rounds:"
  for i in "${!PORTS[@]}"; do
    m=$(median <<<"${all[$i]}")
    if [[ ${VS_LAST:-0} == 1 && $i != "$last" ]]; then
      h=$(median <<<"${all[$last]}")
      printf '  %-40s %6.2f  (%.3fx %s)\n' "${NAMES[$i]}" "$m" "$(awk -v a="$m" -v b="$h" 'BEGIN{print a/b}')" "${NAMES[$last]}"
    else
      printf '  %-40s %6.2f\n' "${NAMES[$i]}" "$m"
    fi
  done
}

#!/usr/bin/env bash
# ballast-guarded.sh — PROXY_CMD for the peer harness that runs `ballast serve` with every
# guard on (active health checks, outlier detection, circuit breakers, retry budget), so
# the heterogeneous benchmark can show what the guards cost. Reads the harness's
# PROXY_PORT, BACKENDS and LB_POLICY, and BALLAST / BALLAST_THREADS from bench/peers.sh.
set -euo pipefail
conf=$(mktemp --suffix=.toml)
trap 'rm -f "$conf"' EXIT
{
  printf '[[balancer]]\nname = "bench"\nlisten = "127.0.0.1:%s"\n' "$PROXY_PORT"
  printf '[[balancer.route]]\nsplit = [{ pool = "be" }]\n'
  printf '[[pool]]\nname = "be"\nbalance = "%s"\n' "$LB_POLICY"
  printf '[pool.health]\nkind = "http"\npath = "/"\ninterval = "1s"\ntimeout = "500ms"\n'
  printf '[pool.outlier]\nconsecutive_failures = 5\n'
  printf '[pool.circuit_breaker]\nfailure_threshold = 5\nrecovery_timeout = "30s"\n'
  printf '[pool.retry]\nattempts = 1\nbudget_percent = 20.0\n'
  IFS=, read -ra addrs <<<"$BACKENDS"
  for a in "${addrs[@]}"; do printf '[[pool.instance]]\naddress = "%s"\n' "$a"; done
} >"$conf"
"$BALLAST" check "$conf" >/dev/null
"$BALLAST" serve --config "$conf" --threads "${BALLAST_THREADS:-1}" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid; rm -f "$conf"' TERM INT
wait $pid

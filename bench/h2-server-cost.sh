#!/usr/bin/env bash
# bench/h2-server-cost.sh — what an HTTP/2 (h2c) server costs per request before any
# proxying: hyper's HTTP/2 server, as ballast runs it, beside HAProxy's, both answering
# every request themselves with a fixed 200 (no backend), alternating rounds in one run.
#
# ballast's h2c requests cost more CPU than HAProxy's (bench/profile.sh); this splits that
# gap into the HTTP/2 server's part, measured here, and the proxy path's (the rest).
# hyper's side is crates/ballast-proxy/examples/h2_fixed_response.rs (built here in
# release); HAProxy's is `http-request return`. Each server alone on core 1, h2load
# (8 connections x 8 streams) on core 0; CPU from /proc/PID/stat.
#
# Usage: bench/h2-server-cost.sh
# Knobs: ROUNDS [3] alternating rounds, D [5] seconds per load run.
# Output: one line per run, then the median µs/request of each and hyper's ratio to HAProxy.
# Run it under `flock /work/notes/bench.lock` when others share the machine.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PEERS=${PEERS_DIR:-$ROOT/../shared/bench/peers}
ROUNDS=${ROUNDS-3} D=${D-5} PROTO=h2c
(($# == 0)) || { echo "usage: $0 (no arguments; knobs ROUNDS and D from the environment)" >&2; exit 2; }
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS must be a whole number of rounds, at least 1; got '$ROUNDS'" >&2; exit 2; }
[[ $D =~ ^[1-9][0-9]*$ ]] || { echo "D must be whole seconds, at least 1; got '$D'" >&2; exit 2; }
for t in haproxy taskset h2load curl; do command -v "$t" >/dev/null || { echo "missing $t (see bench/peers.sh)" >&2; exit 1; }; done

cargo build --release -q --manifest-path "$ROOT/Cargo.toml" -p ballast-proxy --example h2_fixed_response
HYPER=$ROOT/target/release/examples/h2_fixed_response

BENCH_NAME=h2cost
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

ha_port=$(free_port)
cat >"$RUN/haproxy.cfg" <<CFG
global
    nbthread 1
    maxconn 8000
defaults
    mode http
    timeout client 30s
    option http-keep-alive
frontend fe
    bind 127.0.0.1:$ha_port
    http-request return status 200 content-type text/plain string "ok"
CFG
taskset -c 1 haproxy -db -f "$RUN/haproxy.cfg" >"$RUN/haproxy.log" 2>&1 &
PIDS+=($!)
hy_port=$(free_port)
taskset -c 1 "$HYPER" "$hy_port" >"$RUN/hyper.log" 2>&1 &
PIDS+=($!)
NAMES=(hyper-h2 haproxy) PORTS=("$hy_port" "$ha_port")
for p in "${PORTS[@]}"; do wait_up "$p"; done

VS_LAST=1 cpu_rounds

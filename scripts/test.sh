#!/usr/bin/env bash
# Runs ballast's whole test suite. On a fresh Debian machine it first installs what the
# tests need (system packages through apt-get); the Rust toolchain itself must be present
# (rustup, Rust >= 1.85).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust >= 1.85 with rustup (https://rustup.rs), then re-run" >&2
  exit 1
fi

# System tools the tests drive: curl, procps (ps), python3 (replicas and exec-provider
# scripts) and a real Prometheus server (the PromQL metric source is tested against it).
missing=()
command -v curl >/dev/null || missing+=(curl)
command -v ps >/dev/null || missing+=(procps)
command -v python3 >/dev/null || missing+=(python3)
[[ -x /usr/bin/prometheus ]] || missing+=(prometheus)
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  apt_prefix=()
  [[ $(id -u) == 0 ]] || apt_prefix=(sudo)
  "${apt_prefix[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${apt_prefix[@]}" apt-get install -y -qq "${missing[@]}"
fi

# Every unit, property, integration and end-to-end test; benches run once in test mode so
# they cannot rot.
cargo test --workspace --all-targets --locked "$@"

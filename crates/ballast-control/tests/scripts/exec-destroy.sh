#!/bin/sh
# Test script for the exec provider's `destroy`: kills the replica whose id is $1.
# Unknown ids succeed, as the contract asks.
set -eu
: "${STATE:?STATE must name a state directory}"
id="$1"
if [ -e "$STATE/$id.pid" ]; then
    kill "$(cat "$STATE/$id.pid")" 2>/dev/null || true
    rm -f "$STATE/$id.pid" "$STATE/$id.addr"
fi

#!/bin/sh
# Test script for the exec provider's `create`: starts a python3 http.server replica on
# a free port, records its pid under $STATE, prints {"id","address"}.
# Fails (exit 1, message on stderr) while $STATE/broken exists.
set -eu
: "${STATE:?STATE must name a state directory}"
if [ -e "$STATE/broken" ]; then
    echo "quota exceeded (test: $STATE/broken exists)" >&2
    exit 1
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
id="$BALLAST_INSTANCE"
python3 -m http.server "$port" --bind 127.0.0.1 >"$STATE/$id.log" 2>&1 &
echo $! >"$STATE/$id.pid"
echo "127.0.0.1:$port" >"$STATE/$id.addr"
printf '{"id": "%s", "address": "127.0.0.1:%s", "zone": "test"}\n' "$id" "$port"

#!/bin/sh
# Test script for the exec provider's `list`: prints every recorded replica as JSON.
set -eu
: "${STATE:?STATE must name a state directory}"
sep=""
printf '['
for f in "$STATE"/*.addr; do
    [ -e "$f" ] || continue
    id=$(basename "$f" .addr)
    printf '%s{"id": "%s", "address": "%s"}' "$sep" "$id" "$(cat "$f")"
    sep=", "
done
printf ']\n'

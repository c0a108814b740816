#!/bin/sh
# ballast exec provider, Google Cloud: create one named instance in a managed instance group.
# Env: MIG (group name), ZONE, PORT (default 8080).
set -eu
: "${MIG:?set MIG}" "${ZONE:?set ZONE}"
port="${PORT:-8080}"
name="$BALLAST_INSTANCE"
gcloud compute instance-groups managed create-instance "$MIG" --zone "$ZONE" --instance "$name" --quiet >/dev/null
gcloud compute instance-groups managed wait-until "$MIG" --zone "$ZONE" --stable --timeout 600 >/dev/null
ip=$(gcloud compute instances describe "$name" --zone "$ZONE" --format 'value(networkInterfaces[0].networkIP)')
jq -n --arg id "$name" --arg address "$ip:$port" '{id: $id, address: $address}'

#!/bin/sh
# ballast exec provider, Google Cloud: every instance of the group with its internal IP.
set -eu
: "${MIG:?set MIG}" "${ZONE:?set ZONE}"
port="${PORT:-8080}"
names=$(gcloud compute instance-groups managed list-instances "$MIG" --zone "$ZONE" --format 'value(name)')
out="[]"
for n in $names; do
    ip=$(gcloud compute instances describe "$n" --zone "$ZONE" --format 'value(networkInterfaces[0].networkIP)')
    out=$(jq --arg id "$n" --arg address "$ip:$port" '. + [{id: $id, address: $address}]' <<EOT
$out
EOT
)
done
echo "$out"

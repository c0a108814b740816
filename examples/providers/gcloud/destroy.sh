#!/bin/sh
# ballast exec provider, Google Cloud: delete instance $1 from the managed instance group.
set -eu
: "${MIG:?set MIG}" "${ZONE:?set ZONE}"
gcloud compute instance-groups managed delete-instances "$MIG" --zone "$ZONE" --instances "$1" --quiet >/dev/null

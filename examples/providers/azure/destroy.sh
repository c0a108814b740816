#!/bin/sh
# ballast exec provider, Azure: delete scale-set instance $1.
set -eu
: "${RESOURCE_GROUP:?set RESOURCE_GROUP}" "${VMSS:?set VMSS}"
az vmss delete-instances -g "$RESOURCE_GROUP" -n "$VMSS" --instance-ids "$1" --no-wait

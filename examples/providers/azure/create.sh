#!/bin/sh
# ballast exec provider, Azure: add one instance to a VM Scale Set.
# Env: RESOURCE_GROUP, VMSS (scale set name), PORT (default 8080).
set -eu
: "${RESOURCE_GROUP:?set RESOURCE_GROUP}" "${VMSS:?set VMSS}"
port="${PORT:-8080}"
before=$(az vmss list-instances -g "$RESOURCE_GROUP" -n "$VMSS" --query '[].instanceId' -o json)
capacity=$(az vmss show -g "$RESOURCE_GROUP" -n "$VMSS" --query 'sku.capacity' -o tsv)
az vmss scale -g "$RESOURCE_GROUP" -n "$VMSS" --new-capacity $((capacity + 1)) >/dev/null
after=$(az vmss list-instances -g "$RESOURCE_GROUP" -n "$VMSS" --query '[].instanceId' -o json)
id=$(jq -rn --argjson a "$after" --argjson b "$before" '($a - $b)[0] // empty')
[ -n "$id" ] || { echo "the scale set did not add an instance" >&2; exit 1; }
ip=$(az vmss nic list-vm-nics -g "$RESOURCE_GROUP" --vmss-name "$VMSS" --instance-id "$id" \
    --query '[0].ipConfigurations[0].privateIPAddress' -o tsv)
jq -n --arg id "$id" --arg address "$ip:$port" '{id: $id, address: $address}'

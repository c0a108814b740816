#!/bin/sh
# ballast exec provider, Azure: every instance of the scale set with its private IP.
set -eu
: "${RESOURCE_GROUP:?set RESOURCE_GROUP}" "${VMSS:?set VMSS}"
port="${PORT:-8080}"
az vmss nic list -g "$RESOURCE_GROUP" --vmss-name "$VMSS" \
    --query '[].{vm: virtualMachine.id, ip: ipConfigurations[0].privateIPAddress}' -o json |
    jq --arg port "$port" '[.[] | {id: (.vm | split("/") | last), address: "\(.ip):\($port)"}]'

#!/bin/sh
# ballast exec provider, AWS: every pending or running instance tagged with this pool.
set -eu
port="${PORT:-8080}"
aws ec2 describe-instances \
    --filters "Name=tag:ballast-pool,Values=$BALLAST_POOL" "Name=instance-state-name,Values=pending,running" \
    --query 'Reservations[].Instances[].[InstanceId, PrivateIpAddress]' --output json |
    jq --arg port "$port" '[.[] | select(.[1] != null) | {id: .[0], address: "\(.[1]):\($port)"}]'

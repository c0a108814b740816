#!/bin/sh
# ballast exec provider, AWS: terminate instance $1 (detaching it from ASG first if set).
set -eu
id="$1"
if [ -n "${ASG:-}" ]; then
    aws autoscaling detach-instances --auto-scaling-group-name "$ASG" --instance-ids "$id" \
        --should-decrement-desired-capacity 2>/dev/null || true
fi
aws ec2 terminate-instances --instance-ids "$id" >/dev/null

#!/bin/sh
# ballast exec provider, AWS: start one EC2 instance from a launch template.
# Env: LAUNCH_TEMPLATE (name), PORT (the service port, default 8080),
#      ASG (optional Auto Scaling group to attach the instance to).
set -eu
: "${LAUNCH_TEMPLATE:?set LAUNCH_TEMPLATE}"
port="${PORT:-8080}"
id=$(aws ec2 run-instances \
    --launch-template "LaunchTemplateName=$LAUNCH_TEMPLATE" \
    --tag-specifications "ResourceType=instance,Tags=[{Key=ballast-pool,Value=$BALLAST_POOL},{Key=Name,Value=$BALLAST_INSTANCE}]" \
    --query 'Instances[0].InstanceId' --output text)
aws ec2 wait instance-running --instance-ids "$id"
if [ -n "${ASG:-}" ]; then
    aws autoscaling attach-instances --auto-scaling-group-name "$ASG" --instance-ids "$id"
fi
ip=$(aws ec2 describe-instances --instance-ids "$id" \
    --query 'Reservations[0].Instances[0].PrivateIpAddress' --output text)
jq -n --arg id "$id" --arg address "$ip:$port" '{id: $id, address: $address}'

#!/bin/sh
# Broker start for docker-compose.yml: `iot registry export-mosquitto` (the broker-auth service)
# writes passwd and acl owned by the iot image's user, mode 0600; Mosquitto reads them only after
# dropping to its own user. Install copies owned by that user, then run the broker in the foreground.
set -eu
install -d -o mosquitto -g mosquitto -m 0700 /mosquitto/auth
install -o mosquitto -g mosquitto -m 0600 /mosquitto/export/passwd /mosquitto/export/acl /mosquitto/auth/
chown mosquitto:mosquitto /mosquitto/data
exec /usr/sbin/mosquitto -c /mosquitto/config/mosquitto.conf

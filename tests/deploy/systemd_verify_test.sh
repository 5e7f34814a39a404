#!/bin/bash
# systemd-analyze verify on Quern's units (deploy/systemd), with ExecStart
# pointed at the binary under test: every unit must load cleanly; and the
# same check must fail on a unit whose binary is missing, so that it cannot
# pass vacuously. Usage: systemd_verify_test.sh SOURCE_DIR QUERN_BINARY
# Exit 77 (skipped) without systemd-analyze.
set -euo pipefail
src=$1 quern=$2
command -v systemd-analyze >/dev/null || { echo "systemd-analyze not installed"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
for unit in "$src"/deploy/systemd/*.service; do
  sed "s|/usr/bin/quern|$quern|" "$unit" > "$dir/$(basename "$unit")"
done
# A template is verified through an instance.
mv "$dir/quern-worker@.service" "$dir/quern-worker@default.service"
units=("$dir"/*.service)
[ ${#units[@]} -eq 3 ] || { echo "expected 3 units, found ${#units[@]}"; exit 1; }
systemd-analyze verify "${units[@]}"
for unit in "${units[@]}"; do
  grep -q '^Type=notify$' "$unit" || { echo "$unit: not Type=notify"; exit 1; }
  grep -q '^KillMode=mixed$' "$unit" || { echo "$unit: not KillMode=mixed"; exit 1; }
  grep -q '^ExecReload=/bin/kill -HUP \$MAINPID$' "$unit" || { echo "$unit: no SIGHUP reload"; exit 1; }
done
# The worker's stop timeout exceeds its shutdown grace (jobs may finish, then are handed back).
worker="$dir/quern-worker@default.service"
grace=$(sed -n 's/.*--shutdown-grace \([0-9]*\).*/\1/p' "$worker")
stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s$/\1/p' "$worker")
[ -n "$grace" ] && [ -n "$stop" ] && [ "$stop" -gt "$grace" ] || { echo "TimeoutStopSec ($stop) <= grace ($grace)"; exit 1; }
grep -q '^Delegate=yes$' "$worker" || { echo "the worker unit does not delegate its cgroup"; exit 1; }
# Not vacuous: a unit whose binary is missing fails.
sed "s|$quern|/nonexistent/quern|" "$dir/quern-server.service" > "$dir/broken.service"
if systemd-analyze verify "$dir/broken.service" >/dev/null 2>&1; then
  echo "systemd-analyze verify accepted a unit with a missing binary"; exit 1
fi
echo "systemd units: OK"

#!/usr/bin/env bash
# The web UI (host/ui, docs/UI.md) in a real headless Chromium, against a real `quern up`:
#   - quern up with an embedded PostgreSQL in a temporary folder, two worker groups
#     (sandbox="none" for speed), the API on a free port;
#   - ui_test.mjs seeds it through the API with the first admin token (scripts with two
#     versions, jobs of every state, a job that logs slowly, schedules, an operator token)
#     and drives Chromium with playwright-core: every page shows the seeded data, the live
#     log grows, cancel and re-run work, the operator sees no token page, a forged cookie
#     gets 401, no console errors and no CSP violations; screenshots of every page at
#     1280×800 and 390×844 go to OUT_DIR/screenshots/ (artifacts, not committed).
#
# usage: ui_test.sh BUILD_DIR SOURCE_DIR OUT_DIR
# BUILD_DIR: holds bin/quern and plugins/. OUT_DIR: playwright-core is installed into
# OUT_DIR/npm on the first run (from the npm registry; never a browser download) and kept.
# CHROMIUM overrides the browser (default /usr/bin/chromium, Debian's `chromium`).
# Exit 77 (CTest: skipped) when Chromium, node (18 or later) or npm is missing.
set -euo pipefail

usage="usage: ui_test.sh BUILD_DIR SOURCE_DIR OUT_DIR"
build_dir=$(cd "${1:?$usage}" && pwd)
source_dir=$(cd "${2:?$usage}" && pwd)
out_dir=${3:?$usage}
chromium=${CHROMIUM:-/usr/bin/chromium}
# The newest playwright-core that runs on Node 18 (Debian 12's node): 1.62 needs Node 20.
# It drives the system Chromium over CDP; it downloads nothing with --ignore-scripts.
playwright_version=1.61.1

if [ ! -x "$chromium" ]; then
  echo "SKIP: $chromium not found (Debian: apt-get install chromium)"
  exit 77
fi
for tool in node npm; do
  if ! command -v "$tool" > /dev/null 2>&1; then
    echo "SKIP: $tool not found"
    exit 77
  fi
done
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 18 ]; then
  echo "SKIP: node $(node --version) is older than 18"
  exit 77
fi
quern=$build_dir/bin/quern
if [ ! -x "$quern" ]; then
  echo "FAIL: $quern not found"
  exit 1
fi

mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
npm_dir=$out_dir/npm
installed=$(node -p "try { require('$npm_dir/node_modules/playwright-core/package.json').version } catch { '' }")
if [ "$installed" != "$playwright_version" ]; then
  echo "installing playwright-core@$playwright_version into $npm_dir"
  if ! npm install --no-audit --no-fund --ignore-scripts --loglevel=error --prefix "$npm_dir" \
      "playwright-core@$playwright_version" > "$out_dir/npm.log" 2>&1; then
    echo "FAIL: npm install playwright-core@$playwright_version"
    cat "$out_dir/npm.log"
    exit 1
  fi
fi
rm -rf "$out_dir/screenshots"
mkdir -p "$out_dir/screenshots"

tmp=$(mktemp -d)
# The embedded PostgreSQL runs as an unprivileged user when this runs as root: it must
# reach its data folder.
chmod 755 "$tmp"
up_pid=
# shellcheck disable=SC2317  # run by the trap below
cleanup() {
  local rc=$?
  if [ -n "$up_pid" ] && kill -0 "$up_pid" 2> /dev/null; then
    kill -TERM "$up_pid" 2> /dev/null || true
    for _ in $(seq 1 150); do
      kill -0 "$up_pid" 2> /dev/null || break
      sleep 0.2
    done
    if kill -0 "$up_pid" 2> /dev/null; then
      echo "quern up did not stop in 30 s: killing its process group"
      kill -KILL -- "-$up_pid" 2> /dev/null || true
    fi
  fi
  if [ "$rc" -ne 0 ] && [ -f "$tmp/up.err" ]; then
    echo "--- the last lines of quern up's log:"
    tail -n 40 "$tmp/up.err" || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

port=$(node -e "const s = require('net').createServer(); s.listen(0, '127.0.0.1', () => { console.log(s.address().port); s.close(); })")
cat > "$tmp/quern.xml" << EOF
<quern>
  <database data-dir="$tmp/data"/>
  <plugins dir="$build_dir/plugins"/>
  <queue lease-timeout="30s" heartbeat-interval="1s" poll-interval="200ms" max-restarts="1"
         default-timeout="10m" kill-grace="1s"/>
  <workers>
    <group name="alpha" slots="3" tags="bash" sandbox="none"/>
    <group name="beta" slots="2" tags="bash,noop" sandbox="none"/>
  </workers>
  <server listen="127.0.0.1:$port"/>
</quern>
EOF

# Its own process group (setsid), so that a quern up that does not stop can be killed
# with everything it started.
setsid "$quern" up --config "$tmp/quern.xml" > "$tmp/up.out" 2> "$tmp/up.err" < /dev/null &
up_pid=$!
token=
for _ in $(seq 1 600); do
  if ! kill -0 "$up_pid" 2> /dev/null; then
    echo "FAIL: quern up exited at start"
    exit 1
  fi
  token=$(grep -A1 'first admin token' "$tmp/up.err" 2> /dev/null | grep -o 'qrn_[A-Za-z0-9_]*' | head -n 1 || true)
  [ -n "$token" ] && break
  sleep 0.2
done
if [ -z "$token" ]; then
  echo "FAIL: quern up printed no first admin token in 120 s"
  exit 1
fi
echo "quern up: pid $up_pid, API on http://127.0.0.1:$port"

rc=0
QUERN_URL=http://127.0.0.1:$port \
  QUERN_ADMIN_TOKEN=$token \
  UI_OUT_DIR=$out_dir \
  PLAYWRIGHT_DIR=$npm_dir \
  CHROMIUM=$chromium \
  QUERN_SOURCE_DIR=$source_dir \
  node "$source_dir/tests/ui/ui_test.mjs" || rc=$?
if [ "$rc" -eq 0 ]; then
  echo "PASS: the web UI in Chromium (screenshots in $out_dir/screenshots)"
else
  echo "FAIL: the web UI in Chromium (exit $rc; screenshots so far in $out_dir/screenshots)"
fi
exit "$rc"

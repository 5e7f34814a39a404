#!/bin/bash
# The Debian packages as CI builds them: CPack from the build under test, lintian with no
# errors (the one override is documented in deploy/debian/quern-dev.lintian-overrides), the
# declared dependencies computed by dpkg-shlibdeps, the conffile, and the package
# unpacked into a throwaway root (dpkg -x), from which `quern plugins` lists every plugin
# and `quern up --examples` runs the examples with the packaged config (its data-dir moved
# into the throwaway root). Usage: debian_package_test.sh BUILD_DIR
# Exit 77 (skipped) without cpack, dpkg-deb or lintian.
set -euo pipefail
build=$1
for tool in cpack dpkg-deb lintian; do
  command -v "$tool" >/dev/null || { echo "$tool not installed"; exit 77; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$build" && cpack -G DEB -B "$work/out" >"$work/cpack.log" 2>&1) || { cat "$work/cpack.log"; exit 1; }
deb=$(ls "$work"/out/quern_*_*.deb)
dev=$(ls "$work"/out/quern-dev_*_all.deb)

# lintian: errors fail the test; warnings are printed.
lintian --tag-display-limit 0 "$deb" "$dev" >"$work/lintian.log" 2>&1 || true
cat "$work/lintian.log"
if grep -q '^E: ' "$work/lintian.log"; then echo "lintian reports errors"; exit 1; fi

# Control data: shlibdeps-computed dependencies, the tools Quern runs, the conffile.
depends=$(dpkg-deb -f "$deb" Depends)
for want in bubblewrap libpqxx libboost-log libc6; do
  grep -q "$want" <<<"$depends" || { echo "Depends lacks $want: $depends"; exit 1; }
done
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles >"$work/conffiles"
grep -qx /etc/quern/quern.xml "$work/conffiles" || { echo "/etc/quern/quern.xml is not a conffile"; exit 1; }
dpkg-deb -c "$deb" >"$work/contents"
grep -q ' ./lib/systemd/system/quern-worker@.service$' "$work/contents" || { echo "no worker unit"; exit 1; }

# Unpacked into a throwaway root, the binary finds its plugins next to itself.
root=$work/root
dpkg -x "$deb" "$root"
config=$work/quern.xml
sed "s|data-dir=\"/var/lib/quern\"|data-dir=\"$work/data\"|" "$root/etc/quern/quern.xml" >"$config"
grep -q "data-dir=\"$work/data\"" "$config" || { echo "the packaged config has no data-dir to move"; exit 1; }
"$root/usr/bin/quern" plugins --config "$config" >"$work/plugins.log" 2>&1 || { cat "$work/plugins.log"; exit 1; }
cat "$work/plugins.log"
for plugin in bash python sql http noop gpu; do
  grep -q "$root/usr/lib/quern/plugins/libquern_$plugin.so" "$work/plugins.log" \
    || { echo "quern plugins does not list $plugin from the package"; exit 1; }
done
# The jobs directory lies under TMPDIR: keep it inside the throwaway root too.
mkdir -p "$work/tmp"
chmod 0755 "$work" "$work/tmp"
TMPDIR=$work/tmp timeout 300 "$root/usr/bin/quern" up --config "$config" \
  --examples "$root/usr/share/doc/quern/examples" --exit-when-done --no-server >"$work/up.log" 2>&1 \
  || { cat "$work/up.log"; echo "quern up --examples failed"; exit 1; }
cat "$work/up.log"
for example in hello sum system_info; do
  grep -q "^$example.sh (job [0-9]*): success" "$work/up.log" || { echo "the example $example did not succeed"; exit 1; }
done
echo "debian package: OK"

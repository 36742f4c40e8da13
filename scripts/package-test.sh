#!/usr/bin/env bash
# The Debian package, as an administrator meets it: builds it (cargo deb), installs it into this
# machine with dpkg, checks what it installed (files, conffiles, the holdfast user, permissions,
# the unit with systemd-analyze, the config with check-config, the installed binary running as
# the holdfast user and answering `holdfast status` and `holdfast publish`), upgrades it over a
# locally edited conffile, and purges it, checking nothing is left.
#
# Usage: scripts/package-test.sh     (as root: it installs into this machine; else it skips)
#   HOLDFAST_PACKAGE_PROFILE=release  packs a release build (cargo deb builds it: minutes) instead
#                                     of the debug binary the tests already built (seconds).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "SKIPPED package test: it installs the package into this machine, which needs root"
  exit 0
fi
if dpkg-query -W -f='${Status}' holdfast 2>/dev/null | grep -q "installed"; then
  echo "package test: a holdfast package is installed on this machine; not touching it" >&2
  echo "  (dpkg --purge holdfast first if it is a leftover of this test)" >&2
  exit 1
fi

start=$(date +%s)
fail() { echo "package test FAILED: $*" >&2; exit 1; }

# --- tools ---------------------------------------------------------------------------------
need_apt=()
command -v dpkg-shlibdeps >/dev/null 2>&1 || need_apt+=(dpkg-dev)   # cargo-deb's $auto depends
command -v objcopy >/dev/null 2>&1 || need_apt+=(binutils)          # stripping
command -v adduser >/dev/null 2>&1 || need_apt+=(adduser)           # the package depends on it
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
command -v deb-systemd-helper >/dev/null 2>&1 || need_apt+=(init-system-helpers)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! command -v cargo-deb >/dev/null 2>&1; then
  echo "== cargo install cargo-deb"
  cargo install cargo-deb --version 3.8.0 --locked --quiet
fi

# --- build -----------------------------------------------------------------------------------
out=target/debian-test
rm -rf "$out"
mkdir -p "$out"
if [ "${HOLDFAST_PACKAGE_PROFILE:-debug}" = release ]; then
  echo "== cargo deb (release build)"
  cargo deb --locked --output "$out"
  pack() { cargo deb --no-build --output "$out" "$@"; }
else
  # The same package around the debug binary: cargo-deb takes target/release/holdfast from the
  # target directory it is given, so the debug binary goes to target/package-ci/release/.
  echo "== cargo deb around the debug binary (HOLDFAST_PACKAGE_PROFILE=release for a release one)"
  cargo build -q --locked --bin holdfast
  mkdir -p target/package-ci/release
  cp target/debug/holdfast target/package-ci/release/holdfast
  pack() {
    CARGO_TARGET_DIR=target/package-ci cargo deb --no-build --no-dbgsym --strip --fast \
      --output "$out" "$@"
  }
  pack
fi
deb=$(ls "$out"/holdfast_*.deb)
echo "built $deb ($(du -h "$deb" | cut -f1))"

# --- install ---------------------------------------------------------------------------------
user_existed=false
getent passwd holdfast >/dev/null && user_existed=true
smoke_pid=""
cleanup() {
  [ -n "$smoke_pid" ] && kill "$smoke_pid" 2>/dev/null || true
  if dpkg-query -W -f='${Status}' holdfast 2>/dev/null | grep -q "installed"; then
    echo "package test: purging the test install" >&2
    dpkg --purge holdfast >/dev/null 2>&1 || true
  fi
  if ! $user_existed && getent passwd holdfast >/dev/null; then
    deluser --system holdfast >/dev/null 2>&1 || userdel holdfast 2>/dev/null || true
  fi
}
trap cleanup EXIT

echo "== dpkg -i"
dpkg -i "$deb"

echo "== installed files, conffiles, user, permissions"
for f in /usr/bin/holdfast /usr/lib/systemd/system/holdfast.service /etc/holdfast/holdfast.toml \
  /etc/holdfast/routes /etc/holdfast/sysctl.d/60-holdfast.conf \
  /usr/share/doc/holdfast/copyright /usr/share/doc/holdfast/examples/grafana-dashboard.json; do
  [ -f "$f" ] || fail "$f is not installed"
done
[ -x /usr/bin/holdfast ] || fail "/usr/bin/holdfast is not executable"
conffiles=$(dpkg-query -W -f='${Conffiles}\n' holdfast)
for f in /etc/holdfast/holdfast.toml /etc/holdfast/routes /etc/holdfast/sysctl.d/60-holdfast.conf; do
  grep -q "^ $f [0-9a-f]\{32\}$" <<<"$conffiles" || fail "$f is not a conffile: $conffiles"
done
uid=$(getent passwd holdfast | cut -d: -f3)
shell=$(getent passwd holdfast | cut -d: -f7)
[ -n "$uid" ] && [ "$uid" -lt 1000 ] || fail "holdfast is not a system user (uid $uid)"
[ "$shell" = /usr/sbin/nologin ] || fail "holdfast's shell is $shell, not nologin"
getent group holdfast >/dev/null || fail "no holdfast group"
[ "$(stat -c '%U:%G %a' /etc/holdfast/holdfast.toml)" = "root:holdfast 640" ] ||
  fail "/etc/holdfast/holdfast.toml is $(stat -c '%U:%G %a' /etc/holdfast/holdfast.toml)"
grep -q '^routes_file = "/etc/holdfast/routes"$' /etc/holdfast/holdfast.toml ||
  fail "the installed config does not read /etc/holdfast/routes"
[ ! -e /etc/systemd/system/multi-user.target.wants/holdfast.service ] ||
  fail "installing enabled the service"
[ ! -e /etc/sysctl.d/60-holdfast.conf ] || fail "installing changed the host's sysctl settings"

echo "== check-config, as root and as the service user; other users cannot read the config"
checked=$(holdfast check-config --config /etc/holdfast/holdfast.toml) || fail "check-config: $checked"
echo "$checked"
[[ "$checked" == "config OK: 1 routes"* ]] || fail "check-config: $checked"
runuser -u holdfast -- holdfast check-config --config /etc/holdfast/holdfast.toml >/dev/null ||
  fail "the holdfast user cannot read its config"
if runuser -u nobody -- holdfast check-config --config /etc/holdfast/holdfast.toml >/dev/null 2>&1; then
  fail "any user can read /etc/holdfast/holdfast.toml"
fi

echo "== systemd-analyze verify the installed unit"
systemd-analyze verify /usr/lib/systemd/system/holdfast.service

echo "== the installed binary runs as holdfast with the installed config; status and publish"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
runuser -u holdfast -- /usr/bin/holdfast --config /etc/holdfast/holdfast.toml \
  --listen 127.0.0.1:0 --publish-listen "127.0.0.1:$port" --workers 1 >"$out/smoke.log" 2>&1 &
smoke_pid=$!
for _ in $(seq 50); do
  holdfast status --publish-listen "127.0.0.1:$port" --interval-ms 0 >"$out/status.txt" 2>/dev/null && break
  sleep 0.2
done
grep -q "^connections  *0 " "$out/status.txt" || { cat "$out/smoke.log" "$out/status.txt" >&2; fail "holdfast status"; }
published=$(holdfast publish --publish-listen "127.0.0.1:$port" test "from the package test") ||
  fail "holdfast publish"
[ "$published" = Published ] || fail "holdfast publish: $published"
kill "$smoke_pid"
wait "$smoke_pid" 2>/dev/null || true
smoke_pid=""

echo "== upgrade over a locally edited conffile keeps the edit"
echo "# edited by the package test" >>/etc/holdfast/routes
newer="$(dpkg-deb -f "$deb" Version)+test1"
pack --deb-version "$newer"
dpkg -i "$out/holdfast_${newer}_$(dpkg-deb -f "$deb" Architecture).deb"
[ "$(dpkg-query -W -f='${Version}' holdfast)" = "$newer" ] || fail "the upgrade did not install"
grep -q "^# edited by the package test$" /etc/holdfast/routes || fail "the upgrade lost a local edit"
[ ! -e /etc/holdfast/routes.dpkg-new ] && [ ! -e /etc/holdfast/routes.dpkg-dist ] ||
  fail "the upgrade left a .dpkg-new/.dpkg-dist"

echo "== dpkg --purge leaves nothing"
dpkg --purge holdfast
if dpkg-query -W -f='${Status}' holdfast 2>/dev/null | grep -q "installed"; then
  fail "still installed after purge"
fi
for f in /usr/bin/holdfast /usr/lib/systemd/system/holdfast.service /etc/holdfast \
  /usr/share/doc/holdfast /var/lib/systemd/deb-systemd-helper-enabled/holdfast.service.dsh-also \
  /var/lib/systemd/deb-systemd-helper-masked/holdfast.service; do
  [ ! -e "$f" ] || fail "$f is left after purge"
done
if dpkg-statoverride --list /etc/holdfast/holdfast.toml >/dev/null 2>&1; then
  fail "the permission override of the config is left after purge"
fi
# The user stays on purge, as Debian does (files owned by its uid may remain); the test then
# removes it if it made it.
getent passwd holdfast >/dev/null || fail "purge removed the holdfast user"

echo "package test passed in $(( $(date +%s) - start )) s"

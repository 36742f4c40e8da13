#!/usr/bin/env bash
# Runs holdfast's whole test suite, installing what the tests need first.
# Usage: scripts/test.sh            (from anywhere inside the repository)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
# Pushpin, the reference implementation: tests/parity runs the same scenarios against both.
command -v pushpin >/dev/null 2>&1 || need_apt+=(pushpin)
# Headless Chromium for the demo apps' browser tests (tests/browser, driven by playwright-core).
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
# NATS, for the cluster test (tests/cluster.rs starts a three-member NATS cluster on loopback).
# Debian puts it in /usr/sbin, which is not on every user's PATH: the test looks there too.
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || need_apt+=(nats-server)
# A C++ compiler: the zmq crate (cargo feature "zmq", on by default) builds libzmq from source.
command -v g++ >/dev/null 2>&1 || need_apt+=(g++)
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

echo "== test apps: npm (serve-grip origin, playwright-core for the browser tests) and PyPI (gripcontrol publisher, pyzmq)"
command -v node >/dev/null 2>&1 || { echo "node is required (Node 18+)"; exit 1; }
(cd tests/apps/serve-grip && npm ci --no-audit --no-fund --loglevel=error)
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
[ -x .venv/bin/python3 ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r tests/apps/requirements.txt

echo "== layers (no import cycle between the top-level modules of src/)"
python3 scripts/check-layers.py

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

echo "== the load tool (benches/load, its own crate): fmt, clippy, unit tests"
(cd benches/load && cargo fmt --check && cargo clippy -q --all-targets -- -D warnings && cargo test -q)

echo "== cargo test"
# The per-connection state size is printed by this test; keep it visible in the log.
cargo test --lib slot_size -- --nocapture
# The parity and cluster tests must not skip silently in CI: Pushpin and nats-server are
# installed above. (The cluster test runs on this pass only, not on the legacy-driver one below.)
HOLDFAST_PARITY_REQUIRED=1 HOLDFAST_CLUSTER_REQUIRED=1 cargo test --all-targets

echo "== end-to-end tests again on the legacy (epoll) driver"
HOLDFAST_TEST_DRIVER=legacy cargo test --tests

echo "== systemd unit (systemd-analyze verify, ExecStart pointed at this build)"
cargo build -q --bin holdfast
if command -v systemd-analyze >/dev/null 2>&1; then
  unit_dir=$(mktemp -d)
  sed "s#/usr/bin/holdfast#$PWD/target/debug/holdfast#" systemd/holdfast.service > "$unit_dir/holdfast.service"
  systemd-analyze verify "$unit_dir/holdfast.service"
  rm -rf "$unit_dir"
else
  echo "systemd-analyze not found: installing systemd to verify the unit"
  DEBIAN_FRONTEND=noninteractive ${SUDO:-} apt-get install -y -qq systemd >/dev/null
  unit_dir=$(mktemp -d)
  sed "s#/usr/bin/holdfast#$PWD/target/debug/holdfast#" systemd/holdfast.service > "$unit_dir/holdfast.service"
  systemd-analyze verify "$unit_dir/holdfast.service"
  rm -rf "$unit_dir"
fi

echo "== Debian package (build, dpkg -i, check files/user/conffiles/unit, upgrade, purge)"
# As root only (it installs into this machine); packs the debug binary built above.
scripts/package-test.sh

echo "== browser tests of the demo apps (headless Chromium: Q&A board with 3 windows, chat with a forced reconnect)"
# Once, not per driver: holdfast demo runs with the default (io_uring if available, else epoll).
# Screenshots go to target/browser/ (board.png, board-phone*.png, chat.png, chat-long*.png).
browser_start=$(date +%s)
timeout 300 node tests/browser/demo.test.mjs
echo "browser tests took $(( $(date +%s) - browser_start )) s"

echo "== Autobahn|Testsuite (WebSocket conformance, sections 1-11)"
scripts/autobahn/run.sh target/debug/holdfast

echo "== fuzz smoke run (every cargo-fuzz target for 5 s from its seeds; fuzz/run.sh SECONDS for longer)"
fuzz/run.sh 5

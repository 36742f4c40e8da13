#!/usr/bin/env bash
# Memory of idle held connections, plain HTTP against HTTPS: holdfast (one worker, the bundled
# demo origin) holds N stream connections of each kind in turn, opened by a Python client in
# another process; the RSS growth per connection is printed. Bounded: N connections, then exit.
# Usage: benches/tls/idle.sh [N] [path/to/holdfast]      (N <= ~19000: one client process)
set -euo pipefail
N=${1:-5000}
HF_BIN=${2:-target/release/holdfast}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
trap 'kill $HF 2>/dev/null || true; rm -rf "$WORK"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -subj "/CN=a.test" \
  -addext "subjectAltName=DNS:a.test" 2>/dev/null
cat > "$WORK/holdfast.toml" <<TOML
[server]
listen = ["127.0.0.1:18080"]
workers = 1
[tls]
listen = ["127.0.0.1:18443"]
[[tls.certificates]]
cert = "cert.pem"
key = "key.pem"
[publish]
listen = "127.0.0.1:18561"
[log]
level = "warn"
TOML
start() {
  "$HF_BIN" demo --config "$WORK/holdfast.toml" --origin-listen 127.0.0.1:18090 > "$WORK/hf.log" 2>&1 &
  HF=$!
  sleep 1.5
}
rss() { awk '/VmRSS/ {print $2}' "/proc/$HF/status"; }
hold() { # mode -> prints the RSS (KiB) while N connections of that kind are held
  rm -f "$WORK/ctl"; mkfifo "$WORK/ctl"
  python3 "$HERE/hold.py" "$N" "$1" "$WORK/cert.pem" < "$WORK/ctl" > "$WORK/out" 2>&1 &
  local py=$!
  exec 7>"$WORK/ctl"
  for _ in $(seq 1 180); do grep -q held "$WORK/out" && break; sleep 1; done
  grep held "$WORK/out" >&2
  sleep 1
  rss
  echo >&7; exec 7>&-; wait $py
}
# Each kind on a fresh process: freed memory the allocator keeps would hide the next one's cost.
for mode in plain tls; do
  start
  before=$(rss)
  during=$(hold "$mode")
  kill $HF; wait $HF 2>/dev/null || true
  awk -v m="$mode" -v b="$before" -v d="$during" -v n="$N" \
    'BEGIN { printf "%-5s %6d connections: RSS %d -> %d KiB, %.2f KiB per connection\n", m, n, b, d, (d-b)/n }'
done

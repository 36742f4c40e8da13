#!/usr/bin/env bash
# Runs the Autobahn|Testsuite fuzzing client (sections 1-11; 12-13 need permessage-deflate, which
# holdfast does not negotiate) against holdfast in front of its demo origin (WebSocket-over-HTTP
# echo), prints the counts and fails if any case FAILED.
# Usage: scripts/autobahn/run.sh [HOLDFAST_BINARY]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work="$root/.work/autobahn"
bin=${1:-$root/target/debug/holdfast}
mkdir -p "$work"
"$here/setup.sh" "$work/wstest-env" >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
pport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" demo --config "$here/holdfast.toml" --listen "127.0.0.1:$port" --publish-listen "127.0.0.1:$pport" \
  >"$work/holdfast.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break
  sleep 0.1
done
rm -rf "$work/reports"
cat > "$work/spec.json" <<JSON
{"options": {"failByDrop": false}, "outdir": "$work/reports",
 "servers": [{"agent": "holdfast", "url": "ws://127.0.0.1:$port/ws"}],
 "cases": ["*"], "exclude-cases": ["12.*", "13.*"], "exclude-agent-cases": {}}
JSON
(cd "$work" && "$work/wstest-env/wstest" -m fuzzingclient -s "$work/spec.json" >"$work/wstest.log" 2>&1)
python3 "$here/summary.py" "$work/reports/index.json"

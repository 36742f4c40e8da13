#!/usr/bin/env bash
# Cluster benchmark, on loopback, with holdfast-load (benches/load):
#   1. deliveries/s: one node (no cluster) against three nodes joined by one nats-server, the
#      same subscribers spread over the three nodes, everything published through node 0;
#   2. the publish -> delivery latency the hop through NATS adds: with the three-node cluster,
#      subscribers on node 0 (which accepts the publishes: local delivery) against subscribers on
#      node 1 (every item crosses NATS), one round every INTERVAL_MS.
# Every node runs WORKERS workers; on a 2-core machine the three nodes share the same two cores,
# so (1) shows the cost of the cluster, not scale-out.
#
# Usage: benches/cluster.sh            (builds what is missing: holdfast and holdfast-load, release)
#   CLIENTS=3000 CHANNELS=10 COUNT=200 WORKERS=1 KIND=sse benches/cluster.sh
# Prints one summary line per run; the full JSON reports stay in $OUT (default: a temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS=${CLIENTS:-3000}
CHANNELS=${CHANNELS:-10}
COUNT=${COUNT:-200}
WORKERS=${WORKERS:-1}
KIND=${KIND:-sse}
LAT_CLIENTS=${LAT_CLIENTS:-500}
LAT_COUNT=${LAT_COUNT:-200}
INTERVAL_MS=${INTERVAL_MS:-20}
BASE=${BASE_PORT:-9400}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
HF=target/release/holdfast
LOAD=benches/load/target/release/holdfast-load
NATS=$(command -v nats-server || echo /usr/sbin/nats-server)

[ -x "$NATS" ] || { echo "nats-server is required (apt-get install nats-server)"; exit 1; }
[ -x "$HF" ] || cargo build --release --bin holdfast
[ -x "$LOAD" ] || (cd benches/load && cargo build --release)

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

origin_port=$((BASE + 10))
nats_port=$((BASE + 22))
"$LOAD" origin --listen "127.0.0.1:$origin_port" >/dev/null 2>&1 &
pids+=($!)
"$NATS" -a 127.0.0.1 -p "$nats_port" >/dev/null 2>&1 &
pids+=($!)
printf '*,proto=ws 127.0.0.1:%s,over_http\n* 127.0.0.1:%s\n' "$origin_port" "$origin_port" > "$OUT/routes"

path() { case "$KIND" in ws) echo "ws/{ch}" ;; *) echo "$KIND/{ch}" ;; esac; }
scheme() { case "$KIND" in ws) echo ws ;; *) echo http ;; esac; }
http_port() { echo $((BASE + 1 + $1)); }
pub_port() { echo $((BASE + 61 + $1)); }
url() { echo "$(scheme)://127.0.0.1:$(http_port "$1")/$(path)"; }
pub_url() { echo "http://127.0.0.1:$(pub_port "$1")/publish/"; }

# start_node I CLUSTER(true|false): a holdfast node; echoes its pid.
start_node() {
  local i=$1 cluster=$2 conf="$OUT/node$1.toml"
  cat > "$conf" <<EOF
[server]
listen = ["127.0.0.1:$(http_port "$i")"]
workers = $WORKERS
pin_workers = false
routes_file = "$OUT/routes"
[publish]
listen = "127.0.0.1:$(pub_port "$i")"
[cluster]
enabled = $cluster
servers = ["nats://127.0.0.1:$nats_port"]
node_name = "n$i"
[log]
level = "warn"
EOF
  "$HF" --config "$conf" >"$OUT/node$i.log" 2>&1 &
  echo $!
}

wait_port() { for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; echo "port $1 not up"; exit 1; }

# Nodes are started in a command substitution, so they are not this shell's children: poll.
stop_nodes() {
  for p in "$@"; do kill "$p" 2>/dev/null || true; done
  for p in "$@"; do while kill -0 "$p" 2>/dev/null; do sleep 0.1; done; done
}

summary() { # NAME FILE
  jq -r --arg n "$1" '"\($n): \(.deliveries)/\(.expected_deliveries) deliveries, \(.deliveries_per_s | floor) deliveries/s, latency p50 \(.latency.p50_ms) ms p99 \(.latency.p99_ms) ms, lost \(.lost) reordered \(.reordered) duplicated \(.duplicated)"' "$2"
}

run() { # NAME URLS PUBLISH_URL EXTRA...
  local name=$1 urls=$2 pub=$3
  shift 3
  "$LOAD" run --kind "$KIND" --url "$urls" --publish-url "$pub" --settle-ms 1500 \
    --json-out "$OUT/$name.json" "$@" >/dev/null 2>"$OUT/$name.err" || true
  summary "$name" "$OUT/$name.json"
}

wait_port "$origin_port"
wait_port "$nats_port"
echo "== $KIND, $WORKERS worker(s) per node, $(nproc) CPUs; reports in $OUT"

# 1a. one node, no cluster
n0=$(start_node 0 false)
pids+=("$n0")
wait_port "$(http_port 0)"
run single "$(url 0)" "$(pub_url 0)" --clients "$CLIENTS" --channels "$CHANNELS" --count "$COUNT"
stop_nodes "$n0"

# 1b. three nodes over NATS, subscribers spread over them, publishing through node 0
nodes=()
for i in 0 1 2; do nodes+=("$(start_node "$i" true)"); done
pids+=("${nodes[@]}")
for i in 0 1 2; do wait_port "$(http_port "$i")"; done
sleep 1
run cluster3 "$(url 0),$(url 1),$(url 2)" "$(pub_url 0)" \
  --clients "$CLIENTS" --channels "$CHANNELS" --count "$COUNT" --procs 3

# 2. latency of the NATS hop: subscribers on node 0 (local) against node 1 (remote)
run latency-local "$(url 0)" "$(pub_url 0)" \
  --clients "$LAT_CLIENTS" --channels "$CHANNELS" --count "$LAT_COUNT" --publish-interval-ms "$INTERVAL_MS"
run latency-via-nats "$(url 1)" "$(pub_url 0)" \
  --clients "$LAT_CLIENTS" --channels "$CHANNELS" --count "$LAT_COUNT" --publish-interval-ms "$INTERVAL_MS"
for i in 0 1 2; do
  echo "node $i: $(curl -s "http://127.0.0.1:$(pub_port "$i")/metrics" | grep -E '^holdfast_cluster_(published|received|lost)_total' | tr '\n' ' ')"
done
stop_nodes "${nodes[@]}"

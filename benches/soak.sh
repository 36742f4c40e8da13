#!/usr/bin/env bash
# Soak: a release holdfast (2 workers) holds ~15 000 connections of every kind for MINUTES
# minutes with churn and steady publishing, then all clients leave and its RSS must come back to
# within 10% of the baseline (no leak). Stops itself; every step is bounded.
#
#   benches/soak.sh 3                 # validation run (~5 min in all)
#   benches/soak.sh 30                # the long one (~32 min)
#
# Connections (environment knobs, defaults):
#   long-lived, connected for the whole soak, one round (the next seq on every channel) per
#   second, 10 subscribers per channel:
#     LL_SSE=3500 LL_STREAM=3000 LL_WS=3500 LL_POLL=1500        (11 500)
#   churn: per kind, a loop of whole cycles until the soak ends: CH_* clients connect (on
#   channels of their own), get CH_ROUNDS rounds (every 500 ms), check them and disconnect;
#   1 s later the next cycle reconnects:
#     CH_SSE=1000 CH_STREAM=1000 CH_WS=1000 CH_POLL=500 CH_ROUNDS=10   (3 500 at a time)
#   so ~15 000 are held at the peak and ~3 500 reconnect every ~7-10 s.
# Every client checks its channel's sequence numbers (the load tool's bitset: lost, reordered,
# duplicated). Long-polling is lossy by nature (a message published while a client is between
# two requests is missed), so poll losses are reported but do not fail the soak; any loss,
# reorder or duplicate for SSE, HTTP streaming or WebSocket does.
#
# Sources: clients bind to 127.0.0.2-127.0.0.9 round-robin (SOURCE_IPS), ~28 000 ephemeral ports
# each, so churn never runs out of ports. Each fleet is its own holdfast-load process tree.
#
# Memory: VmRSS of holdfast is sampled every 10 s (SAMPLE_SECS) into rss.csv with the phase and
# holdfast's own connection gauge (/metrics).
#   baseline = RSS QUIESCE_SECS (15) after the first full connect/disconnect cycle (warm-up: the
#              whole mix connects at once, gets 10 rounds, leaves). The first cycle grows things
#              that are sized once and kept on purpose (the allocator's heap segments, the
#              per-worker read-buffer pool, the connection slab, channel tables' capacity), so
#              RSS of a fresh process is not the level to come back to; the level after one full
#              cycle is.
#   final    = RSS QUIESCE_SECS after every soak client has left (the same wait as the baseline;
#              if it is still above, it is sampled every 5 s for up to SETTLE_SECS more and the
#              time it took is reported).
# The soak passes if final <= 1.10 x baseline and no SSE/stream/WS message was lost, reordered
# or duplicated. The summary (benches/soak/summarize.py) prints RSS over time (per minute),
# deliveries, losses and churned connections; exit 1 on failure.
#
# Allocator: holdfast uses mimalloc, which returns freed pages to the OS lazily (after
# MIMALLOC_PURGE_DELAY ms, 10 by default, and only when the owning thread next allocates or
# frees), so an idle holdfast keeps much of its peak. MIMALLOC_PURGE_DELAY=0 in the environment
# (holdfast inherits it) returns them at once: RSS then tracks live memory more closely, which
# separates allocator retention from a leak (see BENCHMARKS.md for both kinds of run).
#
# Other knobs: NO_BUILD=1 (skip cargo build), OUT=dir (default a temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

MINUTES=${1:-${MINUTES:-3}}
case $MINUTES in '' | *[!0-9]*) echo "usage: $0 MINUTES"; exit 2 ;; esac
[ "$MINUTES" -ge 1 ] || { echo "MINUTES >= 1"; exit 2; }
LL_SSE=${LL_SSE:-3500} LL_STREAM=${LL_STREAM:-3000} LL_WS=${LL_WS:-3500} LL_POLL=${LL_POLL:-1500}
CH_SSE=${CH_SSE:-1000} CH_STREAM=${CH_STREAM:-1000} CH_WS=${CH_WS:-1000} CH_POLL=${CH_POLL:-500}
CH_ROUNDS=${CH_ROUNDS:-10}
PER_CHANNEL=${PER_CHANNEL:-10}
SOURCE_IPS=${SOURCE_IPS:-127.0.0.2-127.0.0.9}
SAMPLE_SECS=${SAMPLE_SECS:-10}
QUIESCE_SECS=${QUIESCE_SECS:-15}
SETTLE_SECS=${SETTLE_SECS:-60}
OUT=${OUT:-$(mktemp -d /tmp/holdfast-soak.XXXXXX)}
mkdir -p "$OUT"

if [ "${NO_BUILD:-0}" != 1 ]; then
  echo "== cargo build --release (holdfast, holdfast-load)"
  timeout 1800 cargo build --release -q --bin holdfast
  (cd benches/load && timeout 1800 cargo build --release -q)
fi
HF=$ROOT/target/release/holdfast
LOAD=$ROOT/benches/load/target/release/holdfast-load
[ -x "$HF" ] && [ -x "$LOAD" ] || { echo "missing $HF or $LOAD"; exit 2; }

PIDS=()
cleanup() {
  # Our background jobs (fleets, churn loops) and their direct children (timeout -> load tool,
  # whose workers die with it), then holdfast, the origin and the sampler.
  local j
  for j in $(jobs -p); do pkill -TERM -P "$j" 2>/dev/null || true; kill "$j" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
}
trap 'cleanup 2>/dev/null' EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() { # port, seconds
  local i
  for i in $(seq $(($2 * 10))); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1 after $2 s"; return 1
}
rss_kib() { awk '/^VmRSS:/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# RSS split (smaps_rollup): anonymous, file-backed, and anonymous in transparent huge pages. A rise
# in the last one with nothing allocating is khugepaged collapsing sparse heap into 2 MiB pages.
rss_split() {
  awk '/^RssAnon:/{a=$2} /^RssFile:/{f=$2} /^AnonHugePages:/{h=$2} END{printf "%d,%d,%d", a, f, h}' \
    "/proc/$1/smaps_rollup" "/proc/$1/status" 2>/dev/null || echo "0,0,0"
}
conns() { gauge holdfast_connections; }
gauge() { # metric name: summed over its labels (workers, kinds)
  curl -s -m 2 "http://127.0.0.1:$PUB_PORT/metrics" 2>/dev/null |
    awk -v m="$1" '$1 == m || index($1, m "{") == 1 {s+=$2} END{print s+0}'
}
phase() { echo "$1" >"$OUT/phase"; echo "[$(date +%T)] phase: $1"; }
now() { date +%s; }

ORIGIN_PORT=$(free_port)
HTTP_PORT=$(free_port)
PUB_PORT=$(free_port)
"$LOAD" origin --listen "127.0.0.1:$ORIGIN_PORT" --threads 2 >"$OUT/origin.log" 2>&1 &
PIDS+=($!)
wait_port "$ORIGIN_PORT" 10
cat >"$OUT/holdfast.toml" <<EOF
[server]
listen = ["127.0.0.1:$HTTP_PORT"]
workers = 2
routes = "*,proto=ws 127.0.0.1:$ORIGIN_PORT,over_http\n* 127.0.0.1:$ORIGIN_PORT\n"
[publish]
listen = "127.0.0.1:$PUB_PORT"
[log]
level = "warn"
EOF
"$HF" --config "$OUT/holdfast.toml" >"$OUT/holdfast.log" 2>&1 &
HFPID=$!
PIDS+=($HFPID)
wait_port "$HTTP_PORT" 10
wait_port "$PUB_PORT" 10

T0=$(now)
phase start
echo "elapsed_s,phase,rss_kib,connections,anon_kib,file_kib,anon_huge_kib" >"$OUT/rss.csv"
(
  while kill -0 $HFPID 2>/dev/null; do
    echo "$(($(date +%s) - T0)),$(cat "$OUT/phase"),$(rss_kib $HFPID),$(conns),$(rss_split $HFPID)" >>"$OUT/rss.csv"
    sleep "$SAMPLE_SECS"
  done
) &
PIDS+=($!)
echo "cold_kib=$(rss_kib $HFPID)" >"$OUT/marks"

url() { # kind
  case $1 in
    sse) echo "http://127.0.0.1:$HTTP_PORT/sse/{ch}" ;;
    stream) echo "http://127.0.0.1:$HTTP_PORT/stream/{ch}" ;;
    ws) echo "ws://127.0.0.1:$HTTP_PORT/ws/{ch}" ;;
    poll) echo "http://127.0.0.1:$HTTP_PORT/poll/{ch}" ;;
  esac
}
# fleet NAME KIND CLIENTS ROUNDS INTERVAL_MS TIMEOUT_S: one `holdfast-load run` (bounded).
fleet() {
  local name=$1 kind=$2 n=$3 rounds=$4 iv=$5 limit=$6
  local ch=$(((n + PER_CHANNEL - 1) / PER_CHANNEL))
  [ "$n" -gt 0 ] || return 0
  timeout $((limit + 180)) "$LOAD" run --kind "$kind" --url "$(url "$kind")" \
    --publish-url "http://127.0.0.1:$PUB_PORT/publish/" \
    --clients "$n" --channels "$ch" --channel-prefix "$name-" --source-ips "$SOURCE_IPS" \
    --count "$rounds" --publish-interval-ms "$iv" --size 100 --publish-conns 2 \
    --connect-wait 120 --timeout "$limit" --idle-timeout 10 \
    --json-out "$OUT/$name.json" >/dev/null 2>"$OUT/$name.log" || true
}

# 1. Warm-up: the whole mix at once, 10 rounds, then everyone leaves.
phase warmup
WARM_PIDS=()
for k in sse stream ws poll; do
  uk=$(echo $k | tr a-z A-Z)
  ll=LL_$uk ch=CH_$uk
  fleet "warm-$k" $k $((${!ll} + ${!ch})) 10 500 60 &
  WARM_PIDS+=($!)
done
for p in "${WARM_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
phase quiesce
sleep "$QUIESCE_SECS"
BASE=$(rss_kib $HFPID)
echo "baseline_kib=$BASE" >>"$OUT/marks"
echo "subscriptions_at_baseline=$(gauge holdfast_subscriptions)" >>"$OUT/marks"
echo "baseline after the warm-up cycle: $((BASE / 1024)) MiB (connections now: $(conns))"

# 2. Soak: long-lived fleets for MINUTES, churn loops until they end.
phase soak
SOAK_START=$(now)
DEADLINE=$((SOAK_START + MINUTES * 60))
echo "soak_start=$((SOAK_START - T0))" >>"$OUT/marks"
LL_PIDS=()
for k in sse stream ws poll; do
  uk=$(echo $k | tr a-z A-Z)
  ll=LL_$uk
  fleet "ll-$k" $k "${!ll}" $((MINUTES * 60)) 1000 $((MINUTES * 60 + 60)) &
  LL_PIDS+=($!)
done
churn_loop() { # kind clients
  local i=0
  while [ "$(now)" -lt $((DEADLINE - 5)) ]; do
    fleet "churn-$1-$(printf %04d $i)" "$1" "$2" "$CH_ROUNDS" 500 60
    i=$((i + 1))
    sleep 1
  done
}
CH_PIDS=()
for k in sse stream ws poll; do
  uk=$(echo $k | tr a-z A-Z)
  ch=CH_$uk
  [ "${!ch}" -gt 0 ] && { churn_loop $k "${!ch}" & CH_PIDS+=($!); }
done
# Progress every minute until the long-lived fleets are done (they stop themselves).
while :; do
  alive=0
  for p in "${LL_PIDS[@]}" "${CH_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
  [ $alive = 1 ] || break
  [ "$(now)" -lt $((DEADLINE + 600)) ] || { echo "soak overran by 10 minutes: stopping"; break; }
  sleep 10
  if [ $((($(now) - SOAK_START) % 60)) -lt 10 ]; then
    echo "[$(date +%T)] soak $((($(now) - SOAK_START) / 60)) min: RSS $(($(rss_kib $HFPID) / 1024)) MiB, $(conns) connections, $(ls "$OUT" | grep -c '^churn-.*json$') churn cycles done"
  fi
done
for p in "${LL_PIDS[@]}" "${CH_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done

# 3. Everyone has left: back to the baseline?
phase leave
LEAVE=$(now)
echo "leave=$((LEAVE - T0))" >>"$OUT/marks"
sleep "$QUIESCE_SECS"
FINAL=$(rss_kib $HFPID)
echo "final_kib=$FINAL" >>"$OUT/marks"
waited=0
while [ "$FINAL" -gt $((BASE * 110 / 100)) ] && [ $waited -lt "$SETTLE_SECS" ]; do
  sleep 5
  waited=$((waited + 5))
  FINAL=$(rss_kib $HFPID)
done
echo "settled_kib=$FINAL" >>"$OUT/marks"
echo "settle_extra_s=$waited" >>"$OUT/marks"
echo "conns_at_end=$(conns)" >>"$OUT/marks"
# holdfast's own view once everyone has left: nothing held, no subscription or channel left
# behind (state that outlives its connection would be a leak whatever the allocator does).
curl -s -m 5 "http://127.0.0.1:$PUB_PORT/metrics" >"$OUT/metrics-end.txt" 2>/dev/null || true
echo "subscriptions_at_end=$(gauge holdfast_subscriptions)" >>"$OUT/marks"
echo "channels_at_end=$(gauge holdfast_channels)" >>"$OUT/marks"
echo "accepted_total=$(gauge holdfast_accepted_connections_total)" >>"$OUT/marks"
echo "delivered_total=$(gauge holdfast_messages_delivered_total)" >>"$OUT/marks"
echo "publishes_total=$(gauge holdfast_publishes_received_total)" >>"$OUT/marks"
echo "slow_consumers_total=$(gauge holdfast_slow_consumer_cuts_total)" >>"$OUT/marks"
echo "minutes=$MINUTES" >>"$OUT/marks"
echo "quiesce_s=$QUIESCE_SECS" >>"$OUT/marks"
phase done
sleep 1
python3 "$ROOT/benches/soak/summarize.py" "$OUT"

#!/usr/bin/env bash
# Publish storm: a release holdfast (2 workers) with 10 000 subscribers over 1 000 channels
# (10 per channel, so the subscribers of every channel sit on both workers) takes 50 000
# items/s for 10 s; every client checks the sequence numbers of its channel.
#
#   benches/storm.sh                 # SSE, then WebSocket (WebSocket-over-HTTP)
#   KINDS=sse benches/storm.sh       # one kind
#   RATE=20000 SECS=5 benches/storm.sh
#   PROXIES="holdfast pushpin" KINDS=sse benches/storm.sh   # the same storm against Pushpin too
#
# Layout: one item fans out to the 10 subscribers of its channel, so 50 000 items/s is
# 500 000 deliveries/s. (10 000 subscribers on ONE channel would be 500 M deliveries/s, which no
# 2-core box does; 10 000 channels of 1 would test only the publish path.) 10 per channel
# exercises both the per-channel fan-out (subscribers of one channel on both workers) and
# many channels per POST.
#
# The publisher (holdfast-load) paces the items (--rate) and puts BATCH of them in one POST over
# PUBLISH_CONNS keep-alive connections; every channel belongs to one connection, which waits for
# each answer, so per-channel order is the publisher's. The achieved rate (items / time from the
# first to the last answered POST) is printed next to the asked one: when the proxy (or the
# shared machine) cannot keep up, the publish API answers later and the achieved rate drops
# below RATE; holdfast drops nothing (its worker inboxes make the publish API wait when full).
#
# Every run uses a fresh proxy, so RSS before / peak (VmHWM and a 200 ms sampler) / after belong
# to that run only. --strict makes the load tool fail on any loss, reorder, duplicate or failed
# connection; this script exits 1 if any run failed.
#
# Pushpin (PROXIES=pushpin; the Debian package) runs from benches/compare/pushpin.conf.in with
# its throttles raised (message_rate, message_hwm = 100 000 000) and a port offset of its own;
# its RSS is that of all its processes (runner, condure, zurl, proxy, handler).
#
# Knobs (environment): CLIENTS CHANNELS RATE SECS BATCH SIZE PUBLISH_CONNS PROCS KINDS PROXIES
# NO_BUILD=1 (skip cargo build) OUT=dir (reports; default a temp dir).
# Bounded: every step has a timeout; the proxies and origin it starts are stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

CLIENTS=${CLIENTS:-10000}
CHANNELS=${CHANNELS:-1000}
RATE=${RATE:-50000}
SECS=${SECS:-10}
BATCH=${BATCH:-250}
SIZE=${SIZE:-100}
PUBLISH_CONNS=${PUBLISH_CONNS:-4}
PROCS=${PROCS:-2}
KINDS=${KINDS:-"sse ws"}
PROXIES=${PROXIES:-holdfast}
OUT=${OUT:-$(mktemp -d /tmp/holdfast-storm.XXXXXX)}
mkdir -p "$OUT"
COUNT=$((RATE * SECS / CHANNELS)) # messages per channel
[ "$COUNT" -ge 1 ] || { echo "RATE*SECS must be >= CHANNELS"; exit 2; }

if [ "${NO_BUILD:-0}" != 1 ]; then
  echo "== cargo build --release (holdfast, holdfast-load)"
  timeout 1800 cargo build --release -q --bin holdfast
  (cd benches/load && timeout 1800 cargo build --release -q)
fi
HF=$ROOT/target/release/holdfast
LOAD=$ROOT/benches/load/target/release/holdfast-load
[ -x "$HF" ] && [ -x "$LOAD" ] || { echo "missing $HF or $LOAD"; exit 2; }

TOOLS="python3 $ROOT/benches/compare/tools.py"
PIDS=()
# stop PID: TERM to PID and every descendant (collected first), KILL what is left after 5 s.
stop() {
  local pids p alive
  pids=$($TOOLS tree "$1" 2>/dev/null | tr '\n' ' ')
  for p in $pids; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 50); do
    alive=0
    for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 1 ] || break
    sleep 0.1
  done
  for p in $pids; do kill -9 "$p" 2>/dev/null || true; done
}
cleanup() {
  local p
  for p in "${PIDS[@]}"; do stop "$p"; done
}
trap cleanup EXIT
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
  echo "nothing listens on port $1 after $2 s"
  return 1
}
# Summed over the process and its descendants (Pushpin is five processes).
rss_kib() { $TOOLS rss "$1"; }
hwm_kib() {
  local t=0 p
  for p in $($TOOLS tree "$1"); do
    t=$((t + $(awk '/^VmHWM:/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
  done
  echo $t
}
cpu_secs() { $TOOLS cpu "$1"; }

ORIGIN_PORT=$(free_port)
"$LOAD" origin --listen "127.0.0.1:$ORIGIN_PORT" --threads 2 >"$OUT/origin.log" 2>&1 &
PIDS+=($!)
wait_port "$ORIGIN_PORT" 10
printf '*,proto=ws 127.0.0.1:%s,over_http\n* 127.0.0.1:%s\n' "$ORIGIN_PORT" "$ORIGIN_PORT" >"$OUT/routes"

# start_proxy NAME TAG: starts holdfast or Pushpin; sets PROXY (pid), HTTP_PORT and PUB_URL.
start_proxy() {
  HTTP_PORT=$(free_port)
  case $1 in
    holdfast)
      local pub_port
      pub_port=$(free_port)
      cat >"$OUT/holdfast-$2.toml" <<EOF
[server]
listen = ["127.0.0.1:$HTTP_PORT"]
workers = 2
routes = "*,proto=ws 127.0.0.1:$ORIGIN_PORT,over_http\n* 127.0.0.1:$ORIGIN_PORT\n"
[publish]
listen = "127.0.0.1:$pub_port"
[log]
level = "warn"
EOF
      "$HF" --config "$OUT/holdfast-$2.toml" >"$OUT/holdfast-$2.log" 2>&1 &
      PROXY=$!
      PIDS+=("$PROXY")
      PUB_URL=http://127.0.0.1:$pub_port/publish/
      wait_port "$pub_port" 10
      ;;
    pushpin)
      command -v pushpin >/dev/null || { echo "pushpin is not installed (apt-get install pushpin)"; return 1; }
      local off dir=$OUT/pushpin-$2
      off=$($TOOLS pp-offset)
      mkdir -p "$dir/run" "$dir/log"
      sed -e "s#{RUNDIR}#$dir/run#; s#{LOGDIR}#$dir/log#; s#{ROUTES}#$OUT/routes#" \
        -e "s#{IPC_PREFIX}#hfstorm$$-#; s#{PORT_OFFSET}#$off#; s#{HTTP_PORT}#$HTTP_PORT#" \
        -e "s#{LOG_LEVEL}#1#; s#{MESSAGE_RATE}#100000000#; s#{MESSAGE_HWM}#100000000#" \
        "$ROOT/benches/compare/pushpin.conf.in" >"$dir/pushpin.conf"
      pushpin --config "$dir/pushpin.conf" --merge-output >"$OUT/pushpin-$2.log" 2>&1 &
      PROXY=$!
      PIDS+=("$PROXY")
      PUB_URL=http://127.0.0.1:$((5561 + off))/publish/
      wait_port $((5561 + off)) 30
      ;;
    *)
      echo "PROXIES: holdfast or pushpin"
      return 1
      ;;
  esac
  wait_port "$HTTP_PORT" 30
}

failed=0
for proxy in $PROXIES; do
  for kind in $KINDS; do
    case $kind in
      sse) url_path="http://127.0.0.1:%s/sse/{ch}" ;;
      stream) url_path="http://127.0.0.1:%s/stream/{ch}" ;;
      ws) url_path="ws://127.0.0.1:%s/ws/{ch}" ;;
      *) echo "KINDS: sse, stream or ws"; exit 2 ;;
    esac
    tag=$proxy-$kind
    start_proxy "$proxy" "$kind"
    pid=$PROXY
    sleep 1
    rss_before=$(rss_kib $pid)
    cpu_before=$(cpu_secs $pid)
    # RSS sampler (200 ms) for the peak and a trace.
    ( while kill -0 $pid 2>/dev/null; do echo "$(date +%s.%N) $(rss_kib $pid)"; sleep 0.2; done ) 2>/dev/null \
      >"$OUT/rss-$tag.txt" &
    sampler=$!
    PIDS+=($sampler)
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    echo "== storm ($proxy, $kind): $CLIENTS clients, $CHANNELS channels ($((CLIENTS / CHANNELS)) per channel), $RATE items/s for $SECS s ($COUNT per channel), batch $BATCH"
    set +e
    # shellcheck disable=SC2059
    timeout $((SECS * 6 + 240)) "$LOAD" run --kind "$kind" --url "$(printf "$url_path" "$HTTP_PORT")" \
      --publish-url "$PUB_URL" \
      --clients "$CLIENTS" --channels "$CHANNELS" --procs "$PROCS" \
      --count "$COUNT" --rate "$RATE" --batch "$BATCH" --size "$SIZE" \
      --publish-conns "$PUBLISH_CONNS" --timeout $((SECS * 5 + 30)) \
      --proxy-tree "$pid" --strict --json-out "$OUT/storm-$tag.json" \
      >/dev/null 2>"$OUT/run-$tag.log"
    rc=$?
    set -e
    tail -n 9 "$OUT/run-$tag.log"
    # Clients are gone once the load tool exits; let the proxy notice, then measure.
    sleep 3
    rss_after=$(rss_kib $pid)
    hwm=$(hwm_kib $pid)
    cpu_after=$(cpu_secs $pid)
    kill $sampler 2>/dev/null || true
    peak=$(awk 'BEGIN{m=0} {if ($2>m) m=$2} END{print m}' "$OUT/rss-$tag.txt")
    python3 - "$OUT/storm-$tag.json" "$tag" "$RATE" "$SECS" "$rss_before" "$peak" "$hwm" \
      "$rss_after" "$cpu_before" "$cpu_after" "$load_before" "$rc" <<'PY'
import json, sys
path, tag, rate, secs, before, peak, hwm, after, c0, c1, load, rc = sys.argv[1:]
try:
    r = json.load(open(path))
except Exception as e:
    print(f"  no report ({e})"); sys.exit(0)
p = r.get("publish") or {}
l = r["latency"]
mib = lambda k: int(k) / 1024
print(f"-- storm figures ({tag})")
print(f"  publish     asked {int(rate)} items/s for {secs} s; achieved {p.get('items',0)} items in "
      f"{p.get('secs',0):.2f} s = {p.get('items_per_s',0):.0f} items/s ({p.get('posts',0)} POSTs, "
      f"{p.get('failed_posts',0)} failed)")
print(f"  deliveries  {r['deliveries']} of {r['expected_deliveries']} expected, "
      f"{r['deliveries_per_s']:.0f}/s over {r['delivery_secs']:.2f} s")
print(f"  integrity   lost {r['lost']}  reordered {r['reordered']}  duplicated {r['duplicated']}  "
      f"| connected {r['connect']['ready']} failed {r['connect']['failed']} closed {r['closed']} "
      f"complete {r['clients_complete']}{'  TIMED OUT' if r['timed_out'] else ''}")
if r.get("errors"):
    print(f"  errors      {r['errors']}")
print(f"  latency     p50 {l['p50_ms']:.1f} ms  p90 {l['p90_ms']:.1f}  p99 {l['p99_ms']:.1f}  "
      f"p99.9 {l['p999_ms']:.1f}  max {l['max_ms']:.1f} ms (publish -> client read, includes queueing)")
print(f"  proxy RSS   before {mib(before):.1f} MiB, connected {mib(r['rss']['connected_kib']):.1f}, "
      f"peak {mib(peak):.1f} (sum of VmHWM {mib(hwm):.1f}), after (clients gone) {mib(after):.1f} MiB")
print(f"  proxy CPU   {float(c1) - float(c0):.1f} s; load average before the run {load}")
print(f"  verdict     {'PASS' if rc == '0' else 'FAIL (load tool exit ' + rc + ')'}")
PY
    [ "$rc" = 0 ] || failed=1
    stop "$pid"
  done
done
echo "reports in $OUT"
exit $failed

#!/usr/bin/env bash
# Memory after a connect storm (issue 17). SSE clients, then in a fresh proxy process WebSocket
# clients, connect as fast as the load tool can against an origin that answers every request after
# 50 ms (thousands of requests in flight at once). Then one publish reaches all of them, and every
# client leaves. The proxy's RSS (summed over its processes) is taken:
#   base       2 s after start, before any connection
#   connected  2 s after the last connect (the load tool's report)
#   left       right after the fan-out and the clients leaving (the load tool's report)
#   left+60 s  after the proxy sat 60 s without a connection (the target: within 10 % of base)
# holdfast (1 worker, on the proxy core) and Pushpin 1.36 (tuned) in the same run.
#
#   benches/connect-storm.sh [--sse N] [--ws M] [--variants hf1,ppt] [--leave-wait S] [--no-build]
#
# Defaults: 15 000 SSE, 12 000 WebSocket, both variants, 60 s. Results (JSON per run and a summary)
# go to benches/compare/results/storm-<timestamp>/. Needs root only to apt-get install pushpin.

set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE=$ROOT/benches/compare
LOAD=$ROOT/benches/load/target/release/holdfast-load
HF=${CARGO_TARGET_DIR:-$ROOT/target}/release/holdfast
TOOLS="python3 $HERE/tools.py"
SSE=15000; WS=12000; VARIANTS=hf1,ppt; LEAVE_WAIT=60; BUILD=1
PROXY_CPU=0; LOAD_CPU=1; DELAY_MS=50; CONC=2048
SRC_IPS=127.0.0.2-127.0.0.9

die() { echo "connect-storm.sh: $*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --sse) SSE=${2:?}; shift ;;
        --ws) WS=${2:?}; shift ;;
        --variants) VARIANTS=${2:?}; shift ;;
        --leave-wait) LEAVE_WAIT=${2:?}; shift ;;
        --no-build) BUILD=0 ;;
        -h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) die "unknown argument: $1" ;;
    esac
    shift
done

if [ $BUILD = 1 ]; then
    (cd "$ROOT" && cargo build --release -q) || die "cargo build --release failed"
    (cd "$ROOT/benches/load" && cargo build --release -q) || die "holdfast-load build failed"
fi
case ",$VARIANTS," in *,ppt,*)
    command -v pushpin >/dev/null || { [ "$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pushpin >/dev/null; } ||
        die "pushpin is not installed";;
esac

PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        for c in $($TOOLS tree "$p" 2>/dev/null); do kill -KILL "$c" 2>/dev/null; done
    done
    [ -n "${RUN:-}" ] && rm -rf "$RUN"
}
trap cleanup EXIT
RES=$HERE/results/storm-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RES" || die "cannot create $RES"
RUN=$(mktemp -d /tmp/holdfast-storm.XXXXXX)
ulimit -n 20000 2>/dev/null || true
read -r ORIGIN_PORT HF_PORT HF_PUB PP_PORT <<<"$($TOOLS ports 4)"
PP_OFFSET=$($TOOLS pp-offset)
PP_PUB=$((5561 + PP_OFFSET))
printf '*,proto=ws 127.0.0.1:%s,over_http\n* 127.0.0.1:%s\n' "$ORIGIN_PORT" "$ORIGIN_PORT" >"$RUN/routes"

taskset -c $LOAD_CPU "$LOAD" origin --listen "127.0.0.1:$ORIGIN_PORT" --threads 1 --delay-ms $DELAY_MS \
    >"$RES/origin.log" 2>&1 &
PIDS+=($!)
disown $!
$TOOLS wait-port "$ORIGIN_PORT" 10 || die "the origin did not start"

# start VARIANT KIND: sets PROXY_PID, PROXY_HTTP, PUB_URL.
start() {
    case $1 in
        hf1)
            taskset -c $PROXY_CPU "$HF" --routes "$RUN/routes" --listen "127.0.0.1:$HF_PORT" \
                --publish-listen "127.0.0.1:$HF_PUB" --workers 1 >"$RES/$1-$2.log" 2>&1 &
            PROXY_HTTP=$HF_PORT; PUB_PORT=$HF_PUB ;;
        ppt)
            local dir=$RUN/pushpin-$2
            mkdir -p "$dir/run" "$dir/log"
            sed -e "s#{RUNDIR}#$dir/run#; s#{LOGDIR}#$dir/log#; s#{ROUTES}#$RUN/routes#" \
                -e "s#{IPC_PREFIX}#hfstorm$$-#; s#{PORT_OFFSET}#$PP_OFFSET#; s#{HTTP_PORT}#$PP_PORT#" \
                -e "s#{LOG_LEVEL}#1#; s#{MESSAGE_RATE}#100000000#; s#{MESSAGE_HWM}#100000000#" \
                "$HERE/pushpin.conf.in" >"$dir/pushpin.conf"
            taskset -c $PROXY_CPU pushpin --config "$dir/pushpin.conf" --merge-output >"$RES/$1-$2.log" 2>&1 &
            PROXY_HTTP=$PP_PORT; PUB_PORT=$PP_PUB ;;
        *) die "unknown variant $1" ;;
    esac
    PROXY_PID=$!
    PIDS+=("$PROXY_PID")
    PUB_URL=http://127.0.0.1:$PUB_PORT/publish/
    $TOOLS wait-port "$PROXY_HTTP" 30 || die "$1 did not start"
    $TOOLS wait-port "$PUB_PORT" 30 || die "$1: no publish port"
    sleep 2
}

stop() {
    local c
    for c in $($TOOLS tree "$PROXY_PID" 2>/dev/null); do kill -TERM "$c" 2>/dev/null; done
    sleep 2
    for c in $($TOOLS tree "$PROXY_PID" 2>/dev/null); do kill -KILL "$c" 2>/dev/null; done
    wait "$PROXY_PID" 2>/dev/null
}

SUMMARY=$RES/summary.jsonl
for v in ${VARIANTS//,/ }; do
    for kind in sse ws; do
        if [ $kind = sse ]; then n=$SSE; url=http://127.0.0.1:PORT/sse/{ch}; else n=$WS; url=ws://127.0.0.1:PORT/ws/{ch}; fi
        start "$v" "$kind"
        url=${url/PORT/$PROXY_HTTP}
        log "$v/$kind: $n clients storm in (origin answers after ${DELAY_MS} ms)"
        taskset -c $LOAD_CPU "$LOAD" run --kind $kind --url "$url" --publish-url "$PUB_URL" \
            --clients "$n" --channels 1 --count 1 --connect-concurrency $CONC --settle-ms 2000 \
            --timeout 120 --proxy-tree "$PROXY_PID" --source-ips $SRC_IPS \
            --json-out "$RES/$v-$kind.json" >/dev/null 2>"$RES/$v-$kind.err" ||
            log "  holdfast-load exited $? (see $RES/$v-$kind.err)"
        log "  clients gone; waiting ${LEAVE_WAIT} s"
        sleep "$LEAVE_WAIT"
        later=$($TOOLS rss "$PROXY_PID")
        python3 - "$RES/$v-$kind.json" "$v" "$kind" "$later" >>"$SUMMARY" <<'EOF'
import json, sys
path, v, kind, later = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
r = json.load(open(path))
rss = r.get("rss") or {}
ready = r.get("connect", {}).get("ready", 0)
base = rss.get("before_kib", 0)
print(json.dumps({
    "variant": v, "kind": kind, "clients": r.get("clients"), "ready": ready,
    "lost": r.get("lost"), "base_kib": base, "connected_kib": rss.get("connected_kib"),
    "per_conn_kib": rss.get("per_conn_kib"), "left_kib": rss.get("after_kib"),
    "left_later_kib": later, "left_later_vs_base": round(later / base, 3) if base else None,
}))
EOF
        tail -1 "$SUMMARY" >&2
        stop
    done
done
python3 - "$SUMMARY" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"{'variant':8} {'kind':4} {'ready':>7} {'KiB/conn':>9} {'base MiB':>9} {'conn MiB':>9} {'left MiB':>9} {'+60s MiB':>9} {'+60s/base':>9}")
for r in rows:
    mib = lambda k: f"{(r.get(k) or 0) / 1024:9.1f}"
    pc = r.get("per_conn_kib")
    print(f"{r['variant']:8} {r['kind']:4} {r['ready']:>7} {pc if pc is not None else '?':>9} {mib('base_kib')} {mib('connected_kib')} {mib('left_kib')} {mib('left_later_kib')} {r['left_later_vs_base']!s:>9}")
EOF
log "results: $RES"

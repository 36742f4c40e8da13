#!/usr/bin/env bash
# holdfast vs Pushpin, side by side, on one machine.
#
#   benches/compare.sh [--quick] [--only SCENARIO,...] [--reps N] [--variants V,...] [--no-build]
#
# Scenarios (all by default, in this order):
#   memory   RSS per idle held connection (SSE, then WebSocket), summed over every proxy process,
#            sampled against the connection count for the chart
#   fanout   deliveries/s to 1 000 and 10 000 SSE subscribers of one channel (64 B and 1 KiB), and to
#            10 000 subscribers over 1 000 channels (--rate max)
#   latency  publish -> delivery latency, 10 000 SSE subscribers, one publish per 100 ms
#   wsoh     WebSocket-over-HTTP: client messages/s reaching the origin, origin requests per 1 000
#   http     plain HTTP proxying with wrk (nginx proxy_pass with keep-alive as a reference)
#   accept   new held connections per second, up to 15 000
#
# Variants (--variants, all by default):
#   hf1  holdfast, workers = 1, taskset to the proxy core (the like-for-like row)
#   hf2  holdfast with its default config (2 workers, one per core, which it pins itself), no taskset
#   ppt  Pushpin 1.36, message_rate and message_hwm raised to 100000000, taskset to the proxy core
#   ppd  Pushpin 1.36 with its defaults (message_rate=2500, message_hwm=25000), taskset likewise
# nginx runs in the http scenario only, and the kernel floor (`holdfast-load floor`: an ideal sender
# that writes each round to every connection in a tight loop) in the latency scenario only. The
# origin, the load tool and wrk run on the load core.
#
# The run alternates the variants (A/B, the order flipped every repetition) --reps times (3; 1 with
# --quick), keeps the raw JSON of every run under benches/compare/results/<timestamp>/, prints a
# table of medians with holdfast/Pushpin(tuned) ratios, and (unless --only is given) writes it with an
# SVG chart into BENCHMARKS.md and benches/compare/results/latest/.
#
# Time on 2 cores: about 45 minutes; --quick about 6 minutes (plus the release builds). Run the full
# version on a quiet machine: the proxy and the load share two cores with whatever else runs.
#
# Every process this script starts is tracked by pid and stopped (with its descendants) on exit,
# error or interrupt. Ports are picked free at start; nothing here touches other people's processes
# or ports. Needs root only to apt-get install what is missing (pushpin, nginx-light, wrk).

set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE=$ROOT/benches/compare
LOAD=$ROOT/benches/load/target/release/holdfast-load
HF=${CARGO_TARGET_DIR:-$ROOT/target}/release/holdfast
PY=python3
TOOLS="$PY $HERE/tools.py"
COMMAND_LINE="benches/compare.sh${*:+ $*}"

ALL_SCENARIOS="memory,fanout,latency,wsoh,http,accept"
ALL_VARIANTS="hf1,ppt,hf2,ppd"
QUICK=0
ONLY=""
REPS=""
VARIANTS=$ALL_VARIANTS
BUILD=1
PROXY_CPU=0
LOAD_CPU=1

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; }
die() { echo "compare.sh: $*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --only) ONLY=${2:?--only needs a list}; shift ;;
        --only=*) ONLY=${1#--only=} ;;
        --reps) REPS=${2:?--reps needs a number}; shift ;;
        --variants) VARIANTS=${2:?--variants needs a list}; shift ;;
        --no-build) BUILD=0 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done

SCENARIOS=${ONLY:-$ALL_SCENARIOS}
for s in ${SCENARIOS//,/ }; do
    case ",$ALL_SCENARIOS," in *",$s,"*) ;; *) die "unknown scenario '$s' (one of $ALL_SCENARIOS)" ;; esac
done
for v in ${VARIANTS//,/ }; do
    case ",$ALL_VARIANTS," in *",$v,"*) ;; *) die "unknown variant '$v' (one of $ALL_VARIANTS)" ;; esac
done
[ -z "$REPS" ] && { [ $QUICK = 1 ] && REPS=1 || REPS=3; }

# ---------------------------------------------------------------------------------------------
# Scenario sizes. Full: the issue's numbers. Quick: a smoke run of a few minutes.
SRC_IPS=127.0.0.2-127.0.0.9
if [ $QUICK = 1 ]; then
    MEM_SSE=3000; MEM_WS=2000; MEM_RATE=1000
    FAN_SMALL=1000; FAN_SMALL_COUNT=100
    FAN_BIG=3000;   FAN_BIG_COUNT=30
    FAN_MANY_CH=300; FAN_MANY_CLIENTS=3000; FAN_MANY_COUNT=10
    FAN_TIMEOUT=15; FAN_TIMEOUT_PPD=8; FAN_IDLE=3
    LAT_CLIENTS=3000; LAT_COUNT=20
    WSOH_CLIENTS=300; WSOH_MESSAGES=50
    WRK_DURATION=5s
    ACCEPT_CLIENTS=5000
else
    MEM_SSE=15000; MEM_WS=12000; MEM_RATE=2000
    FAN_SMALL=1000; FAN_SMALL_COUNT=1000
    FAN_BIG=10000;  FAN_BIG_COUNT=100
    FAN_MANY_CH=1000; FAN_MANY_CLIENTS=10000; FAN_MANY_COUNT=100
    FAN_TIMEOUT=90; FAN_TIMEOUT_PPD=20; FAN_IDLE=5
    LAT_CLIENTS=10000; LAT_COUNT=100
    WSOH_CLIENTS=1000; WSOH_MESSAGES=100
    WRK_DURATION=10s
    ACCEPT_CLIENTS=15000
fi
# Connections being set up at once. Pushpin 1.36 answers 502 to part of a burst of ~256 concurrent
# new connections (zurl/ZeroMQ queues), so every scenario except "accept" uses 64 for every proxy.
CONN_CONC=64
ACCEPT_CONC=512
WRK_ARGS=(-t1 -c64 -d"$WRK_DURATION")

# ---------------------------------------------------------------------------------------------
# Process tracking: every background process we start goes into TRACKED, and is stopped (with all
# its descendants, which are collected before any signal is sent) on exit.
TRACKED=()

untrack() {
    local keep=() p
    for p in "${TRACKED[@]}"; do [ "$p" != "$1" ] && keep+=("$p"); done
    TRACKED=("${keep[@]}")
}

# stop_tree PID: TERM to PID and its descendants, KILL what is left after 8 s.
stop_tree() {
    local root=$1 pids p i
    pids=$($TOOLS tree "$root" 2>/dev/null | tr '\n' ' ')
    if [ -n "${pids// /}" ]; then
        kill -TERM "$root" 2>/dev/null
        for i in $(seq 1 80); do
            local alive=""
            for p in $pids; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
            [ -z "$alive" ] && break
            [ "$i" = 20 ] && kill -TERM $alive 2>/dev/null
            sleep 0.1
        done
        for p in $pids; do kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null; done
    fi
    wait "$root" 2>/dev/null
    untrack "$root"
}

cleanup() {
    local p
    trap - EXIT INT TERM
    for p in "${TRACKED[@]}"; do stop_tree "$p"; done
    [ -n "${RUN:-}" ] && [ -d "$RUN" ] && rm -rf "$RUN"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# bg_track CMD...: start CMD in the background, track it, set BG_PID.
bg_track() {
    "$@" &
    BG_PID=$!
    TRACKED+=("$BG_PID")
}

# run_load ARGS...: the load tool on the load core; waits (interruptibly) and returns its status.
run_load() {
    taskset -c $LOAD_CPU "$LOAD" "$@" &
    local p=$! rc=0
    TRACKED+=("$p")
    wait "$p" || rc=$?
    untrack "$p"
    return $rc
}

# ---------------------------------------------------------------------------------------------
# Setup: packages, builds, ports, run directories.
install_deps() {
    local need=()
    command -v pushpin >/dev/null || need+=(pushpin)
    command -v condure >/dev/null || need+=(condure)
    command -v zurl >/dev/null || need+=(zurl)
    [ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || need+=(nginx-light)
    command -v wrk >/dev/null || need+=(wrk)
    command -v taskset >/dev/null || need+=(util-linux)
    command -v $PY >/dev/null || need+=(python3)
    [ ${#need[@]} = 0 ] && return 0
    [ "$(id -u)" = 0 ] || die "missing ${need[*]}: install them (apt-get install ${need[*]}) or run as root"
    log "installing ${need[*]}"
    # Keep the packages' init scripts from starting system-wide pushpin/nginx services.
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [ ! -e $policy ]; then
        printf '#!/bin/sh\nexit 101\n' > $policy && chmod +x $policy && made_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    local rc=$?
    [ $made_policy = 1 ] && rm -f $policy
    [ $rc = 0 ] || die "apt-get install ${need[*]} failed"
}

build() {
    if [ $BUILD = 1 ]; then
        log "building holdfast (cargo build --release)"
        (cd "$ROOT" && cargo build --release) || die "cargo build --release failed"
        log "building holdfast-load"
        (cd "$ROOT/benches/load" && cargo build --release) || die "holdfast-load build failed"
    fi
    [ -x "$HF" ] || die "no holdfast binary at $HF (run without --no-build)"
    [ -x "$LOAD" ] || die "no holdfast-load at $LOAD (run without --no-build)"
}

[ "$(nproc)" -ge 2 ] || die "needs at least 2 cores (proxy on core $PROXY_CPU, load on core $LOAD_CPU)"
install_deps
build

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RES=$HERE/results/$STAMP
mkdir -p "$RES/raw" "$RES/samples" "$RES/logs" || die "cannot create $RES"
RUN=$(mktemp -d /tmp/holdfast-compare.XXXXXX) || die "mktemp failed"
START_EPOCH=$(date +%s)

read -r ORIGIN_PORT HF_PORT HF_PUB PP_PORT NGINX_PORT FLOOR_PORT <<<"$($TOOLS ports 6)"
PP_OFFSET=$($TOOLS pp-offset)
PP_PUB=$((5561 + PP_OFFSET))
[ -n "$FLOOR_PORT" ] && [ -n "$PP_OFFSET" ] || die "could not pick ports"
log "ports: origin $ORIGIN_PORT, holdfast $HF_PORT (publish $HF_PUB), pushpin $PP_PORT (publish $PP_PUB, port_offset $PP_OFFSET), nginx $NGINX_PORT"
log "results: $RES"

ulimit -n 20000 2>/dev/null || true

printf '*,proto=ws 127.0.0.1:%s,over_http\n* 127.0.0.1:%s\n' "$ORIGIN_PORT" "$ORIGIN_PORT" > "$RUN/routes"

# Everything the report needs to describe the run.
cat > "$RES/meta.json" <<EOF
{
  "stamp": "$STAMP",
  "date": "$(date -u '+%Y-%m-%d %H:%M UTC')",
  "command": "$COMMAND_LINE",
  "quick": $QUICK,
  "reps": $REPS,
  "scenarios": "$SCENARIOS",
  "only": "$ONLY",
  "variants": "$VARIANTS",
  "nproc": $(nproc),
  "kernel": "$(uname -sr)",
  "cpu": "$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//; s/"/\\"/g')",
  "mem": "$(free -g | awk '/^Mem:/{print $2 " GiB"}')",
  "loadavg_start": "$(cut -d' ' -f1-3 /proc/loadavg)",
  "holdfast_commit": "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo '+dirty src')",
  "pushpin": "$(pushpin --version 2>/dev/null | head -1)",
  "condure": "$(dpkg-query -W -f='${Version}' condure 2>/dev/null)",
  "zurl": "$(dpkg-query -W -f='${Version}' zurl 2>/dev/null)",
  "nginx": "$(nginx -v 2>&1 | sed 's/.*nginx\///')",
  "wrk": "$(dpkg-query -W -f='${Version}' wrk 2>/dev/null)",
  "proxy_cpu": $PROXY_CPU,
  "load_cpu": $LOAD_CPU,
  "sizes": {
    "mem_sse": $MEM_SSE, "mem_ws": $MEM_WS, "mem_rate": $MEM_RATE,
    "fan_small": $FAN_SMALL, "fan_small_count": $FAN_SMALL_COUNT,
    "fan_big": $FAN_BIG, "fan_big_count": $FAN_BIG_COUNT,
    "fan_timeout": $FAN_TIMEOUT, "fan_timeout_ppd": $FAN_TIMEOUT_PPD, "fan_many_ch": $FAN_MANY_CH, "fan_many_clients": $FAN_MANY_CLIENTS, "fan_many_count": $FAN_MANY_COUNT,
    "lat_clients": $LAT_CLIENTS, "lat_count": $LAT_COUNT,
    "wsoh_clients": $WSOH_CLIENTS, "wsoh_messages": $WSOH_MESSAGES,
    "wrk": "${WRK_ARGS[*]}", "accept_clients": $ACCEPT_CLIENTS,
    "conn_conc": $CONN_CONC, "accept_conc": $ACCEPT_CONC
  }
}
EOF

# ---------------------------------------------------------------------------------------------
# The origin (one for the whole run) and the proxies.
bg_track taskset -c $LOAD_CPU "$LOAD" origin --listen "127.0.0.1:$ORIGIN_PORT" --threads 1
ORIGIN_PID=$BG_PID
$TOOLS wait-port "$ORIGIN_PORT" 10 || die "the origin did not start"

PROXY_PID=""; PROXY_HTTP=""; PROXY_PUB_URL=""; PROXY_LOG=""
NSTART=0

# start_proxy VARIANT: starts it, waits until it proxies and takes publishes; sets PROXY_*.
start_proxy() {
    local v=$1 dir
    NSTART=$((NSTART + 1))
    PROXY_LOG=$RES/logs/$(printf '%03d' $NSTART)-$v.log
    case $v in
        hf1)
            bg_track taskset -c $PROXY_CPU "$HF" --routes "$RUN/routes" --listen "127.0.0.1:$HF_PORT" \
                --publish-listen "127.0.0.1:$HF_PUB" --workers 1 >"$PROXY_LOG" 2>&1
            PROXY_HTTP=$HF_PORT; PROXY_PUB_URL=http://127.0.0.1:$HF_PUB/publish/ ;;
        hf2)
            bg_track "$HF" --routes "$RUN/routes" --listen "127.0.0.1:$HF_PORT" \
                --publish-listen "127.0.0.1:$HF_PUB" >"$PROXY_LOG" 2>&1
            PROXY_HTTP=$HF_PORT; PROXY_PUB_URL=http://127.0.0.1:$HF_PUB/publish/ ;;
        ppt|ppd)
            local rate=100000000 hwm=100000000
            [ $v = ppd ] && { rate=2500; hwm=25000; }
            dir=$RUN/pushpin-$NSTART
            mkdir -p "$dir/run" "$dir/log"
            sed -e "s#{RUNDIR}#$dir/run#; s#{LOGDIR}#$dir/log#; s#{ROUTES}#$RUN/routes#" \
                -e "s#{IPC_PREFIX}#hfcmp$$-#; s#{PORT_OFFSET}#$PP_OFFSET#; s#{HTTP_PORT}#$PP_PORT#" \
                -e "s#{LOG_LEVEL}#1#; s#{MESSAGE_RATE}#$rate#; s#{MESSAGE_HWM}#$hwm#" \
                "$HERE/pushpin.conf.in" >"$dir/pushpin.conf"
            bg_track taskset -c $PROXY_CPU pushpin --config "$dir/pushpin.conf" --merge-output >"$PROXY_LOG" 2>&1
            PROXY_HTTP=$PP_PORT; PROXY_PUB_URL=http://127.0.0.1:$PP_PUB/publish/ ;;
        nginx)
            dir=$RUN/nginx-$NSTART
            mkdir -p "$dir"
            sed -e "s#{RUNDIR}#$dir#g; s#{PORT}#$NGINX_PORT#; s#{ORIGIN_PORT}#$ORIGIN_PORT#" \
                "$HERE/nginx.conf.in" >"$dir/nginx.conf"
            bg_track taskset -c $PROXY_CPU nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/nginx-error.log" >"$PROXY_LOG" 2>&1
            PROXY_HTTP=$NGINX_PORT; PROXY_PUB_URL="" ;;
    esac
    PROXY_PID=$BG_PID
    if ! $TOOLS wait-http "http://127.0.0.1:$PROXY_HTTP/plain" 30; then
        tail -20 "$PROXY_LOG" >&2
        die "$v did not start (log: $PROXY_LOG)"
    fi
    if [ -n "$PROXY_PUB_URL" ]; then
        local pub_port=${PROXY_PUB_URL#http://127.0.0.1:}
        $TOOLS wait-port "${pub_port%%/*}" 20 || die "$v: publish port did not open"
    fi
    # Pushpin's handler connects to the proxy over ZeroMQ after its ports open: give it a moment.
    case $v in pp*) sleep 1.5 ;; *) sleep 0.3 ;; esac
    log "started $v (pid $PROXY_PID, $($TOOLS tree "$PROXY_PID" | wc -l) processes, $(($($TOOLS rss "$PROXY_PID") / 1024)) MiB RSS)"
}

stop_proxy() {
    [ -n "$PROXY_PID" ] && stop_tree "$PROXY_PID"
    PROXY_PID=""
    sleep 0.5
}

# Kernel counters (system-wide) read around every run: SYNs dropped because a listen backlog was
# full, and SYN retransmits (each costs the connection 1 s).
net_ctr() {
    awk 'NR % 2 == 1 { for (i = 1; i <= NF; i++) h[i] = $i }
         NR % 2 == 0 { for (i = 1; i <= NF; i++) if (h[i] == "ListenOverflows" || h[i] == "TCPSynRetrans") v[h[i]] = $i }
         END { print v["ListenOverflows"] + 0, v["TCPSynRetrans"] + 0 }' /proc/net/netstat
}
net_mark() { NET0=$(net_ctr); }
NET0="0 0"

# record SCENARIO CASE VARIANT FILE RC [EXTRA_JSON]: one line in runs.jsonl.
record() {
    local net
    net=$(echo "$NET0 $(net_ctr)" | awk '{ printf "\"listen_overflows\":%d,\"syn_retrans\":%d", $3 - $1, $4 - $2 }')
    local alive=true state
    state=$(sed 's/.*) //' "/proc/$PROXY_PID/stat" 2>/dev/null | cut -d' ' -f1)
    # The floor exits by itself after its last round.
    if [ "$3" != floor ] && { [ -z "$state" ] || [ "$state" = Z ]; }; then
        alive=false
        log "    $3 is gone: it exited during the run (see logs/$(basename "$PROXY_LOG"))"
    fi
    printf '{"rep":%d,"scenario":"%s","case":"%s","variant":"%s","file":"%s","rc":%d,"log":"%s","proxy_alive":%s,%s%s}\n' \
        "$REP" "$1" "$2" "$3" "$4" "$5" "$(basename "$PROXY_LOG")" "$alive" "$net" "${6:+,$6}" >>"$RES/runs.jsonl"
}

# load_run SCENARIO CASE VARIANT ARGS...: a `holdfast-load run` against the current proxy.
load_run() {
    local scen=$1 case=$2 v=$3; shift 3
    local name=r$REP-$scen-$case-$v
    local raw=raw/$name.json rc=0
    log "  $scen/$case on $v"
    net_mark
    run_load run --publish-url "$PROXY_PUB_URL" --proxy-tree "$PROXY_PID" --source-ips $SRC_IPS \
        --json-out "$RES/$raw" "$@" >/dev/null 2>"$RES/logs/$name.err" || rc=$?
    [ $rc = 0 ] || log "    holdfast-load exited $rc (see logs/$name.err)"
    record "$scen" "$case" "$v" "$raw" $rc
    sleep 1
}

# ---------------------------------------------------------------------------------------------
# Scenarios. Each one runs the given variant once; the driver alternates variants and repetitions.

sc_memory() {
    local v=$1 kind n url name raw rc sampler
    for kind in sse ws; do
        if [ $kind = sse ]; then n=$MEM_SSE; url=http://127.0.0.1:PORT/sse/{ch}; else n=$MEM_WS; url=ws://127.0.0.1:PORT/ws/{ch}; fi
        start_proxy "$v"
        url=${url/PORT/$PROXY_HTTP}
        name=r$REP-memory-$kind-$v
        bg_track taskset -c $LOAD_CPU $TOOLS sample "$PROXY_HTTP" "$PROXY_PID" "$RES/samples/$name.jsonl" 0.25
        sampler=$BG_PID
        for _ in $(seq 1 50); do [ -s "$RES/samples/$name.jsonl" ] && break; sleep 0.1; done
        load_run memory $kind "$v" --kind $kind --url "$url" --clients $n --channels 1 --count 1 \
            --connect-concurrency $CONN_CONC --connect-rate $MEM_RATE --settle-ms 2000 --timeout 20
        stop_tree "$sampler"
        stop_proxy
    done
}

# One fresh proxy per case: a Pushpin that has just seen 10 000 subscribers leave stays slow for a
# while (a 1 000 x 1 000 fan-out right after ran at 88 000 instead of 545 000 deliveries/s).
fanout_case() {
    local v=$1 case=$2; shift 2
    local timeout=$FAN_TIMEOUT
    # Pushpin's default throttle (2 500 messages/s) would make its runs last minutes: cut them short.
    [ "$v" = ppd ] && [ "$timeout" -gt "$FAN_TIMEOUT_PPD" ] && timeout=$FAN_TIMEOUT_PPD
    start_proxy "$v"
    load_run fanout "$case" "$v" --kind sse --url "http://127.0.0.1:$PROXY_HTTP/sse/{ch}" --rate max \
        --batch 10 --connect-concurrency $CONN_CONC --timeout "$timeout" --idle-timeout $FAN_IDLE "$@"
    stop_proxy
}

sc_fanout() {
    local v=$1
    fanout_case "$v" "s${FAN_SMALL}-64B" --clients $FAN_SMALL --channels 1 --count $FAN_SMALL_COUNT --size 64
    fanout_case "$v" "s${FAN_SMALL}-1KiB" --clients $FAN_SMALL --channels 1 --count $FAN_SMALL_COUNT --size 1024
    fanout_case "$v" "s${FAN_BIG}-64B" --clients $FAN_BIG --channels 1 --count $FAN_BIG_COUNT --size 64
    fanout_case "$v" "s${FAN_BIG}-1KiB" --clients $FAN_BIG --channels 1 --count $FAN_BIG_COUNT --size 1024
    fanout_case "$v" "s${FAN_MANY_CLIENTS}-c${FAN_MANY_CH}-64B" --clients $FAN_MANY_CLIENTS \
        --channels $FAN_MANY_CH --count $FAN_MANY_COUNT --size 64
}

sc_latency() {
    local v=$1
    [ "$v" = floor ] && { latency_floor; return; }
    start_proxy "$v"
    load_run latency "s${LAT_CLIENTS}-100ms" "$v" --kind sse --url "http://127.0.0.1:$PROXY_HTTP/sse/{ch}" \
        --clients $LAT_CLIENTS --channels 1 --count $LAT_COUNT --publish-interval-ms 100 --size 100 \
        --connect-concurrency $CONN_CONC --timeout $((LAT_COUNT / 10 + 30)) --idle-timeout 5
    stop_proxy
}

# The kernel's floor under the latency scenario: `holdfast-load floor` on the proxy core writes
# each round to every connection in a tight loop (no parsing, no routing, no origin), with the
# same clients, rounds and stamps as the proxies get. Above it: the proxy's work and the trip a
# publish makes to it (the floor stamps each round itself, on the proxy core).
latency_floor() {
    local name=r$REP-latency-s${LAT_CLIENTS}-100ms-floor rc=0
    NSTART=$((NSTART + 1))
    PROXY_LOG=$RES/logs/$(printf '%03d' $NSTART)-floor.log
    bg_track taskset -c $PROXY_CPU "$LOAD" floor --listen "127.0.0.1:$FLOOR_PORT" --clients $LAT_CLIENTS \
        --count $LAT_COUNT --interval-ms 100 --size 100 >"$PROXY_LOG" 2>&1
    PROXY_PID=$BG_PID
    $TOOLS wait-port "$FLOOR_PORT" 20 || die "floor: port did not open"
    log "  latency/s${LAT_CLIENTS}-100ms on floor"
    net_mark
    run_load subscribe --kind sse --url "http://127.0.0.1:$FLOOR_PORT/sse/{ch}" --clients $LAT_CLIENTS \
        --expect $LAT_COUNT --duration $((LAT_COUNT / 10 + 30)) --source-ips $SRC_IPS \
        --connect-concurrency $CONN_CONC --json-out "$RES/raw/$name.json" >/dev/null \
        2>"$RES/logs/$name.err" || rc=$?
    [ $rc = 0 ] || log "    holdfast-load exited $rc (see logs/$name.err)"
    wait "$PROXY_PID" 2>/dev/null
    record latency "s${LAT_CLIENTS}-100ms" floor "raw/$name.json" $rc
    untrack "$PROXY_PID"
    PROXY_PID=""
    sleep 1
}

sc_wsoh() {
    local v=$1 name raw rc=0
    start_proxy "$v"
    name=r$REP-wsoh-batch-$v
    raw=raw/$name.json
    log "  wsoh/batch on $v"
    net_mark
    run_load wsoh-batch --url "ws://127.0.0.1:$PROXY_HTTP/ws/{ch}" --clients $WSOH_CLIENTS \
        --messages $WSOH_MESSAGES --size 100 --origin-stats "http://127.0.0.1:$ORIGIN_PORT/stats" \
        --source-ips $SRC_IPS --connect-concurrency $CONN_CONC --timeout 60 \
        --json-out "$RES/$raw" >/dev/null 2>"$RES/logs/$name.err" || rc=$?
    [ $rc = 0 ] || log "    holdfast-load exited $rc (see logs/$name.err)"
    record wsoh batch "$v" "$raw" $rc
    stop_proxy
}

sc_http() {
    local v=$1 name raw rc=0 url cpu0 cpu1 t0 t1
    start_proxy "$v"
    url=http://127.0.0.1:$PROXY_HTTP/plain
    name=r$REP-http-wrk-$v
    raw=raw/$name.json
    log "  http/wrk on $v"
    taskset -c $LOAD_CPU wrk -t1 -c64 -d2s "$url" >/dev/null 2>&1   # warm-up
    net_mark
    cpu0=$($TOOLS cpu "$PROXY_PID"); t0=$(date +%s.%N)
    taskset -c $LOAD_CPU wrk "${WRK_ARGS[@]}" -s "$HERE/wrk-json.lua" "$url" >"$RES/logs/$name.out" 2>&1 || rc=$?
    cpu1=$($TOOLS cpu "$PROXY_PID"); t1=$(date +%s.%N)
    grep '^WRKJSON ' "$RES/logs/$name.out" | sed 's/^WRKJSON //' >"$RES/$raw"
    if [ ! -s "$RES/$raw" ]; then
        [ $rc = 0 ] && rc=1
        log "    wrk printed no result (see logs/$name.out)"
    fi
    grep -q 'Non-2xx' "$RES/logs/$name.out" && log "    wrk: $(grep 'Non-2xx' "$RES/logs/$name.out")"
    record http wrk "$v" "$raw" $rc "$(awk -v c0="$cpu0" -v c1="$cpu1" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "\"proxy_cpu_s\":%.2f,\"wall_s\":%.2f", c1 - c0, t1 - t0 }')"
    stop_proxy
}

sc_accept() {
    local v=$1
    start_proxy "$v"
    load_run accept "s${ACCEPT_CLIENTS}" "$v" --kind sse --url "http://127.0.0.1:$PROXY_HTTP/sse/{ch}" \
        --clients $ACCEPT_CLIENTS --channels 1 --count 1 --connect-concurrency $ACCEPT_CONC \
        --connect-rate 1000000 --settle-ms 500 --timeout 20
    stop_proxy
}

# ---------------------------------------------------------------------------------------------
# The driver: repetitions outside, scenarios inside, variants alternating (order reversed on every
# other repetition so that neither proxy always runs first).
read -r -a VLIST <<<"${VARIANTS//,/ }"
for REP in $(seq 1 "$REPS"); do
    order=("${VLIST[@]}")
    if [ $((REP % 2)) = 0 ]; then
        order=(); for ((i = ${#VLIST[@]} - 1; i >= 0; i--)); do order+=("${VLIST[$i]}"); done
    fi
    for scen in ${SCENARIOS//,/ }; do
        vs=("${order[@]}")
        [ "$scen" = http ] && vs+=(nginx)
        [ "$scen" = latency ] && vs+=(floor)
        log "rep $REP/$REPS: $scen (${vs[*]})"
        for v in "${vs[@]}"; do
            "sc_$scen" "$v"
        done
    done
done

stop_tree "$ORIGIN_PID"
ELAPSED=$(($(date +%s) - START_EPOCH))
log "runs done in ${ELAPSED}s; writing the report"

cut -d' ' -f1-3 /proc/loadavg >"$RES/loadavg_end"
gzip -q "$RES"/logs/*.log 2>/dev/null   # Pushpin can log a line per dropped message
REPORT_ARGS=("$RES" --elapsed "$ELAPSED")
[ -z "$ONLY" ] && REPORT_ARGS+=(--benchmarks "$ROOT/BENCHMARKS.md" --latest "$HERE/results/latest")
$PY "$HERE/report.py" "${REPORT_ARGS[@]}" || die "report failed"

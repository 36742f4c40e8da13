"""ZeroMQ publishers and a command client that holdfast did not write, for tests/zmq.rs and the
parity suite: pyzmq sending what Pushpin's docs show, and pubcontrol / gripcontrol's own ZeroMQ
publishing.

Usage: zmq_client.py OP JSON_ARGS. Each op prints one JSON line per event on stdout.

  push      {"endpoint", "messages": [[PART, ...], ...]}   PUSH connect, send each message
            (or "numbered": {"channel", "count"}: http-stream items "0\n", "1\n", ...)
  command   {"endpoint", "request": TNET}                  REQ: print the decoded response
  xpub      {"endpoint"}                                   XPUB connect; prints {"sub": ch} and
            {"unsub": ch} as subscriptions arrive; reads stdin lines
            {"send": [PART, ...]} and {"quit": true}
  stats     {"endpoint", "prefix", "count"}                SUB connect: print `count` messages
            whose type is `prefix` ({"type", "format", "fields"})
  pubcontrol {"command", "channel", "content"}             ZmqPubControlClient (discovers the
            PUSH endpoint with get-zmq-uris), one blocking publish
  gripcontrol {"command", "channel", "content"}            GripPubControl with require_subscribers:
            waits for holdfast to subscribe (XPUB), then publishes

A PART is {"tnet": value} (strings become byte strings), {"json": value} ('J' + JSON),
{"text": "..."} or {"hex": "..."}.
"""

import json
import select
import sys
import threading
import time

import tnetstring
import zmq


def to_bytes(v):
    if isinstance(v, str):
        return v.encode()
    if isinstance(v, list):
        return [to_bytes(x) for x in v]
    if isinstance(v, dict):
        return {to_bytes(k): to_bytes(x) for k, x in v.items()}
    return v


def to_text(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, list):
        return [to_text(x) for x in v]
    if isinstance(v, dict):
        return {to_text(k): to_text(x) for k, x in v.items()}
    return v


def part(p):
    if "tnet" in p:
        return tnetstring.dumps(to_bytes(p["tnet"]))
    if "json" in p:
        return b"J" + json.dumps(p["json"]).encode()
    if "text" in p:
        return p["text"].encode()
    return bytes.fromhex(p["hex"])


def say(obj):
    print(json.dumps(obj), flush=True)


def push(args):
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.PUSH)
    s.connect(args["endpoint"])
    messages = args.get("messages") or [
        [{"tnet": {"channel": n["channel"], "formats": {"http-stream": {"content": f"{i}\n"}}}}]
        for n in [args["numbered"]]
        for i in range(n["count"])
    ]
    for message in messages:
        # PUSH blocks (at its high-water mark) until holdfast takes the message.
        if not s.poll(10000, zmq.POLLOUT):
            say({"error": "pollout timeout"})
            sys.exit(1)
        s.send_multipart([part(p) for p in message])
    s.setsockopt(zmq.LINGER, 10000)
    s.close()
    say({"sent": len(messages)})


def command(args):
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(args["endpoint"])
    req = args["request"]
    s.send(req if isinstance(req, bytes) else tnetstring.dumps(to_bytes(req)))
    if not s.poll(10000, zmq.POLLIN):
        say({"error": "no response"})
        sys.exit(1)
    say(to_text(tnetstring.loads(s.recv())))


def xpub(args):
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.XPUB)
    s.setsockopt(zmq.LINGER, 5000)
    s.connect(args["endpoint"])
    say({"connected": True})
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], 0.01)
        while s.poll(0, zmq.POLLIN):
            m = s.recv()
            say({"sub" if m[:1] == b"\x01" else "unsub": m[1:].decode()})
        if ready:
            line = sys.stdin.readline()
            if not line:
                return
            cmd = json.loads(line)
            if "quit" in cmd:
                s.close()
                return
            s.send_multipart([part(p) for p in cmd["send"]])
            say({"sent": True})


def stats(args):
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.SUBSCRIBE, args["prefix"].encode() + b" ")
    s.connect(args["endpoint"])
    for _ in range(args["count"]):
        if not s.poll(10000, zmq.POLLIN):
            say({"error": "no stats message"})
            sys.exit(1)
        kind, _, rest = s.recv().partition(b" ")
        fmt, body = rest[:1], rest[1:]
        fields = tnetstring.loads(body) if fmt == b"T" else json.loads(body)
        say({"type": kind.decode(), "format": fmt.decode(), "fields": to_text(fields)})


def pubcontrol(args):
    from gripcontrol import HttpStreamFormat
    from pubcontrol import Item, ZmqPubControlClient

    client = ZmqPubControlClient(args["command"])
    client.publish(args["channel"], Item(HttpStreamFormat(args["content"])), blocking=True)
    say({"push_uri": client.push_uri})
    # pubcontrol's PUSH socket has linger 0: closing at once may discard what is still queued.
    time.sleep(0.5)
    client.close()


def gripcontrol(args):
    from gripcontrol import GripPubControl

    subscribed = threading.Event()

    def on_sub(event, channel):
        if event == "sub" and channel == args["channel"]:
            subscribed.set()

    pc = GripPubControl(
        {"control_zmq_uri": args["command"], "require_subscribers": True}, on_sub
    )
    # GripPubControl discovers the endpoints (get-zmq-uris) on its first publish, then connects
    # its XPUB socket; what it publishes before holdfast's subscription arrives goes nowhere
    # (the reader skips a "discovery" chunk should one get through).
    pc.publish_http_stream(args["channel"], "discovery\n", blocking=True)
    if not subscribed.wait(10):
        say({"error": "holdfast never subscribed"})
        sys.exit(1)
    pc.publish_http_stream(args["channel"], args["content"], blocking=True)
    time.sleep(0.5)  # the XPUB socket sends from pubcontrol's own thread
    say({"published": True})
    pc.close()


if __name__ == "__main__":
    op, raw = sys.argv[1], json.loads(sys.argv[2])
    {
        "push": push,
        "command": command,
        "xpub": xpub,
        "stats": stats,
        "pubcontrol": pubcontrol,
        "gripcontrol": gripcontrol,
    }[op](raw)

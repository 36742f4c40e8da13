"""ZeroMQ publishing scenarios for run.py (only when it is given the proxy's ZeroMQ endpoints):
the same messages, as Pushpin's docs show them, sent with pyzmq to Pushpin's and holdfast's PULL,
SUB and command sockets; the subscriber's stream and the command answers are observed.

Needs pyzmq and tnetstring (tests/apps/requirements.txt), imported only here, so run.py stays
standard-library-only for the HTTP scenarios.
"""

import time

import tnetstring
import zmq


def _bytes(v):
    if isinstance(v, str):
        return v.encode()
    if isinstance(v, list):
        return [_bytes(x) for x in v]
    if isinstance(v, dict):
        return {_bytes(k): _bytes(x) for k, x in v.items()}
    return v


def _text(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, list):
        return [_text(x) for x in v]
    if isinstance(v, dict):
        return {_text(k): _text(x) for k, x in v.items()}
    return v


def tnet(v):
    return tnetstring.dumps(_bytes(v))


def _item(ch, content):
    return {"channel": ch, "formats": {"http-stream": {"content": content}}}


def push(endpoint, messages):
    s = zmq.Context.instance().socket(zmq.PUSH)
    s.setsockopt(zmq.LINGER, 5000)
    s.connect(endpoint)
    for m in messages:
        if not s.poll(5000, zmq.POLLOUT):
            raise AssertionError("PUSH: no peer")
        s.send_multipart(m)
    s.close()


def command(endpoint, request):
    s = zmq.Context.instance().socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    s.send(tnet(request))
    if not s.poll(5000, zmq.POLLIN):
        s.close()
        return "no answer"
    answer = _text(tnetstring.loads(s.recv()))
    s.close()
    return answer


def scenario_zmq_pull(ctx, open_stream, read_stream_text, deadline):
    """Items on the PULL socket: tnetstring, 'T' + tnetstring, 'J' + JSON, raw bytes in content;
    an invalid item and a two-part message in between are skipped."""
    ch = ctx["label"] + "-zpull"
    c, obs = open_stream(ctx, "/stream?ch=" + ch)
    try:
        obs["initial"], _ = read_stream_text(c, deadline(), "stream-open\n")
        time.sleep(0.3)
        push(ctx["zmq_pull"], [
            [tnet(_item(ch, "one\n"))],
            [tnet(_item("", "never\n"))],
            [b"T" + tnet(_item(ch, "two\n"))],
            [b"two", b"parts"],
            [b"J" + ('{"channel": "%s", "formats": {"http-stream": {"content": "three\\n"}}}' % ch).encode()],
            [tnet({"channel": ch, "formats": {"http-stream": {"content": b"bin \xff\n"}}})],
            [tnet(_item(ch, "end\n"))],
        ])
        obs["published"], _ = read_stream_text(c, deadline(), "end\n")
    finally:
        c.close()
    return obs


def scenario_zmq_sub(ctx, open_stream, read_stream_text, deadline):
    """An XPUB publisher on the SUB socket: the proxy subscribes to the channel once a client
    holds it; [channel, item] messages reach the client."""
    ch = ctx["label"] + "-zsub"
    x = zmq.Context.instance().socket(zmq.XPUB)
    x.setsockopt(zmq.LINGER, 2000)
    x.connect(ctx["zmq_sub"])

    def subscriptions(wait):
        seen = []
        end = time.monotonic() + wait
        while time.monotonic() < end:
            if x.poll(50, zmq.POLLIN):
                m = x.recv()
                if m[1:].decode("utf-8", "replace").startswith(ch):
                    seen.append(("sub " if m[:1] == b"\x01" else "unsub ") + m[1:].decode())
                    return seen
        return seen

    obs = {"subscriptions_before_client": subscriptions(0.5)}
    c, head = open_stream(ctx, "/stream?ch=" + ch)
    obs.update(head)
    try:
        obs["initial"], _ = read_stream_text(c, deadline(), "stream-open\n")
        obs["subscriptions_with_client"] = subscriptions(5)
        x.send_multipart([ch.encode(), tnet({"formats": {"http-stream": {"content": "via sub\n"}}})])
        x.send_multipart([ch.encode(), b'J{"formats": {"http-stream": {"content": "json\\n"}}}'])
        # An item naming another channel: the channel part wins.
        x.send_multipart([ch.encode(), tnet(_item("elsewhere", "part wins\n"))])
        obs["published"], _ = read_stream_text(c, deadline(), "part wins\n")
    finally:
        c.close()
        x.close()
    return obs


def scenario_zmq_command(ctx, open_stream, read_stream_text, deadline):
    """The command socket: get-zmq-uris, publish (good and bad), recover, refresh, unknown."""
    ch = ctx["label"] + "-zcmd"
    ep = ctx["zmq_command"]
    obs = {}
    uris = command(ep, {"method": "get-zmq-uris"})
    obs["get-zmq-uris"] = {
        "success": uris.get("success"),
        "keys": sorted(uris.get("value", {})),
        "command_is_this_one": uris.get("value", {}).get("command") == ep,
    }
    c, head = open_stream(ctx, "/stream?ch=" + ch)
    obs.update(head)
    try:
        obs["initial"], _ = read_stream_text(c, deadline(), "stream-open\n")
        time.sleep(0.3)
        obs["publish"] = command(ep, {"id": "p1", "method": "publish", "args": {"items": [_item(ch, "cmd\n")]}})
        bad = command(ep, {"method": "publish", "args": {"items": [_item(ch, "a\n"), {"channel": ch}]}})
        obs["publish_bad"] = {
            "success": bad.get("success"),
            "condition": bad.get("condition"),
            "value_starts": str(bad.get("value", ""))[:15],
        }
        obs["publish_no_items"] = command(ep, {"method": "publish", "args": {}})
        obs["recover"] = command(ep, {"method": "recover"})
        obs["refresh_channel"] = command(ep, {"method": "refresh", "args": {"channel": ch}})
        obs["refresh_bad"] = command(ep, {"method": "refresh", "args": {}}).get("condition")
        obs["unknown"] = command(ep, {"method": "no-such-method"})
        obs["conncheck"] = command(ep, {"method": "conncheck", "args": {"ids": ["no-such-id"]}})
        command(ep, {"method": "publish", "args": {"items": [_item(ch, "end\n")]}})
        obs["published"], _ = read_stream_text(c, deadline(), "end\n")
    finally:
        c.close()
    return obs


def scenario_zmq_stats(ctx, open_stream, read_stream_text, deadline):
    """One `report` message from the stats socket (both send one every 10 s), while a stream
    client is connected: its framing, the fields and their types."""
    if not ctx.get("zmq_stats"):
        return {"skipped": "no stats endpoint"}
    ch = ctx["label"] + "-zstats"
    s = zmq.Context.instance().socket(zmq.SUB)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.SUBSCRIBE, b"report ")
    s.connect(ctx["zmq_stats"])
    c, obs = open_stream(ctx, "/stream?ch=" + ch)
    try:
        obs["initial"], _ = read_stream_text(c, deadline(), "stream-open\n")
        if not s.poll(12000, zmq.POLLIN):
            obs["report"] = "none within 12 s"
            return obs
        kind, _, rest = s.recv().partition(b" ")
        fields = tnetstring.loads(rest[1:]) if rest[:1] == b"T" else {}
        obs["report"] = {
            "type": kind.decode(),
            "format": rest[:1].decode(),
            "from_is_a_string": isinstance(fields.get(b"from"), bytes),
            "fields": {k.decode(): type(v).__name__ for k, v in sorted(fields.items())},
            "connections_at_least_1": fields.get(b"connections", 0) >= 1,
        }
    finally:
        c.close()
        s.close()
    return obs


SCENARIOS = [
    ("zmq_pull", scenario_zmq_pull),
    ("zmq_sub", scenario_zmq_sub),
    ("zmq_command", scenario_zmq_command),
    ("zmq_stats", scenario_zmq_stats),
]

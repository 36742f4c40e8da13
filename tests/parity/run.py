#!/usr/bin/env python3
"""Runs the same observable GRIP scenarios against a GRIP proxy (Pushpin or holdfast), and
compares two such runs.

  run.py scenarios --http HOST:PORT --publish HOST:PORT --django PORT --label NAME --out FILE
      Runs every scenario through the proxy at --http, publishing to --publish, with the Django
      app of tests/apps/django_events (port --django) as the origin behind it (routes: `*,proto=ws
      127.0.0.1:DJANGO,over_http` and `* 127.0.0.1:DJANGO`). Writes {scenario: observation} as
      JSON. Channel names carry --label so that two proxies in front of one app never share one;
      observations have the label replaced by "L".
      With --zmq-pull/--zmq-sub/--zmq-command (the proxy's ZeroMQ endpoints) it also runs the
      ZeroMQ publishing scenarios of zmq_scenarios.py (pyzmq, tnetstring).
  run.py compare PUSHPIN.json HOLDFAST.json
      Prints every difference, marks the ones explained in EXPECTED below, and exits 1 if any
      difference is not explained.

Standard library only (raw sockets, so framing and headers are seen as sent). Every wait is
bounded. Used by tests/parity/main.rs, which starts Pushpin, holdfast and the Django app.
"""

import argparse
import base64
import concurrent.futures
import fnmatch
import json
import os
import socket
import struct
import sys
import time
import traceback

IO_TIMEOUT = 5.0

# ---------------------------------------------------------------------------------------------
# Pushpin behaviours the scenarios are built around (not differences):
# - Its default throttles (message_rate 2500/s, message_hwm 25 000) drop messages beyond them:
#   tests/parity/pushpin.conf.template raises both to 100000000.
# - It raises a Grip-Timeout under 5 s to 5 s, as holdfast does.
# - About 1 s after a long-poll subscribes to a channel it asks the origin again (its
#   subscription-confirmed retry), restarting the timeout: a timed-out long-poll answers after
#   ~6 s in Pushpin, ~5 s in holdfast. Kept as `_elapsed` (reported as INFO, not compared).
# - A lost publish (a prev-id gap) is recovered after message_wait (5 s) in holdfast, ~6 s in
#   Pushpin (its sequencer checks every second). When the gap comes within the hold's first
#   second, Pushpin was seen to fetch the next link after ~1 s instead (probably the same
#   subscription-confirmed check); django_lost_publish_settled waits 2 s first to see the
#   steady-state behaviour. Both kept as `_elapsed`.
#
# Differences between Pushpin 1.36 and holdfast that are known and explained. Each: (scenario,
# path pattern in the observation (fnmatch), reason). Anything else that differs is reported as
# unexplained: it may be a holdfast bug.
EXPECTED = [
    (
        "*",
        "*headers.connection",
        "Pushpin adds `Connection: Transfer-Encoding` to streamed (chunked) responses it "
        "generates; holdfast sends no Connection header there (a hop-by-hop header naming "
        "Transfer-Encoding tells the client nothing).",
        # Only that token may differ.
        lambda a, b: _tokens(a) - {"transfer-encoding"} == _tokens(b),
    ),
    (
        "ws_upgrade_capitalized",
        "*",
        "Pushpin 1.36 treats a handshake with `Upgrade: WebSocket` (capital letters, as Autobahn "
        "and some clients send it) as a plain GET: the origin gets a GET on /ws and answers 400. "
        "RFC 6455 says the value is case-insensitive; holdfast upgrades.",
        lambda a, b: (a, b) in ((400, 101), (ABSENT, ["text", "hi"])),
    ),
    (
        "publish_api",
        "*.error_*",
        "Error bodies differ by design: Pushpin answers errors in plain text (e.g. `Body is not "
        "valid JSON.`), holdfast answers them in JSON ({\"error\": ...}); status codes are compared.",
    ),
    (
        "origin_request_headers",
        "grip_features",
        "Grip-Feature lists what each proxy supports: Pushpin 1.36 also lists `session`; holdfast "
        "lists only what it implements.",
        lambda a, b: isinstance(a, list) and isinstance(b, list) and set(a) - {"session"} == set(b),
    ),
    (
        "post_passthrough",
        "framing",
        "Pushpin re-frames a chunked origin response: when the whole (small) body has arrived before "
        "it answers it sends Content-Length, otherwise chunked (timing-dependent, both seen here); "
        "holdfast keeps the origin's chunked framing.",
    ),
    (
        "post_passthrough",
        "headers.transfer-encoding",
        "Pushpin re-frames a chunked origin response (see framing).",
    ),
    (
        "origin_request_headers",
        "headers.accept",
        "Pushpin (zurl) adds `Accept: */*` to a request that had none; holdfast passes the "
        "client's headers as they are.",
        lambda a, b: b == ABSENT,
    ),
    (
        "origin_request_headers",
        "headers.accept-encoding",
        "Pushpin (zurl) adds an Accept-Encoding of its own to a request that had none; holdfast "
        "passes the client's headers as they are.",
        lambda a, b: b == ABSENT,
    ),
    (
        "origin_request_headers",
        "headers.x-forwarded-*",
        "holdfast adds X-Forwarded-For and X-Forwarded-Proto by default (origin.x_forwarded_for, "
        "origin.x_forwarded_proto); the Pushpin config used here has x_forwarded_for empty and "
        "Pushpin 1.36 sends no X-Forwarded-Proto for plain http.",
        lambda a, b: a == ABSENT and b in ("127.0.0.1", "http"),
    ),
]

EXPECTED += [
    (
        "zmq_command",
        "conncheck.*",
        "holdfast does not keep a registry of connection ids across its workers, so the `conncheck` "
        "command answers `not-supported` where Pushpin answers the ids it knows (here none: []).",
    ),
    (
        "zmq_stats",
        "report.fields.*",
        "holdfast's `report` carries from, connections, minutes, received, sent and duration (same "
        "names and types as Pushpin's); it does not count http-response sends apart, nor client/"
        "server header, content and message bytes, which Pushpin 1.36 adds.",
        lambda a, b: a == "int" and b == ABSENT,
    ),
]

# How a value missing on one side shows in the report.
ABSENT = "<absent>"

# Headers the proxies may add or drop on their own (never compared by value).
VOLATILE_HEADERS = {"date", "server"}


def _tokens(value):
    if not isinstance(value, str) or value == ABSENT:
        return set()
    return {t.strip().lower() for t in value.split(",") if t.strip()}


def is_expected(scenario, path, a, b):
    """The reason a difference is expected, if it is: (scenario, path pattern, reason[, check]),
    where the optional check(pushpin_value, holdfast_value) narrows it further."""
    for entry in EXPECTED:
        s, p, reason = entry[:3]
        check = entry[3] if len(entry) > 3 else None
        if fnmatch.fnmatchcase(scenario, s) and fnmatch.fnmatchcase(path, p):
            if check is None or check(a, b):
                return reason
    return None


# ---------------------------------------------------------------------------------------------
# A raw HTTP/1.1 client


class Timeout(Exception):
    pass


class Conn:
    def __init__(self, addr):
        self.sock = socket.create_connection(addr, timeout=IO_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.eof = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise Timeout()
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise Timeout()
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.eof = True
            raise EOFError()
        self.buf += data

    def read_head(self, deadline):
        while b"\r\n\r\n" not in self.buf:
            self._fill(deadline)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code, _, reason = rest.partition(" ")
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
        return int(code), reason, headers

    def read_exact(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_chunk(self, deadline):
        """One chunk of a chunked body; None after the last one."""
        while b"\r\n" not in self.buf:
            self._fill(deadline)
        line, _, _ = self.buf.partition(b"\r\n")
        size = int(line.split(b";")[0], 16)
        if size == 0:
            start = len(line) + 2
            while True:
                rest = self.buf[start:]
                if rest.startswith(b"\r\n"):
                    end = start + 2
                    break
                i = rest.find(b"\r\n\r\n")
                if i >= 0:
                    end = start + i + 4
                    break
                self._fill(deadline)
            self.buf = self.buf[end:]
            return None
        need = len(line) + 2 + size + 2
        while len(self.buf) < need:
            self._fill(deadline)
        data = self.buf[len(line) + 2 : len(line) + 2 + size]
        self.buf = self.buf[need:]
        return data

    def read_until_close(self, deadline):
        try:
            while True:
                self._fill(deadline)
        except EOFError:
            pass
        out, self.buf = self.buf, b""
        return out


def header_map(headers):
    out = {}
    for name, value in headers:
        n = name.lower()
        out[n] = value if n not in out else out[n] + ", " + value
    return out


def framing_of(h):
    if "transfer-encoding" in h:
        return "chunked" if h["transfer-encoding"].lower() == "chunked" else h["transfer-encoding"]
    if "content-length" in h:
        return "length"
    return "close"


def request_bytes(method, path, headers=(), body=b""):
    out = "%s %s HTTP/1.1\r\nHost: parity.test\r\n" % (method, path)
    for n, v in headers:
        out += "%s: %s\r\n" % (n, v)
    if body or method in ("POST", "PUT"):
        out += "Content-Length: %d\r\n" % len(body)
    out += "\r\n"
    return out.encode("latin-1") + body


def observe_head(code, reason, headers):
    h = header_map(headers)
    return {
        "status": code,
        "reason": reason,
        "framing": framing_of(h),
        "headers": {k: v for k, v in sorted(h.items()) if k not in VOLATILE_HEADERS and k != "content-length"},
    }


def simple_request(addr, method, path, headers=(), body=b"", limit=IO_TIMEOUT):
    """A whole request/response on its own connection (Connection: close)."""
    c = Conn(addr)
    try:
        c.send(request_bytes(method, path, list(headers) + [("Connection", "close")], body))
        deadline = time.monotonic() + limit
        code, reason, headers = c.read_head(deadline)
        h = header_map(headers)
        if framing_of(h) == "chunked":
            parts = []
            while True:
                d = c.read_chunk(deadline)
                if d is None:
                    break
                parts.append(d)
            body = b"".join(parts)
        elif "content-length" in h:
            body = c.read_exact(int(h["content-length"]), deadline)
        else:
            body = c.read_until_close(deadline)
        return code, reason, headers, body
    finally:
        c.close()


# ---------------------------------------------------------------------------------------------
# Publishing


class Publisher:
    def __init__(self, addr):
        self.addr = addr
        self.answers = []

    def post(self, body, headers=(), path="/publish/"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        code, reason, headers, rbody = simple_request(
            self.addr, "POST", path, [("Content-Type", "application/json")] + list(headers), data
        )
        return code, header_map(headers), rbody

    def publish(self, items):
        code, _, body = self.post({"items": items})
        self.answers.append(code)
        if code != 200:
            raise AssertionError("publish refused: %d %r" % (code, body))


def stream_item(ch, content):
    return {"channel": ch, "formats": {"http-stream": {"content": content}}}


def close_item(ch):
    return {"channel": ch, "formats": {"http-stream": {"action": "close"}}}


# ---------------------------------------------------------------------------------------------
# Scenarios. Each returns a JSON-able observation; `ctx` has http, publish (addresses), pub
# (Publisher), label, django (address).


def read_stream_text(c, deadline, want=None, until_end=False):
    """Reads chunks until the text contains `want` (or the stream ends when until_end)."""
    text = b""
    ended = False
    while True:
        if want is not None and want.encode() in text and not until_end:
            break
        try:
            d = c.read_chunk(deadline)
        except (Timeout, EOFError):
            break
        if d is None:
            ended = True
            break
        text += d
    return text.decode("utf-8", "replace"), ended


def open_stream(ctx, path, headers=()):
    c = Conn(ctx["http"])
    c.send(request_bytes("GET", path, headers))
    code, reason, hdrs = c.read_head(time.monotonic() + IO_TIMEOUT)
    return c, observe_head(code, reason, hdrs)


def scenario_stream(ctx):
    ch = ctx["label"] + "-stream"
    c, obs = open_stream(ctx, "/stream?ch=" + ch)
    try:
        initial, _ = read_stream_text(c, time.monotonic() + IO_TIMEOUT, "stream-open\n")
        obs["initial"] = initial
        time.sleep(0.3)
        ctx["pub"].publish([stream_item(ch, "one\n")])
        ctx["pub"].publish([stream_item(ch, "two\n"), stream_item(ch, "three\n")])
        got, _ = read_stream_text(c, time.monotonic() + IO_TIMEOUT, "three\n")
        ctx["pub"].publish([close_item(ch)])
        rest, ended = read_stream_text(c, time.monotonic() + IO_TIMEOUT, until_end=True)
        obs["published"] = got
        obs["after_close"] = rest
        obs["ended_by_close"] = ended
        # Whether the connection stays usable after the stream ended (keep-alive).
        if ended:
            try:
                c.send(request_bytes("GET", "/plain"))
                code, _, _ = c.read_head(time.monotonic() + IO_TIMEOUT)
                obs["next_request_on_same_connection"] = code
            except (Timeout, EOFError, OSError):
                obs["next_request_on_same_connection"] = "closed"
    finally:
        c.close()
    return obs


def scenario_sse(ctx):
    ch = ctx["label"] + "-sse"
    c, obs = open_stream(ctx, "/sse?ch=%s&ka=1" % ch, [("Accept", "text/event-stream")])
    try:
        initial, _ = read_stream_text(c, time.monotonic() + IO_TIMEOUT, "data: hello\n\n")
        obs["initial"] = initial
        # Idle: keep-alives (timeout=1 s) should come.
        t0 = time.monotonic()
        idle, _ = read_stream_text(c, t0 + 3.5, ":ka\n\n:ka\n\n")
        obs["keepalives_in_3.5s_at_least_2"] = idle.count(":ka\n\n") >= 2
        obs["idle_other_than_keepalives"] = idle.replace(":ka\n\n", "")
        ctx["pub"].publish([stream_item(ch, "event: m\ndata: published\n\n")])
        got, _ = read_stream_text(c, time.monotonic() + IO_TIMEOUT, "data: published\n\n")
        obs["published"] = got.replace(":ka\n\n", "")
    finally:
        c.close()
    return obs


def longpoll(ctx, path, answer_items=None, limit=IO_TIMEOUT):
    """A long-poll; when answer_items is given, publishes them every 300 ms until answered."""
    c = Conn(ctx["http"])
    try:
        c.send(request_bytes("GET", path))
        t0 = time.monotonic()
        deadline = t0 + limit
        publishes = 0
        while True:
            if answer_items is not None:
                ctx["pub"].publish(answer_items)
                publishes += 1
                step = min(deadline, time.monotonic() + 0.3)
            else:
                step = deadline
            try:
                code, reason, hdrs = c.read_head(step)
                break
            except Timeout:
                if time.monotonic() >= deadline:
                    raise
        elapsed = time.monotonic() - t0
        obs = observe_head(code, reason, hdrs)
        h = header_map(hdrs)
        if framing_of(h) == "length":
            obs["body"] = c.read_exact(int(h["content-length"]), time.monotonic() + IO_TIMEOUT).decode()
        elif framing_of(h) == "chunked":
            obs["body"], _ = read_stream_text(c, time.monotonic() + IO_TIMEOUT, until_end=True)
        else:
            obs["body"] = c.read_until_close(time.monotonic() + IO_TIMEOUT).decode()
        return obs, elapsed
    finally:
        c.close()


def scenario_longpoll_published(ctx):
    ch = ctx["label"] + "-poll"
    item = {
        "channel": ch,
        "formats": {
            "http-response": {
                "code": 202,
                "reason": "Accepted Here",
                "headers": {"Content-Type": "text/plain", "X-Pub": "1"},
                "body": "answered\n",
            }
        },
    }
    obs, _ = longpoll(ctx, "/poll?ch=%s&t=20" % ch, [item])
    return obs


def scenario_longpoll_timeout(ctx):
    ch = ctx["label"] + "-poll-timeout"
    # Grip-Timeout: 1 is raised to 5 s by both proxies (Pushpin's minimum). Pushpin also asks the
    # origin again about 1 s after a long-poll subscribes to a new channel (and the 5 s count
    # restarts), so it answers after about 6 s; holdfast after 5 s.
    obs, elapsed = longpoll(ctx, "/poll?ch=%s&t=1" % ch, limit=12)
    obs["answered_between_4.5_and_8s"] = 4.5 <= elapsed <= 8.0
    obs["_elapsed"] = round(elapsed, 1)
    return obs


def scenario_instruct_stream(ctx):
    ch = ctx["label"] + "-instruct"
    c, obs = open_stream(ctx, "/instruct?mode=stream&ch=" + ch)
    try:
        obs["initial"], _ = read_stream_text(c, time.monotonic() + IO_TIMEOUT, "instruct-stream\n")
        time.sleep(0.3)
        ctx["pub"].publish([stream_item(ch, "after instruct\n")])
        obs["published"], _ = read_stream_text(c, time.monotonic() + IO_TIMEOUT, "after instruct\n")
        ctx["pub"].publish([close_item(ch)])
        rest, obs["ended_by_close"] = read_stream_text(c, time.monotonic() + IO_TIMEOUT, until_end=True)
    finally:
        c.close()
    return obs


def scenario_instruct_response_timeout(ctx):
    ch = ctx["label"] + "-instruct-poll"
    obs, elapsed = longpoll(ctx, "/instruct?mode=response&t=1&ch=" + ch, limit=12)
    obs["answered_between_4.5_and_8s"] = 4.5 <= elapsed <= 8.0
    obs["_elapsed"] = round(elapsed, 1)
    return obs


def scenario_status_stream(ctx):
    ch = ctx["label"] + "-status"
    c, obs = open_stream(ctx, "/status?ch=" + ch)
    try:
        obs["initial"], _ = read_stream_text(c, time.monotonic() + IO_TIMEOUT, "status-open\n")
        time.sleep(0.3)
        ctx["pub"].publish([stream_item(ch, "x\n"), close_item(ch)])
        obs["rest"], obs["ended_by_close"] = read_stream_text(
            c, time.monotonic() + IO_TIMEOUT, until_end=True
        )
    finally:
        c.close()
    return obs


def scenario_status_longpoll_timeout(ctx):
    ch = ctx["label"] + "-status-poll"
    obs, elapsed = longpoll(ctx, "/status?mode=response&ch=" + ch, limit=12)
    obs["_elapsed"] = round(elapsed, 1)
    return obs


def scenario_stream_bin_and_multi_channel(ctx):
    ch = ctx["label"] + "-multi"
    c, obs = open_stream(ctx, "/multi?ch=" + ch)
    try:
        obs["initial"], _ = read_stream_text(c, time.monotonic() + IO_TIMEOUT, "multi-open\n")
        time.sleep(0.3)
        pub = ctx["pub"]
        pub.publish([stream_item(ch + "-a", "to a\n")])
        pub.publish([{"channel": ch + "-b", "formats": {"http-stream": {"content-bin": base64.b64encode(b"bin to b\n").decode()}}}])
        pub.publish([stream_item(ch + "-c", "to c (not subscribed)\n"), stream_item(ch + "-a", "a again\n")])
        obs["published"], _ = read_stream_text(c, time.monotonic() + IO_TIMEOUT, "a again\n")
        pub.publish([close_item(ch + "-b")])
        rest, obs["ended_by_close_on_one_channel"] = read_stream_text(c, time.monotonic() + IO_TIMEOUT, until_end=True)
        obs["after_close"] = rest
    finally:
        c.close()
    return obs


def scenario_longpoll_publish_defaults(ctx):
    """An http-response item with only a body (code, reason, headers default), headers as a list."""
    ch = ctx["label"] + "-poll-defaults"
    obs, _ = longpoll(ctx, "/poll?ch=%s&t=20" % ch, [{"channel": ch, "formats": {"http-response": {"body": "just a body\n"}}}])
    obs2, _ = longpoll(
        ctx,
        "/poll?ch=%s-2&t=20" % ch,
        [{"channel": ch + "-2", "formats": {"http-response": {"code": 404, "headers": [["X-A", "1"], ["X-B", "2"]], "body-bin": base64.b64encode(b"bin body").decode()}}}],
    )
    return {"body_only": obs, "list_headers_bin_body": obs2}


def scenario_post_passthrough(ctx):
    body = b'{"hello": "origin"}'
    code, reason, headers, rbody = simple_request(
        ctx["http"], "POST", "/echo?q=1", [("Content-Type", "application/json")], body
    )
    obs = observe_head(code, reason, headers)
    obs["echo"] = json.loads(rbody) if code == 200 else rbody.decode("utf-8", "replace")
    code, reason, headers, rbody = simple_request(ctx["http"], "PUT", "/echo", [("Content-Type", "text/plain")], b"put body")
    obs["put_echo"] = json.loads(rbody) if code == 200 else rbody.decode("utf-8", "replace")
    return obs


def scenario_plain(ctx):
    code, reason, headers, body = simple_request(ctx["http"], "GET", "/plain")
    obs = observe_head(code, reason, headers)
    obs["body"] = body.decode()
    return obs


def scenario_origin_request_headers(ctx):
    code, reason, headers, body = simple_request(ctx["http"], "GET", "/headers?x=1")
    seen = json.loads(body)
    headers = dict(seen["headers"])
    headers.pop("grip-sig", None)  # a fresh JWT each time; grip_signed says it verified
    headers.pop("grip-feature", None)  # compared as grip_features
    return {
        "status": code,
        "grip_signed": seen["grip_signed"],
        "grip_features": seen["grip_features"],
        "path": seen["path"],
        "grip_sig_present": "grip-sig" in seen["headers"],
        "headers": headers,
    }


def scenario_publish_api(ctx):
    pub = ctx["pub"]
    out = {}

    def answer(code, headers, body):
        text = body.decode("utf-8", "replace")
        if code >= 400:
            # Compared by status only (see EXPECTED); the bodies are in the report.
            return {"status": code, "error_content_type": headers.get("content-type"), "error_body": text}
        if (headers.get("content-type") or "").startswith("application/json"):
            try:
                return {"status": code, "content_type": headers.get("content-type"), "json": json.loads(text)}
            except ValueError:
                pass
        return {"status": code, "content_type": headers.get("content-type"), "body": text}

    ch = ctx["label"] + "-nobody"
    out["valid"] = answer(*pub.post({"items": [stream_item(ch, "x")]}))
    out["valid_accept_json"] = answer(
        *pub.post({"items": [stream_item(ch, "x")]}, [("Accept", "application/json")])
    )
    out["no_slash"] = answer(*pub.post({"items": [stream_item(ch, "x")]}, path="/publish"))
    out["not_json"] = answer(*pub.post(b"{not json"))
    out["no_items"] = answer(*pub.post({"foo": 1}))
    out["items_not_list"] = answer(*pub.post({"items": {"channel": ch}}))
    out["item_no_channel"] = answer(*pub.post({"items": [{"formats": {"http-stream": {"content": "x"}}}]}))
    out["item_no_formats"] = answer(*pub.post({"items": [{"channel": ch}]}))
    out["empty_items"] = answer(*pub.post({"items": []}))
    code, reason, headers, body = simple_request(ctx["publish"], "GET", "/publish/")
    h = header_map(headers)
    out["get_publish"] = {"status": code, "allow": h.get("allow"), "error_body": body.decode("utf-8", "replace")}
    code, reason, headers, body = simple_request(ctx["publish"], "GET", "/nowhere")
    out["unknown_path"] = {"status": code, "error_body": body.decode("utf-8", "replace")}
    return out


# --- WebSocket (raw RFC 6455 client)


class Ws:
    def __init__(self, addr, path, upgrade="websocket"):
        self.c = Conn(addr)
        key = base64.b64encode(os.urandom(16)).decode()
        self.c.send(
            request_bytes(
                "GET",
                path,
                [
                    ("Upgrade", upgrade),
                    ("Connection", "Upgrade"),
                    ("Sec-WebSocket-Key", key),
                    ("Sec-WebSocket-Version", "13"),
                ],
            )
        )
        self.code, self.reason, self.headers = self.c.read_head(time.monotonic() + IO_TIMEOUT)

    def send(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.c.send(head + mask + masked)

    def recv(self, limit=IO_TIMEOUT):
        """The next data or close frame as (kind, payload); pings answered, pongs skipped."""
        deadline = time.monotonic() + limit
        while True:
            b0, b1 = self.c.read_exact(2, deadline)
            opcode = b0 & 0x0F
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self.c.read_exact(2, deadline))[0]
            elif n == 127:
                n = struct.unpack(">Q", self.c.read_exact(8, deadline))[0]
            if b1 & 0x80:
                self.c.read_exact(4, deadline)  # a server must not mask; noted by the caller
            payload = self.c.read_exact(n, deadline)
            if opcode == 0x9:
                self.send(0xA, payload)
                continue
            if opcode == 0xA:
                continue
            if opcode == 0x1:
                return ("text", payload.decode())
            if opcode == 0x2:
                return ("binary", base64.b64encode(payload).decode())
            if opcode == 0x8:
                code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
                return ("close", [code, payload[2:].decode("utf-8", "replace")])
            return ("opcode-%d" % opcode, payload.hex())

    def close(self):
        self.c.close()


def scenario_ws(ctx):
    ch = ctx["label"] + "-ws"
    ws = Ws(ctx["http"], "/ws?ch=" + ch)
    obs = {"handshake_status": ws.code}
    h = header_map(ws.headers)
    obs["handshake_headers"] = {
        k: v for k, v in h.items() if k in ("upgrade", "connection", "sec-websocket-extensions")
    }
    obs["handshake_headers"] = {k: v.lower() for k, v in obs["handshake_headers"].items()}
    msgs = []
    try:
        if ws.code == 101:
            ws.send(0x1, b"hello")
            msgs.append(ws.recv())
            # The echo comes after the OPEN answer's subscribe: the connection is in ch now.
            code, _, _ = ctx["pub"].post(
                {"items": [{"channel": ch, "formats": {"ws-message": {"content": "pub1"}}}]}
            )
            obs["publish_status"] = code
            msgs.append(ws.recv())
            ctx["pub"].post(
                {"items": [{"channel": ch, "formats": {"ws-message": {"content-bin": base64.b64encode(b"\x00\x01bin").decode()}}}]}
            )
            msgs.append(ws.recv())
            ws.send(0x2, b"\x01\x02\x03")
            msgs.append(ws.recv())
            ws.send(0x8, struct.pack(">H", 1000) + b"bye")
            msgs.append(ws.recv())
            try:
                ws.c.read_until_close(time.monotonic() + IO_TIMEOUT)
                obs["closed_after_close_frame"] = True
            except Timeout:
                obs["closed_after_close_frame"] = False
    except (Timeout, EOFError) as e:
        msgs.append("error: %s" % type(e).__name__)
    finally:
        ws.close()
    obs["messages"] = msgs
    return obs


def scenario_ws_upgrade_capitalized(ctx):
    ch = ctx["label"] + "-wsu"
    ws = Ws(ctx["http"], "/ws?ch=" + ch, upgrade="WebSocket")
    obs = {"handshake_status": ws.code}
    try:
        if ws.code == 101:
            ws.send(0x1, b"hi")
            obs["echo"] = ws.recv()
    except (Timeout, EOFError) as e:
        obs["echo"] = "error: %s" % type(e).__name__
    finally:
        ws.close()
    return obs


def scenario_ws_close_answered_by_origin(ctx):
    """The client closes with 1000 "bye"; the origin answers with a last TEXT "farewell", then
    CLOSE 4002 (no reason)."""
    ch = ctx["label"] + "-wsc"
    ws = Ws(ctx["http"], "/ws?closecode=4002&farewell=farewell&ch=" + ch)
    obs = {"handshake_status": ws.code}
    try:
        ws.send(0x1, b"sync")
        obs["echo"] = ws.recv()
        ws.send(0x8, struct.pack(">H", 1000) + b"bye")
        got = [ws.recv()]
        if got[0][0] != "close":
            got.append(ws.recv())
        obs["after_client_close"] = got
    except (Timeout, EOFError) as e:
        obs["error"] = type(e).__name__
    finally:
        ws.close()
    return obs


def scenario_ws_origin_initiated_close(ctx):
    """The origin closes (CLOSE 4003) in answer to a message."""
    ch = ctx["label"] + "-wso"
    ws = Ws(ctx["http"], "/ws?ch=" + ch)
    obs = {"handshake_status": ws.code}
    try:
        ws.send(0x1, b"close-me")
        obs["close_received"] = ws.recv()
        ws.send(0x8, struct.pack(">H", 4003))
        try:
            ws.c.read_until_close(time.monotonic() + IO_TIMEOUT)
            obs["closed_after_close_frame"] = True
        except Timeout:
            obs["closed_after_close_frame"] = False
    except (Timeout, EOFError) as e:
        obs["error"] = type(e).__name__
    finally:
        ws.close()
    return obs


def scenario_ws_publish_close(ctx):
    ch = ctx["label"] + "-wsclose"
    ws = Ws(ctx["http"], "/ws?ch=" + ch)
    obs = {"handshake_status": ws.code}
    try:
        ws.send(0x1, b"sync")
        obs["echo"] = ws.recv()
        ctx["pub"].post(
            {"items": [{"channel": ch, "formats": {"ws-message": {"action": "close", "code": 4001, "reason": "go away"}}}]}
        )
        obs["after_close_publish"] = ws.recv()
    except (Timeout, EOFError) as e:
        obs["error"] = type(e).__name__
    finally:
        ws.close()
    return obs


# --- django-eventstream through the proxy


def django_call(ctx, path, body):
    code, _, _, rbody = simple_request(
        ctx["django"], "POST", path, [("Content-Type", "application/json")], json.dumps(body).encode(), limit=30
    )
    if code != 200:
        raise AssertionError("Django %s: %d %r" % (path, code, rbody))
    return json.loads(rbody)["ids"]


class Sse:
    def __init__(self, ctx, path, last_event_id=None):
        headers = [("Accept", "text/event-stream")]
        if last_event_id:
            headers.append(("Last-Event-ID", last_event_id))
        self.c, self.head = open_stream(ctx, path, headers)
        self.text = ""

    def events(self, n, limit):
        """Up to n `message` events (stream-open noted, keep-alives skipped)."""
        deadline = time.monotonic() + limit
        out = []
        while len(out) < n:
            while "\n\n" in self.text:
                block, self.text = self.text.split("\n\n", 1)
                ev = {"event": "message", "id": None, "data": []}
                fields = [l for l in block.split("\n") if l and not l.startswith(":")]
                if not fields:
                    continue  # only comments (padding, keep-alives)
                for line in fields:
                    f, _, v = line.partition(":")
                    v = v[1:] if v.startswith(" ") else v
                    if f == "event":
                        ev["event"] = v
                    elif f == "id":
                        ev["id"] = v
                    elif f == "data":
                        ev["data"].append(v)
                if ev["event"] in ("message", "stream-open", "stream-reset", "stream-error"):
                    out.append([ev["event"], ev["id"], "\n".join(ev["data"])])
            if len(out) >= n:
                break
            try:
                d = self.c.read_chunk(deadline)
            except (Timeout, EOFError):
                break
            if d is None:
                out.append(["<end>", None, ""])
                break
            self.text += d.decode()
        return out

    def close(self):
        self.c.close()


def scenario_django_resume(ctx):
    ch = ctx["label"] + "-dj"
    path = "/events/?channel=" + ch
    obs = {}
    a = Sse(ctx, path)
    obs["head"] = a.head
    first = a.events(1, 10)
    django_call(ctx, "/send/" + ch, {"data": ["e1", "e2", "e3"]})
    first += a.events(3, 10)
    a.close()
    obs["first_connection"] = first
    django_call(ctx, "/send/" + ch, {"data": ["e4", "e5", "e6"]})
    b = Sse(ctx, path, last_event_id=ch + ":3")
    got = b.events(4, 10)
    django_call(ctx, "/send/" + ch, {"data": ["e7"]})
    got += b.events(1, 10)
    got += b.events(1, 0.5)  # nothing more
    b.close()
    obs["after_last_event_id"] = got
    return obs


def scenario_django_lost_publish(ctx, settle=0.0, suffix=""):
    ch = ctx["label"] + "-djgap" + suffix
    path = "/events/?channel=" + ch
    a = Sse(ctx, path)
    obs = {"first": a.events(1, 10)}
    time.sleep(settle)
    django_call(ctx, "/send/" + ch, {"data": ["g1"]})
    obs["before_gap"] = a.events(1, 10)
    django_call(ctx, "/store/" + ch, {"data": ["g2-never-published"]})
    t0 = time.monotonic()
    django_call(ctx, "/send/" + ch, {"data": ["g3"]})
    got = a.events(2, 20)
    elapsed = time.monotonic() - t0
    obs["recovered_within_10s"] = elapsed < 10
    django_call(ctx, "/send/" + ch, {"data": ["g4"]})
    got += a.events(1, 10)
    got += a.events(1, 0.5)
    a.close()
    obs["after_gap"] = got
    obs["_elapsed"] = round(elapsed, 1)
    return obs


SCENARIOS = [
    ("plain", scenario_plain),
    ("post_passthrough", scenario_post_passthrough),
    ("stream_bin_and_multi_channel", scenario_stream_bin_and_multi_channel),
    ("longpoll_publish_defaults", scenario_longpoll_publish_defaults),
    ("origin_request_headers", scenario_origin_request_headers),
    ("stream", scenario_stream),
    ("sse_keepalive", scenario_sse),
    ("longpoll_published", scenario_longpoll_published),
    ("longpoll_timeout", scenario_longpoll_timeout),
    ("instruct_stream", scenario_instruct_stream),
    ("instruct_response_timeout", scenario_instruct_response_timeout),
    ("status_stream", scenario_status_stream),
    ("status_longpoll_timeout", scenario_status_longpoll_timeout),
    ("publish_api", scenario_publish_api),
    ("ws", scenario_ws),
    ("ws_publish_close", scenario_ws_publish_close),
    ("ws_close_answered_by_origin", scenario_ws_close_answered_by_origin),
    ("ws_origin_initiated_close", scenario_ws_origin_initiated_close),
    ("ws_upgrade_capitalized", scenario_ws_upgrade_capitalized),
    ("django_resume", scenario_django_resume),
    ("django_lost_publish", scenario_django_lost_publish),
    ("django_lost_publish_settled", lambda ctx: scenario_django_lost_publish(ctx, 2.0, "s")),
]


def normalize(value, label):
    if isinstance(value, str):
        return value.replace(label, "L")
    if isinstance(value, list):
        return [normalize(v, label) for v in value]
    if isinstance(value, dict):
        return {normalize(k, label): normalize(v, label) for k, v in value.items()}
    return value


def addr(text):
    host, _, port = text.rpartition(":")
    return (host or "127.0.0.1", int(port))


def run_scenarios(args):
    ctx = {
        "http": addr(args.http),
        "publish": addr(args.publish),
        "django": ("127.0.0.1", args.django),
        "label": args.label,
    }
    ctx["pub"] = Publisher(ctx["publish"])
    only = set(args.only.split(",")) if args.only else None

    def one(item):
        name, fn = item
        t0 = time.monotonic()
        try:
            obs = fn(ctx)
        except Exception as e:  # an observation too: the other proxy may not fail there
            obs = {"exception": "%s: %s" % (type(e).__name__, e)}
            traceback.print_exc()
        print("[%s] %s: %.1fs" % (args.label, name, time.monotonic() - t0), file=sys.stderr, flush=True)
        return name, normalize(obs, args.label)

    # Scenarios are independent (each has its own channels) and mostly wait: running them at
    # once keeps a whole run near the longest one (about 10 s).
    scenarios = list(SCENARIOS)
    if args.zmq_command:
        # ZeroMQ publishing (tests/parity/zmq_scenarios.py, needs pyzmq): only when given the
        # proxy's PULL, SUB and command endpoints.
        import zmq_scenarios

        ctx.update(zmq_pull=args.zmq_pull, zmq_sub=args.zmq_sub, zmq_command=args.zmq_command)
        ctx.update(zmq_stats=args.zmq_stats)

        def bind(fn):
            deadline = lambda: time.monotonic() + IO_TIMEOUT  # noqa: E731
            return lambda ctx: fn(ctx, open_stream, read_stream_text, deadline)

        scenarios += [(n, bind(f)) for n, f in zmq_scenarios.SCENARIOS]
    todo = [(n, f) for n, f in scenarios if not only or n in only]
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = dict(pool.map(one, todo))
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)


# ---------------------------------------------------------------------------------------------
# Comparison


def diff(a, b, path=""):
    """Yields (path, a_value, b_value) for every leaf that differs; keys starting with _ are
    informational and not compared."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k.startswith("_"):
                if a.get(k) != b.get(k):
                    yield ("info:" + ("%s.%s" % (path, k) if path else k), a.get(k), b.get(k))
                continue
            p = "%s.%s" % (path, k) if path else k
            if k not in a:
                yield (p, ABSENT, b[k])
            elif k not in b:
                yield (p, a[k], ABSENT)
            else:
                yield from diff(a[k], b[k], p)
    elif a != b:
        yield (path, a, b)


def compare(args):
    with open(args.a) as f:
        a = json.load(f)
    with open(args.b) as f:
        b = json.load(f)
    unexplained = 0
    explained = 0
    for scenario in sorted(set(a) | set(b)):
        sa, sb = a.get(scenario, "<not run>"), b.get(scenario, "<not run>")
        for path, va, vb in diff(sa, sb):
            if path.startswith("info:"):
                print("INFO       %s: %s (not compared)\n    %s: %s\n    %s: %s" % (
                    scenario, path[5:], args.a_name, json.dumps(va), args.b_name, json.dumps(vb)))
                continue
            reason = is_expected(scenario, path, va, vb)
            line = "%s: %s\n    %s: %s\n    %s: %s" % (
                scenario,
                path or "(whole)",
                args.a_name,
                json.dumps(va),
                args.b_name,
                json.dumps(vb),
            )
            if reason:
                explained += 1
                print("EXPECTED   " + line + "\n    reason: " + reason)
            else:
                unexplained += 1
                print("UNEXPLAINED " + line)
    print(
        "parity: %d scenarios, %d explained differences, %d unexplained"
        % (len(set(a) | set(b)), explained, unexplained)
    )
    return 1 if unexplained else 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("scenarios")
    s.add_argument("--http", required=True)
    s.add_argument("--publish", required=True)
    s.add_argument("--django", required=True, type=int)
    s.add_argument("--label", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--only", default="")
    s.add_argument("--zmq-pull", default="", help="the proxy's ZeroMQ PULL endpoint")
    s.add_argument("--zmq-sub", default="", help="its SUB endpoint (bound)")
    s.add_argument("--zmq-command", default="", help="its command endpoint")
    s.add_argument("--zmq-stats", default="", help="its stats (PUB) endpoint")
    s.add_argument("--jobs", type=int, default=8, help="scenarios run at once")
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    c.add_argument("--a-name", default="pushpin")
    c.add_argument("--b-name", default="holdfast")
    args = p.parse_args()
    if args.cmd == "scenarios":
        run_scenarios(args)
        return 0
    return compare(args)


if __name__ == "__main__":
    sys.exit(main())

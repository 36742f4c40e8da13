#!/usr/bin/env python3
"""Writes the seed corpus: fuzz/seeds/<target>/<name>, one meaningful example per file.

Usage: python3 fuzz/seeds/make_seeds.py   (rewrites every seed; the files are committed)

Byte-input targets get the bytes a peer would send. Targets whose input is a Rust type read
with `arbitrary` (ws_frame, ws_handshake, wsoh_events, wsoh_control, grip_headers) get that
type encoded as arbitrary 1.x reads it (`Enc` below): integers little-endian, `bool` one byte,
`Option` a bool then the value, `Vec` a 1 byte before each element and a 0 after the last,
an enum variant a u32 that maps to its index. The input types hold no `String` (arbitrary reads
string lengths from the end of the input), only `Vec<u8>`. `cargo fuzz fmt TARGET FILE` shows
how a file decodes.
"""

import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent


def write(target, name, data):
    d = ROOT / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / name).write_bytes(bytes(data))


class Enc:
    """The subset of arbitrary 1.x's input format that the fuzz targets use."""

    def __init__(self):
        self.b = bytearray()

    def u8(self, v):
        self.b.append(v & 0xFF)
        return self

    def bool(self, v):
        return self.u8(1 if v else 0)

    def int(self, v, n):
        self.b += (v % (1 << (8 * n))).to_bytes(n, "little")
        return self

    def u16(self, v):
        return self.int(v, 2)

    def u64(self, v):
        return self.int(v, 8)

    def arr(self, xs):
        for x in xs:
            self.u8(x)
        return self

    def bytes(self, bs):
        if isinstance(bs, str):
            bs = bs.encode()
        return self.vec(bs, self.u8)

    def vec(self, items, each):
        for it in items:
            self.u8(1)
            each(it)
        return self.u8(0)

    def option(self, v, each):
        if v is None:
            return self.u8(0)
        self.u8(1)
        each(v)
        return self

    def variant(self, k, n):
        # derive(Arbitrary): index = (u64(u32) * n) >> 32
        v = -(-(k << 32) // n)
        assert (v * n) >> 32 == k
        return self.int(v, 4)

    def done(self):
        return bytes(self.b)


def case_mask(word):
    """The `case` bits that spell `word` with its own capitals."""
    return sum(1 << i for i, c in enumerate(word) if c.isupper())


# ---------------------------------------------------------------- http1_request
def http1_request():
    t = "http1_request"
    write(t, "get_keep_alive", "GET /stream?x=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n")
    write(t, "post_chunked", "POST /publish/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    write(t, "http10_keep_alive", "POST / HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 3, 3\r\n\r\nabc")
    write(t, "ws_upgrade", "GET /ws HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    write(t, "absolute_target_expect", "PUT http://example.com/a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 10\r\nConnection: close\r\n\r\n")
    write(t, "grip_response", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nGrip-Hold: stream\r\nGrip-Channel: test\r\n\r\n")
    write(t, "smuggling_te_and_cl", "POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n")
    write(t, "bare_lf", "GET / HTTP/1.1\nHost: x\n\n")


# ---------------------------------------------------------------- http1_chunked
def http1_chunked():
    t = "http1_chunked"
    # byte 0: number of split points (0..=3), then the split points, then the body
    write(t, "two_chunks_ext_trailer", b"\x02\x40\x80" + b"5\r\nhello\r\n6;name=val\r\n world\r\n0\r\nExpires: never\r\n\r\n")
    write(t, "bare_lf_upper_hex", b"\x00" + b"A\n0123456789\n0\n\n")
    write(t, "next_request_after_body", b"\x01\x10" + b"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n")
    write(t, "bad_size", b"\x00" + b"zz\r\n")
    write(t, "huge_size", b"\x03\x01\x02\x03" + b"ffffffffffffffffff\r\n")


# ---------------------------------------------------------------- http1_response_head
def http1_response_head():
    t = "http1_response_head"
    # byte 0: bit 0 = HEAD request, the rest = where the body is split
    write(t, "content_length_then_next", b"\x40" + b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1")
    write(t, "chunked_stream_hold", b"\x20" + b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nGrip-Hold: stream\r\n"
          b"Grip-Channel: news\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    write(t, "until_close", b"\x00" + b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: x\n\n")
    write(t, "head_request", b"\x01" + b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
    write(t, "not_modified", b"\x00" + b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n")
    write(t, "wsoh_open", b"\x7e" + b"HTTP/1.1 200 OK\r\nContent-Type: application/websocket-events\r\n"
          b"Sec-WebSocket-Extensions: grip\r\nContent-Length: 6\r\n\r\nOPEN\r\n")
    write(t, "grip_instruct", b"\x10" + b"HTTP/1.1 200 OK\r\nContent-Type: application/grip-instruct\r\nContent-Length: 41\r\n\r\n"
          b'{"hold":{"channels":[{"name":"test"}]}}\r\n')


# ---------------------------------------------------------------- ws_frame
KEY = [0x37, 0xFA, 0x21, 0x3D]


def mask(payload, key):
    return bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def frame(fin, op, payload, key=None):
    b0 = (0x80 if fin else 0) | op
    n = len(payload)
    mb = 0x80 if key else 0
    if n < 126:
        head = bytes([b0, mb | n])
    elif n < 65536:
        head = bytes([b0, mb | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, mb | 127]) + n.to_bytes(8, "big")
    if key:
        return head + bytes(key) + mask(payload, key)
    return head + payload


def ws_frame():
    t = "ws_frame"

    def raw(name, require_mask, small_limit, cuts, data):
        e = Enc().variant(0, 3).bool(require_mask).bool(small_limit)
        e.vec(cuts, e.u16).bytes(data)
        write(t, name, e.done())

    # RFC 6455 5.7 examples
    raw("rfc_masked_hello", True, False, [], bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]))
    raw("rfc_fragmented_unmasked", False, False, [20000], bytes([0x01, 0x03, 0x48, 0x65, 0x6C, 0x80, 0x02, 0x6C, 0x6F]))
    raw("ping_between_fragments", True, False, [10000, 40000],
        frame(False, 1, "héllo ".encode(), KEY) + frame(True, 9, b"ping", KEY) + frame(True, 0, "wörld".encode(), KEY))
    raw("binary_256_then_close", True, False, [30000],
        frame(True, 2, bytes(range(256)), KEY) + frame(True, 8, b"\x03\xe8bye", KEY) + b"ignored")
    raw("too_big_for_small_limit", True, True, [], frame(True, 2, bytes(100), KEY))
    raw("bad_utf8_text", True, False, [], frame(True, 1, b"ok\xed\xa0\x80", KEY))
    raw("reserved_opcode", True, False, [], bytes([0x83, 0x80]) + bytes(KEY))
    raw("unmasked_to_server", True, False, [], frame(True, 1, b"hi"))
    raw("control_64bit_len", True, False, [], bytes([0x89, 0xFF]) + (5).to_bytes(8, "big") + bytes(KEY) + mask(b"hello", KEY))

    def frames(name, specs):
        e = Enc().variant(1, 3)

        def spec(s):
            fin, op, payload, key, big, cut, code, reason = s
            e.bool(fin).u8(op).bytes(payload).option(key, e.arr).u64(big).u8(cut).u16(code).bytes(reason)

        e.vec(specs, spec)
        write(t, name, e.done())

    frames("codec_round_trip", [
        (True, 1, b"Hello", KEY, 1 << 40, 3, 1000, b"normal closure"),
        (False, 2, bytes(200), None, 70000, 7, 1005, b""),
        (True, 4, b"", [0, 0, 0, 0], 125, 0, 4999, "é".encode() * 70),
    ])

    def messages(name, require_mask, msgs, cuts):
        e = Enc().variant(2, 3).bool(require_mask)

        def control(c):
            pong, payload, key = c
            e.bool(pong).bytes(payload).option(key, e.arr)

        def msg(m):
            kind = m[0]
            if kind == "data":
                _, text, binary, frags, between, key = m
                e.variant(0, 3).option(text, e.bytes).bytes(binary).bytes(frags)
                e.vec(between, control).option(key, e.arr)
            elif kind == "control":
                e.variant(1, 3)
                control(m[1])
            else:
                _, code, reason, key = m
                e.variant(2, 3).u16(code).bytes(reason).option(key, e.arr)

        e.vec(msgs, msg).vec(cuts, e.u16)
        write(t, name, e.done())

    messages("text_split_in_utf8_with_pings_and_close", True, [
        ("data", "naïve ☃ 𝄞 text".encode(), b"", [3, 1, 0, 5], [(False, b"p1", None), (True, b"", KEY)], KEY),
        ("data", None, bytes(range(40)), [10], [], None),
        ("control", (False, b"x" * 125, [1, 2, 3, 4])),
        ("close", 1001, "going away ☃".encode(), KEY),
    ], [1, 5000, 9000, 33000, 65000])
    messages("client_role_unmasked", False, [
        ("data", b"hello", b"", [], [], None),
        ("data", None, b"\x00\xff", [1], [(True, b"pong", None)], None),
    ], [12000])


# ---------------------------------------------------------------- ws_handshake
KNOWN_WS = ["Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version",
            "Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions", "Host"]


def ws_handshake():
    t = "ws_handshake"

    def hs(name, get, http11, headers, extra):
        e = Enc().bool(get).bool(http11)

        def header(h):
            n, v = h
            if n in KNOWN_WS:
                e.variant(0, 2).u8(KNOWN_WS.index(n)).u64(case_mask(n))
            else:
                e.variant(1, 2).bytes(n)
            kind = v[0]
            if kind == "raw":
                e.variant(0, 4).bytes(v[1])
            elif kind == "key":
                e.variant(1, 4).arr(v[1])
            elif kind == "13":
                e.variant(2, 4)
            else:
                e.variant(3, 4).bytes(v[1])

        def pair(p):
            e.bytes(p[0]).bytes(p[1])

        e.vec(headers, header).vec(extra, pair)
        write(t, name, e.done())

    rfc = [
        ("Host", ("raw", b"server.example.com")),
        ("Upgrade", ("raw", b"websocket")),
        ("Connection", ("raw", b"Upgrade")),
        ("Sec-WebSocket-Key", ("raw", b"dGhlIHNhbXBsZSBub25jZQ==")),
        ("Origin", ("raw", b"http://example.com")),
        ("Sec-WebSocket-Protocol", ("raw", b"chat, superchat")),
        ("Sec-WebSocket-Version", ("13",)),
    ]
    hs("rfc6455_example", True, True, rfc, [(b"Sec-WebSocket-Extensions", b"grip"), (b"Set-Cookie", b"a=b")])
    hs("autobahn_capitalised", True, True, [
        ("Upgrade", ("raw", b"WebSocket")),
        ("Connection", ("raw", b"keep-alive, Upgrade")),
        ("Sec-WebSocket-Key", ("key", list(range(16)))),
        ("Sec-WebSocket-Version", ("raw", b" 13 ")),
        ("Sec-WebSocket-Extensions", ("raw", b"permessage-deflate; client_max_window_bits, x-webkit")),
    ], [(b"X-Injected", b"a\r\nb")])
    hs("old_version_426", True, True, [
        ("Upgrade", ("words", [0])), ("Connection", ("words", [2])),
        ("Sec-WebSocket-Key", ("key", [7] * 16)), ("Sec-WebSocket-Version", ("raw", b"8")),
    ], [])
    hs("two_keys", True, True, [
        ("Upgrade", ("raw", b"websocket")), ("Connection", ("raw", b"upgrade")),
        ("Sec-WebSocket-Version", ("13",)),
        ("Sec-WebSocket-Key", ("key", [1] * 16)), ("Sec-WebSocket-Key", ("key", [2] * 16)),
    ], [])
    hs("post_http10", False, False, rfc, [])


# ---------------------------------------------------------------- wsoh_events
def wsoh_events():
    t = "wsoh_events"

    def raw(name, body):
        write(t, name, Enc().variant(0, 2).bytes(body).done())

    raw("open", b"OPEN\r\n")
    raw("gripcontrol_vectors", b"OPEN\r\nTEXT 5\r\nHello\r\nTEXT 0\r\n\r\nTEXT\r\nCLOSE\r\nTEXT 5\r\nWorld\r\nCLOSE 2\r\n\x03\xe8\r\n")
    raw("binary_ping_pong_disconnect", b"BINARY 3\r\n\x00\x01\x02\r\nPING\r\nPONG 1\r\nx\r\nDISCONNECT\r\n")
    raw("upper_hex_close_reason", b"TEXT 1A\r\n" + b"a" * 26 + b"\r\nCLOSE 6\r\n\x0f\xa0done\r\n")
    raw("c_control_message", b'TEXT 2F\r\nc:{"type":"subscribe","channel":"room-1"}XXXXX\r\n')
    raw("truncated", b"TEXT 10\r\nshort\r\n")

    e = Enc().variant(1, 2)

    def ev(x):
        kind = x[0]
        idx = ["open", "text", "binary", "ping", "pong", "close", "disconnect"].index(kind)
        e.variant(idx, 7)
        if kind in ("text", "binary", "ping", "pong"):
            e.bytes(x[1])
        elif kind == "close":
            e.option(x[1], e.u16).bytes(x[2])

    e.vec([("open",), ("text", b"m:hello"), ("binary", bytes(20)), ("ping", b""), ("pong", b"p"),
           ("close", 1000, b"bye"), ("close", None, b"dropped reason"), ("disconnect",)], ev)
    write(t, "event_list", e.done())


# ---------------------------------------------------------------- wsoh_control
def wsoh_control():
    t = "wsoh_control"

    def ctl(name, json, ext_values=(), prefix=b"m:", others=(), payload=b"", headers=()):
        e = Enc()
        e.bytes(json).vec(ext_values, e.bytes).bytes(prefix)
        e.vec(others, e.bytes).bytes(payload)
        e.vec(headers, lambda h: (e.bytes(h[0]), e.bytes(h[1])))
        write(t, name, e.done())

    ctl("subscribe_filters", b'{"type":"subscribe","channel":"room","filters":["skip-self","require-sub"]}',
        [b"grip"], b"m:", [b"permessage-deflate"], b'c:{"type":"detach"}', [(b"Keep-Alive-Interval", b"5")])
    ctl("unsubscribe", b'{"type": "unsubscribe", "channel": "room"}', [b"grip; message-prefix=\"\""], b"")
    ctl("detach_session", b'{"type":"session","id":"abc"}', [b"x-foo, grip;message-prefix=\"p\\\"q\""], b'p"q',
        payload=b"p\"qmessage")
    ctl("set_meta", b'{"type":"set-meta","name":"user","value":"alice"}',
        headers=[(b"Set-Meta-user", b"bob"), (b"Set-Meta-", b"x"), (b"Content-Bytes-Accepted", b" 10 ")])
    ctl("keep_alive_bin", b'{"type":"keep-alive","content-bin":"aGVsbG8=","message-type":"binary","timeout":"30","mode":"interval"}',
        [b"grip; message-prefix="], b"m:")
    ctl("send_delayed", b'{"type":"send-delayed","content":"later","timeout":2.6}', [b'grip; message-prefix="unterminated'])
    ctl("flush_close", b'{"type":"close","code":4000,"reason":"done"}', payload=b"m:hello")
    ctl("not_an_object", b'["subscribe"]')
    ctl("keep_alive_off", b'{"type":"keep-alive","content":null}', headers=[(b"Keep-Alive-Interval", b"-1")])


# ---------------------------------------------------------------- grip_headers
KNOWN_GRIP = ["Grip-Hold", "Grip-Channel", "Grip-Timeout", "Grip-Expose-Headers", "Grip-Keep-Alive",
              "Grip-Set-Meta", "Grip-Status", "Grip-Link", "Grip-Sig", "Content-Type"]


def grip_headers():
    t = "grip_headers"

    def gh(name, headers, channels_max=20, chans=(), keep_alive=b""):
        e = Enc()

        def header(h):
            n, v = h
            if n in KNOWN_GRIP:
                e.variant(0, 2).u8(KNOWN_GRIP.index(n)).u64(case_mask(n))
            else:
                e.variant(1, 2).bytes(n)
            e.bytes(v)

        def chan(c):
            e.bytes(c[0]).bytes(c[1]).vec(c[2], e.bytes)

        e.vec(headers, header).u8(channels_max).vec(chans, chan).bytes(keep_alive)
        write(t, name, e.done())

    gh("pushpin_stream_keep_alive", [
        ("Content-Type", b"text/plain"), ("Grip-Hold", b"stream"), ("Grip-Channel", b"test"),
        ("Grip-Keep-Alive", b"\\n; format=cstring; timeout=20"),
    ], chans=[(b"test", b"", [])], keep_alive=b"\n")
    gh("pushpin_response_prev_id", [
        ("Grip-Hold", b"response"), ("Grip-Channel", b'test; prev-id=1, other; prev-id="a,b"; filter=skip-self'),
        ("Grip-Timeout", b"120"), ("Grip-Status", b"404 Not Found"),
    ], chans=[(b"a", b"x;y", [b"skip-self", b'q"uote'])])
    gh("links_meta_expose", [
        ("Grip-Hold", b"stream"), ("Grip-Channel", b"c"),
        ("Grip-Link", b"</next?after=1>; rel=next; timeout=30, </gone>; rel=gone"),
        ("Grip-Set-Meta", b'user=alice, role="a, b"'), ("Grip-Expose-Headers", b"X-A, x-b"),
        ("X-Other", b"ignored"),
    ], channels_max=1, keep_alive=b"\x00\xff ;,")
    gh("errors", [("grip-hold", b"Stream"), ("GRIP-CHANNEL", b'"unterminated'), ("Grip-Timeout", b"-1")],
       channels_max=0)
    gh("base64_keep_alive", [("Grip-Hold", b"stream"), ("Grip-Channel", b"a"),
                             ("Grip-Keep-Alive", b"aGVsbG8=; format=base64; mode=interval; timeout=0")])


# ---------------------------------------------------------------- raw JSON / text targets
def grip_json():
    t = "grip_json"
    write(t, "pushpin_response_hold", '{"hold":{"mode":"response","channels":[{"name":"test","prev-id":"1"}],"timeout":60},'
          '"response":{"code":200,"headers":{"Content-Type":"text/plain"},"body":"hello world"}}')
    write(t, "stream_keep_alive_meta", '{"hold":{"mode":"stream","channels":[{"name":"a","filters":["skip-self"]},{"name":"b"}],'
          '"keep-alive":{"content-bin":"aGk=","timeout":15,"mode":"interval"},"meta":{"user":"bob"}},'
          '"response":{"headers":[["X-A","1"],["Set-Cookie","x=y"]],"body-bin":"AAEC"}}')
    write(t, "no_hold", '{"response":{"code":404,"reason":"Nope","body":"missing"}}')
    write(t, "header_injection", '{"hold":{"channels":[{"name":"c"}]},"response":{"headers":{"X-A":"a\\r\\nSet-Cookie: evil"}}}')
    write(t, "wrong_types", '{"hold":{"channels":[{"name":""}],"timeout":1.5},"response":{"code":"200"}}')


def publish_body():
    t = "publish_body"
    write(t, "gripcontrol_all_formats", '{"items":[{"channel":"test","id":"1","prev-id":"0","formats":{'
          '"ws-message":{"content":"hello"},"http-stream":{"content":"hello\\n"},'
          '"http-response":{"body":"hello\\n","headers":{"Content-Type":"text/plain"}}}}]}')
    write(t, "binary_and_close", '{"items":[{"channel":"a","formats":{"ws-message":{"content-bin":"AAEC"}}},'
          '{"channel":"b","formats":{"ws-message":{"action":"close","code":4001,"reason":"bye"}}},'
          '{"channel":"c","formats":{"ws-message":{"action":"close","code":2000}}}]}')
    write(t, "legacy_layout_hint", '{"items":[{"channel":"x","http-response":{"action":"hint"},"http-stream":{"action":"close"},'
          '"meta":{"sender":"me"},"no-seq":true,"size":3}]}')
    write(t, "ping_and_patch", '{"items":[{"channel":"p","formats":{"ws-message":{"type":"ping"},'
          '"http-response":{"code":299,"reason":"Custom","body-patch":[{"op":"add","path":"/a","value":1}]}}}]}')
    write(t, "bad_base64", '{"items":[{"channel":"x","formats":{"http-stream":{"content-bin":"!!"}}}]}')
    write(t, "empty_items", '{"items":[]}')


def routes_file():
    t = "routes_file"
    write(t, "default", "* 127.0.0.1:8080\n")
    write(t, "pushpin_examples",
          "# comment\n"
          "*,path_beg=/ws,proto=ws 127.0.0.1:9000,over_http,sub=updates\n"
          "example.com,ssl=yes,id=secure,sig_iss=me,sig_key=base64:c2VjcmV0 [::1]:8443,host=origin.local 10.0.0.2:80\n"
          "api.example.com,path_beg=/v1,replace_beg=/api/v1,prefix=v1- localhost:3000\n"
          "\"quoted host\",as_host=\"x y:80\" a:1 # trailing comment\n"
          "[::1],path_rem=3,no_grip,debug 127.0.0.1:1\n")
    write(t, "errors", "* 127.0.0.1:0\nexample.com:80 a:1\n*,jsonp_x a:1\n*,path_rem=1,replace_beg=/ a:1\n")
    write(t, "bom_crlf_tabs", "\ufeff*\t127.0.0.1:80\r\n\r\n  *,proto=http\ta:2\r\n")


def config():
    t = "config"
    repo = ROOT.parent.parent
    write(t, "embedded_default", (repo / "config" / "holdfast.toml").read_bytes())
    write(t, "small", '[server]\nlisten = ["127.0.0.1:7999", "[::1]:7999"]\nworkers = 2\ndriver = "legacy"\n'
          'routes_file = "routes"\n[publish]\nbasic_auth = "user:pass"\njwt_key = "base64:c2VjcmV0"\n'
          '[grip]\nsig_key = "changeme"\nchannels_max = 0\n')
    write(t, "inline_routes", '[server]\nroutes = """\n*,path_beg=/ws 127.0.0.1:9000,over_http\n* 127.0.0.1:8080\n"""\n'
          '[hold]\nslow_consumer = "drop_messages"\n[log]\nlevel = "debug"\n')
    write(t, "unknown_key", "[http]\nheader_bytes_mx = 5\n")


# ---------------------------------------------------------------- http1_encode
def http1_encode():
    t = "http1_encode"

    def head(name, request, http10, method, target, code, reason, headers):
        e = Enc().bool(request).bool(http10).bytes(method).bytes(target).u16(code).bytes(reason)
        e.vec(headers, lambda h: e.bytes(h[0]).bytes(h[1]))
        write(t, name, e.done())

    head("next_link_request", True, False, "GET", "/events/?last=7", 0, "",
         [("Host", "example.com"), ("Grip-Last", "news; last-id=7"), ("Grip-Sig", "eyJ0")])
    head("smuggled_last_id", True, False, "GET", "/events/", 0, "",
         [("Host", "a"), ("Grip-Last", "c; last-id=1\r\nContent-Length: 0\r\n\r\nGET /admin HTTP/1.1")])
    head("split_target", True, False, "GET", "/a HTTP/1.1\r\nHost: evil\r\n\r\nGET /b", 0, "", [])
    head("held_response", False, False, "", "", 200, "OK",
         [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")])
    head("split_reason", False, True, "", "", 200, "OK\r\nSet-Cookie: s=1", [("X", "\tv ")])
    head("meta_header_nul", True, False, "POST", "/ws", 0, "", [("Meta-User", "a\x00b")])


def tnet(v):
    """A tnetstring, as Pushpin and Python's tnetstring write it."""
    if v is None:
        return b"0:~"
    if isinstance(v, bool):
        d, tag = (b"true" if v else b"false"), b"!"
    elif isinstance(v, int):
        d, tag = str(v).encode(), b"#"
    elif isinstance(v, float):
        d, tag = repr(v).encode(), b"^"
    elif isinstance(v, (str, bytes)):
        d, tag = (v.encode() if isinstance(v, str) else v), b","
    elif isinstance(v, list):
        d, tag = b"".join(tnet(x) for x in v), b"]"
    else:
        d, tag = b"".join(tnet(k) + tnet(x) for k, x in v.items()), b"}"
    return str(len(d)).encode() + b":" + d + tag


def zmq_message():
    t = "zmq_message"
    stream = {"channel": "test", "formats": {"http-stream": {"content": "hello\n"}}}
    write(t, "pull_tnetstring", tnet(stream))
    write(t, "pull_t_prefix", b"T" + tnet(stream))
    write(t, "pull_json", b'J{"channel": "c", "id": "2", "prev-id": "1", "formats": {"ws-message": {"content": "hi"}}}')
    write(t, "sub_channel_part", b"abc" + tnet({"formats": {"ws-message": {"content-bin": b"\x00\xff", "type": "binary"}}}))
    write(t, "raw_body", tnet({"channel": "c", "http-response": {"code": 200, "headers": [["A", "b"]], "body": b"\xff"}}))
    write(t, "command_publish", tnet({"id": "1", "method": "publish", "args": {"items": [stream, {"channel": ""}]}}))
    write(t, "command_uris", tnet({"method": "get-zmq-uris"}))
    write(t, "nested", tnet({"a": [[[[{"b": [1.5, -2, None, True]}]]]]}))


if __name__ == "__main__":
    for f in [http1_request, http1_encode, http1_chunked, http1_response_head, ws_frame, ws_handshake, wsoh_events,
              wsoh_control, grip_headers, grip_json, publish_body, routes_file, config, zmq_message]:
        f()
    print("seeds written under", os.path.relpath(ROOT))

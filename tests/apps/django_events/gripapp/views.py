"""Views of the test Django project.

django-eventstream (the SSE origin under test):
  GET  /events/?channel=C      django-eventstream's own view (GRIP: Grip-Hold stream, Grip-Channel
                               events-C with prev-id and filters, Grip-Link rel=next, ...)
  POST /send/C                 body {"data": [d1, d2, ...]}: send_event(C, "message", d) for each,
                               publishing synchronously; answers {"ids": [...]} (Last-Event-ID form)
  POST /store/C                body {"data": [...]}: appends to django-eventstream's storage only,
                               never publishing: a publish that the proxy never received
  GET  /log                    JSON list of requests the proxy made to /events/ and /ws
                               (?clear=1 empties it)

django-grip WebSocket-over-HTTP:
  POST /ws?ch=C[&closecode=N][&farewell=T]
                               accept, subscribe to C, echo every message; the text "close-me"
                               makes it close with 4003; a client close is answered with message
                               T (if given) then a close with code N (default: the client's
                               code). django-grip sends no close reason.

Hand-written GRIP answers (headers set directly), for tests/parity/:
  GET /stream?ch=C             Grip-Hold stream, initial body "stream-open\\n"
  GET /sse?ch=C&ka=N           text/event-stream stream hold, Grip-Keep-Alive every N s idle
  GET /poll?ch=C&t=N           Grip-Hold response, Grip-Timeout N, timeout body "timeout\\n"
  GET /instruct?ch=C&mode=M    application/grip-instruct JSON (M = stream | response)
  GET /status?ch=C&mode=M      Grip-Status 201 on a stream / 404 on a long-poll (timeout 1 s)
  GET /multi?ch=C              stream hold on channels C-a and C-b
  GET /plain                   no GRIP
  * /echo                      JSON of the method, path, content type and body it got
  GET /headers                 JSON of the request headers the origin got
"""

import json

from django.http import HttpResponse, JsonResponse
from django_eventstream import get_current_event_id, send_event
from django_eventstream.utils import get_storage
from django_grip import websocket_only

from . import middleware


def health(request):
    return HttpResponse("ok\n", content_type="text/plain")


def _data_list(request):
    body = json.loads(request.body or b"{}")
    return body.get("data", [])


def send(request, channel):
    ids = []
    for d in _data_list(request):
        # async_publish=False: the publish has been answered when this view answers.
        send_event(channel, "message", d, async_publish=False)
        ids.append(get_current_event_id([channel]))
    return JsonResponse({"ids": ids})


def store(request, channel):
    storage = get_storage()
    ids = []
    for d in _data_list(request):
        # What send_event stores (JSON text), minus the publish.
        e = storage.append_event(channel, "message", json.dumps(d))
        ids.append("%s:%s" % (channel, e.id))
    return JsonResponse({"ids": ids})


def log(request):
    with middleware._lock:
        out = list(middleware.LOG)
        if request.GET.get("clear"):
            middleware.LOG.clear()
    return JsonResponse(out, safe=False)


@websocket_only
def ws(request):
    ctx = request.wscontext
    if ctx.is_opening():
        ctx.accept()
        ch = request.GET.get("ch")
        if ch:
            ctx.subscribe(ch)
    while ctx.can_recv():
        try:
            message = ctx.recv()
        except IOError:
            # DISCONNECT: the client went away without a close handshake.
            break
        if message is None:
            # The client closed: answer with ?closecode= if given, else echo its code, after a
            # last message if ?farewell= is given.
            if request.GET.get("farewell"):
                ctx.send(request.GET["farewell"])
            ctx.close(code=int(request.GET.get("closecode", 0)) or ctx.close_code or 1000)
            break
        if message == "close-me":
            # An origin-initiated close.
            ctx.close(code=4003)
            break
        if isinstance(message, bytes):
            ctx.send_binary(message)
        else:
            ctx.send(message)
    # An empty 200: django-grip's middleware turns the context into the events answer.
    return None


def _raw(body, headers=(), status=200, reason=None, content_type="text/plain"):
    r = HttpResponse(body, status=status, reason=reason, content_type=content_type)
    for name, value in headers:
        r[name] = value
    return r


def stream(request):
    ch = request.GET.get("ch", "stream")
    return _raw(
        "stream-open\n",
        [("Grip-Hold", "stream"), ("Grip-Channel", ch), ("X-Origin", "stream")],
    )


def sse(request):
    ch = request.GET.get("ch", "sse")
    ka = request.GET.get("ka", "20")
    return _raw(
        "event: open\ndata: hello\n\n",
        [
            ("Grip-Hold", "stream"),
            ("Grip-Channel", ch),
            ("Grip-Keep-Alive", ":ka\\n\\n; format=cstring; timeout=%s" % ka),
            ("Cache-Control", "no-cache"),
        ],
        content_type="text/event-stream",
    )


def poll(request):
    ch = request.GET.get("ch", "poll")
    t = request.GET.get("t", "55")
    return _raw(
        "timeout\n",
        [
            ("Grip-Hold", "response"),
            ("Grip-Channel", ch),
            ("Grip-Timeout", t),
            ("X-Origin", "poll"),
        ],
    )


def instruct(request):
    ch = request.GET.get("ch", "instruct")
    mode = request.GET.get("mode", "stream")
    hold = {"mode": mode, "channels": [{"name": ch}]}
    if mode == "response":
        hold["timeout"] = int(request.GET.get("t", "1"))
    body = {
        "hold": hold,
        "response": {
            "code": 200,
            "reason": "OK",
            "headers": {"Content-Type": "text/plain", "X-Instruct": "yes"},
            "body": "instruct-%s\n" % mode,
        },
    }
    return _raw(json.dumps(body), content_type="application/grip-instruct")


def status(request):
    ch = request.GET.get("ch", "status")
    if request.GET.get("mode") == "response":
        return _raw(
            "not here\n",
            [
                ("Grip-Hold", "response"),
                ("Grip-Channel", ch),
                ("Grip-Timeout", "1"),
                ("Grip-Status", "404 Not Here"),
            ],
        )
    return _raw(
        "status-open\n",
        [("Grip-Hold", "stream"), ("Grip-Channel", ch), ("Grip-Status", "201 Made Here")],
    )


def multi(request):
    # Two channels in one header, and a repeated header.
    return _raw(
        "multi-open\n",
        [("Grip-Hold", "stream"), ("Grip-Channel", "%s-a, %s-b" % (request.GET["ch"], request.GET["ch"]))],
    )


def echo(request):
    return JsonResponse(
        {
            "method": request.method,
            "path": request.get_full_path(),
            "content_type": request.META.get("CONTENT_TYPE"),
            "body": request.body.decode("utf-8", "replace"),
        }
    )


def plain(request):
    # With a Content-Length: uvicorn would otherwise send it chunked, and Pushpin turns a small
    # chunked response into a Content-Length one or not depending on timing.
    body = "plain body\n"
    return _raw(body, [("X-Plain", "1"), ("Content-Length", str(len(body)))])


def headers(request):
    seen = {}
    for k, v in request.META.items():
        if k.startswith("HTTP_"):
            seen[k[5:].replace("_", "-").lower()] = v
    return JsonResponse(
        {
            "method": request.method,
            "path": request.get_full_path(),
            "headers": seen,
            "grip_signed": bool(request.grip.signed),
            "grip_features": sorted(request.grip.features),
        }
    )

"""A Django project on PyPI's django-eventstream and django-grip, served by uvicorn (ASGI), for
holdfast's tests (tests/django_events.rs, tests/parity/). Nobody here wrote the GRIP side: the
SSE endpoint, its Grip-* instructions, reliable-delivery ids and its publishes all come from
django-eventstream / django-grip / gripcontrol as a user's app would run them.

Usage: server.py
  1. Binds 127.0.0.1:$PORT (default 0: any free port) and prints `listening <port>`.
  2. Reads one line of JSON from stdin: {"db": "/path/to/sqlite", "grip_proxies": [{"control_uri":
     "http://127.0.0.1:<publish port>", "key": "...", "control_iss"?: "...", "verify_iss"?:
     "..."}], "secret_key"?: "..."} (the proxies' publish ports are only known after this app's
     port is: hence the two steps).
  3. Migrates the SQLite database, serves, and prints `ready` once uvicorn accepts requests.
  Exits when stdin closes (the test that started it has gone).
"""

import json
import os
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def watch_stdin():
    # The parent's end of the pipe closes when it exits, however it exits.
    while sys.stdin.readline():
        pass
    os._exit(0)


def announce_ready(server):
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    print("ready" if server.started else "not started", flush=True)


def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", int(os.environ.get("PORT", "0"))))
    sock.listen(1024)
    print("listening %d" % sock.getsockname()[1], flush=True)

    line = sys.stdin.readline()
    if not line:
        return
    json.loads(line)  # fail early on bad input
    os.environ["GRIPAPP_CONFIG"] = line
    os.environ["DJANGO_SETTINGS_MODULE"] = "gripapp.settings"
    sys.path.insert(0, HERE)

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)

    threading.Thread(target=watch_stdin, daemon=True).start()

    import uvicorn

    config = uvicorn.Config(
        "gripapp.asgi:application",
        log_level=os.environ.get("GRIPAPP_LOG_LEVEL", "warning"),
        access_log=False,
        lifespan="off",
        timeout_keep_alive=60,
    )
    server = uvicorn.Server(config)
    threading.Thread(target=announce_ready, args=(server,), daemon=True).start()
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()

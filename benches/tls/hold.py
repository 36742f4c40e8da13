"""Holds N stream requests (plain or TLS) open until a line arrives on stdin."""
import socket
import ssl
import sys
import time

n, mode, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
ctx.set_alpn_protocols(["http/1.1"])
held = []
start = time.time()
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", 18443 if mode == "tls" else 18080))
    if mode == "tls":
        s = ctx.wrap_socket(s, server_hostname="a.test")
    s.sendall(b"GET /stream HTTP/1.1\r\nHost: a.test\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            sys.exit(f"connection closed after {len(held)} held")
        buf += chunk
    held.append(s)
print(f"{mode}: {n} held in {time.time() - start:.1f}s", flush=True)
sys.stdin.readline()

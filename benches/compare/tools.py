#!/usr/bin/env python3
"""Small helpers for benches/compare.sh (standard library only).

    tools.py ports N                 N free TCP ports (20000-32000, none of the reserved ones)
    tools.py pp-offset               a Pushpin port_offset whose 5560..5563 + offset ports are free
    tools.py tree PID                PID and all its descendants, one per line
    tools.py cpu PID                 CPU seconds (user + system) used so far by PID and its descendants
    tools.py rss PID                 summed VmRSS (KiB) of PID and its descendants
    tools.py sample PORT PID OUT [INTERVAL]
                                     until killed: every INTERVAL s append {"t","conns","rss_kib"} to OUT,
                                     where conns = established TCP sockets with local port PORT
    tools.py wait-http URL SECS      wait until URL answers 200 (exit 1 on time-out)
    tools.py wait-port PORT SECS     wait until 127.0.0.1:PORT accepts (exit 1 on time-out)
"""

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request

# Ports other people use on this machine, never touched.
RESERVED = {7999, 5561, 7480, 15561, 9100, 5560, 5562, 5563, 15560, 15562, 15563}
CLK_TCK = os.sysconf("SC_CLK_TCK")


def port_free(port):
    for host in ("0.0.0.0", "127.0.0.1"):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((host, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def free_ports(n, exclude=()):
    taken = set(exclude)
    out = []
    rng = random.Random()
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 10000:
            sys.exit("tools.py: no free ports found")
        p = rng.randint(20000, 32000)
        if p in RESERVED or p in taken or not port_free(p):
            continue
        taken.add(p)
        out.append(p)
    return out


def pp_offset():
    rng = random.Random()
    for _ in range(2000):
        off = rng.randint(14000, 26000)
        ports = [5560 + off + i for i in range(4)]
        if any(p in RESERVED for p in ports):
            continue
        if all(port_free(p) for p in ports):
            return off
    sys.exit("tools.py: no free Pushpin port offset found")


def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        # the comm field may hold spaces and parentheses: split after the last ')'
        rest = st[st.rfind(")") + 2 :].split()
        kids.setdefault(int(rest[1]), []).append(int(d))
    return kids


def tree(pid):
    kids = children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.append(p)
        todo.extend(kids.get(p, []))
    return [p for p in out if os.path.exists(f"/proc/{p}")]


def cpu_secs(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                st = f.read()
        except OSError:
            continue
        rest = st[st.rfind(")") + 2 :].split()
        total += int(rest[11]) + int(rest[12])  # utime, stime
    return total / CLK_TCK


def rss_kib(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


def established(port):
    """Established TCP sockets whose local port is PORT (the proxy's side of client connections)."""
    try:
        out = subprocess.run(
            ["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
            capture_output=True, check=True,
        ).stdout
        return out.count(b"\n")
    except (OSError, subprocess.CalledProcessError):
        pass
    # no ss: read /proc/net/tcp (slow with many sockets)
    want = f":{port:04X}"
    n = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split(None, 4)
                    if parts[3] == "01" and parts[1].endswith(want):
                        n += 1
        except OSError:
            pass
    return n


def sample(port, pid, out, interval):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    t0 = time.time()
    pids, pids_at = tree(pid), t0
    with open(out, "a") as f:
        while not stop:
            now = time.time()
            if now - pids_at > 2:
                pids, pids_at = tree(pid), now
            rec = {
                "t": round(now - t0, 3),
                "conns": established(port),
                "rss_kib": rss_kib(pids),
            }
            f.write(json.dumps(rec) + "\n")
            f.flush()
            time.sleep(max(0.0, interval - (time.time() - now)))


def wait_http(url, secs):
    deadline = time.time() + secs
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return 0
        except Exception:
            pass
        time.sleep(0.1)
    return 1


def wait_port(port, secs):
    deadline = time.time() + secs
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return 0
        except OSError:
            time.sleep(0.1)
    return 1


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "ports":
        print(" ".join(map(str, free_ports(int(args[0]), [int(a) for a in args[1:]]))))
    elif cmd == "pp-offset":
        print(pp_offset())
    elif cmd == "tree":
        print("\n".join(map(str, tree(int(args[0])))))
    elif cmd == "cpu":
        print(f"{cpu_secs(tree(int(args[0]))):.2f}")
    elif cmd == "rss":
        print(rss_kib(tree(int(args[0]))))
    elif cmd == "sample":
        interval = float(args[3]) if len(args) > 3 else 0.25
        sample(int(args[0]), int(args[1]), args[2], interval)
    elif cmd == "wait-http":
        return wait_http(args[0], float(args[1]))
    elif cmd == "wait-port":
        return wait_port(int(args[0]), float(args[1]))
    else:
        sys.exit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

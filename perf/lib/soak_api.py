#!/usr/bin/python3
"""Forward churn for perf/soak.sh: adds and removes port forwards through the API socket every few
milliseconds until a deadline, and every CHECK_EVERY seconds checks that the daemon's list matches
what was added, and that every listed TCP forward really carries a connection (1 KiB echoed back
by the guest's echo server).

  soak_api.py SOCKET SECONDS GUEST_PORT [--pool N] [--check-every S] [--stop-file PATH]

Prints one JSON object: adds, removes, add_failures, remove_failures, checks, forwards_checked,
check_failures (first 20 described in `failures`), api_calls, api_p99_ms, api_max_ms.
Exits 1 if any API call or check failed. Host ports come from 20000-30999.
"""
import argparse
import json
import os
import random
import socket
import sys
import time

from apiclient import api


def echo_through(port, size=1024, timeout=5.0):
    payload = os.urandom(size)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        got = b""
        while len(got) < size:
            chunk = s.recv(size - len(got))
            if not chunk:
                raise ConnectionError(f"closed after {len(got)} of {size} bytes")
            got += chunk
    if got != payload:
        raise ValueError("echo differs")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("socket")
    p.add_argument("seconds", type=float)
    p.add_argument("guest_port", type=int)
    p.add_argument("--pool", type=int, default=40)
    p.add_argument("--check-every", type=float, default=5)
    p.add_argument("--stop-file")
    a = p.parse_args()

    rng = random.Random(7)
    active = {}  # id -> (proto, host_port)
    st = dict(adds=0, removes=0, add_failures=0, remove_failures=0, checks=0, forwards_checked=0,
              check_failures=0, api_calls=0)
    failures, lat = [], []

    def call(req):
        t = time.monotonic()
        r = api(a.socket, req)
        lat.append(time.monotonic() - t)
        st["api_calls"] += 1
        return r

    def failure(msg):
        st["check_failures"] += 1
        if len(failures) < 20:
            failures.append(msg)

    deadline = time.monotonic() + a.seconds
    next_check = time.monotonic() + a.check_every
    while time.monotonic() < deadline and not (a.stop_file and os.path.exists(a.stop_file)):
        try:
            if len(active) < a.pool and (len(active) < a.pool // 2 or rng.random() < 0.5):
                proto = "udp" if rng.random() < 0.2 else "tcp"
                used = {hp for _, hp in active.values()}
                port = rng.choice([q for q in range(20000, 31000, 7) if q not in used])
                r = call({"execute": "add_hostfwd", "arguments": {"proto": proto, "host_addr": "127.0.0.1",
                                                                  "host_port": port, "guest_port": a.guest_port}})
                if "return" in r:
                    active[r["return"]["id"]] = (proto, port)
                    st["adds"] += 1
                else:
                    st["add_failures"] += 1
                    failure(f"add {proto} {port}: {r}")
            else:
                fid = rng.choice(list(active))
                r = call({"execute": "remove_hostfwd", "arguments": {"id": fid}})
                if r == {"return": {}}:
                    del active[fid]
                    st["removes"] += 1
                else:
                    st["remove_failures"] += 1
                    failure(f"remove {fid}: {r}")
            if time.monotonic() >= next_check:
                st["checks"] += 1
                r = call({"execute": "list_hostfwd"})
                listed = {e["id"]: (e["proto"], e["host_port"]) for e in r["return"]["entries"]}
                if listed != active:
                    failure(f"list_hostfwd has {len(listed)} entries, expected {len(active)}: {listed} vs {active}")
                for fid, (proto, port) in sorted(listed.items()):
                    if proto != "tcp":
                        continue
                    st["forwards_checked"] += 1
                    try:
                        echo_through(port)
                    except (OSError, ValueError) as e:
                        failure(f"forward {fid} 127.0.0.1:{port}: {e}")
                next_check = time.monotonic() + a.check_every
            time.sleep(rng.uniform(0.002, 0.006))
        except (OSError, ValueError, KeyError) as e:
            failure(f"API: {type(e).__name__}: {e}")
            time.sleep(0.1)

    for fid in list(active):  # leave no forwards behind: the fd count must come back down
        try:
            if call({"execute": "remove_hostfwd", "arguments": {"id": fid}}) == {"return": {}}:
                st["removes"] += 1
                del active[fid]
        except OSError as e:
            failure(f"final remove {fid}: {e}")
    lat.sort()
    st["api_p99_ms"] = round(1000 * lat[int(0.99 * (len(lat) - 1))], 2) if lat else None
    st["api_max_ms"] = round(1000 * lat[-1], 2) if lat else None
    st["left_active"] = len(active)
    st["failures"] = failures
    print(json.dumps(st))
    return 1 if st["check_failures"] or st["add_failures"] or st["remove_failures"] or active else 0


if __name__ == "__main__":
    sys.exit(main())

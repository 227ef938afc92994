#!/usr/bin/python3
"""Small network helpers for the integration tests (Python 3 standard library only).

  nettool.py tcp-echo ADDR PORT [--ready FILE] [--lifetime S]   echo server (IPv4 or IPv6 ADDR)
  nettool.py udp-echo ADDR PORT [--ready FILE] [--lifetime S]
  nettool.py tcp-check ADDR PORT [--bytes N] [--timeout S]       send N random bytes to an echo
                                                                 server, expect them back intact
  nettool.py udp-check ADDR PORT [--timeout S]                   one datagram there and back
  nettool.py api SOCKET JSON [--timeout S]                       one slirp4netns API request
  nettool.py http-get URL [--timeout S]                          print the body of a GET
  nettool.py tcp-stream send|recv ADDR PORT [--listen --ready FILE] [--bytes N] [--seed S]
             [--pause-after B --pause S --paused FILE --resume FILE] [--rate BYTES_PER_S]
             [--timeout S]
                                     one TCP stream of a seeded deterministic byte sequence, sent
                                     or received (connecting, or accepting one connection with
                                     --listen); both ends print "OK sent|received N sha256=HEX"

Clients print "OK ..." and exit 0 on success; otherwise they print "ERROR: <reason>" (for socket
errors the strerror text, e.g. "ERROR: Network is unreachable") and exit 1. Servers write "ready"
to --ready once they listen and exit by themselves after --lifetime seconds.
"""
import argparse
import hashlib
import os
import socket
import socketserver
import sys
import threading
import time


def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def run_server(server_cls, handler, args):
    class Server(server_cls):
        address_family = family_of(args.addr)
        allow_reuse_address = True
        daemon_threads = True

    server = Server((args.addr, args.port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    if args.ready:
        with open(args.ready, "w") as f:
            f.write("ready\n")
    time.sleep(args.lifetime)
    return 0


class TcpEcho(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.settimeout(30)
        try:
            while True:
                data = self.request.recv(65536)
                if not data:
                    return
                self.request.sendall(data)
        except OSError:
            return


class UdpEcho(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        sock.sendto(data, self.client_address)


def error(e):
    msg = e.strerror if isinstance(e, OSError) and e.strerror else str(e) or type(e).__name__
    print(f"ERROR: {msg}")
    return 1


def tcp_check(args):
    payload = os.urandom(args.bytes)
    got = hashlib.sha256()
    received = 0
    try:
        with socket.create_connection((args.addr, args.port), timeout=args.timeout) as s:
            send_error = []

            def sender():
                try:
                    s.sendall(payload)
                    s.shutdown(socket.SHUT_WR)
                except OSError as e:
                    send_error.append(e)

            t = threading.Thread(target=sender, daemon=True)
            t.start()
            deadline = time.monotonic() + args.timeout
            while received < len(payload):
                if time.monotonic() > deadline:
                    return error(TimeoutError(f"timed out after {received} of {len(payload)} bytes"))
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                got.update(chunk)
                received += len(chunk)
            t.join(timeout=5)
            if send_error:
                return error(send_error[0])
    except OSError as e:
        return error(e)
    if received != len(payload):
        return error(ValueError(f"connection closed after {received} of {len(payload)} bytes"))
    if got.digest() != hashlib.sha256(payload).digest():
        return error(ValueError("echoed bytes differ from the bytes sent"))
    print(f"OK {received} bytes")
    return 0


def udp_check(args):
    payload = os.urandom(32)
    deadline = time.monotonic() + args.timeout
    try:
        with socket.socket(family_of(args.addr), socket.SOCK_DGRAM) as s:
            s.connect((args.addr, args.port))
            while time.monotonic() < deadline:
                s.send(payload)  # resent every 0.5 s: UDP may lose the first one during ARP
                s.settimeout(0.5)
                try:
                    data = s.recv(65536)
                except socket.timeout:
                    continue
                if data == payload:
                    print("OK udp echo")
                    return 0
    except OSError as e:
        return error(e)
    return error(TimeoutError("no UDP echo"))


def api(args):
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(args.timeout)
            s.connect(args.socket)
            s.sendall(args.json.encode())
            s.shutdown(socket.SHUT_WR)
            reply = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
    except OSError as e:
        return error(e)
    sys.stdout.write(reply.decode(errors="replace") + "\n")
    return 0


def http_get(args):
    import urllib.request
    try:
        with urllib.request.urlopen(args.url, timeout=args.timeout) as r:
            sys.stdout.write(r.read().decode(errors="replace"))
    except Exception as e:  # noqa: BLE001 - any failure is reported the same way
        return error(getattr(e, "reason", e))
    return 0


# The tcp-stream byte sequence: a seeded pseudo-random pool whose length is a prime, repeated.
# Cheap to produce at several GB/s (slices of one buffer, no per-byte work), and a stream with a run
# of bytes lost, duplicated or misplaced is a different byte sequence (different sha256) unless
# the run is a multiple of the odd period: never a TCP segment.
STREAM_PERIOD = 1048573  # the largest prime below 2**20


def stream_pool(seed):
    import random
    pool = random.Random(seed).randbytes(STREAM_PERIOD)
    return memoryview(pool + pool)  # any slice of up to STREAM_PERIOD bytes is contiguous


def tcp_stream(args):
    deadline = time.monotonic() + args.timeout
    family = family_of(args.addr)
    try:
        if args.listen:
            with socket.socket(family, socket.SOCK_STREAM) as ls:
                ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                ls.bind((args.addr, args.port))
                ls.listen(1)
                if args.ready:
                    with open(args.ready, "w") as f:
                        f.write("ready\n")
                ls.settimeout(args.timeout)
                s, _ = ls.accept()
        else:
            s = socket.create_connection((args.addr, args.port), timeout=args.timeout)
        with s:
            if args.rate:
                # Paced by the kernel (SO_MAX_PACING_RATE): a long-lived stream at little CPU cost.
                s.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_MAX_PACING_RATE", 47), args.rate)
            # A stall longer than this fails the stream (--pause is added: it is intended).
            s.settimeout(min(args.timeout, 30 * time_scale() + args.pause))
            h = hashlib.sha256()
            n = 0
            if args.role == "send":
                pool = stream_pool(args.seed)
                chunk = 1 << 18
                while n < args.bytes:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"timed out after sending {n} of {args.bytes} bytes")
                    off = n % STREAM_PERIOD
                    data = pool[off:off + min(chunk, args.bytes - n)]
                    s.sendall(data)
                    h.update(data)
                    n += len(data)
                s.shutdown(socket.SHUT_WR)
                # Wait for the receiver to close: it has then read everything (or failed).
                while s.recv(65536):
                    pass
                print(f"OK sent {n} sha256={h.hexdigest()}")
            else:
                buf = bytearray(1 << 20)
                mv = memoryview(buf)
                paused = args.pause_after < 0
                while True:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"timed out after receiving {n} bytes")
                    if not paused and n >= args.pause_after:
                        paused = True
                        if args.paused:
                            with open(args.paused, "w") as f:
                                f.write(f"{n}\n")
                        end = time.monotonic() + args.pause
                        while time.monotonic() < end and not (args.resume and os.path.exists(args.resume)):
                            time.sleep(0.05)
                        deadline += args.pause
                    want = len(buf) if paused else min(len(buf), max(1, args.pause_after - n))
                    got = s.recv_into(mv[:want])
                    if not got:
                        break
                    h.update(mv[:got])
                    n += got
                print(f"OK received {n} sha256={h.hexdigest()}")
    except OSError as e:
        return error(e)
    return 0


def time_scale():
    return int(os.environ.get("SLIRPNETD_TIME_SCALE", "1"))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("tcp-echo", "udp-echo"):
        s = sub.add_parser(name)
        s.add_argument("addr")
        s.add_argument("port", type=int)
        s.add_argument("--ready")
        s.add_argument("--lifetime", type=float, default=300)
    s = sub.add_parser("tcp-check")
    s.add_argument("addr")
    s.add_argument("port", type=int)
    s.add_argument("--bytes", type=int, default=65536)
    s.add_argument("--timeout", type=float, default=10)
    s = sub.add_parser("udp-check")
    s.add_argument("addr")
    s.add_argument("port", type=int)
    s.add_argument("--timeout", type=float, default=5)
    s = sub.add_parser("api")
    s.add_argument("socket")
    s.add_argument("json")
    s.add_argument("--timeout", type=float, default=5)
    s = sub.add_parser("http-get")
    s.add_argument("url")
    s.add_argument("--timeout", type=float, default=10)
    s = sub.add_parser("tcp-stream")
    s.add_argument("role", choices=("send", "recv"))
    s.add_argument("addr")
    s.add_argument("port", type=int)
    s.add_argument("--listen", action="store_true", help="accept one connection instead")
    s.add_argument("--ready", help="written once listening (with --listen)")
    s.add_argument("--bytes", type=int, default=1 << 20, help="bytes to send")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--pause-after", type=int, default=-1,
                   help="receiver: stop reading once this many bytes arrived...")
    s.add_argument("--pause", type=float, default=0, help="...for this many seconds")
    s.add_argument("--paused", help="receiver: written (bytes so far) when the pause starts")
    s.add_argument("--resume", help="receiver: the pause ends early once this file exists")
    s.add_argument("--rate", type=int, default=0, help="sender: at most this many bytes/s")
    s.add_argument("--timeout", type=float, default=60)
    args = p.parse_args()
    # scripts/test.sh slows the clock down for sanitizer builds (see lib.sh).
    scale = int(os.environ.get("SLIRPNETD_TIME_SCALE", "1"))
    if hasattr(args, "timeout"):
        args.timeout *= scale
    if args.cmd == "tcp-echo":
        return run_server(socketserver.ThreadingTCPServer, TcpEcho, args)
    if args.cmd == "udp-echo":
        return run_server(socketserver.ThreadingUDPServer, UdpEcho, args)
    return {"tcp-check": tcp_check, "udp-check": udp_check, "api": api, "http-get": http_get,
            "tcp-stream": tcp_stream}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())

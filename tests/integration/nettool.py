#!/usr/bin/python3
"""Small network helpers for the integration tests (Python 3 standard library only).

  nettool.py tcp-echo ADDR PORT [--ready FILE] [--lifetime S]   echo server (IPv4 or IPv6 ADDR)
  nettool.py udp-echo ADDR PORT [--ready FILE] [--lifetime S]
  nettool.py tcp-check ADDR PORT [--bytes N] [--timeout S]       send N random bytes to an echo
                                                                 server, expect them back intact
  nettool.py udp-check ADDR PORT [--timeout S]                   one datagram there and back
  nettool.py api SOCKET JSON [--timeout S]                       one slirp4netns API request
  nettool.py http-get URL [--timeout S]                          print the body of a GET

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
    args = p.parse_args()
    # scripts/test.sh slows the clock down for sanitizer builds (see lib.sh).
    scale = int(os.environ.get("SLIRPNETD_TIME_SCALE", "1"))
    if hasattr(args, "timeout"):
        args.timeout *= scale
    if args.cmd == "tcp-echo":
        return run_server(socketserver.ThreadingTCPServer, TcpEcho, args)
    if args.cmd == "udp-echo":
        return run_server(socketserver.ThreadingUDPServer, UdpEcho, args)
    return {"tcp-check": tcp_check, "udp-check": udp_check, "api": api, "http-get": http_get}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())

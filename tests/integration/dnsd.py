#!/usr/bin/python3
"""A tiny authoritative DNS responder and client for the hermetic integration tests.

  dnsd.py serve [--addr 127.0.0.1] [--port 53] [--log FILE] [--ready FILE] [--lifetime 300]
  dnsd.py query SERVER NAME [--type A|AAAA] [--tcp] [--timeout 5]

The server answers over UDP and TCP on the same address:
  host.slirpnetd.test  A     -> 192.0.2.53     (RFC 5737 documentation range)
  host.slirpnetd.test  AAAA  -> 2001:db8::53   (RFC 3849 documentation range)
  host.slirpnetd.test  other -> NOERROR, no answer
  anything else              -> NXDOMAIN
Every query is appended to --log as "<proto> <name> <type>", so a test can prove that a lookup
made inside the container really reached this responder (through libslirp's forwarder) and
nothing else. The server exits by itself after --lifetime seconds: nothing outlives a test.

The client prints "<RCODE> <address>..." (e.g. "NOERROR 192.0.2.53", "NXDOMAIN") and exits 0 when
it got a well-formed reply to its query, 1 on timeout or a malformed reply.
Python 3 standard library only.
"""
import argparse
import ipaddress
import os
import random
import socket
import socketserver
import struct
import sys
import threading
import time

NAME = "host.slirpnetd.test"
ANSWERS = {1: ipaddress.IPv4Address("192.0.2.53").packed,      # A
           28: ipaddress.IPv6Address("2001:db8::53").packed}  # AAAA
TYPES = {"A": 1, "AAAA": 28}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def parse_name(msg, off):
    """Returns (dotted lower-case name, offset after it). Compression pointers are followed."""
    labels, end, hops = [], None, 0
    while True:
        if off >= len(msg):
            raise ValueError("truncated name")
        n = msg[off]
        if n & 0xC0 == 0xC0:
            if off + 1 >= len(msg) or hops > 16:
                raise ValueError("bad pointer")
            end = off + 2 if end is None else end
            off = ((n & 0x3F) << 8) | msg[off + 1]
            hops += 1
            continue
        off += 1
        if n == 0:
            return ".".join(labels).lower(), (off if end is None else end)
        labels.append(msg[off:off + n].decode("ascii", "replace"))
        off += n


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\0"


def answer(query, proto, log):
    """Builds the reply to one DNS message, or None if it is not worth answering."""
    if len(query) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", query[:6])
    if flags & 0x8000:  # a response, not a query
        return None
    opcode_rd = flags & 0x7900  # opcode and RD are echoed back
    if qdcount != 1:
        return struct.pack("!HHHHHH", qid, 0x8080 | opcode_rd | 1, 0, 0, 0, 0)  # FORMERR
    try:
        name, off = parse_name(query, 12)
        qtype, qclass = struct.unpack("!HH", query[off:off + 4])
    except (ValueError, struct.error):
        return struct.pack("!HHHHHH", qid, 0x8080 | opcode_rd | 1, 0, 0, 0, 0)
    question = query[12:off + 4]
    with LOG_LOCK:
        log.write(f"{proto} {name} {qtype}\n")
        log.flush()
    answers = b""
    ancount = 0
    if name != NAME:
        rcode = 3
    else:
        rcode = 0
        if qclass == 1 and qtype in ANSWERS:
            rdata = ANSWERS[qtype]
            answers = struct.pack("!HHHIH", 0xC00C, qtype, 1, 60, len(rdata)) + rdata
            ancount = 1
    # QR, AA, RA set.
    header = struct.pack("!HHHHHH", qid, 0x8000 | 0x0400 | 0x0080 | opcode_rd | rcode, 1, ancount, 0, 0)
    return header + question + answers


LOG_LOCK = threading.Lock()


def serve(args):
    log = open(args.log, "a") if args.log else open(os.devnull, "w")

    class Udp(socketserver.BaseRequestHandler):
        def handle(self):
            data, sock = self.request
            reply = answer(data, "udp", log)
            if reply:
                sock.sendto(reply, self.client_address)

    class Tcp(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.settimeout(5)
            try:
                while True:
                    head = self.request.recv(2, socket.MSG_WAITALL)
                    if len(head) < 2:
                        return
                    (n,) = struct.unpack("!H", head)
                    data = self.request.recv(n, socket.MSG_WAITALL)
                    reply = answer(data, "tcp", log)
                    if not reply:
                        return
                    self.request.sendall(struct.pack("!H", len(reply)) + reply)
            except OSError:
                return

    family = socket.AF_INET6 if ":" in args.addr else socket.AF_INET

    class UdpServer(socketserver.ThreadingUDPServer):
        address_family = family
        allow_reuse_address = True
        daemon_threads = True

    class TcpServer(socketserver.ThreadingTCPServer):
        address_family = family
        allow_reuse_address = True
        daemon_threads = True

    servers = [UdpServer((args.addr, args.port), Udp), TcpServer((args.addr, args.port), Tcp)]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    if args.ready:
        with open(args.ready, "w") as f:
            f.write("ready\n")
    time.sleep(args.lifetime)


def query(args):
    qtype = TYPES[args.type]
    qid = random.randrange(65536)
    msg = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + encode_name(args.name) + struct.pack("!HH", qtype, 1)
    family = socket.AF_INET6 if ":" in args.server else socket.AF_INET
    deadline = time.monotonic() + args.timeout
    reply = None
    try:
        if args.tcp:
            with socket.create_connection((args.server, args.port), timeout=args.timeout) as s:
                s.sendall(struct.pack("!H", len(msg)) + msg)
                head = s.recv(2, socket.MSG_WAITALL)
                (n,) = struct.unpack("!H", head)
                reply = s.recv(n, socket.MSG_WAITALL)
        else:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                # Resend every second: the first datagram may be lost while ARP/NDP resolves.
                while reply is None and time.monotonic() < deadline:
                    s.sendto(msg, (args.server, args.port))
                    s.settimeout(min(1.0, max(0.05, deadline - time.monotonic())))
                    try:
                        data = s.recv(65535)
                    except socket.timeout:
                        continue
                    if len(data) >= 12 and struct.unpack("!H", data[:2])[0] == qid:
                        reply = data
    except (OSError, struct.error) as e:
        print(f"ERROR: {e.strerror if isinstance(e, OSError) and e.strerror else e}")
        return 1
    if reply is None:
        print("ERROR: no reply")
        return 1
    flags, qd, an = struct.unpack("!HHH", reply[2:8])
    rcode = RCODES.get(flags & 0xF, str(flags & 0xF))
    off = 12
    addrs = []
    try:
        for _ in range(qd):
            _, off = parse_name(reply, off)
            off += 4
        for _ in range(an):
            _, off = parse_name(reply, off)
            rtype, _, _, rdlen = struct.unpack("!HHIH", reply[off:off + 10])
            rdata = reply[off + 10:off + 10 + rdlen]
            off += 10 + rdlen
            if rtype in (1, 28):
                addrs.append(str(ipaddress.ip_address(rdata)))
    except (ValueError, struct.error):
        print("ERROR: malformed reply")
        return 1
    print(" ".join([rcode] + addrs))
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--addr", default="127.0.0.1")
    s.add_argument("--port", type=int, default=53)
    s.add_argument("--log")
    s.add_argument("--ready")
    s.add_argument("--lifetime", type=float, default=300)
    q = sub.add_parser("query")
    q.add_argument("server")
    q.add_argument("name")
    q.add_argument("--type", choices=sorted(TYPES), default="A")
    q.add_argument("--port", type=int, default=53)
    q.add_argument("--tcp", action="store_true")
    q.add_argument("--timeout", type=float, default=5)
    args = p.parse_args()
    # scripts/test.sh slows the clock down for sanitizer builds (see lib.sh).
    scale = int(os.environ.get("SLIRPNETD_TIME_SCALE", "1"))
    if hasattr(args, "timeout"):
        args.timeout *= scale
    sys.exit(serve(args) if args.cmd == "serve" else query(args))


if __name__ == "__main__":
    main()

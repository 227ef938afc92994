#!/usr/bin/python3
"""Writes the seed corpora tests/fuzz/corpus/<target>/ (deterministic; re-run after changing it).

  fuzz_api      flags byte + requests separated by "\\n\\n"          (see fuzz_api.cpp)
  fuzz_options  argv words separated by NUL                         (see fuzz_options.cpp)
  fuzz_slirp    config byte + frames, each a big-endian u16 length  (see fuzz_slirp.cpp):
                valid ARP, DHCP, IPv4/IPv6 TCP/UDP/ICMP frames toward libslirp's own addresses
                (10.0.2.2/.3, fd00::2/::3), fragments, options, jumbo and truncated frames;
                TCP option and urgent-data sequences (tcp_option_seeds), connections in each of
                fuzz_slirp's host behaviours (host_seeds), IPv4 reassembly orders and floods
                (fragment_seeds).
"""
import os
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# ---- frames -----------------------------------------------------------------------------------

GUEST_MAC = bytes.fromhex("525400123456")
GW_MAC = bytes.fromhex("52550a000202")  # libslirp's MAC for 10.0.2.2
BCAST = b"\xff" * 6
GUEST4, GW4, DNS4 = bytes([10, 0, 2, 100]), bytes([10, 0, 2, 2]), bytes([10, 0, 2, 3])
GUEST6 = bytes.fromhex("fd000000000000000000000000000064")
GW6 = bytes.fromhex("fd000000000000000000000000000002")
DNS6 = bytes.fromhex("fd000000000000000000000000000003")
LL6 = bytes.fromhex("fe80000000000000505400fffe123456")


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def eth(payload, ethertype, dst=GW_MAC):
    return dst + GUEST_MAC + struct.pack("!H", ethertype) + payload


def ipv4(proto, l4, src=GUEST4, dst=GW4, ident=1, frag=0, ttl=64, options=b""):
    ihl = 5 + len(options) // 4
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 4 * ihl + len(l4), ident, frag, ttl, proto, 0, src, dst)
    hdr += options
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return eth(hdr + l4, 0x0800)


def ipv6(nh, l4, src=GUEST6, dst=GW6, hlim=64, dst_mac=GW_MAC):
    hdr = struct.pack("!IHBB16s16s", 0x60000000, len(l4), nh, hlim, src, dst)
    return eth(hdr + l4, 0x86DD, dst_mac)


def pseudo4(src, dst, proto, n):
    return src + dst + struct.pack("!BBH", 0, proto, n)


def pseudo6(src, dst, nh, n):
    return src + dst + struct.pack("!IxxxB", n, nh)


def tcp_seg(sport, dport, seq, ack, flags, payload=b"", options=b"", win=65535, urp=0, off=None):
    """off: the data offset field (32-bit words); by default what the options fill, rounded down."""
    if off is None:
        off = (20 + len(options)) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, off << 4, flags, win, 0, urp) + options + payload


def with_l4_csum(seg, at, pseudo):
    c = csum(pseudo + seg)
    return seg[:at] + struct.pack("!H", c) + seg[at + 2:]


def tcp4(dport, flags, seq=1000, ack=0, payload=b"", options=b"", dst=GW4, sport=40000, win=65535, urp=0, off=None):
    seg = tcp_seg(sport, dport, seq, ack, flags, payload, options, win, urp, off)
    return ipv4(6, with_l4_csum(seg, 16, pseudo4(GUEST4, dst, 6, len(seg))), dst=dst)


def tcp6(dport, flags, seq=1000, ack=0, payload=b"", dst=GW6, sport=40000, options=b""):
    seg = tcp_seg(sport, dport, seq, ack, flags, payload, options)
    return ipv6(6, with_l4_csum(seg, 16, pseudo6(GUEST6, dst, 6, len(seg))), dst=dst)


def udp4(dport, payload, dst=GW4, sport=40000, src=GUEST4, dst_mac=GW_MAC):
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    seg = with_l4_csum(seg, 6, pseudo4(src, dst, 17, len(seg)))
    f = ipv4(17, seg, src=src, dst=dst)
    return dst_mac + f[6:]


def udp6(dport, payload, dst=GW6, sport=40000, src=GUEST6, dst_mac=GW_MAC):
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    seg = with_l4_csum(seg, 6, pseudo6(src, dst, 17, len(seg)))
    return ipv6(17, seg, src=src, dst=dst, dst_mac=dst_mac)


def icmp4(typ, code, rest, dst=GW4):
    msg = struct.pack("!BBH", typ, code, 0) + rest
    msg = msg[:2] + struct.pack("!H", csum(msg)) + msg[4:]
    return ipv4(1, msg, dst=dst)


def icmp6(typ, code, rest, dst=GW6, src=GUEST6, dst_mac=GW_MAC, hlim=64):
    msg = struct.pack("!BBH", typ, code, 0) + rest
    msg = msg[:2] + struct.pack("!H", csum(pseudo6(src, dst, 58, len(msg)) + msg)) + msg[4:]
    return ipv6(58, msg, src=src, dst=dst, dst_mac=dst_mac, hlim=hlim)


def arp(op, target_ip, sender_ip=GUEST4, target_mac=b"\0" * 6, dst=BCAST):
    body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, GUEST_MAC, sender_ip, target_mac, target_ip)
    return eth(body, 0x0806, dst)


def dhcp(msgtype, extra=b""):
    bootp = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, 0x1234, 0, 0x8000, b"\0" * 4, b"\0" * 4,
                        b"\0" * 4, b"\0" * 4, GUEST_MAC + b"\0" * 10, b"", b"")
    opts = b"\x63\x82\x53\x63" + bytes([53, 1, msgtype]) + extra + bytes([55, 4, 1, 3, 6, 15, 255])
    return udp4(67, bootp + opts, dst=b"\xff" * 4, sport=68, src=b"\0" * 4, dst_mac=BCAST)


def dns_query(name="example.com", qtype=1):
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + q + struct.pack("!HH", qtype, 1)


class Rest:
    def __init__(self, frame):
        self.frame = frame


SYN, ACK, PSH, FIN, RST, URG = 0x02, 0x10, 0x08, 0x01, 0x04, 0x20
TCP_OPTS = bytes([2, 4, 0x05, 0xB4, 4, 2, 8, 10]) + struct.pack("!II", 1, 0) + bytes([1, 3, 3, 7])


# TCP options (RFC 7323 window scale and timestamps, RFC 2018 SACK), well-formed and not.
OPT_EOL, OPT_NOP = b"\x00", b"\x01"


def opt_mss(v):
    return struct.pack("!BBH", 2, 4, v)


def opt_ws(shift):
    return bytes([3, 3, shift])


def opt_ts(val, ecr):
    return struct.pack("!BBII", 8, 10, val, ecr)


OPT_SACK_OK = b"\x04\x02"


def opt_sack(*blocks):
    return bytes([5, 2 + 8 * len(blocks)]) + b"".join(struct.pack("!II", a, b) for a, b in blocks)


def pad4(options):
    return options + OPT_EOL * (-len(options) % 4)


# What Linux puts in a SYN: MSS, SACK permitted, timestamps, NOP, window scale 7.
LINUX_SYN_OPTS = opt_mss(1460) + OPT_SACK_OK + opt_ts(1000, 0) + OPT_NOP + opt_ws(7)
# libslirp's first ISS in a fresh instance, as a seed sees it: tcp_iss starts at 1 and the slow
# timer adds 64000 before the deferred connect completes. A guest ACK of the SYN-ACK acks ISS + 1.
# fuzz_slirp listens on 127.0.0.1:80, [::1]:80 and 127.0.0.1:53 inside its namespace, so these
# connections reach ESTABLISHED (FUZZ_SLIRP_STATS=1 shows it).
SLIRP_ISS = 64001
# A guest asks for the gateway's MAC first, as a real one does: libslirp learns the guest's MAC
# from it. Without it libslirp holds every frame for the guest while it asks by ARP.
GUEST_ARP = arp(1, GW4)


def tcp_option_seeds():
    """SYNs with window-scale/timestamp/SACK options, malformed options, options on non-SYN
    segments, and urgent data with urgent pointers far beyond the data."""
    s = {}
    syn = lambda opts, **kw: tcp4(80, SYN, seq=1000, options=pad4(opts), **kw)
    ack = lambda **kw: tcp4(80, ACK, seq=1001, ack=SLIRP_ISS + 1, **kw)
    s["tcp_syn_wscale"] = (0, [syn(opt_mss(1460) + OPT_NOP + opt_ws(7)), ack()])
    s["tcp_syn_linux_options"] = (0, [syn(LINUX_SYN_OPTS), ack(options=pad4(OPT_NOP + OPT_NOP + opt_ts(1001, 1)))])
    s["tcp_syn_linux_options_mtu65520"] = (4, [syn(opt_mss(65480) + OPT_SACK_OK + opt_ts(1000, 0) + OPT_NOP + opt_ws(7)),
                                               ack(payload=b"x" * 1000)])
    s["tcp_syn_wscale_14"] = (0, [syn(OPT_NOP + opt_ws(14)), ack(win=1)])
    s["tcp_syn_wscale_15"] = (0, [syn(OPT_NOP + opt_ws(15)), ack(win=65535)])
    s["tcp_syn_wscale_255"] = (0, [syn(OPT_NOP + opt_ws(255)), ack(win=65535)])
    s["tcp_syn_wscale_twice"] = (0, [syn(opt_ws(2) + opt_ws(9) + OPT_NOP * 2), ack()])
    s["tcp_syn_ts_sack_only"] = (0, [syn(OPT_NOP * 2 + opt_ts(0xFFFFFFFF, 0) + OPT_NOP * 2 + OPT_SACK_OK), ack()])
    s["tcp_syn_opt_len0"] = (0, [syn(bytes([3, 0, 7]) + OPT_NOP), ack()])
    s["tcp_syn_opt_len1"] = (0, [syn(bytes([8, 1]) + opt_ws(7)), ack()])
    s["tcp_syn_opt_overlong"] = (0, [syn(bytes([8, 40]) + b"\x00" * 6), syn(opt_mss(1460) + bytes([3, 200, 7])), ack()])
    s["tcp_syn_opt_truncated"] = (0, [syn(OPT_NOP * 3 + b"\x03"), syn(OPT_NOP * 2 + bytes([3, 3])), syn(bytes([2, 4, 5]) + OPT_NOP),
                                      syn(OPT_NOP * 2 + bytes([8, 10, 0, 0, 0, 1])), ack()])
    s["tcp_syn_wrong_lengths"] = (0, [syn(bytes([3, 4, 7, 0])), syn(bytes([2, 3, 5]) + OPT_NOP), syn(bytes([8, 9]) + b"\x00" * 7 + OPT_NOP),
                                      syn(bytes([4, 3, 0]) + OPT_NOP), ack()])
    s["tcp_syn_opts_40_bytes"] = (0, [syn(OPT_NOP * 37 + opt_ws(3)), ack()])
    s["tcp_syn_eol_then_ws"] = (0, [syn(OPT_EOL + OPT_NOP * 3 + opt_ws(7) + OPT_NOP), ack()])
    # Data offset larger than the segment: the options run past the end of the frame.
    s["tcp_syn_offset_past_end"] = (0, [tcp4(80, SYN, options=OPT_NOP + opt_ws(7), off=15),
                                        tcp4(80, SYN, options=b"", off=6)])
    s["tcp_syn_offset_short"] = (0, [tcp4(80, SYN, options=pad4(opt_mss(1460) + OPT_NOP + opt_ws(7)), off=4)])
    s["tcp_synack_with_options"] = (0, [tcp4(80, SYN | ACK, ack=1, options=pad4(LINUX_SYN_OPTS))])
    s["tcp_nonsyn_options"] = (0, [syn(LINUX_SYN_OPTS),
                                   ack(options=pad4(OPT_NOP + opt_ws(14))),
                                   ack(options=pad4(OPT_NOP * 2 + opt_ts(1002, 1)), payload=b"GET / HTTP/1.0\r\n\r\n"),
                                   ack(options=pad4(OPT_NOP * 2 + opt_sack((SLIRP_ISS + 1, SLIRP_ISS + 100), (5, 9)))),
                                   ack(options=pad4(opt_mss(100) + OPT_SACK_OK)),
                                   tcp4(80, FIN | ACK, seq=1019, ack=SLIRP_ISS + 1, options=pad4(opt_ws(0)))])
    s["tcp_rst_with_options"] = (0, [syn(LINUX_SYN_OPTS), tcp4(80, RST | ACK, seq=1001, ack=SLIRP_ISS + 1, options=pad4(opt_ts(1, 1)))])
    # Urgent data (CVE-2026-9539): urgent pointers beyond the data sent, up to 0xffff.
    s["tcp_urg_pointer_huge"] = (0, [syn(opt_mss(1460)), ack(),
                                     tcp4(80, URG | PSH | ACK, seq=1001, ack=SLIRP_ISS + 1, payload=b"0123456789", urp=0xFFFF),
                                     tcp4(80, PSH | ACK, seq=1011, ack=SLIRP_ISS + 1, payload=b"y" * 100)])
    s["tcp_urg_pointer_2048"] = (0, [syn(opt_mss(1460)), ack(),
                                     tcp4(80, URG | PSH | ACK, seq=1001, ack=SLIRP_ISS + 1, payload=b"z" * 10, urp=2048),
                                     tcp4(80, URG | ACK, seq=1011, ack=SLIRP_ISS + 1, urp=4000),
                                     tcp4(80, PSH | ACK, seq=1011, ack=SLIRP_ISS + 1, payload=b"w" * 1400)])
    s["tcp_urg_on_syn"] = (0, [tcp4(80, SYN | URG, options=pad4(opt_mss(1460)), urp=0xFFFF), ack()])
    return {name: (conf, [GUEST_ARP] + frames) for name, (conf, frames) in s.items()}


# fuzz_slirp's config bits 5-7: what its host side does with a connection (see fuzz_slirp.cpp).
HOST_ECHO, HOST_BULK, HOST_HELLO_URGENT_FIN, HOST_SLOW = 0x20, 0x40, 0x60, 0x80


def host_seeds():
    """Established connections in each of fuzz_slirp's host behaviours: the host echoes, sends
    192 KiB (the guest acks it segment by segment, with and without window scaling), sends urgent
    data and a FIN, or reads slowly while the guest sends."""
    s = {}
    syn = lambda opts=b"", **kw: tcp4(80, SYN, seq=1000, options=pad4(opts), **kw)
    ack = lambda n=0, seq=1001, **kw: tcp4(80, ACK, seq=seq, ack=SLIRP_ISS + 1 + n, **kw)
    s["tcp_host_echo"] = (HOST_ECHO, [GUEST_ARP, syn(LINUX_SYN_OPTS), ack(),
                                      tcp4(80, PSH | ACK, seq=1001, ack=SLIRP_ISS + 1, payload=b"ping"),
                                      ack(4, seq=1005), tcp4(80, FIN | ACK, seq=1005, ack=SLIRP_ISS + 5), ack(5, seq=1006)])
    acks = lambda mss, n, win=65535: [ack(mss * i, win=win) for i in range(1, n + 1)]
    s["tcp_host_bulk"] = (HOST_BULK, [GUEST_ARP, syn(opt_mss(1460)), ack()] + acks(1460, 24))
    s["tcp_host_bulk_wscale"] = (HOST_BULK, [GUEST_ARP, syn(opt_mss(1460) + OPT_NOP + opt_ws(7)), ack(win=2048)]
                                 + acks(1460, 24, win=2048) + [ack(1460 * 24, win=0), ack(1460 * 24, win=4096)])
    s["tcp_host_bulk_mtu65520"] = (4 | HOST_BULK, [GUEST_ARP, syn(opt_mss(65480) + OPT_NOP + opt_ws(9)), ack(win=512)]
                                   + acks(65480, 3, win=512))
    s["tcp_host_urgent_fin"] = (HOST_HELLO_URGENT_FIN, [GUEST_ARP, syn(opt_mss(1460)), ack(), ack(6), ack(7),
                                                        tcp4(80, FIN | ACK, seq=1001, ack=SLIRP_ISS + 8), ack(8, seq=1002)])
    s["tcp_host_slow_reader"] = (HOST_SLOW, [GUEST_ARP, syn(opt_mss(1460) + OPT_NOP + opt_ws(7)), ack()]
                                 + [tcp4(80, ACK, seq=1001 + 1460 * i, ack=SLIRP_ISS + 1, payload=bytes([i]) * 1460) for i in range(40)])
    s["tcp_host_urgent_from_guest"] = (HOST_ECHO, [GUEST_ARP, syn(opt_mss(1460)), ack(),
                                                   tcp4(80, URG | PSH | ACK, seq=1001, ack=SLIRP_ISS + 1, payload=b"abcdef", urp=3),
                                                   ack(6, seq=1007)])
    # IPv6: the neighbour solicitation tells libslirp the guest's MAC; the connection goes to [::1]:80.
    ns = icmp6(135, 0, b"\0" * 4 + GW6 + bytes([1, 1]) + GUEST_MAC, dst=bytes.fromhex("ff0200000000000000000001ff000002"),
               dst_mac=bytes.fromhex("3333ff000002"), hlim=255)
    s["ipv6_tcp_host_echo"] = (1 | HOST_ECHO, [ns, tcp6(80, SYN, options=pad4(opt_mss(1440) + OPT_NOP + opt_ws(7))),
                                               tcp6(80, ACK, seq=1001, ack=SLIRP_ISS + 1),
                                               tcp6(80, PSH | ACK, seq=1001, ack=SLIRP_ISS + 1, payload=b"ping6"),
                                               tcp6(80, ACK, seq=1006, ack=SLIRP_ISS + 6)])
    s["tcp_dns_host"] = (HOST_ECHO, [GUEST_ARP, tcp4(53, SYN, dst=DNS4), tcp4(53, ACK, seq=1001, ack=SLIRP_ISS + 1, dst=DNS4),
                                     tcp4(53, PSH | ACK, seq=1001, ack=SLIRP_ISS + 1, dst=DNS4, payload=struct.pack("!H", 29) + dns_query())])
    return s


def frag4(l4, ident, off, length, more, proto=17, flags=0):
    """The IPv4 fragment carrying l4[off:off+length] (off a multiple of 8)."""
    return ipv4(proto, l4[off:off + length], ident=ident, frag=flags | (0x2000 if more else 0) | off // 8)


def udp4_l4(dport, payload, sport=40000):
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return with_l4_csum(seg, 6, pseudo4(GUEST4, GW4, 17, len(seg)))


def fragment_seeds():
    """IPv4 reassembly: every order of a 3-fragment datagram (libslirp 4.7.0 crashed when the last
    fragment came first), a datagram completed then reopened by a stray last fragment, overlaps,
    the reserved-bit frame that frees a queue, floods that hit the reassembly limits, and IPv6
    fragments (libslirp 4.7 does not reassemble IPv6: it drops them)."""
    s = {}
    dgram = udp4_l4(9, bytes(range(256)) * 15 + b"end")  # 3851 bytes: fragments 1480, 1480, 891
    parts = [(0, 1480, True), (1480, 1480, True), (2960, len(dgram) - 2960, False)]
    for order in ("012", "021", "102", "120", "201", "210"):
        s["ip_frag_order_" + order] = (0, [frag4(dgram, 11, *parts[int(i)]) for i in order])
    s["ip_frag_last_only"] = (0, [frag4(dgram, 12, *parts[2])])
    s["ip_frag_reopened_by_stray_last"] = (0, [frag4(dgram, 13, *p) for p in parts] + [frag4(dgram, 13, *parts[2])] * 2
                                           + [frag4(dgram, 13, *parts[0])])
    # issue 12, finding 1: first, last at 16, a plain datagram with the same id, another last at
    # 24, the middle at 8 (a FragmentGuard bypass; harmless to the fixed libslirp).
    small = udp4_l4(9, b"s" * 40)  # 48 bytes
    plain = ipv4(17, udp4_l4(9, b"plain"), ident=14)
    s["ip_frag_guard_plain_same_id"] = (0, [frag4(small, 14, 0, 8, True), frag4(small, 14, 16, 32, False), plain,
                                            frag4(small, 14, 24, 24, False), frag4(small, 14, 8, 8, True)])
    s["ip_frag_reserved_bit_frees"] = (0, [frag4(small, 15, 0, 16, True),
                                           ipv4(17, udp4_l4(9, b"rsv"), ident=15, frag=0x8000),
                                           frag4(small, 15, 16, 32, False)])
    s["ip_frag_overlaps"] = (0, [frag4(dgram, 16, 0, 1480, True), frag4(dgram, 16, 8, 1000, True), frag4(dgram, 16, 1000, 1480, True),
                                 frag4(dgram, 16, 1480, 1480, True), frag4(dgram, 16, 2960, len(dgram) - 2960, False)])
    s["ip_frag_icmp_echo"] = (0, [frag4(icmp4(8, 0, struct.pack("!HH", 1, 9) + b"f" * 3000)[34:], 17, off, n, more, proto=1)
                                  for off, n, more in ((1480, 1480, True), (0, 1480, True), (2960, 48, False))])
    # Floods: many unfinished datagrams (past the 1024-datagram limit), one datagram in 8-byte
    # pieces with gaps (past the 4 MiB limit at MTU 9000), and big mbufs at MTU 65520.
    s["ip_frag_flood_datagrams"] = (0, [frag4(small, i, 0, 8, True) for i in range(1500)] + [frag4(small, 1499, 8, 40, False)])
    tiny = b"t" * 65528
    s["ip_frag_flood_tiny_mtu9000"] = (12, [frag4(tiny, 18, off, 8, True) for off in range(0, 65520, 16)][:3000])
    s["ip_frag_flood_mtu65520"] = (4, [frag4(small, i, 0, 8, True) for i in range(120)])
    # IPv6: a fragment header (next header 44) in front of UDP, first and last fragment.
    u6 = struct.pack("!HHHH", 40000, 9, 8 + 1600, 0) + b"6" * 1600
    fh = lambda off, more, l4: struct.pack("!BBHI", 17, 0, off | (1 if more else 0), 0x1234) + l4
    s["ipv6_fragments"] = (1, [ipv6(44, fh(0, True, u6[:1232])), ipv6(44, fh(1232, False, u6[1232:]))])
    return s


def slirp_seeds():
    s = {}
    s["arp_who_has_gw"] = (0, [arp(1, GW4)])
    s["arp_who_has_dns"] = (0, [arp(1, DNS4)])
    s["arp_gratuitous_reply"] = (0, [arp(2, GUEST4, target_mac=BCAST)])
    s["dhcp_discover_request"] = (0, [dhcp(1), dhcp(3, bytes([50, 4, 10, 0, 2, 15]))])
    s["dhcp_release"] = (0, [dhcp(7)])
    s["tcp_syn_gw80"] = (0, [GUEST_ARP, tcp4(80, SYN, options=TCP_OPTS), tcp4(80, ACK, seq=1001, ack=SLIRP_ISS + 1)])
    s["tcp_session"] = (0, [tcp4(12345, SYN), tcp4(12345, ACK, seq=1001, ack=1),
                            tcp4(12345, PSH | ACK, seq=1001, ack=1, payload=b"GET / HTTP/1.0\r\n\r\n"),
                            tcp4(12345, FIN | ACK, seq=1019, ack=1)])
    s["tcp_rst"] = (0, [tcp4(12345, SYN), tcp4(12345, RST, seq=1001)])
    s["tcp_dns"] = (0, [tcp4(53, SYN, dst=DNS4), tcp4(53, PSH | ACK, seq=1001, ack=SLIRP_ISS + 1, dst=DNS4,
                                                       payload=struct.pack("!H", 29) + dns_query())])
    s["udp_dns_a"] = (0, [udp4(53, dns_query(), dst=DNS4)])
    s["udp_dns_aaaa_nodns"] = (16, [udp4(53, dns_query(qtype=28), dst=DNS4)])
    s["udp_gw_discard"] = (0, [udp4(9, b"hello")])
    s["udp_tftp"] = (0, [udp4(69, b"\0\x01file\0octet\0")])
    s["udp_broadcast"] = (0, [udp4(9, b"x", dst=bytes([10, 0, 2, 255]))])
    s["udp_jumbo_mtu9000"] = (12, [udp4(9, bytes(range(256)) * 35)])
    s["udp_fragments"] = (0, [ipv4(17, struct.pack("!HHHH", 40000, 9, 2008, 0) + b"a" * 1472, ident=7, frag=0x2000),
                              ipv4(17, b"b" * 528, ident=7, frag=185)])
    s["ip_options_lsrr"] = (0, [ipv4(1, struct.pack("!BBHHH", 8, 0, 0xF7FE, 1, 0), options=bytes([131, 7, 4]) + GW4 + b"\0")])
    s["icmp_echo_gw"] = (0, [icmp4(8, 0, struct.pack("!HH", 1, 1) + b"ping" * 8)])
    s["icmp_echo_dns"] = (0, [icmp4(8, 0, struct.pack("!HH", 1, 2), dst=DNS4)])
    s["icmp_echo_big_mtu65520"] = (4, [Rest(icmp4(8, 0, struct.pack("!HH", 1, 3) + b"\xab" * 65000))])
    s["icmp_unreach_embedded"] = (0, [icmp4(3, 3, b"\0" * 4 + udp4(53, b"x", dst=DNS4)[14:14 + 28])])
    s["icmp_ttl1"] = (0, [ipv4(1, struct.pack("!BBHHH", 8, 0, 0xF7FE, 1, 0), ttl=1)])
    s["truncated_syn"] = (0, [tcp4(80, SYN)[:30], tcp4(80, SYN)[:13], b""])
    s["unknown_ethertype_vlan"] = (0, [eth(b"\x00\x05\x08\x00" + tcp4(80, SYN)[14:], 0x8100), eth(b"x" * 46, 0x88B5)])
    s["ipv6_ns_gw"] = (1, [icmp6(135, 0, b"\0" * 4 + GW6 + bytes([1, 1]) + GUEST_MAC, dst=bytes.fromhex("ff0200000000000000000001ff000002"),
                                 dst_mac=bytes.fromhex("3333ff000002"), hlim=255)])
    s["ipv6_rs"] = (1, [icmp6(133, 0, b"\0" * 4, src=LL6, dst=bytes.fromhex("ff020000000000000000000000000002"),
                              dst_mac=bytes.fromhex("333300000002"), hlim=255)])
    s["ipv6_echo_gw"] = (1, [icmp6(128, 0, struct.pack("!HH", 1, 1) + b"ping6")])
    s["ipv6_tcp_syn"] = (1, [tcp6(80, SYN), tcp6(80, ACK, seq=1001, ack=SLIRP_ISS + 1)])
    s["ipv6_udp_dns"] = (1, [udp6(53, dns_query(), dst=DNS6)])
    s["ipv6_dhcpv6_solicit"] = (1, [udp6(547, bytes([1, 0, 0, 1]) + struct.pack("!HH", 6, 2) + struct.pack("!H", 23),
                                         dst=bytes.fromhex("ff020000000000000000000000010002"), sport=546, src=LL6,
                                         dst_mac=bytes.fromhex("333300010002"))])
    s["ipv6_truncated"] = (1, [tcp6(80, SYN)[:50]])
    s["mixed_v4_v6"] = (1 | 2, [arp(1, GW4), icmp4(8, 0, b"\0\1\0\1"), icmp6(128, 0, b"\0\1\0\1"), udp4(53, dns_query(), dst=DNS4)])
    s.update(tcp_option_seeds())
    s.update(host_seeds())
    s.update(fragment_seeds())
    out = {}
    for name, (conf, frames) in s.items():
        b = bytes([conf])
        for f in frames:
            if isinstance(f, Rest):  # length 0xffff: the frame is the rest of the input
                b += b"\xff\xff" + f.frame
            else:
                b += struct.pack("!H", len(f)) + f
        out[name] = b
    return out


# ---- API requests ------------------------------------------------------------------------------

def api_seeds():
    add = '{"execute":"add_hostfwd","arguments":{"proto":"%s","host_addr":"%s","host_port":%s,"guest_addr":"%s","guest_port":%s}}'
    reqs = {
        "list": (0, ['{"execute":"list_hostfwd"}']),
        "stats": (0, ['{"execute":"get_stats"}']),
        "stats_bad_backend": (8, ['{"execute":"get_stats"}']),
        "add_list_remove": (0, [add % ("tcp", "0.0.0.0", "8080", "10.0.2.100", "80"), '{"execute":"list_hostfwd"}',
                                '{"execute":"remove_hostfwd","arguments":{"id":1}}', '{"execute":"list_hostfwd"}']),
        "add_udp_defaults": (0, ['{"execute":"add_hostfwd","arguments":{"proto":"udp","host_port":53,"guest_port":53}}']),
        "add_v6": (1, [add % ("tcp", "::", "8080", "", "80"), add % ("tcp", "::1", "8081", "fd00::100", "80"),
                       '{"execute":"list_hostfwd"}']),
        "add_dup": (0, [add % ("tcp", "127.0.0.1", "8080", "", "80")] * 2),
        "add_fails": (2, [add % ("tcp", "0.0.0.0", "1", "", "65535")]),
        "remove_fails": (4, [add % ("udp", "0.0.0.0", "9", "", "9"), '{"execute":"remove_hostfwd","arguments":{"id":1}}']),
        "no_proto": (0, ['{"execute":"add_hostfwd","arguments":{"host_port":8080,"guest_port":80}}', '{"execute":"add_hostfwd"}']),
        "bad_ports": (0, [add % ("tcp", "", "70000", "", "80"), add % ("tcp", "", "80.5", "", "1e400"), add % ("tcp", "", "-0", "", "0")]),
        "remove_bad_ids": (0, ['{"execute":"remove_hostfwd","arguments":{"id":"1"}}', '{"execute":"remove_hostfwd"}',
                               '{"execute":"remove_hostfwd","arguments":{"id":1e9}}']),
        "not_objects": (0, ["[]", '"str"', "42", "null", "", "{"]),
        "dup_keys": (0, ['{"execute":"list_hostfwd","execute":"x"}', '{"execute":"add_hostfwd","arguments":{"proto":"tcp","proto":"udp"}}']),
        "unknown_execute": (0, ['{"execute":"quit"}', '{"execute":7}', '{"arguments":{}}']),
        "nested": (0, ['{"execute":"list_hostfwd","x":' + "[" * 3000 + "]" * 3000 + "}"]),
        "trailing_and_nul": (0, ['{"execute":"list_hostfwd"} garbage', '{"execute":"list\0_hostfwd"}', '\0{"execute":"list_hostfwd"}']),
        "utf8": (0, ['{"execute":"list_hostfwd\xc3\x28"}', '{"execute":"l\\u0069st_hostfwd"}', '{"execute":"\\ud800"}']),
        "big_addr": (1, [add % ("tcp", "f" * 300, "1", "1.2.3.4.5", "1")]),
    }
    out = {}
    for name, (flags, rs) in reqs.items():
        out[name] = bytes([flags]) + "\n\n".join(rs).encode("latin-1")
    return out


# ---- command lines ------------------------------------------------------------------------------

def options_seeds():
    cmds = {
        "basic": ["1234", "tap0"],
        "configure_mtu": ["--configure", "--mtu=65520", "1234", "tap0"],
        "short_bundle": ["-c6", "-m", "9000", "-e", "3", "-r", "4", "-a", "/tmp/api.sock", "1234", "tap0"],
        "cidr": ["-c", "--cidr=10.0.3.0/24", "1", "tap0"],
        "cidr_bad": ["--cidr", "10.0.2.100/24", "1", "tap0"],
        "cidr_prefix": ["--cidr=192.168.0.0/26", "1", "tap0"],
        "path_mode": ["--netns-type=path", "--userns-path=/proc/self/ns/user", "/run/netns/x", "tap0"],
        "tapfd_mode": ["--netns-type=tapfd", "5"],
        "bess": ["--target-type=bess", "/tmp/bess.sock"],
        "bess_conflict": ["--target-type=bess", "-c", "/tmp/bess.sock"],
        "mac": ["-c", "--macaddress=52:54:00:12:34:56", "1", "tap0"],
        "mac_bad": ["--macaddress=zz", "1", "tap0"],
        "outbound": ["--outbound-addr=127.0.0.1", "--outbound-addr6=::1", "-6", "1", "tap0"],
        "outbound_ifname": ["--outbound-addr=lo", "--outbound-addr6=lo", "1", "tap0"],
        "sandbox": ["--enable-sandbox", "--enable-seccomp", "--disable-host-loopback", "--disable-dns", "1", "tap0"],
        "deprecated": ["--create-sandbox", "--no-host-loopback", "1", "tap0"],
        "prefix_opts": ["--conf", "--mt", "1500", "--dis", "1", "tap0"],
        "help": ["-h"],
        "version": ["--version"],
        "bogus": ["--bogus", "1", "tap0"],
        "mtu_bad": ["--mtu=abc", "1", "tap0"],
        "mtu_edges": ["--mtu=65521", "-m", "-1", "--mtu=68", "1", "tap0"],
        "too_many": ["1", "tap0", "extra", "more"],
        "dashdash": ["-c", "--", "1", "--tap0"],
        "stats": ["--stats", "-e", "99999999999", "1", "tap0"],
        "long_tapname": ["1", "a_very_long_tap_interface_name"],
        "empty": [],
    }
    return {name: b"\0".join(a.encode() for a in argv) for name, argv in cmds.items()}


def main():
    root = os.path.join(HERE, "corpus")
    for target, seeds in (("fuzz_slirp", slirp_seeds()), ("fuzz_api", api_seeds()), ("fuzz_options", options_seeds())):
        d = os.path.join(root, target)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        for name, data in seeds.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        print(f"{d}: {len(seeds)} seeds", file=sys.stderr)


if __name__ == "__main__":
    main()

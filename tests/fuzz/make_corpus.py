#!/usr/bin/python3
"""Writes the seed corpora tests/fuzz/corpus/<target>/ (deterministic; re-run after changing it).

  fuzz_api      flags byte + requests separated by "\\n\\n"          (see fuzz_api.cpp)
  fuzz_options  argv words separated by NUL                         (see fuzz_options.cpp)
  fuzz_slirp    config byte + frames, each a big-endian u16 length  (see fuzz_slirp.cpp):
                valid ARP, DHCP, IPv4/IPv6 TCP/UDP/ICMP frames toward libslirp's own addresses
                (10.0.2.2/.3, fd00::2/::3), fragments, options, jumbo and truncated frames.
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


def tcp_seg(sport, dport, seq, ack, flags, payload=b"", options=b"", win=65535):
    off = (20 + len(options)) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, off << 4, flags, win, 0, 0) + options + payload


def with_l4_csum(seg, at, pseudo):
    c = csum(pseudo + seg)
    return seg[:at] + struct.pack("!H", c) + seg[at + 2:]


def tcp4(dport, flags, seq=1000, ack=0, payload=b"", options=b"", dst=GW4, sport=40000):
    seg = tcp_seg(sport, dport, seq, ack, flags, payload, options)
    return ipv4(6, with_l4_csum(seg, 16, pseudo4(GUEST4, dst, 6, len(seg))), dst=dst)


def tcp6(dport, flags, seq=1000, ack=0, payload=b"", dst=GW6, sport=40000):
    seg = tcp_seg(sport, dport, seq, ack, flags, payload)
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


SYN, ACK, PSH, FIN, RST = 0x02, 0x10, 0x08, 0x01, 0x04
TCP_OPTS = bytes([2, 4, 0x05, 0xB4, 4, 2, 8, 10]) + struct.pack("!II", 1, 0) + bytes([1, 3, 3, 7])


def slirp_seeds():
    s = {}
    s["arp_who_has_gw"] = (0, [arp(1, GW4)])
    s["arp_who_has_dns"] = (0, [arp(1, DNS4)])
    s["arp_gratuitous_reply"] = (0, [arp(2, GUEST4, target_mac=BCAST)])
    s["dhcp_discover_request"] = (0, [dhcp(1), dhcp(3, bytes([50, 4, 10, 0, 2, 15]))])
    s["dhcp_release"] = (0, [dhcp(7)])
    s["tcp_syn_gw80"] = (0, [tcp4(80, SYN, options=TCP_OPTS)])
    s["tcp_session"] = (0, [tcp4(12345, SYN), tcp4(12345, ACK, seq=1001, ack=1),
                            tcp4(12345, PSH | ACK, seq=1001, ack=1, payload=b"GET / HTTP/1.0\r\n\r\n"),
                            tcp4(12345, FIN | ACK, seq=1019, ack=1)])
    s["tcp_rst"] = (0, [tcp4(12345, SYN), tcp4(12345, RST, seq=1001)])
    s["tcp_dns"] = (0, [tcp4(53, SYN, dst=DNS4), tcp4(53, PSH | ACK, seq=1001, ack=1, dst=DNS4,
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
    s["ipv6_tcp_syn"] = (1, [tcp6(80, SYN), tcp6(80, ACK, seq=1001, ack=1)])
    s["ipv6_udp_dns"] = (1, [udp6(53, dns_query(), dst=DNS6)])
    s["ipv6_dhcpv6_solicit"] = (1, [udp6(547, bytes([1, 0, 0, 1]) + struct.pack("!HH", 6, 2) + struct.pack("!H", 23),
                                         dst=bytes.fromhex("ff020000000000000000000000010002"), sport=546, src=LL6,
                                         dst_mac=bytes.fromhex("333300010002"))])
    s["ipv6_truncated"] = (1, [tcp6(80, SYN)[:50]])
    s["mixed_v4_v6"] = (1 | 2, [arp(1, GW4), icmp4(8, 0, b"\0\1\0\1"), icmp6(128, 0, b"\0\1\0\1"), udp4(53, dns_query(), dst=DNS4)])
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

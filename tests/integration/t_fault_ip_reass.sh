#!/usr/bin/env bash
# Reproducer for a crash found by fuzz_slirp (regressions/fuzz_slirp/ip_reass_last_fragment_first):
# one IPv4 frame from inside the container, a *last* fragment (MF clear, offset 1480) of a datagram
# none of whose other fragments arrived before it, kills the daemon with SIGBUS/SIGSEGV inside
# libslirp 4.7.0's ip_reass(). Debian's slirp4netns 1.2.0 dies the same way:
#   SLIRPNETD=/usr/bin/slirp4netns bash tests/integration/t_fault_ip_reass.sh
# Any process in the container with CAP_NET_RAW (its root) can send it. Passes once the daemon
# survives and still forwards. Hermetic (tests/integration/lib.sh). The daemon holds such fragments back (src/slirp/fragment_guard.hpp).
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

start_echo tcp-echo 127.0.0.1 12121
start_echo udp-echo 127.0.0.1 12122
start_container
start_configured

in_ns "$C" "$PYTHON" - <<'EOF'
import socket, struct

def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF

payload = b"b" * 528
hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 7, 1480 // 8, 64, 17, 0,
                  bytes([10, 0, 2, 100]), bytes([10, 0, 2, 2]))
hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
frame = bytes.fromhex("52550a000202" "525400123456" "0800") + hdr + payload
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("tap0", 0))
s.send(frame)
EOF
sleep 1
if ! alive "$DAEMON_PID"; then
  wait_exit "$DAEMON_PID" 1 || true
  fail "daemon died (status $EXIT_STATUS) on one IPv4 last-fragment-first frame (libslirp ip_reass)"
fi
out=$(nettool "$C" tcp-check 10.0.2.2 12121 --bytes 10000 --timeout 5)
assert_eq "OK 10000 bytes" "$out" "forwarding after the fragment"

# Held, not dropped: a UDP datagram in two fragments, the last one sent first, still reaches the
# host's echo server (through 10.0.2.2), and the echo comes back.
out=$(in_ns "$C" "$PYTHON" - <<'EOF'
import socket, struct, time
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); rx.bind(("10.0.2.100", 40000)); rx.settimeout(5)
data = bytes(range(256)) * 8                                        # 2048 bytes of UDP payload
udp = struct.pack("!HHHH", 40000, 12122, 8 + len(data), 0) + data   # checksum 0: none (IPv4)
import fcntl  # tap0's MAC (SIOCGIFHWADDR; /sys shows the outer namespace's devices)
mac = fcntl.ioctl(rx.fileno(), 0x8927, struct.pack("256s", b"tap0"))[18:24]
def frag(off, chunk, more):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(chunk), 99, (0x2000 if more else 0) | off // 8,
                    64, 17, 0, bytes([10, 0, 2, 100]), bytes([10, 0, 2, 2]))
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return bytes.fromhex("52550a000202") + mac + b"\x08\x00" + h + chunk
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(("tap0", 0))
s.send(frag(1480, udp[1480:], False)); time.sleep(0.2); s.send(frag(0, udp[:1480], True))
try:
    got, _ = rx.recvfrom(65536)
    print("OK" if got == data else "ERROR: echo differs")
except socket.timeout:
    print("ERROR: no echo of the reassembled datagram")
EOF
)
assert_eq "OK" "$out" "a datagram whose last fragment came first"
alive "$DAEMON_PID" || fail "daemon died"
pass


#!/usr/bin/env bash
# Fault: the guest sends frames larger than the daemon's MTU. Inside the namespace tap0's MTU is
# raised to 9000 while the daemon runs with --mtu 1500, then big UDP datagrams and big ICMP echo
# requests are flooded at the gateway. The daemon must neither crash nor stall: afterwards (MTU
# back to 1500) TCP, UDP and ping through it still work, and get_stats still answers.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

start_echo tcp-echo 127.0.0.1 12121
start_echo udp-echo 127.0.0.1 7777
start_container
sock=$TMP/api.sock
start_configured_api "$sock" --mtu 1500

in_ns "$C" ip link set dev tap0 mtu 9000
# 3000 UDP datagrams of 1472..8972 bytes (frames up to 9014 bytes), unfragmented (DF).
in_ns "$C" timeout $((30 * TS)) "$PYTHON" - <<'PY'
import socket
IP_MTU_DISCOVER, IP_PMTUDISC_DO = 10, 2
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)
sent = 0
for i in range(3000):
    try:
        s.sendto(bytes([i % 256]) * (1472 + (i * 7) % 7501), ("10.0.2.2", 7777))
        sent += 1
    except OSError:
        pass
print("sent", sent)
PY
# Big pings: 8000-byte ICMP payloads, 200 of them, 5 ms apart (no replies expected).
in_ns "$C" timeout $((30 * TS)) ping -q -c 200 -i 0.005 -s 8000 -W 1 10.0.2.2 >/dev/null 2>&1 || true
alive "$DAEMON_PID" || fail "daemon died during the oversize flood"
stats=$(api "$sock" '{"execute":"get_stats"}')
log "stats after the flood: $(jq -c '{rx: .return.tap_reader, drops: .return.slirp.output_drops}' <<<"$stats")"
(($(jq '.return.tap_reader.frames' <<<"$stats") > 0)) || fail "get_stats after the flood: $stats"

in_ns "$C" ip link set dev tap0 mtu 1500
assert_eq "OK 1000000 bytes" "$(nettool "$C" tcp-check 10.0.2.2 12121 --bytes 1000000)" "TCP after the flood"
assert_eq "OK udp echo" "$(nettool "$C" udp-check 10.0.2.2 7777)" "UDP after the flood"
in_ns "$C" ping -c 1 -W 2 10.0.2.2 >/dev/null || fail "ping after the flood"
alive "$DAEMON_PID" || fail "daemon died"
pass

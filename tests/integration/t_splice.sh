#!/usr/bin/env bash
# Splice port forwarding (issue 6): add_hostfwd "mode":"splice" forwards through the daemon's
# forwarder threads (host socket -> pipe -> socket opened inside the container by the connector)
# instead of libslirp. Checks: 100 MB echo integrity, list_hostfwd's "mode", --forward-mode as the
# default, the peer address the inner server sees in each mode (libslirp: 10.0.2.2 for a loopback
# client; splice: the container-side source address, 10.0.2.100 for the default guest address and
# 127.0.0.1 for guest_addr 127.0.0.1; with proxy_protocol the PROXY v2 header carries the real
# client, 127.0.0.1), IPv6 host addresses, UDP splice forwards (one flow per client socket, IPv4
# and IPv6, removal), removal, and iperf3 through both paths (throughput printed, not asserted).
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
command -v jq >/dev/null || fail "jq is not installed (run scripts/deps.sh)"
command -v iperf3 >/dev/null || fail "iperf3 is not installed (run scripts/deps.sh)"

# Answers each connection with the peer address it sees (with --proxy: the source address of the
# PROXY v2 header it reads first), then closes.
cat >"$TMP/peer.py" <<'PY'
import socket, sys, ipaddress
port, proxy, ready = int(sys.argv[1]), sys.argv[2] == "proxy", sys.argv[3]
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", port)); s.listen(8); open(ready, "w").write("ready\n")
s.settimeout(60)
while True:
    c, peer = s.accept()
    c.settimeout(10)
    if proxy:
        h = b""
        while len(h) < 28: h += c.recv(28 - len(h))
        ok = h[:12] == b"\r\n\r\n\x00\r\nQUIT\n" and h[12] == 0x21 and h[13] == 0x11
        c.sendall(f"proxy {ipaddress.IPv4Address(h[16:20])} {peer[0]} {'ok' if ok else 'bad'}\n".encode())
    else:
        c.sendall(f"peer {peer[0]}\n".encode())
    c.close()
PY
peer() {  # PORT -> the server's line
  "$PYTHON" -c 'import socket,sys; s=socket.create_connection(("127.0.0.1",int(sys.argv[1])),timeout=5); print(s.makefile().readline().strip())' "$1" 2>&1 || true
}

start_container
in_ns "$C" sysctl -qw net.ipv6.conf.default.accept_dad=0
NS=$C start_echo tcp-echo 0.0.0.0 80
NS=$C start_echo tcp-echo :: 81
NS=$C start_echo udp-echo 0.0.0.0 5353
NS=$C start_echo udp-echo :: 5354
start_bg peer90 in_ns "$C" "$PYTHON" "$TMP/peer.py" 90 plain "$TMP/peer90.ready"
start_bg peer91 in_ns "$C" "$PYTHON" "$TMP/peer.py" 91 proxy "$TMP/peer91.ready"
start_bg iperf-server in_ns "$C" iperf3 -s -p 5201
sock=$TMP/api.sock
# Without --splice there is no connector process, and splice forwards are refused.
start_daemon -c -a "$sock" "$C" tap0
wait_daemon "[[ -S $sock ]]" 10
assert_eq "" "$(pgrep -P "$DAEMON_PID" || true)" "no child process without --splice"
assert_contains "$(api "$sock" '{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":9100,"guest_port":90,"mode":"splice"}}')" "splice forward failed" "splice without --splice"
kill -TERM "$DAEMON_PID"
expect_exit "$DAEMON_PID" 10 "daemon after SIGTERM"

start_configured --splice -a "$sock"
wait_daemon "[[ -S $sock && -s $TMP/peer90.ready && -s $TMP/peer91.ready ]]" 10

add() {  # JSON-ARGUMENTS -> prints the id
  local reply
  reply=$(api "$sock" "{\"execute\":\"add_hostfwd\",\"arguments\":$1}")
  [[ $(jq -r '.return.id' <<<"$reply") =~ ^[0-9]+$ ]] || fail "add_hostfwd $1: $reply"
  jq -r '.return.id' <<<"$reply"
}

# 100 MB through a splice forward, intact.
s1=$(add '{"proto":"tcp","host_addr":"127.0.0.1","host_port":8080,"guest_port":80,"mode":"splice"}')
assert_eq "OK 100000000 bytes" "$(nettool host tcp-check 127.0.0.1 8080 --bytes 100000000 --timeout 60)" "100 MB echo through splice"
list=$(api "$sock" '{"execute":"list_hostfwd"}')
assert_eq splice "$(jq -r ".entries[] | select(.id == $s1) | .mode" <<<"$list")" "list_hostfwd mode"

# Peer addresses, per mode.
add '{"proto":"tcp","host_addr":"127.0.0.1","host_port":9090,"guest_port":90}' >/dev/null
add '{"proto":"tcp","host_addr":"127.0.0.1","host_port":9091,"guest_port":90,"mode":"splice"}' >/dev/null
add '{"proto":"tcp","host_addr":"127.0.0.1","host_port":9092,"guest_addr":"127.0.0.1","guest_port":90,"mode":"splice"}' >/dev/null
add '{"proto":"tcp","host_addr":"127.0.0.1","host_port":9093,"guest_port":91,"mode":"splice","proxy_protocol":true}' >/dev/null
assert_eq "peer 10.0.2.2" "$(peer 9090)" "libslirp forward: peer seen inside"
assert_eq "peer 10.0.2.100" "$(peer 9091)" "splice forward to 10.0.2.100: peer seen inside"
assert_eq "peer 127.0.0.1" "$(peer 9092)" "splice forward to 127.0.0.1: peer seen inside"
assert_eq "proxy 127.0.0.1 10.0.2.100 ok" "$(peer 9093)" "splice forward with PROXY v2: real client in the header"
list=$(api "$sock" '{"execute":"list_hostfwd"}')
assert_eq "null splice splice splice" "$(jq -r '[.entries[] | select(.host_port >= 9090 and .host_port <= 9093) | .mode] | map(tostring) | join(" ")' <<<"$list")" "modes listed"
assert_eq true "$(jq -r '.entries[] | select(.host_port == 9093) | .proxy_protocol' <<<"$list")" "proxy_protocol listed"

# UDP splice forwards: each client socket (udp-check opens a new one) gets its own flow, i.e. its
# own connected socket inside the container; IPv6 too; removal stops the forward.
u1=$(add '{"proto":"udp","host_addr":"127.0.0.1","host_port":8053,"guest_port":5353,"mode":"splice"}')
assert_eq "OK udp echo" "$(nettool host udp-check 127.0.0.1 8053 --timeout 5)" "UDP splice forward, client 1"
assert_eq "OK udp echo" "$(nettool host udp-check 127.0.0.1 8053 --timeout 5)" "UDP splice forward, client 2"
assert_eq 2 "$(api "$sock" '{"execute":"get_stats"}' | jq -r '.return.splice.udp_flows')" "one UDP flow per client"
assert_eq udp "$(api "$sock" '{"execute":"list_hostfwd"}' | jq -r ".entries[] | select(.id == $u1) | .proto")" "UDP splice listed"
u6=$(add '{"proto":"udp","host_addr":"::1","host_port":8054,"guest_addr":"::1","guest_port":5354,"mode":"splice"}')
assert_eq "OK udp echo" "$(nettool host udp-check ::1 8054 --timeout 5)" "IPv6 UDP splice forward"
assert_eq '{"return":{}}' "$(api "$sock" "{\"execute\":\"remove_hostfwd\",\"arguments\":{\"id\":$u1}}")" "remove UDP"
assert_eq '{"return":{}}' "$(api "$sock" "{\"execute\":\"remove_hostfwd\",\"arguments\":{\"id\":$u6}}")" "remove IPv6 UDP"
assert_match "$(nettool host udp-check 127.0.0.1 8053 --timeout 2)" "^ERROR" "UDP splice forward after removal"
assert_match "$(nettool host udp-check ::1 8054 --timeout 2)" "^ERROR" "IPv6 UDP splice forward after removal"
assert_eq 0 "$(api "$sock" '{"execute":"get_stats"}' | jq -r '.return.splice.udp_flows')" "UDP flows closed on removal"

# Errors: PROXY header for UDP, unknown mode, proxy_protocol without splice, a port in use.
assert_contains "$(api "$sock" '{"execute":"add_hostfwd","arguments":{"proto":"udp","host_port":9100,"guest_port":90,"mode":"splice","proxy_protocol":true}}')" "bad arguments.proxy_protocol" "no PROXY header for UDP"
assert_contains "$(api "$sock" '{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":9100,"guest_port":90,"mode":"fast"}}')" "bad arguments.mode" "unknown mode"
assert_contains "$(api "$sock" '{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":9100,"guest_port":90,"proxy_protocol":true}}')" "bad arguments.proxy_protocol" "proxy_protocol needs splice"
assert_contains "$(api "$sock" '{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"127.0.0.1","host_port":8080,"guest_port":80,"mode":"splice"}}')" "splice forward failed" "port in use"

# IPv6 host address (no -6 needed: libslirp is not involved), to the container's IPv6 server.
s6=$(add '{"proto":"tcp","host_addr":"::1","host_port":8081,"guest_addr":"::1","guest_port":81,"mode":"splice"}')
assert_eq "OK 1000000 bytes" "$(nettool host tcp-check ::1 8081 --bytes 1000000)" "IPv6 splice forward"

# Removal closes the listener.
assert_eq '{"return":{}}' "$(api "$sock" "{\"execute\":\"remove_hostfwd\",\"arguments\":{\"id\":$s6}}")" "remove IPv6"
assert_match "$(nettool host tcp-check ::1 8081 --timeout 3)" "^ERROR" "IPv6 splice forward after removal"

# iperf3 host -> container, libslirp vs splice (single 3 s runs).
add '{"proto":"tcp","host_addr":"127.0.0.1","host_port":15201,"guest_port":5201}' >/dev/null
add '{"proto":"tcp","host_addr":"127.0.0.1","host_port":25201,"guest_port":5201,"mode":"splice"}' >/dev/null
gbps() { "$PYTHON" -c 'import json,sys; print("%.2f" % (json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]/1e9))' "$1"; }
for p in 15201 25201; do
  timeout $((30 * TS)) iperf3 -c 127.0.0.1 -p $p -t 3 -J >"$TMP/iperf-$p.json" 2>&1 || fail "iperf3 via $p: $(tail -c 300 "$TMP/iperf-$p.json")"
done
log "iperf3 host->container: libslirp $(gbps "$TMP/iperf-15201.json") Gbit/s, splice $(gbps "$TMP/iperf-25201.json") Gbit/s (load: $(cut -d' ' -f1-3 /proc/loadavg))"
stats=$(api "$sock" '{"execute":"get_stats"}')
(($(jq -r '.return.splice.bytes_in' <<<"$stats") > 100000000)) || fail "get_stats splice counters: $stats"

# remove_hostfwd of the first splice forward; --forward-mode=splice makes splice the default.
assert_eq '{"return":{}}' "$(api "$sock" "{\"execute\":\"remove_hostfwd\",\"arguments\":{\"id\":$s1}}")" "remove"
assert_match "$(nettool host tcp-check 127.0.0.1 8080 --timeout 3)" "^ERROR" "splice forward after removal"
kill -TERM "$DAEMON_PID"
expect_exit "$DAEMON_PID" 10 "daemon after SIGTERM"
start_daemon --forward-mode=splice -c -a "$sock" "$C" tap0
wait_daemon "[[ -S $sock ]]" 10
add '{"proto":"tcp","host_addr":"127.0.0.1","host_port":9094,"guest_port":90}' >/dev/null
assert_eq "peer 10.0.2.100" "$(peer 9094)" "--forward-mode=splice default"
assert_eq splice "$(api "$sock" '{"execute":"list_hostfwd"}' | jq -r '.entries[0].mode')" "default mode listed"
pass

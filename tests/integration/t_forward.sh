#!/usr/bin/env bash
# Port forwarding through the API (issue 3): TCP and UDP forwards to servers inside the container,
# bound at 127.0.0.1 and at 0.0.0.0; removal stops them; an IPv6 forward with -6 (slirpnetd
# extension: slirp4netns rejects IPv6 host_addr); 1000 forwards added then listed; 50 concurrent
# API clients served while an iperf3 transfer runs through the daemon, without stalling it.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
command -v jq >/dev/null || fail "jq is not installed (run scripts/deps.sh)"
command -v iperf3 >/dev/null || fail "iperf3 is not installed (run scripts/deps.sh)"

start_container
in_ns "$C" sysctl -qw net.ipv6.conf.default.accept_dad=0
NS=$C start_echo tcp-echo 0.0.0.0 80
NS=$C start_echo udp-echo 0.0.0.0 5353
# libslirp finds a UDP forward by its guest side: two UDP forwards to one guest port would collide.
NS=$C start_echo udp-echo 0.0.0.0 5354
NS=$C start_echo tcp-echo :: 81
sock=$TMP/api.sock
start_configured_api "$sock" ${FWD_EXTRA:-} -6
# -c also applies slirp4netns's documented tcp_rmem workaround (its issue #128) in the container
# when the kernel default (131072) is still in place, and never touches the outer namespace's.
if [[ $(awk '{print $2}' /proc/sys/net/ipv4/tcp_rmem) == 131072 ]]; then
  assert_eq 87380 "$(in_ns "$C" awk '{print $2}' /proc/sys/net/ipv4/tcp_rmem)" "tcp_rmem default inside"
  assert_eq 131072 "$(awk '{print $2}' /proc/sys/net/ipv4/tcp_rmem)" "tcp_rmem default outside"
fi

add() {  # PROTO HOST_ADDR HOST_PORT GUEST_PORT -> prints the id
  local reply
  reply=$(api "$sock" "{\"execute\":\"add_hostfwd\",\"arguments\":{\"proto\":\"$1\",\"host_addr\":\"$2\",\"host_port\":$3,\"guest_addr\":\"\",\"guest_port\":$4}}")
  [[ $(jq -r '.return.id' <<<"$reply") =~ ^[0-9]+$ ]] || fail "add_hostfwd $*: $reply"
  jq -r '.return.id' <<<"$reply"
}
remove() {  # ID
  local reply
  reply=$(api "$sock" "{\"execute\":\"remove_hostfwd\",\"arguments\":{\"id\":$1}}")
  assert_eq '{"return":{}}' "$reply" "remove_hostfwd $1"
}

# TCP and UDP, at 127.0.0.1 and at 0.0.0.0 (reached through 127.0.0.1 and through another local
# address of the outer namespace, which a 127.0.0.1-bound forward must not accept).
ip addr add 192.0.2.10/32 dev lo
t1=$(add tcp 127.0.0.1 8080 80)
u1=$(add udp 127.0.0.1 8053 5353)
t2=$(add tcp 0.0.0.0 9080 80)
u2=$(add udp 0.0.0.0 9053 5354)
assert_eq "OK 100000 bytes" "$(nettool host tcp-check 127.0.0.1 8080 --bytes 100000)" "TCP forward at 127.0.0.1"
assert_eq "OK udp echo" "$(nettool host udp-check 127.0.0.1 8053)" "UDP forward at 127.0.0.1"
assert_eq "OK 100000 bytes" "$(nettool host tcp-check 192.0.2.10 9080 --bytes 100000)" "TCP forward at 0.0.0.0 via 192.0.2.10"
assert_eq "OK 100000 bytes" "$(nettool host tcp-check 127.0.0.1 9080 --bytes 100000)" "TCP forward at 0.0.0.0 via 127.0.0.1"
assert_eq "OK udp echo" "$(nettool host udp-check 192.0.2.10 9053)" "UDP forward at 0.0.0.0 via 192.0.2.10"
assert_match "$(nettool host tcp-check 192.0.2.10 8080 --timeout 3)" "^ERROR" "a 127.0.0.1 forward must not listen on 192.0.2.10"

# Removal stops them.
remove "$t1"
remove "$u1"
remove "$t2"
assert_match "$(nettool host tcp-check 127.0.0.1 8080 --timeout 3)" "^ERROR" "TCP forward at 127.0.0.1 after removal"
assert_match "$(nettool host tcp-check 127.0.0.1 9080 --timeout 3)" "^ERROR" "TCP forward at 0.0.0.0 after removal"
assert_match "$(nettool host udp-check 127.0.0.1 8053 --timeout 2)" "^ERROR" "UDP forward at 127.0.0.1 after removal"
assert_eq "OK udp echo" "$(nettool host udp-check 192.0.2.10 9053)" "the remaining UDP forward still works"
# A removed port can be forwarded again, with a new id.
t3=$(add tcp 127.0.0.1 8080 80)
((t3 > u2)) || fail "ids must never be reused: got $t3 after $u2"
assert_eq "OK 1000 bytes" "$(nettool host tcp-check 127.0.0.1 8080 --bytes 1000)" "re-added forward"

# IPv6: [::1]:8081 -> the container's IPv6 TCP server on port 81 (guest_addr "" = "::", which
# libslirp resolves to the guest's SLAAC address), and a second IPv6 forward on a port that
# already has an IPv4 forward (V6ONLY).
t6=$(add tcp ::1 8081 81)  # guest_addr "" = the guest's IPv6 address
assert_eq "OK 100000 bytes" "$(nettool host tcp-check ::1 8081 --bytes 100000)" "IPv6 forward [::1]:8081"
reply=$(api "$sock" '{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"::1","host_port":8080,"guest_port":80}}')
assert_contains "$reply" '"return"' "an IPv6 forward on a port that also has an IPv4 forward (V6ONLY)"
remove "$t6"

# 1000 forwards, then list_hostfwd shows all of them (plus the ones still there).
"$PYTHON" - "$sock" <<'PY' || fail "1000 forwards"
import json, socket, sys
def call(req):
    s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])
    s.sendall(json.dumps(req).encode()); s.shutdown(socket.SHUT_WR)
    data = b""
    while chunk := s.recv(65536): data += chunk
    s.close(); return json.loads(data)
ids = []
for i in range(1000):
    r = call({"execute": "add_hostfwd", "arguments": {"proto": "tcp" if i % 2 else "udp",
              "host_addr": "127.0.0.1", "host_port": 20000 + i, "guest_port": 80}})
    if "return" not in r: sys.exit(f"add {i}: {r}")
    ids.append(r["return"]["id"])
entries = call({"execute": "list_hostfwd"})["entries"]
listed = {e["id"] for e in entries}
missing = [i for i in ids if i not in listed]
if missing: sys.exit(f"{len(missing)} forwards missing from list_hostfwd")
if len(set(ids)) != 1000: sys.exit("duplicate ids")
print(f"1000 forwards added and listed ({len(entries)} entries)")
PY
assert_eq "OK 1000 bytes" "$(nettool host tcp-check 127.0.0.1 20999 --bytes 1000)" "the 1000th forward works"

# 50 concurrent API clients while iperf3 runs from the container to the host through 10.0.2.2:
# every client answered, and no 0.5 s interval of the transfer without data.
start_bg iperf-server iperf3 -s -B 127.0.0.1 -p 5201 -1
wait_for "ss -ltn | grep -q 127.0.0.1:5201" 10
in_ns "$C" iperf3 -c 10.0.2.2 -p 5201 -t 4 -i 0.5 -J >"$TMP/iperf.json" 2>&1 &
IPERF=$!
# Under way: the control and the data connection established at the server.
wait_for "(( \$(ss -tnH state established '( sport = :5201 )' | wc -l) >= 2 ))" 10
"$PYTHON" - "$sock" <<'PY' || fail "50 concurrent API clients"
import json, socket, sys, threading, time
results = []
def client(i):
    t0 = time.monotonic()
    try:
        s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])
        req = {"execute": "list_hostfwd"} if i % 2 else {"execute": "get_stats"}
        s.sendall(json.dumps(req).encode()); s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(1 << 20): data += chunk
        r = json.loads(data)
        ok = ("entries" in r) if i % 2 else ("tap_reader" in r.get("return", {}))
        results.append((ok, time.monotonic() - t0))
    except Exception as e:
        results.append((False, repr(e)))
threads = [threading.Thread(target=client, args=(i,)) for i in range(50)]
for t in threads: t.start()
for t in threads: t.join()
bad = [r for r in results if not r[0]]
if len(results) != 50 or bad: sys.exit(f"failed clients: {bad[:3]}")
print("50 clients answered, slowest %.2f s" % max(r[1] for r in results))
PY
wait "$IPERF" || fail "iperf3 failed: $(tail -c 400 "$TMP/iperf.json")"
"$PYTHON" - "$TMP/iperf.json" <<'PY' || fail "transfer stalled while API clients were served"
import json, sys
d = json.load(open(sys.argv[1]))
iv = [i["sum"]["bytes"] for i in d["intervals"]]
if not iv or min(iv) == 0: sys.exit(f"intervals: {iv}")
print("iperf3 intervals all moved data: min %d bytes per 0.5 s" % min(iv))
PY

alive "$DAEMON_PID" || fail "daemon died"
pass

#!/usr/bin/env bash
# A guided tour of slirpnetd, hermetic like the tests: installs the dependencies, builds, then,
# inside private network/mount/pid namespaces (see tests/integration/lib.sh), starts an HTTP server
# on the "host"'s 127.0.0.1:8000 and a DNS responder, a rootless-style container
# (unshare --user --map-root-user --net), and `slirpnetd -c` with an API socket, and shows:
# the container's addresses, an HTTP fetch from the host through 10.0.2.2, a DNS answer through
# 10.0.2.3, and a port forward from the host into the container. Everything is torn down at the
# end. Nothing leaves the private namespaces.
#
#   sudo scripts/demo.sh                               build and run with build/slirpnetd
#   sudo SLIRPNETD=/usr/bin/slirp4netns scripts/demo.sh  the same with another binary, no build
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)

if [[ -z ${SLIRPNETD_HERMETIC:-} ]]; then
  if [[ $EUID -ne 0 ]]; then
    echo "demo.sh: creates namespaces and a TAP device: run as root (sudo $0)" >&2
    exit 1
  fi
  if [[ -z ${SLIRPNETD:-} ]]; then
    bash "$ROOT/scripts/deps.sh"
    BUILD=$ROOT/${SLIRPNETD_BUILD_DIR:-build}
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$BUILD" -j "$(nproc)" --target slirpnetd
    export SLIRPNETD=$BUILD/slirpnetd
  fi
fi
# Re-executes this script inside fresh namespaces (the first time), then sets up lo, resolv.conf
# -> 127.0.0.1, the DNS responder on 127.0.0.1:53 and $TMP.
source "$ROOT/tests/integration/lib.sh"

if [[ -t 1 ]]; then bold=$'\033[1m' dim=$'\033[2m' off=$'\033[0m'; else bold='' dim='' off=''; fi
step() { printf '\n%s==> %s%s\n' "$bold" "$*" "$off"; }
show() { printf '%s$ %s%s\n' "$dim" "$*" "$off"; }

step "On the host (a private netns with only lo): an HTTP server on 127.0.0.1:8000"
mkdir -p "$TMP/www-host" "$TMP/www-container"
echo "Hello from the host's 127.0.0.1:8000" >"$TMP/www-host/index.html"
echo "Hello from port 80 inside the container" >"$TMP/www-container/index.html"
start_bg http-host "$PYTHON" -m http.server --bind 127.0.0.1 --directory "$TMP/www-host" 8000
wait_for "$PYTHON $NETTOOL http-get http://127.0.0.1:8000/ --timeout 1"
echo "ok; and a DNS responder on 127.0.0.1:53 (host.slirpnetd.test -> 192.0.2.53), named in resolv.conf"

step "A container: unshare --user --map-root-user --net sleep 600"
start_container
echo "container PID $C"

step "slirpnetd -c -a $TMP/api.sock $C tap0"
start_daemon -c -a "$TMP/api.sock" "$C" tap0
wait_for_addr "$C" tap0 "inet 10.0.2.100/24"
wait_daemon "[[ -S $TMP/api.sock ]]"
cat "$DAEMON_OUT"

step "Inside the container"
show ip addr
in_ns "$C" ip addr
show ip route
in_ns "$C" ip route

step "Inside: fetch http://10.0.2.2:8000/ (10.0.2.2 is the host's loopback)"
show "python3 -c 'urllib.request.urlopen(\"http://10.0.2.2:8000/\")'"
nettool "$C" http-get http://10.0.2.2:8000/

if command -v iperf3 >/dev/null; then
  step "Inside: 3 s of bulk TCP to the host's iperf3 on 127.0.0.1:5201 through 10.0.2.2"
  start_bg iperf3-host timeout 20 iperf3 -s -1 -B 127.0.0.1 -p 5201
  wait_for "ss -Hltn 'sport = :5201' | grep -q 5201"
  show "iperf3 -c 10.0.2.2 -t 3 -f g   (and ss -tin in the container, midway)"
  in_ns "$C" timeout 20 iperf3 -c 10.0.2.2 -p 5201 -t 3 -f g >"$TMP/iperf3-client.log" 2>&1 &
  iperf_pid=$!
  sleep 1.5
  echo "window scaling, the window libslirp advertises and the segment size, as the container sees them:"
  in_ns "$C" ss -tin dst 10.0.2.2 | grep -oE '(^| )(wscale:[0-9,]+|mss:[0-9]+|snd_wnd:[0-9]+)' | sort -u |
    tr -d ' ' | tr '\n' ' '
  echo
  wait "$iperf_pid" || true
  grep -E 'sender|receiver' "$TMP/iperf3-client.log" || cat "$TMP/iperf3-client.log"
fi

step "Inside: resolve host.slirpnetd.test through 10.0.2.3 (forwarded to the host's resolver)"
dns_query "$C" 10.0.2.3 host.slirpnetd.test
echo "the responder saw: $(tail -1 "$TMP/dnsd.log")"

step "Port forward: an HTTP server on port 80 inside, host 127.0.0.1:8080 -> container :80"
start_bg http-container in_ns "$C" "$PYTHON" -m http.server --bind 0.0.0.0 --directory "$TMP/www-container" 80
wait_for "in_ns $C $PYTHON $NETTOOL http-get http://127.0.0.1:80/ --timeout 1"
req='{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"127.0.0.1","host_port":8080,"guest_port":80}}'
show "API: $req"
api "$TMP/api.sock" "$req"
show 'API: {"execute":"list_hostfwd"}'
api "$TMP/api.sock" '{"execute":"list_hostfwd"}'
show "on the host: fetch http://127.0.0.1:8080/"
nettool host http-get http://127.0.0.1:8080/

if "$SLIRPNETD" run --help >/dev/null 2>&1; then
  step "One command: slirpnetd run creates the namespaces itself, runs CMD inside, exits with its status"
  cmd='ip -4 -o addr show tap0; python3 '"$NETTOOL"' http-get http://10.0.2.2:8000/; getent hosts host.slirpnetd.test; exit 3'
  show "slirpnetd run -- sh -c '$cmd'"
  status=0
  "$SLIRPNETD" run -- sh -c "$cmd" || status=$?
  echo "slirpnetd run exited with status $status (CMD's)"
fi

step "Clean up: the namespaces, the container, the servers and slirpnetd all go away"
pass

#!/usr/bin/env bash
# Rootless Podman (Debian's podman 4.3, crun, conmon) with the binary under test as its slirp4netns
# (containers.conf [engine] network_cmd_path), run as an unprivileged test user (clients_lib.sh).
# Podman runs it as
#   slirp4netns --disable-host-loopback --mtu=65520 --enable-sandbox --enable-seccomp --enable-ipv6
#               -c -e 3 -r 4 [--api-socket P] --netns-type=path NETNS tap0
# Hermetic: storage (vfs), run and temp dirs, and /dev/shm (Podman's lock file) on private tmpfs
# mounts; no registry (the image is a busybox rootfs imported from a tarball); events in a file;
# cgroupfs on a private cgroup2 mount (crun refuses this host's hybrid v1/v2 layout); DNS only
# through 10.0.2.3 to lib.sh's responder.
# Checks, with `--network slirp4netns[:...]`:
#   1. allow_host_loopback=true: the daemon got every flag Podman derives from its --help; the
#      container has 10.0.2.100 and an fd00::/64 address on tap0, fetches a file from a host
#      loopback HTTP server through 10.0.2.2 (with busybox nc: Debian's static busybox wget
#      crashes), its resolv.conf names only 10.0.2.3, it resolves host.slirpnetd.test; the daemon
#      runs under seccomp; it exits once the container has exited (EOF on its exit fd: conmon
#      holds the write end).
#   2. port_handler=slirp4netns and port_handler=rootlesskit, default options: `-p
#      127.0.0.1:HOST:8080` reaches an echo server in the container; 10.0.2.2 does not reach the
#      host (Podman's default --disable-host-loopback); the daemon exits after `podman stop`.
# Also validated against Debian's slirp4netns: SLIRPNETD=/usr/bin/slirp4netns bash t_podman.sh
: "${SLIRPNETD_TEST_TIMEOUT:=$((170 * ${SLIRPNETD_TIME_SCALE:-1}))}"
export SLIRPNETD_TEST_TIMEOUT
source "$(dirname "$0")/lib.sh"
source "$ITEST_DIR/clients_lib.sh"
require_cmds podman crun conmon newuidmap newgidmap setpriv busybox
BUSYBOX=$(command -v busybox)
[[ $(LC_ALL=C ldd "$BUSYBOX" 2>&1 || true) == *"not a dynamic executable"* ]] ||
  skip "$BUSYBOX is not static (install busybox-static: scripts/deps.sh)"
setup_test_user

# Podman wants "/" shared (rootless mount propagation); this mount namespace is ours alone.
mount --make-rshared /
# Podman's rootless lock is /dev/shm/libpod_rootless_lock_<uid>: keep it off the host's /dev/shm.
mount -t tmpfs -o mode=1777,size=16m slirpnetd-shm /dev/shm
# crun refuses a hybrid cgroup layout: give this mount namespace a pure cgroup2 view.
if [[ $(stat -f -c %T /sys/fs/cgroup) != cgroup2fs ]]; then
  mount -t cgroup2 cgroup2 /sys/fs/cgroup || fail "cannot mount cgroup2 on /sys/fs/cgroup"
fi

P=$TMP/podman
mkdir "$P"
mount -t tmpfs -o mode=0755,size=512m slirpnetd-podman "$P"
chown "$TEST_UID:$TEST_GID" "$P"
cat >"$P/storage.conf" <<EOF
[storage]
driver = "vfs"
runroot = "$USER_RUN/containers"
graphroot = "$P/storage"
EOF
cat >"$P/containers.conf" <<EOF
[containers]
dns_servers = ["10.0.2.3"]
dns_searches = []
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$P/events.log"
network_cmd_path = "$SLIRPNETD"
runtime = "crun"
image_copy_tmp_dir = "$P/tmp"
# The API socket is <tmp_dir>/<64 hex digits>.net: keep it under sun_path's 108 bytes.
tmp_dir = "$TMP/t"
EOF
: >"$P/registries.conf"
chmod 0644 "$P"/*.conf
install -d -m 0700 -o "$TEST_UID" -g "$TEST_GID" "$TMP/t" "$P/tmp"
((${#TMP} + 71 < 108)) || skip "TMPDIR too long for Podman's API socket path: $TMP"
# shellcheck disable=SC2034 # read by as_user (clients_lib.sh)
USER_ENV=(CONTAINERS_CONF="$P/containers.conf" CONTAINERS_STORAGE_CONF="$P/storage.conf"
  CONTAINERS_REGISTRIES_CONF="$P/registries.conf" TMPDIR="$P/tmp")

# pod NAME ARGS...: runs `podman ARGS...` as the test user (bounded), output in $TMP/podman-NAME.log.
pod() {
  local name=$1
  shift
  POD_LOG=$TMP/podman-$name.log
  as_user timeout --kill-after=5 $((60 * TS)) podman "$@" >"$POD_LOG" 2>&1
}
pod_fail() {  # MESSAGE: fails, showing the last podman command's output
  echo "---- podman output ($POD_LOG) ----" >&2
  tail -n 40 "$POD_LOG" >&2
  audit_hint
  fail "$*"
}

# The image: a static busybox and a few applet links, imported from a tarball.
R=$TMP/rootfs
mkdir -p "$R/bin" "$R/out" "$R/tmp" "$R/etc"
install -m 0755 "$BUSYBOX" "$R/bin/busybox"
for applet in sh ip cat nslookup nc sleep echo printf touch timeout; do
  ln -s busybox "$R/bin/$applet"
done
tar -C "$R" -c . | pod import import --change CMD=/bin/sh - localhost/slirpnetd-test ||
  pod_fail "podman import failed"

# A host loopback HTTP server (for 10.0.2.2) and a shared dir for the containers' reports.
HTTP_PORT=12180
mkdir -m 0755 "$TMP/www"
echo "host-token-4711" >"$TMP/www/token"
start_bg http-server "$PYTHON" -m http.server --bind 127.0.0.1 --directory "$TMP/www" "$HTTP_PORT"
wait_for "[[ \$(nettool host http-get http://127.0.0.1:$HTTP_PORT/token --timeout 1) == host-token-4711 ]]" 10

# shellcheck disable=SC2317 # called through wait_for's eval
ctr_exited() {  # true once $CTR has exited (status "exited" or "stopped")
  pod "state-$CTR" inspect --format '{{.State.Status}}' "$CTR" &&
    [[ $(cat "$POD_LOG") == exited || $(cat "$POD_LOG") == stopped ]]
}

# run_ctr NAME NETWORK PODMAN_RUN_ARGS... -- SCRIPT: starts a detached container whose SCRIPT
# writes its findings under /out (a host dir), then waits for /out/stop. Sets OUT, CTR, SLIRP_PID
# (the daemon Podman started for it, once the script has written /out/ready).
run_ctr() {
  local name=$1 network=$2
  shift 2
  local args=()
  while [[ $1 != -- ]]; do args+=("$1"); shift; done
  shift
  OUT=$TMP/out-$name
  install -d -m 0755 -o "$TEST_UID" -g "$TEST_GID" "$OUT"
  CTR=ctr-$name
  log "podman run [$name]: --network $network ${args[*]}"
  pod "run-$name" run -d --pull=never --name "$CTR" --network "$network" -v "$OUT:/out" \
    "${args[@]}" localhost/slirpnetd-test \
    sh -c "$1; touch /out/ready; while [ ! -e /out/stop ]; do sleep 0.1; done" ||
    pod_fail "[$name] podman run failed"
  wait_for "[[ -e $OUT/ready ]] || ctr_exited" 30
  [[ -e $OUT/ready ]] || { pod "logs-$name" logs "$CTR"; pod_fail "[$name] the container exited early"; }
  # The daemon: one slirp process, or one with a wrapper script as its parent.
  local pids pid ppids leaves=()
  pids=$(slirp_pids)
  ppids=$(for pid in $pids; do ps -o ppid= -p "$pid" | tr -d ' ' || true; done)
  for pid in $pids; do
    grep -qx "$pid" <<<"$ppids" || leaves+=("$pid")
  done
  if ((${#leaves[@]} != 1)); then
    audit_hint
    fail "[$name] expected one slirp process, found: $(describe_pids $pids); $(ps -eo pid,ppid,stat,args)"
  fi
  SLIRP_PID=${leaves[0]}
  log "[$name] slirp process: $(describe_pids "$SLIRP_PID")"
}

# 1. allow_host_loopback=true: address, host loopback, DNS; exit with the container.
run_ctr loopback slirp4netns:allow_host_loopback=true -- "
  ip -4 -o addr show dev tap0 >/out/addr 2>&1
  i=0; until ip -6 -o addr show dev tap0 scope global | grep -q fd00:: || [ \$i -ge 50 ]; do sleep 0.1; i=\$((i + 1)); done
  ip -6 -o addr show dev tap0 >/out/addr6 2>&1
  printf 'GET /token HTTP/1.0\\r\\n\\r\\n' | timeout 5 nc 10.0.2.2 $HTTP_PORT >/out/http 2>&1
  cat /etc/resolv.conf >/out/resolv
  nslookup host.slirpnetd.test >/out/dns 2>&1"
# Podman picks its flags by grepping the daemon's --help: all of them must have been recognised.
cmdline=" $(tr '\0' ' ' <"/proc/$SLIRP_PID/cmdline")"
for flag in --enable-sandbox --enable-seccomp --enable-ipv6 --netns-type=path " -c " " -e "; do
  assert_contains "$cmdline" "$flag" "the daemon's command line (Podman's feature detection)"
done
assert_contains "$(cat "$OUT/addr")" "inet 10.0.2.100/24" "container's tap0 address"
assert_contains "$(cat "$OUT/addr6")" "inet6 fd00::" "container's tap0 IPv6 address (SLAAC, --enable-ipv6)"
assert_contains "$(cat "$OUT/http")" $'\r\n\r\nhost-token-4711' "HTTP GET through 10.0.2.2 from the host's loopback"
assert_eq "nameserver 10.0.2.3" "$(grep nameserver "$OUT/resolv")" "nameservers in the container's resolv.conf"
assert_contains "$(cat "$OUT/dns")" "192.0.2.53" "nslookup host.slirpnetd.test in the container"
assert_match "$(grep Seccomp: "/proc/$SLIRP_PID/status")" "Seccomp:[[:space:]]+2" "daemon seccomp mode (Podman passes --enable-seccomp)"
touch "$OUT/stop"
pod wait-loopback wait "$CTR" || pod_fail "podman wait failed"
assert_eq 0 "$(cat "$POD_LOG")" "container exit status"
expect_none slirp_pids "slirp process after its container exited"

# 2. Port forwarding with both port handlers (default options: host loopback disabled).
port=18080
for handler in slirp4netns rootlesskit; do
  port=$((port + 1))
  run_ctr "$handler" "slirp4netns:port_handler=$handler" -p "127.0.0.1:$port:8080" -- "
    nc -ll -p 8080 -e cat &
    printf 'GET /token HTTP/1.0\\r\\n\\r\\n' | timeout 5 nc 10.0.2.2 $HTTP_PORT >/out/http 2>&1"
  assert_not_contains "$(cat "$OUT/http")" "host-token" "[$handler] 10.0.2.2 (Podman's default --disable-host-loopback)"
  wait_for "[[ \$(nettool host tcp-check 127.0.0.1 $port --bytes 1000 --timeout 2) == OK* ]]" 10
  out=$(nettool host tcp-check 127.0.0.1 "$port" --bytes 100000 --timeout 5)
  assert_eq "OK 100000 bytes" "$out" "[$handler] host 127.0.0.1:$port -> container :8080"
  pod "stop-$handler" stop -t 2 "$CTR" || pod_fail "[$handler] podman stop failed"
  expect_none slirp_pids "[$handler] slirp process after podman stop"
  out=$(nettool host tcp-check 127.0.0.1 "$port" --timeout 2)
  [[ $out == ERROR* ]] || fail "[$handler] 127.0.0.1:$port still answers after podman stop: $out"
done
pass

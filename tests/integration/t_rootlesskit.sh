#!/usr/bin/env bash
# RootlessKit (Debian's rootlesskit 1.1) with the binary under test as its slirp4netns, run as an
# unprivileged test user (see clients_lib.sh: private passwd/subuid copies, 0666 /dev/net/tun):
#   rootlesskit --net=slirp4netns --slirp4netns-binary=$SLIRPNETD --port-driver=slirp4netns
#               --copy-up=/etc [...] sh -c 'wait for a stop file'
# in three configurations: default; --slirp4netns-sandbox=true --slirp4netns-seccomp=true; and
# --disable-host-loopback. Each checks that the child gets 10.0.2.100 on tap0, reaches (or, with
# --disable-host-loopback, cannot reach) a host loopback server through 10.0.2.2, resolves a name
# through 10.0.2.3, that `rootlessctl add-ports/list-ports/remove-ports` drive the daemon's API
# (a host client reaches a server inside, then no longer), and that once RootlessKit exits (child
# done, SIGTERM, or SIGKILL) no slirp process and no process of the test user is left.
# Also validated against Debian's slirp4netns: SLIRPNETD=/usr/bin/slirp4netns bash t_rootlesskit.sh
source "$(dirname "$0")/lib.sh"
source "$ITEST_DIR/clients_lib.sh"
require_cmds rootlesskit rootlessctl newuidmap newgidmap setpriv
setup_test_user

HOST_PORT=12121
start_echo tcp-echo 127.0.0.1 "$HOST_PORT"
RK_N=0

# start_rk NAME ARGS...: starts RootlessKit as the test user; sets RK_PID, RK_STATE, RK_CHILD
# (the PID of RootlessKit's child, which owns the user and network namespaces) and SLIRP_PID.
start_rk() {
  local name=$1
  shift
  RK_N=$((RK_N + 1))
  RK_NAME=$name
  RK_STATE=$USER_RUN/rk-$name
  RK_STOP=$TMP/stop-$name
  log "rootlesskit [$name]: $*"
  user_cmd
  start_bg "rootlesskit-$name" "${USER_CMD[@]}" rootlesskit --state-dir="$RK_STATE" --net=slirp4netns \
    --slirp4netns-binary="$SLIRPNETD" --port-driver=slirp4netns --copy-up=/etc "$@" \
    sh -c "while [ ! -e '$RK_STOP' ]; do sleep 0.1; done; echo child-done"
  RK_PID=$BG_PID
  RK_LOG=$TMP/rootlesskit-$name.log
  local deadline=$((SECONDS + 20 * TS))
  until [[ -S $RK_STATE/api.sock && -s $RK_STATE/child_pid ]]; do
    alive "$RK_PID" || { wait_exit "$RK_PID" 1 || true; rk_fail "rootlesskit exited (status ${EXIT_STATUS:-?}) during start-up"; }
    ((SECONDS < deadline)) || rk_fail "rootlesskit not ready after $((20 * TS)) s"
    sleep 0.1
  done
  RK_CHILD=$(cat "$RK_STATE/child_pid")
  # The daemon RootlessKit started (a wrapper may have children of its own).
  local pid
  SLIRP_PID=
  for pid in $(slirp_pids); do
    [[ $(ps -o ppid= -p "$pid" | tr -d ' ') == "$RK_PID" ]] && SLIRP_PID=$pid
  done
  [[ -n $SLIRP_PID ]] || rk_fail "no slirp process is running under rootlesskit; processes: $(ps -eo pid,ppid,uid,stat,args)"
  log "slirp process: $(describe_pids "$SLIRP_PID")"
}

rk_fail() {
  echo "---- rootlesskit [$RK_NAME] log ----" >&2
  cat "$RK_LOG" >&2 2>/dev/null
  audit_hint
  fail "[$RK_NAME] $*"
}

rk_check() {  # EXPECTED ACTUAL WHAT
  [[ $1 == "$2" ]] || rk_fail "$3: expected '$1', got '$2'"
}

# check_network HOST_LOOPBACK(yes|no): the child's view of the network.
check_network() {
  local out
  out=$(in_ns "$RK_CHILD" ip -o -4 addr show dev tap0)
  [[ $out == *"inet 10.0.2.100/24"* ]] || rk_fail "tap0 in the child has no 10.0.2.100/24: $out"
  out=$(nettool "$RK_CHILD" tcp-check 10.0.2.2 "$HOST_PORT" --bytes 100000 --timeout 3)
  if [[ $1 == yes ]]; then
    rk_check "OK 100000 bytes" "$out" "TCP echo through 10.0.2.2 to host 127.0.0.1:$HOST_PORT"
  else
    [[ $out == ERROR* ]] || rk_fail "--disable-host-loopback: 10.0.2.2:$HOST_PORT reached the host's loopback: $out"
  fi
  out=$(dns_query "$RK_CHILD" 10.0.2.3 host.slirpnetd.test)
  rk_check "NOERROR 192.0.2.53" "$out" "A host.slirpnetd.test via 10.0.2.3"
}

# check_ports: rootlessctl add-ports / list-ports / remove-ports through the daemon's API.
check_ports() {
  local hport=$((18000 + RK_N)) gport=8080 out id
  NS=$RK_CHILD start_echo tcp-echo 0.0.0.0 "$gport"
  local echo_pid=$BG_PID
  out=$(nettool host tcp-check 127.0.0.1 "$hport" --timeout 2)
  [[ $out == ERROR* ]] || rk_fail "127.0.0.1:$hport answered before add-ports: $out"
  out=$(as_user timeout 10 rootlessctl --socket "$RK_STATE/api.sock" add-ports \
    "127.0.0.1:$hport:$gport/tcp" 2>&1) || rk_fail "rootlessctl add-ports failed: $out"
  [[ $out =~ ^[0-9]+$ ]] || rk_fail "rootlessctl add-ports: expected a port id, got: $out"
  id=$out
  out=$(as_user timeout 10 rootlessctl --socket "$RK_STATE/api.sock" list-ports 2>&1) ||
    rk_fail "rootlessctl list-ports failed: $out"
  [[ $out =~ (^|$'\n')${id}[[:space:]]+tcp[[:space:]]+127\.0\.0\.1[[:space:]]+${hport}[[:space:]]+([^[:space:]]+[[:space:]]+)?${gport}[[:space:]] ]] ||
    rk_fail "list-ports does not show port $id (127.0.0.1:$hport -> $gport/tcp): $out"
  out=$(nettool host tcp-check 127.0.0.1 "$hport" --bytes 100000 --timeout 5)
  rk_check "OK 100000 bytes" "$out" "host 127.0.0.1:$hport -> child :$gport after add-ports"
  out=$(as_user timeout 10 rootlessctl --socket "$RK_STATE/api.sock" remove-ports "$id" 2>&1) ||
    rk_fail "rootlessctl remove-ports $id failed: $out"
  out=$(as_user timeout 10 rootlessctl --socket "$RK_STATE/api.sock" list-ports 2>&1) ||
    rk_fail "rootlessctl list-ports failed: $out"
  [[ ! $out =~ (^|$'\n')${id}[[:space:]] ]] || rk_fail "list-ports still shows port $id: $out"
  out=$(nettool host tcp-check 127.0.0.1 "$hport" --timeout 2)
  [[ $out == ERROR* ]] || rk_fail "127.0.0.1:$hport still answers after remove-ports: $out"
  kill_tree "$echo_pid"
}

# stop_rk HOW(child-exit|TERM|KILL): ends RootlessKit, then expects every slirp process and every
# process of the test user gone.
stop_rk() {
  case $1 in
    child-exit) touch "$RK_STOP" ;;
    *) kill "-$1" "$RK_PID" ;;
  esac
  wait_exit "$RK_PID" 10 || rk_fail "rootlesskit still running $((10 * TS)) s after $1"
  [[ $1 != child-exit ]] || rk_check 0 "$EXIT_STATUS" "rootlesskit exit status after its child exited"
  expect_none slirp_pids "[$RK_NAME] slirp process(es) after rootlesskit ended ($1)"
  expect_none user_pids "[$RK_NAME] processes of the test user after rootlesskit ended ($1)"
}

# 1. Defaults: no sandbox; ends when its child exits.
start_rk default
rk_check "$TEST_UID" "$(stat -c %u "/proc/$SLIRP_PID")" "slirp process uid"
check_network yes
check_ports
stop_rk child-exit

# 2. Sandbox and seccomp; RootlessKit killed with SIGKILL (its Pdeathsig SIGKILLs the daemon).
start_rk sandbox --slirp4netns-sandbox=true --slirp4netns-seccomp=true
status=$(cat "/proc/$SLIRP_PID/status")
[[ $status =~ Seccomp:[[:space:]]+2 ]] || rk_fail "the slirp process has no seccomp filter: $(grep Seccomp <<<"$status")"
[[ $(readlink "/proc/$SLIRP_PID/ns/mnt") != $(readlink /proc/self/ns/mnt) ]] ||
  rk_fail "the sandboxed slirp process is still in our mount namespace"
check_network yes
check_ports
stop_rk KILL

# 3. --disable-host-loopback; RootlessKit stopped with SIGTERM.
start_rk noloopback --disable-host-loopback
args=$(tr '\0' ' ' <"/proc/$SLIRP_PID/cmdline")
[[ $args == *--disable-host-loopback* ]] || rk_fail "rootlesskit did not pass --disable-host-loopback: $args"
check_network no
check_ports
stop_rk TERM
pass

# shellcheck shell=bash
# tests/integration/clients_lib.sh: helpers for the real-client tests (t_rootlesskit.sh,
# t_podman.sh). Source it after lib.sh, i.e. inside the hermetic namespaces lib.sh sets up.
#
# setup_test_user creates an unprivileged test user *without touching the host*: it writes copies
# of /etc/passwd, /etc/group, /etc/subuid and /etc/subgid with the user and its subordinate id
# ranges added, and bind-mounts them over the originals in the test's private mount namespace
# (setuid newuidmap/newgidmap, run from here, read the copies). It also bind-mounts a 0666 copy of
# /dev/net/tun (0600 on some hosts; the host's node is untouched) and installs a copy of the binary
# under test that the user can read: $SLIRPNETD then names the copy.
#
# The packages these tests need are installed by scripts/deps.sh.

[[ -z ${SLIRPNETD_OUTER_USERNS:-} ]] || skip "needs real root (bind mounts over /etc, mknod, setpriv)"

TEST_USER=slirptest
TEST_UID=54321
TEST_GID=54321
SUBID_START=200000
SUBID_COUNT=65536
USER_HOME=$TMP/home
USER_RUN=$TMP/xdg-run

# require_cmds CMD...: skips the test when a client is missing (lib.sh's skip: status 77, which
# CTest reports as skipped). scripts/deps.sh installs them all.
require_cmds() {
  local c missing=()
  for c in "$@"; do command -v "$c" >/dev/null || missing+=("$c"); done
  ((${#missing[@]} == 0)) || skip "missing ${missing[*]} (run scripts/deps.sh)"
}

setup_test_user() {
  mkdir -m 0755 "$TMP/etc"
  local f
  for f in passwd group subuid subgid; do
    # Never create host files: the shadow tools (uidmap's dependency) ship all four.
    [[ -e /etc/$f ]] || fail "/etc/$f is missing (run scripts/deps.sh)"
    # Copies without any entry of our name (or, in passwd/group, our id), then ours added.
    sed -e "/^$TEST_USER:/d" "/etc/$f" >"$TMP/etc/$f"
  done
  sed -i "/^[^:]*:[^:]*:$TEST_UID:/d" "$TMP/etc/passwd"
  sed -i "/^[^:]*:[^:]*:$TEST_GID:/d" "$TMP/etc/group"
  echo "$TEST_USER:x:$TEST_UID:$TEST_GID:slirpnetd test:$USER_HOME:/bin/sh" >>"$TMP/etc/passwd"
  echo "$TEST_USER:x:$TEST_GID:" >>"$TMP/etc/group"
  echo "$TEST_USER:$SUBID_START:$SUBID_COUNT" >>"$TMP/etc/subuid"
  echo "$TEST_USER:$SUBID_START:$SUBID_COUNT" >>"$TMP/etc/subgid"
  for f in passwd group subuid subgid; do
    chmod 0644 "$TMP/etc/$f"
    mount --bind "$TMP/etc/$f" "/etc/$f"
  done

  mknod -m 666 "$TMP/tun" c 10 200
  mount --bind "$TMP/tun" /dev/net/tun

  install -d -m 0700 -o "$TEST_UID" -g "$TEST_GID" "$USER_HOME" "$USER_RUN"
  # The build tree may not be readable by the test user: run a 0755 copy (a wrapper script keeps
  # its name and refers to its own absolute paths).
  mkdir -m 0755 "$TMP/bin"
  install -m 0755 "$SLIRPNETD" "$TMP/bin/"
  SLIRPNETD=$TMP/bin/$(basename "$SLIRPNETD")
  install -m 0644 "$NETTOOL" "$DNSD" "$TMP/bin/"
  NETTOOL=$TMP/bin/nettool.py
  DNSD=$TMP/bin/dnsd.py
}

# as_user CMD...: runs CMD as the test user with a clean login-like environment. USER_CMD is the
# same prefix as an array, for start_bg (so that $BG_PID is the command's own PID).
USER_ENV=()
user_cmd() {
  USER_CMD=(setpriv --reuid="$TEST_UID" --regid="$TEST_GID" --init-groups --inh-caps=-all
    env -i HOME="$USER_HOME" USER="$TEST_USER" LOGNAME="$TEST_USER"
    PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin XDG_RUNTIME_DIR="$USER_RUN" "${USER_ENV[@]}")
}
as_user() {
  user_cmd
  "${USER_CMD[@]}" "$@"
}

# slirp_pids: the PIDs (in this pid namespace) of every process running the binary under test or
# any slirp4netns/slirpnetd binary, wrapper scripts included (argv[0] or argv[1] naming one).
slirp_pids() {
  local d pid args base_under_test a
  local -a argv
  base_under_test=$(basename "$SLIRPNETD")
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [[ $pid != "$$" && $pid != "$BASHPID" ]] || continue
    alive "$pid" || continue
    args=$(tr '\0' ' ' 2>/dev/null <"$d/cmdline") || continue
    read -r -a argv <<<"$args" || true
    for a in "${argv[@]:0:2}"; do
      case $(basename -- "$a" 2>/dev/null) in
        slirp4netns | slirpnetd | "$base_under_test") echo "$pid"; break ;;
      esac
    done
  done
}

# user_pids: the PIDs of every live process owned by the test user (any of its uids).
user_pids() {
  local d
  for d in /proc/[0-9]*; do
    alive "${d#/proc/}" || continue
    [[ $(stat -c %u "$d" 2>/dev/null) == "$TEST_UID" ]] && echo "${d#/proc/}"
  done
  return 0
}

# audit_hint: the kernel's recent seccomp kills (audit type 1326) of binaries under $TMP, if the
# log is readable: a daemon killed by its own filter shows up here with the syscall number.
audit_hint() {
  local lines
  lines=$(dmesg 2>/dev/null | grep 'type=1326' | grep -F "$TMP/" | tail -n 3) || true
  [[ -z $lines ]] || echo "---- kernel audit: seccomp kills under $TMP ----"$'\n'"$lines" >&2
}

# describe_pids PID...: one "pid: cmdline" line each, for failure messages.
describe_pids() {
  local pid
  for pid in "$@"; do
    echo "$pid: $(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" || true)"
  done
}

# expect_none LISTER WHAT [TIMEOUT_S]: waits until the function LISTER (slirp_pids, user_pids)
# prints no PID (a killed process takes a moment to be reaped); fails naming what is left.
expect_none() {
  local lister=$1 what=$2 timeout=$((${3:-5} * TS)) deadline left
  deadline=$((SECONDS + timeout))
  while :; do
    left=$($lister)
    [[ -z $left ]] && return 0
    ((SECONDS < deadline)) || fail "$what: still running after $timeout s: $(describe_pids $left)"
    sleep 0.1
  done
}

# kill_tree PID: SIGKILLs PID's descendants (by PID, children first), then PID itself. For
# start_bg of a shell function (e.g. in_ns), whose PID is a subshell with the real program below.
kill_tree() {
  local child
  # shellcheck disable=SC2013 # one PID per word
  for child in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
    kill_tree "$child"
  done
  kill_quietly "$1"  # also reaps it when it is our child
}

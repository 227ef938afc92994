#!/usr/bin/env bash
# Shared launcher for perf/bench.sh, perf/profile.sh and perf/scale.sh.
#
#   run.sh MODE [ARGS...]      MODE = bench | profile | scale
#
# Outside the sandbox: installs the Debian packages it needs (if missing), compiles
# perf/tools/nettool.cpp, then re-executes itself inside fresh network, mount and PID
# namespaces. Inside: brings lo up, hides the host's resolver behind a resolv.conf naming
# 127.0.0.1, mounts a private tmpfs work dir and runs the mode's program (lib/bench.py,
# lib/profile_daemon.py or lib/scale.py, over the shared harness lib/netbench.py) with ARGS.
# No packet can leave: the outer namespace has only lo (plus the links the driver creates
# itself), and every server listens on loopback or inside a namespace we created.
set -euo pipefail

PERF_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODE="${1:?usage: run.sh bench|profile|scale [ARGS...]}"
shift

if [[ "${NETBENCH_INNER:-}" != 1 ]]; then
    if [[ $(id -u) != 0 ]]; then
        echo "perf: must run as root (creates namespaces, taps and veths)" >&2
        exit 1
    fi
    # command -> Debian package
    declare -A need=([slirp4netns]=slirp4netns [pasta]=passt [iperf3]=iperf3 [gnuplot]=gnuplot-nox
                     [g++]=g++ [unshare]=util-linux [nsenter]=util-linux [ip]=iproute2 [python3]=python3)
    [[ "$MODE" == profile ]] && need[perf]=linux-perf
    missing=()
    for cmd in "${!need[@]}"; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
    done
    if ((${#missing[@]})); then
        mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
        echo "perf: installing ${missing[*]} from Debian" >&2
        if ! apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
            apt-get update >/dev/null 2>&1 || true
            # iperf3's postinst asks whether to start a daemon; keep it non-interactive.
            DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2 || {
                [[ "$MODE" == profile ]] && echo "perf: continuing; profile.sh falls back to valgrind" >&2
            }
        fi
    fi

    mkdir -p "$PERF_DIR/.build"
    tool="$PERF_DIR/.build/nettool"
    if [[ ! -x "$tool" || "$PERF_DIR/tools/nettool.cpp" -nt "$tool" ]]; then
        g++ -O2 -std=c++17 -Wall -Wextra -Wshadow -o "$tool.tmp" "$PERF_DIR/tools/nettool.cpp"
        mv "$tool.tmp" "$tool"
    fi

    # Resolve the daemon under test now, with the caller's working directory.
    if [[ -z "${SLIRPNETD:-}" ]]; then
        [[ -x "$PERF_DIR/../build/slirpnetd" ]] && SLIRPNETD="$(readlink -f "$PERF_DIR/../build/slirpnetd")"
    fi
    [[ -n "${SLIRPNETD:-}" && -e "$SLIRPNETD" ]] && SLIRPNETD="$(readlink -f "$SLIRPNETD")"
    export SLIRPNETD="${SLIRPNETD:-}"
    # The opt-in contender slirpnetd-system: slirpnetd linked with Debian's libslirp.
    if [[ -z "${SLIRPNETD_SYSTEM:-}" && -x "$PERF_DIR/../build-system/slirpnetd" ]]; then
        SLIRPNETD_SYSTEM="$PERF_DIR/../build-system/slirpnetd"
    fi
    [[ -n "${SLIRPNETD_SYSTEM:-}" && -e "$SLIRPNETD_SYSTEM" ]] && SLIRPNETD_SYSTEM="$(readlink -f "$SLIRPNETD_SYSTEM")"
    export SLIRPNETD_SYSTEM="${SLIRPNETD_SYSTEM:-}"
    export NETBENCH_INNER=1
    # --kill-child: if this shell dies, the whole PID namespace (every daemon, server and
    # client we started) is killed with it.
    exec unshare --net --mount --pid --fork --kill-child --mount-proc \
        bash "${BASH_SOURCE[0]}" "$MODE" "$@"
fi

# ------------------------------------------------------------------ inside the sandbox
# One compound command: bash parses it whole, so editing this file mid-run cannot break it.
{
mount --make-rprivate /
work="$PERF_DIR/.build/work.$$"
mkdir -p "$work"
mount -t tmpfs -o size=512m netbench "$work"
printf 'nameserver 127.0.0.1\n' > "$work/resolv.conf"
mount --bind "$work/resolv.conf" /etc/resolv.conf
ip link set lo up
# Many short connections in a row (crr, scale): allow quick reuse of TIME_WAIT ports.
# Ephemeral ports stay >= 32768: the forwarded host ports (20000-30999) must never be taken.
sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="32768 65000" 2>/dev/null || true
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

status=0
case "$MODE" in
    bench) program=bench.py ;;
    profile) program=profile_daemon.py ;;
    scale) program=scale.py ;;
    *) echo "perf: unknown mode $MODE" >&2; exit 2 ;;
esac
timeout --kill-after=10 "${NETBENCH_TIMEOUT:-3600}" python3 "$PERF_DIR/lib/$program" --work "$work" --perf-dir "$PERF_DIR" "$@" || status=$?
umount "$work" 2>/dev/null || true
rmdir "$work" 2>/dev/null || true
exit "$status"
}

#!/usr/bin/env python3
"""The shared harness of perf/bench.sh, perf/profile.sh and perf/scale.sh (lib/bench.py,
lib/profile_daemon.py, lib/scale.py): processes, sessions (one contender in a fresh namespace),
the throughput and request/response clients, the environment and the option parsing they share.

Runs only inside the sandbox that perf/lib/run.sh creates (private net, mount and PID
namespaces); the programs refuse to start anywhere else. See perf/README.md for the metrics.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

from apiclient import api

CLK_TCK = os.sysconf("SC_CLK_TCK")
BASELINE = "slirp4netns"
ALL_CONTENDERS = ["slirpnetd", "slirpnetd-splice", "slirpnetd-system", "slirp4netns", "pasta", "pasta-splice", "veth"]
DEFAULT_CONTENDERS = ["slirpnetd", "slirpnetd-splice", "slirp4netns", "pasta", "veth"]
# Contenders that differ from another one only in the host -> namespace port forward: they run
# just the tests through it (tput/rr/crr host2ns-fwd); namespace -> host is the other's path.
FWD_ONLY = {"slirpnetd-splice": "slirpnetd"}

# Ports. Host side (outer netns): iperf3 and the echo server. Namespace side: the same pair.
HOST_IPERF, HOST_ECHO = 5201, 5202
NS_IPERF, NS_ECHO = 5301, 5302
SCALE_PORT = 5203

GUEST_IP, GATEWAY = "10.0.2.100", "10.0.2.2"          # slirp and pasta (template interface)
VETH_HOST_IP, VETH_NS_IP = "10.0.3.2", "10.0.3.100"  # veth pair


def log(msg):
    print(f"[netbench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class NotAvailable(Exception):
    """A contender that cannot run in this configuration; reported as n/a with the reason."""


# ------------------------------------------------------------------------------ processes
class Proc:
    """A started process, stopped (TERM, then KILL) by stop(); output goes to a log file."""

    def __init__(self, argv, logpath, **kw):
        self.argv = argv
        self.logpath = logpath
        self._log = open(logpath, "ab")
        self.p = subprocess.Popen(argv, stdout=kw.pop("stdout", self._log), stderr=self._log,
                                  stdin=subprocess.DEVNULL, **kw)
        self.pid = self.p.pid

    def alive(self):
        return self.p.poll() is None

    def stop(self, grace=3.0):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(grace)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self._log.close()

    def tail(self, n=15):
        try:
            with open(self.logpath, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""


def run(argv, timeout, check=True, **kw):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} failed ({r.returncode}): {r.stderr.decode(errors='replace').strip()}")
    return r


def proc_cpu_s(pid):
    """utime+stime of the whole process (all threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_mem_kb(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0])
    return out


def count_fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def listening(pid_in_netns, port):
    """True when a TCP socket listens on `port` in the netns of `pid_in_netns`."""
    for name in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid_in_netns}/net/{name}") as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                        return True
        except OSError:
            pass
    return False


def wait_for(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


def api_call(sock_path, req, timeout=10):
    return api(sock_path, req, timeout)


def add_hostfwd(sock_path, host_port, guest_port, host_addr="127.0.0.1", mode=None):
    fwd = {"proto": "tcp", "host_addr": host_addr, "host_port": host_port, "guest_addr": "", "guest_port": guest_port}
    if mode:
        fwd["mode"] = mode  # slirpnetd extension: "splice" (src/fwd)
    return api_call(sock_path, {"execute": "add_hostfwd", "arguments": fwd})


# ------------------------------------------------------------------------------ sessions
class Session:
    """One contender at one MTU: a fresh container netns, its network provider, and servers.

    ns_target: address a client inside the namespace uses for the host's servers.
    host_bind: address the host-side servers listen on.
    fwd: {"iperf"|"echo": (addr, port, bind_src or None)} how a host client reaches the
         namespace's servers (through the provider's port forward, or directly for veth).
    """

    counter = 0

    def __init__(self, env, name, mtu):
        Session.counter += 1
        self.idx = Session.counter
        self.env, self.name, self.mtu = env, name, mtu
        self.procs = []
        self.daemon = None
        self.holder = None
        self.mem_idle = {}
        self.notes = []

    # -- helpers
    def logf(self, what):
        return os.path.join(self.env.work, f"s{self.idx}-{self.name}-{what}.log")

    def ns(self, argv):
        return ["nsenter", "-t", str(self.holder.pid), "-n", "--"] + list(argv)

    def spawn(self, argv, what, in_ns=False):
        p = Proc(self.ns(argv) if in_ns else argv, self.logf(what))
        self.procs.append(p)
        return p

    def ns_run(self, argv, timeout=10):
        return run(self.ns(argv), timeout)

    # -- lifecycle
    def start(self):
        self.holder = Proc(["unshare", "--net", "sleep", "86400"], self.logf("holder"))
        wait_for(lambda: os.readlink(f"/proc/{self.holder.pid}/ns/net") != os.readlink("/proc/self/ns/net"),
                 5, "container netns")
        self.ns_run(["ip", "link", "set", "lo", "up"])
        # Same TIME_WAIT relief as in the outer namespace (the crr test opens many connections).
        self.ns_run(["sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1", "net.ipv4.ip_local_port_range=32768 65000"])
        getattr(self, "_start_" + self.name.replace("-", "_"))()
        # Servers: host side, then namespace side.
        self.spawn(["iperf3", "-s", "-B", self.host_bind, "-p", str(HOST_IPERF)], "host-iperf3")
        self.spawn([self.env.tool, "serve", self.host_bind, str(HOST_ECHO)], "host-echo")
        self.spawn(["iperf3", "-s", "-p", str(NS_IPERF)], "ns-iperf3", in_ns=True)
        self.spawn([self.env.tool, "serve", "0.0.0.0", str(NS_ECHO)], "ns-echo", in_ns=True)
        for port in (HOST_IPERF, HOST_ECHO):
            wait_for(lambda: listening(os.getpid(), port), 5, f"host server :{port}")
        for port in (NS_IPERF, NS_ECHO):
            wait_for(lambda: listening(self.holder.pid, port), 5, f"namespace server :{port}")
        if self.daemon:
            self.mem_idle = proc_mem_kb(self.daemon.pid)

    def stop(self):
        for p in reversed(self.procs):
            p.stop()
        if self.holder:
            self.holder.stop()
        if os.path.ismount(self.ns_path()):
            subprocess.run(["umount", self.ns_path()], timeout=10)

    def fwd_base(self):
        """Host ports for this session's forwards: 20000-28999, below the ephemeral range."""
        return 20000 + 10 * (self.idx % 900)

    def ns_path(self):
        return os.path.join(self.env.work, f"netns-{self.idx}")

    def daemon_alive(self):
        if self.daemon and not self.daemon.alive():
            raise RuntimeError(f"{self.name} daemon exited ({self.daemon.p.returncode}): {self.daemon.tail()}")

    def _wait_tap(self, ifname, addr):
        def ready():
            self.daemon_alive()
            r = subprocess.run(self.ns(["ip", "-4", "-o", "addr", "show", "dev", ifname]),
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=5)
            return f"inet {addr}/" in r.stdout.decode()
        wait_for(ready, 15, f"{ifname} configured with {addr}")

    # -- providers
    def _start_slirp(self, binary, splice=False):
        if not binary or not os.access(binary, os.X_OK):
            raise NotAvailable(f"binary not found ({binary or 'set SLIRPNETD'})")
        sock = os.path.join(self.env.work, f"api-{self.idx}.sock")
        extra = os.environ.get("SLIRPNETD_ARGS", "").split() if binary == self.env.slirpnetd else []
        self.daemon = self.spawn([binary, "-c", "--mtu", str(self.mtu), "-a", sock] + extra
                                 + (["--splice"] if splice else []) + [str(self.holder.pid), "tap0"], "daemon")
        self._wait_tap("tap0", GUEST_IP)
        wait_for(lambda: os.path.exists(sock), 10, "API socket")
        self.api_sock = sock
        base = self.fwd_base()
        for i, guest in enumerate((NS_IPERF, NS_ECHO)):
            reply = add_hostfwd(sock, base + i, guest, mode="splice" if splice else None)
            if "return" not in reply:
                raise RuntimeError(f"add_hostfwd failed: {reply}")
        self.host_bind, self.ns_target = "127.0.0.1", GATEWAY
        self.fwd = {"iperf": ("127.0.0.1", base, None), "echo": ("127.0.0.1", base + 1, None)}

    def _start_slirpnetd(self):
        self._start_slirp(self.env.slirpnetd)

    def _start_slirpnetd_splice(self):
        # The same daemon with --splice; the forwards are "mode":"splice" (src/fwd: splice(2)
        # between the host socket and one opened inside the container, no libslirp involved).
        self._start_slirp(self.env.slirpnetd, splice=True)

    def _start_slirpnetd_system(self):
        # slirpnetd built with -DSLIRPNETD_LIBSLIRP=system (Debian's libslirp 4.7, no window
        # scaling): the A/B of the bundled libslirp's patches, same pipeline otherwise.
        self._start_slirp(self.env.slirpnetd_system)

    def _start_slirp4netns(self):
        self._start_slirp(shutil.which("slirp4netns"))

    def _start_pasta_common(self, splice):
        if not shutil.which("pasta"):
            raise NotAvailable("pasta not installed (Debian package passt)")
        if splice and self.mtu != self.env.mtus[0]:
            raise NotAvailable("L4 splice path does not use the tap: MTU-independent, measured once")
        # pasta drops to a sandbox user namespace before joining the target, so it cannot open
        # /proc/PID/ns/net of a root process: give it a bind-mounted nsfs file instead.
        path = self.ns_path()
        open(path, "w").close()
        run(["mount", "--bind", f"/proc/{self.holder.pid}/ns/net", path], 5)
        base = self.fwd_base()
        fwd = f"{base}:{NS_IPERF},{base + 1}:{NS_ECHO}"
        argv = ["pasta", "--config-net", "-f", "-q", "-4", "--runas", "0:0", "-I", "tap0",
                "-m", str(self.mtu), "-t", fwd, "-u", "none", "-U", "none"]
        argv += ["-T", f"{HOST_IPERF},{HOST_ECHO}"] if splice else ["-T", "none"]
        self.daemon = self.spawn(argv + ["--netns", path], "daemon")
        self._wait_tap("tap0", GUEST_IP)
        self.ns_run(["ip", "link", "set", "tap0", "mtu", str(self.mtu)])
        try:
            wait_for(lambda: self.daemon_alive() or (listening(os.getpid(), base) and listening(os.getpid(), base + 1)),
                     10, "pasta forwards")
        except RuntimeError as e:
            raise RuntimeError(f"{e}; pasta log: {self.daemon.tail(5)}") from None
        self.host_bind = "127.0.0.1"
        if splice:
            wait_for(lambda: listening(self.holder.pid, HOST_IPERF), 10, "pasta -T listeners")
            # ns loopback -> host loopback and host loopback -> ns: pasta's spliced L4 path.
            self.ns_target = "127.0.0.1"
            self.fwd = {"iperf": ("127.0.0.1", base, None), "echo": ("127.0.0.1", base + 1, None)}
        else:
            # Tap path. The gateway is mapped to the host's loopback. Host -> ns connections
            # from loopback would be spliced, so the client binds the template address.
            self.ns_target = GATEWAY
            self.fwd = {"iperf": (GUEST_IP, base, GUEST_IP), "echo": (GUEST_IP, base + 1, GUEST_IP)}

    def _start_pasta(self):
        self._start_pasta_common(splice=False)

    def _start_pasta_splice(self):
        self._start_pasta_common(splice=True)

    def _start_veth(self):
        host_if = f"vh{self.idx}"
        run(["ip", "link", "add", host_if, "mtu", str(self.mtu), "type", "veth", "peer", "name", "tap0",
             "mtu", str(self.mtu), "netns", str(self.holder.pid)], 5)
        run(["ip", "addr", "add", f"{VETH_HOST_IP}/24", "dev", host_if], 5)
        run(["ip", "link", "set", host_if, "up"], 5)
        self.ns_run(["ip", "addr", "add", f"{VETH_NS_IP}/24", "dev", "tap0"])
        self.ns_run(["ip", "link", "set", "tap0", "up"])
        self.host_bind, self.ns_target = VETH_HOST_IP, VETH_HOST_IP
        self.fwd = {"iperf": (VETH_NS_IP, NS_IPERF, None), "echo": (VETH_NS_IP, NS_ECHO, None)}
        # The outer end disappears with the namespace; wait_for in the next veth session's
        # address add would fail on a duplicate 10.0.3.2 otherwise.
        self.notes.append("kernel path: no daemon, CPU/RSS n/a")

    def stop_veth_link(self):
        subprocess.run(["ip", "link", "del", f"vh{self.idx}"], stderr=subprocess.DEVNULL, timeout=10)


# ------------------------------------------------------------------------------ tests
def cpu_now(sess):
    return proc_cpu_s(sess.daemon.pid) if sess.daemon else None


def run_client(sess, argv, timeout, what):
    """Runs a client that prints one JSON object; returns it and the daemon CPU seconds spent
    meanwhile (None without a daemon). Raises with the client's stderr when it gave no JSON or
    reported an error."""
    c0 = cpu_now(sess)
    r = run(argv, timeout, check=False)
    c1 = cpu_now(sess)
    try:
        out = json.loads(r.stdout.decode())
    except ValueError:
        raise RuntimeError(f"{what} gave no JSON (rc {r.returncode}): {r.stderr.decode(errors='replace')[-300:]}")
    if "error" in out:
        raise RuntimeError(f"{what}: {out['error']}")
    return out, (None if c0 is None else c1 - c0)


def run_tput(sess, args, params):
    d = params["dir"]
    base = ["iperf3", "-J", "--connect-timeout", "3000", "-t", str(args.duration), "-P", str(params["P"])]
    if d.startswith("ns2host"):
        argv = sess.ns(base + ["-c", sess.ns_target, "-p", str(HOST_IPERF)] + (["-R"] if d.endswith("-R") else []))
    else:
        addr, port, bind = sess.fwd["iperf"]
        argv = base + ["-c", addr, "-p", str(port)] + (["-B", bind] if bind else [])
    out, cpu = run_client(sess, argv, args.duration + 20, "iperf3")
    recv = out["end"]["sum_received"]
    m = {"gbps": recv["bits_per_second"] / 1e9, "bytes": recv["bytes"],
         "retransmits": out["end"].get("sum_sent", {}).get("retransmits")}
    if cpu is not None and recv["bytes"] > 0:
        m["cpu_s_per_gb"] = cpu / (recv["bytes"] / 1e9)
        m["cpu_util"] = cpu / recv["seconds"]
    return m


def run_rr(sess, args, kind, params):
    d = params["dir"]
    tool = [sess.env.tool, kind]
    if d == "ns2host":
        argv = sess.ns(tool + [sess.ns_target, str(HOST_ECHO), str(args.rr_seconds)])
    else:
        addr, port, bind = sess.fwd["echo"]
        argv = tool + [addr, str(port), str(args.rr_seconds)] + (["--bind", bind] if bind else [])
    if kind == "rr":
        argv += ["--size", "64"]
    out, cpu = run_client(sess, argv, args.rr_seconds + 20, f"nettool {kind}")
    n = out["transactions"] if kind == "rr" else out["connections"]
    if n == 0:
        raise RuntimeError(f"nettool {kind}: no successful transaction: {out}")
    m = {"p50_us": out["p50_us"], "p99_us": out["p99_us"], "errors": out["errors"]}
    m["tps" if kind == "rr" else "cps"] = out["tps" if kind == "rr" else "cps"]
    if cpu is not None:
        m["cpu_us_per_op"] = cpu / n * 1e6
    return m


# ------------------------------------------------------------------------------ environment
class Env:
    def __init__(self, args):
        self.args = args
        self.work = args.work
        self.perf_dir = args.perf_dir
        self.tool = os.path.join(args.perf_dir, ".build", "nettool")
        self.slirpnetd = os.environ.get("SLIRPNETD", "")
        self.slirpnetd_system = os.environ.get("SLIRPNETD_SYSTEM", "")
        self.mtus = args.mtus

    def setup_outer(self):
        """The outer namespace: lo plus a reader-less tap that pasta copies its addresses from.

        pasta needs a 'template' interface with an IPv4 address and a default route in the
        namespace it runs in; with only lo it exits with 'External interface not usable'. A tap
        device with no reader attached drops whatever is routed to it, so nothing can leave.
        """
        r = subprocess.run(["ip", "-o", "link", "show"], stdout=subprocess.PIPE, timeout=5)
        links = [line.split(":")[1].strip() for line in r.stdout.decode().splitlines()]
        if links != ["lo"] and "tmpl0" not in links:
            sys.exit(f"netbench: outer namespace is not private (links: {links}); run through perf/*.sh")
        if "tmpl0" not in links:
            run(["ip", "tuntap", "add", "tmpl0", "mode", "tap"], 5)
            run(["ip", "addr", "add", f"{GUEST_IP}/24", "dev", "tmpl0"], 5)
            run(["ip", "link", "set", "tmpl0", "up"], 5)
            run(["ip", "route", "add", "default", "via", GATEWAY, "dev", "tmpl0"], 5)


def shown_path(env, path):
    """A path for the committed results: relative to the repository when it is inside it, so
    they name no directory of one machine."""
    if not path:
        return path
    repo = os.path.dirname(os.path.abspath(env.perf_dir))
    rel = os.path.relpath(os.path.abspath(path), repo)
    return path if rel.startswith("..") else rel


def versions(env):
    def first_line(argv):
        try:
            r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=5)
            return r.stdout.decode(errors="replace").strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "unknown"

    def deb(pkg):
        r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, timeout=5)
        return r.stdout.decode() or "unknown"
    return {
        "slirpnetd": {"path": shown_path(env, env.slirpnetd), "version": first_line([env.slirpnetd, "--version"]) if env.slirpnetd else "n/a"},
        "slirpnetd-splice": {"path": shown_path(env, env.slirpnetd), "version": "same binary, --splice, forwards \"mode\":\"splice\""},
        "slirpnetd-system": {"path": shown_path(env, env.slirpnetd_system),
                             "version": first_line([env.slirpnetd_system, "--version"]) + " (system libslirp)"
                             if env.slirpnetd_system else "n/a"},
        "slirp4netns": {"path": shutil.which("slirp4netns"), "version": "Debian " + deb("slirp4netns")},
        "pasta": {"path": shutil.which("pasta"), "version": "Debian passt " + deb("passt")},
        "pasta-splice": {"path": shutil.which("pasta"), "version": "Debian passt " + deb("passt")},
        "veth": {"path": "kernel", "version": os.uname().release},
        "iperf3": deb("iperf3"),
    }


def hermetic_facts():
    r = subprocess.run(["ip", "-o", "link", "show"], stdout=subprocess.PIPE, timeout=5)
    links = sorted({line.split(":")[1].strip().split("@")[0] for line in r.stdout.decode().splitlines()})
    with open("/etc/resolv.conf") as f:
        resolv = f.read().strip()
    return {"outer_links": links, "resolv_conf": resolv, "net_ns": os.readlink("/proc/self/ns/net")}


def fmt(v):
    if v is None:
        return "–"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}" if abs(v) >= 0.1 else f"{v:.3f}"


# ------------------------------------------------------------------------------ entry points
def arg_parser(prog, default_contenders):
    """The options every program takes; each adds its own. perf/lib/run.sh passes --work and
    --perf-dir."""
    ap = argparse.ArgumentParser(prog=prog)
    ap.add_argument("--work", required=True)
    ap.add_argument("--perf-dir", required=True)
    ap.add_argument("--contenders", type=lambda s: s.replace(",", " ").split(), default=list(default_contenders))
    ap.add_argument("--mtus", type=lambda s: [int(x) for x in s.replace(",", " ").split()], default=[1500, 65520])
    ap.add_argument("--duration", type=float, default=5, help="iperf3 -t seconds")
    return ap


def start(ap):
    """Parses the options, checks that we run in perf/lib/run.sh's sandbox, returns (args, Env)."""
    args = ap.parse_args()
    if os.environ.get("NETBENCH_INNER") != "1" or os.getpid() > 200:
        sys.exit(f"{ap.prog}: run me through perf/bench.sh, perf/profile.sh or perf/scale.sh (sandbox)")
    bad = [c for c in args.contenders if c not in ALL_CONTENDERS]
    if bad:
        sys.exit(f"{ap.prog}: unknown contender(s) {bad}; choose from {ALL_CONTENDERS}")
    if args.duration <= 0:
        sys.exit(f"{ap.prog}: --duration must be > 0")
    return args, Env(args)

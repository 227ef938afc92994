#!/usr/bin/env python3
"""Benchmark driver for perf/bench.sh, perf/profile.sh and perf/scale.sh.

Runs only inside the sandbox that perf/lib/run.sh creates (private net, mount and PID
namespaces); it refuses to start anywhere else. See perf/README.md for the metrics.
"""

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import socket
import statistics
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
def test_plan(args, mtu, name=None):
    """[(key, kind, params)] for one MTU: every throughput combination the issue names (three
    directions, 1 and 4 streams) at every MTU; request/response and short connections at the
    first MTU (at every MTU with --full)."""
    if name in FWD_ONLY:
        return [t for t in test_plan(args, mtu) if t[2]["dir"] == "host2ns-fwd"]
    first = mtu == args.mtus[0]
    plan = []
    for direction in ("ns2host", "ns2host-R", "host2ns-fwd"):
        for p in (1, 4):
            plan.append((f"tput/{direction}/P{p}/mtu{mtu}", "tput", {"dir": direction, "P": p}))
    if args.full or first:
        for kind in ("rr", "crr"):
            for direction in ("ns2host", "host2ns-fwd"):
                plan.append((f"{kind}/{direction}/mtu{mtu}", kind, {"dir": direction}))
    if args.only:
        plan = [t for t in plan if re.search(args.only, t[0])]
    return plan


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
        "slirpnetd": {"path": env.slirpnetd, "version": first_line([env.slirpnetd, "--version"]) if env.slirpnetd else "n/a"},
        "slirpnetd-splice": {"path": env.slirpnetd, "version": "same binary, --splice, forwards \"mode\":\"splice\""},
        "slirpnetd-system": {"path": env.slirpnetd_system,
                             "version": first_line([env.slirpnetd_system, "--version"]) + " (system libslirp)"
                             if env.slirpnetd_system else "n/a"},
        "slirp4netns": {"path": shutil.which("slirp4netns"), "version": "Debian " + deb("slirp4netns")},
        "pasta": {"path": shutil.which("pasta"), "version": "Debian passt " + deb("passt")},
        "pasta-splice": {"path": shutil.which("pasta"), "version": "Debian passt " + deb("passt")},
        "veth": {"path": "kernel", "version": os.uname().release},
        "iperf3": deb("iperf3"),
    }


# ------------------------------------------------------------------------------ bench
def bench(args, env):
    env.setup_outer()
    ts = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    outdir = os.path.join(env.perf_dir, "results", ts)
    os.makedirs(outdir, exist_ok=True)
    samples, errors, na = [], [], {}
    load_start = os.getloadavg()
    t_start = time.monotonic()
    order = list(args.contenders)
    for rnd in range(1, args.rounds + 1):
        for mtu in args.mtus:
            for name in order:
                if (name, mtu) in na:
                    continue
                log(f"round {rnd}/{args.rounds} mtu {mtu}: {name}")
                sess = Session(env, name, mtu)
                try:
                    sess.start()
                except NotAvailable as e:
                    na[(name, mtu)] = str(e)
                    log(f"  {name}: n/a: {e}")
                    sess.stop()
                    continue
                except Exception as e:  # noqa: BLE001 - report and go on with the others
                    errors.append({"round": rnd, "contender": name, "mtu": mtu, "test": "start", "error": str(e)})
                    log(f"  {name}: start failed: {e}")
                    sess.stop()
                    continue
                try:
                    for key, kind, params in test_plan(args, mtu, name):
                        try:
                            sess.daemon_alive()
                            m = run_tput(sess, args, params) if kind == "tput" else run_rr(sess, args, kind, params)
                            samples.append({"round": rnd, "contender": name, "test": key, "metrics": m})
                            main = m.get("gbps", m.get("tps", m.get("cps")))
                            log(f"  {key}: {main:.3f}")
                        except Exception as e:  # noqa: BLE001
                            errors.append({"round": rnd, "contender": name, "mtu": mtu, "test": key, "error": str(e)})
                            log(f"  {key}: FAILED: {e}")
                    if sess.daemon and sess.daemon.alive():
                        mem = proc_mem_kb(sess.daemon.pid)
                        samples.append({"round": rnd, "contender": name, "test": f"mem/mtu{mtu}",
                                        "metrics": {"idle_rss_kb": sess.mem_idle.get("VmRSS"),
                                                    "peak_rss_kb": mem.get("VmHWM")}})
                finally:
                    sess.stop()
                    if name == "veth":
                        sess.stop_veth_link()
        order = order[1:] + order[:1]  # rotate who goes first, so drift is spread evenly
    elapsed = time.monotonic() - t_start
    result = {
        "meta": {"timestamp": ts, "elapsed_s": round(elapsed, 1), "kernel": os.uname().release,
                 "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
                 "cpus": os.cpu_count(), "config": {"rounds": args.rounds, "duration_s": args.duration,
                                                    "rr_seconds": args.rr_seconds, "mtus": args.mtus,
                                                    "full": args.full, "quick": args.quick,
                                                    "contenders": args.contenders},
                 "versions": versions(env), "hermetic": hermetic_facts()},
        "not_available": [{"contender": c, "mtu": m, "reason": r} for (c, m), r in na.items()],
        "errors": errors,
        "samples": samples,
    }
    result["summary"] = summarize(samples)
    write_outputs(outdir, result, args)
    log(f"done in {elapsed:.0f}s: {outdir}")
    print(open(os.path.join(outdir, "results.md")).read())


def hermetic_facts():
    r = subprocess.run(["ip", "-o", "link", "show"], stdout=subprocess.PIPE, timeout=5)
    links = sorted({line.split(":")[1].strip().split("@")[0] for line in r.stdout.decode().splitlines()})
    with open("/etc/resolv.conf") as f:
        resolv = f.read().strip()
    return {"outer_links": links, "resolv_conf": resolv, "net_ns": os.readlink("/proc/self/ns/net")}


def summarize(samples):
    """{test: {contender: {metric: {median, min, max, n, ratio}}}}; ratio = median / slirp4netns median."""
    acc = {}
    for s in samples:
        for metric, v in s["metrics"].items():
            if isinstance(v, (int, float)) and metric not in ("bytes", "errors"):
                acc.setdefault(s["test"], {}).setdefault(s["contender"], {}).setdefault(metric, []).append(v)
    out = {}
    for test, per in acc.items():
        for cont, metrics in per.items():
            for metric, vals in metrics.items():
                out.setdefault(test, {}).setdefault(cont, {})[metric] = {
                    "median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}
        base = out[test].get(BASELINE, {})
        for cont, metrics in out[test].items():
            for metric, st in metrics.items():
                b = base.get(metric, {}).get("median")
                st["ratio"] = st["median"] / b if b else None
    return out


# ------------------------------------------------------------------------------ output
TEST_LABEL = {"ns2host": "ns → host", "ns2host-R": "host → ns (-R)", "host2ns-fwd": "host → ns (port fwd)"}


def label(test):
    parts = test.split("/")
    if parts[0] == "tput":
        return f"{TEST_LABEL[parts[1]]}, {parts[2].replace('P', '-P ')}, MTU {parts[3][3:]}"
    if parts[0] in ("rr", "crr"):
        return f"{TEST_LABEL[parts[1]]}, MTU {parts[2][3:]}"
    return f"MTU {parts[1][3:]}"


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


def table(result, prefix, metric, contenders, title, unit, better):
    summ = result["summary"]
    tests = [t for t in summ if t.startswith(prefix + "/")]
    if not tests:
        return ""
    lines = [f"### {title} ({unit}; {better} is better)", "",
             "| test | " + " | ".join(contenders) + " |", "|---" * (len(contenders) + 1) + "|"]
    for t in tests:
        cells = []
        for c in contenders:
            st = summ[t].get(c, {}).get(metric)
            if st is None:
                cells.append("n/a")
                continue
            spread = f" [{fmt(st['min'])}–{fmt(st['max'])}]" if st["n"] > 1 else ""
            ratio = f" ×{st['ratio']:.2f}" if st.get("ratio") is not None and c != BASELINE else ""
            cells.append(f"{fmt(st['median'])}{spread}{ratio}")
        lines.append(f"| {label(t)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n"


def write_outputs(outdir, result, args):
    cont = result["meta"]["config"]["contenders"]
    meta = result["meta"]
    v = meta["versions"]
    md = [f"# slirpnetd benchmark {meta['timestamp']}", "",
          f"{meta['config']['rounds']} round(s), interleaved (round-robin over contenders, one fresh namespace "
          f"per contender and MTU); iperf3 -t {meta['config']['duration_s']} s; request/response "
          f"{meta['config']['rr_seconds']} s; {meta['cpus']} CPUs; kernel {meta['kernel']}; took {meta['elapsed_s']} s.",
          "Cells: median [min–max over rounds] ×ratio to slirp4netns's median.",
          f"Load average (1 min) at start {meta['loadavg_start'][0]:.2f}, at end {meta['loadavg_end'][0]:.2f}"
          + (" — **the machine was busy with other work: expect extra noise.**"
             if max(meta['loadavg_start'][0], meta['loadavg_end'][0]) > 1.0 else "."), "",
          "| contender | binary | version |", "|---|---|---|"]
    for c in cont:
        md.append(f"| {c} | {v[c]['path']} | {v[c]['version']} |")
    md.append("")
    md.append(table(result, "tput", "gbps", cont, "TCP throughput", "Gbit/s", "higher"))
    md.append(table(result, "tput", "cpu_s_per_gb", cont, "Daemon CPU per GB moved", "CPU s/GB", "lower"))
    md.append(table(result, "rr", "tps", cont, "TCP request/response, 64 B", "transactions/s", "higher"))
    md.append(table(result, "rr", "p50_us", cont, "Request/response latency p50", "µs", "lower"))
    md.append(table(result, "rr", "p99_us", cont, "Request/response latency p99", "µs", "lower"))
    md.append(table(result, "rr", "cpu_us_per_op", cont, "Daemon CPU per transaction", "CPU µs", "lower"))
    md.append(table(result, "crr", "cps", cont, "Short connections (connect, 1 B echo, close)", "connections/s", "higher"))
    md.append(table(result, "crr", "p99_us", cont, "Short connection latency p99", "µs", "lower"))
    md.append(table(result, "crr", "cpu_us_per_op", cont, "Daemon CPU per short connection", "CPU µs", "lower"))
    md.append(table(result, "mem", "idle_rss_kb", cont, "Idle RSS after start", "KiB", "lower"))
    md.append(table(result, "mem", "peak_rss_kb", cont, "Peak RSS (VmHWM)", "KiB", "lower"))
    notes = ["## Notes", "",
             "- veth is the kernel path (upper bound): no daemon, so CPU and RSS are n/a; its "
             "\"port fwd\" is a direct connection to the namespace address.",
             "- pasta uses its tap path: the namespace reaches the host through the gateway address, "
             "which pasta maps to the host's loopback; host → namespace connections come from a "
             "non-loopback local address (connections from 127.0.0.1 would take pasta's L4 splice path, "
             "measured separately as pasta-splice when requested).",
             "- slirpnetd-splice is slirpnetd with `--splice` and its port forwards added with "
             "`\"mode\":\"splice\"` (splice(2) between the host socket and a socket opened inside the "
             "container, no libslirp): only the tests through the forward run; its namespace → host "
             "path is slirpnetd's (libslirp), so those cells are n/a.",
             "- slirpnetd-system (when run) is the same slirpnetd built with `-DSLIRPNETD_LIBSLIRP=system`: "
             "Debian's shared libslirp 4.7 instead of the bundled, patched one (no TCP window scaling, "
             "32 KiB segments): the A/B of the libslirp patches."]
    for n in result["not_available"]:
        notes.append(f"- n/a: {n['contender']} at MTU {n['mtu']}: {n['reason']}")
    for e in result["errors"]:
        notes.append(f"- error: round {e['round']} {e['contender']} MTU {e['mtu']} {e['test']}: {e['error']}")
    md.append("\n".join(notes) + "\n")
    text = "\n".join(md)
    with open(os.path.join(outdir, "results.md"), "w") as f:
        f.write(text)
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump(result, f, indent=1)
    chart(outdir, result, cont)
    if args.quick or args.only:  # a smoke test or a subset: keep latest.* pointing at the last real run
        log("--quick: results only in " + outdir + " (latest.* unchanged)")
        return
    results = os.path.dirname(outdir)
    if os.path.exists(os.path.join(results, "latest.png")):
        os.unlink(os.path.join(results, "latest.png"))
    for src, dst in (("results.md", "latest.md"), ("results.json", "latest.json"), ("chart.png", "latest.png")):
        if os.path.exists(os.path.join(outdir, src)):
            shutil.copyfile(os.path.join(outdir, src), os.path.join(results, dst))


def chart(outdir, result, cont):
    summ = result["summary"]
    tests = [t for t in summ if t.startswith("tput/")]
    others = [c for c in cont if c != BASELINE]
    if not tests or not others or BASELINE not in cont or not shutil.which("gnuplot"):
        return
    dat = os.path.join(outdir, "chart.dat")
    with open(dat, "w") as f:
        f.write("test " + " ".join(f'"{c}"' for c in others) + "\n")
        for t in tests:
            vals = []
            for c in others:
                r = summ[t].get(c, {}).get("gbps", {}).get("ratio")
                vals.append(f"{r:.4f}" if r else "NaN")
            f.write(f'"{label(t)}" ' + " ".join(vals) + "\n")
    gp = os.path.join(outdir, "chart.gp")
    plots = ", ".join(f"'{dat}' using {i + 2}:xtic(1) title columnheader({i + 2})" for i in range(len(others)))
    with open(gp, "w") as f:
        f.write(f"""set terminal pngcairo size 1200,640 font ",10"
set output '{os.path.join(outdir, "chart.png")}'
set title "TCP throughput relative to slirp4netns (median of {result['meta']['config']['rounds']} round(s); 1 = slirp4netns)"
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y 2
set yrange [0.0625:*]
set ylabel "throughput / slirp4netns (log2 scale)"
set grid ytics
set xtics rotate by -25 scale 0
set key outside top center horizontal
set bmargin 9
set rmargin 22
set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 2 dt 2 lc rgb "black"
plot {plots}
""")
    r = subprocess.run(["gnuplot", gp], stderr=subprocess.PIPE, timeout=30)
    if r.returncode != 0:
        log(f"gnuplot failed: {r.stderr.decode(errors='replace')}")
        if os.path.exists(os.path.join(outdir, "chart.png")):
            os.unlink(os.path.join(outdir, "chart.png"))


# ------------------------------------------------------------------------------ profile
def profile(args, env):
    env.setup_outer()
    ts = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = os.path.join(env.perf_dir, "results", f"profile-{ts}.txt")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    name = args.contenders[0]
    use_perf = shutil.which("perf") and run(["perf", "record", "-o", os.path.join(env.work, "probe.data"),
                                             "--", "true"], 30, check=False).returncode == 0
    header = [f"# profile of {name} ({env.slirpnetd if name.startswith('slirpnetd') else shutil.which(name)})",
              f"# test: tput ns2host -P {args.streams}, MTU {args.mtus[0]}, {args.duration} s; kernel {os.uname().release}"]
    if not use_perf:
        return profile_callgrind(args, env, name, out, header)
    sess = Session(env, name, args.mtus[0])
    try:
        sess.start()
        data = os.path.join(env.work, "perf.data")
        rec = Proc(["perf", "record", "-g", "-F", "999", "-p", str(sess.daemon.pid), "-o", data],
                   os.path.join(env.work, "perf-record.log"))
        time.sleep(0.5)
        m = run_tput(sess, args, {"dir": args.direction, "P": args.streams})
        rec.p.send_signal(signal.SIGINT)
        rec.p.wait(60)
        rec.stop()
        header.append(f"# result: {m['gbps']:.3f} Gbit/s, {m.get('cpu_s_per_gb', 0):.2f} CPU s/GB")
        report = ["perf", "report", "-i", data, "--stdio"]
        rep_flat = run(report + ["--no-children", "-g", "none", "--percent-limit", "0.5",
                                 "--sort", "dso,symbol"], 300, check=False)
        rep_children = run(report + ["--children", "-g", "none", "--percent-limit", "2",
                                     "--sort", "symbol"], 300, check=False)
        rep = run(report + ["--no-children", "--percent-limit", "2", "--sort", "comm,dso,symbol"], 300, check=False)
    finally:
        sess.stop()
    with open(out, "w") as f:
        f.write("\n".join(header) + "\n\n## 1. self time by DSO and symbol\n\n")
        f.write(rep_flat.stdout.decode(errors="replace"))
        f.write("\n\n## 2. inclusive time (self + callees) by symbol\n\n")
        f.write(rep_children.stdout.decode(errors="replace"))
        f.write("\n\n## 3. call graphs of the hottest symbols (>= 2% self)\n\n")
        f.write(rep.stdout.decode(errors="replace"))
    log(f"wrote {out}")
    print("\n".join(header))
    print(rep_flat.stdout.decode(errors="replace")[:6000])


def profile_callgrind(args, env, name, out, header):
    """Fallback when perf cannot record on this kernel: run the daemon under callgrind."""
    if not shutil.which("valgrind"):
        sys.exit("netbench: neither perf nor valgrind works here; install linux-perf or valgrind")
    binary = env.slirpnetd if name.startswith("slirpnetd") else shutil.which(name)
    cg = os.path.join(env.work, "callgrind.out")
    wrapper = os.path.join(env.work, "vg-wrap.sh")
    with open(wrapper, "w") as f:
        f.write(f"#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file={cg} {binary} \"$@\"\n")
    os.chmod(wrapper, 0o755)
    env.slirpnetd = wrapper
    sess = Session(env, "slirpnetd", args.mtus[0])
    try:
        sess.start()
        m = run_tput(sess, args, {"dir": args.direction, "P": args.streams})
        header.append(f"# callgrind fallback; result under valgrind: {m['gbps']:.3f} Gbit/s")
    finally:
        sess.stop()
    rep = run(["callgrind_annotate", cg], 300, check=False)
    with open(out, "w") as f:
        f.write("\n".join(header) + "\n\n" + rep.stdout.decode(errors="replace"))
    log(f"wrote {out}")


# ------------------------------------------------------------------------------ scale
def scale(args, env):
    env.setup_outer()
    ts = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    report = {"meta": {"timestamp": ts, "connections": args.connections, "forwards": args.forwards,
                       "versions": versions(env), "hermetic": hermetic_facts()}, "results": {}}
    for name in args.contenders:
        if name not in ("slirpnetd", "slirp4netns"):
            log(f"scale: skipping {name} (only the slirp API contenders are scale-tested)")
            continue
        log(f"scale: {name}")
        res = report["results"][name] = {}
        # A fresh daemon per phase, so memory freed by the first phase cannot hide the second's.
        for phase, fn in (("connections", scale_connections), ("forwards", scale_forwards)):
            sess = Session(env, name, 1500)
            try:
                sess.start()
                res[phase] = fn(args, env, sess)
            except Exception as e:  # noqa: BLE001 - report, go on
                res.setdefault("error", []).append(f"{phase}: {e}")
                log(f"  {phase} failed: {e}")
            finally:
                sess.stop()
    outdir = os.path.join(env.perf_dir, "results")
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, f"scale-{ts}.json"), "w") as f:
        json.dump(report, f, indent=1)
    md = scale_md(report)
    with open(os.path.join(outdir, f"scale-{ts}.md"), "w") as f:
        f.write(md)
    print(md)


def scale_connections(args, env, sess):
    pid = sess.daemon.pid
    srv = sess.spawn([env.tool, "serve", "127.0.0.1", str(SCALE_PORT), "--max-seconds", str(args.budget + 60)], "scale-srv")
    wait_for(lambda: listening(os.getpid(), SCALE_PORT), 5, "scale server")
    flag = os.path.join(env.work, f"hold-{sess.idx}")
    open(flag, "w").close()
    before = proc_mem_kb(pid)
    fds_before = count_fds(pid)
    client = subprocess.Popen(sess.ns([env.tool, "hold", GATEWAY, str(SCALE_PORT), str(args.connections),
                                       str(args.budget), "--hold-file", flag, "--budget", str(args.budget)]),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = b""
        end = time.monotonic() + args.budget + 30
        while not line.endswith(b"\n") and time.monotonic() < end and client.poll() is None:
            line += client.stdout.read1(65536) if hasattr(client.stdout, "read1") else client.stdout.readline()
        res = json.loads(line.decode()) if line.strip() else {"error": "client printed nothing"}
        time.sleep(0.5)
        sess.daemon_alive()
        during = proc_mem_kb(pid)
        res["daemon_fds_before"], res["daemon_fds_during"] = fds_before, count_fds(pid)
        res["rss_before_kb"], res["rss_during_kb"] = before.get("VmRSS"), during.get("VmRSS")
        est = res.get("established", 0)
        res["rss_per_conn_kb"] = (during["VmRSS"] - before["VmRSS"]) / est if est else None
    finally:
        os.unlink(flag)
        try:
            client.wait(30)
        except subprocess.TimeoutExpired:
            client.kill()
            client.wait(5)
    time.sleep(1)
    sess.daemon_alive()
    res["rss_after_close_kb"] = proc_mem_kb(pid).get("VmRSS")
    res["peak_rss_kb"] = proc_mem_kb(pid).get("VmHWM")
    # Still forwarding after the storm?
    # Still forwarding after the storm? Give it up to 30 s to drain the closed connections.
    t0 = time.monotonic()
    res["healthy_after"] = False
    while time.monotonic() - t0 < 30:
        if run(sess.ns([env.tool, "rr", GATEWAY, str(HOST_ECHO), "0.2"]), 20, check=False).returncode == 0:
            res["healthy_after"] = True
            res["healthy_after_s"] = round(time.monotonic() - t0, 2)
            break
        time.sleep(1)
    srv.stop()
    log(f"  connections: {res}")
    return res


def scale_forwards(args, env, sess):
    pid = sess.daemon.pid
    before = proc_mem_kb(pid)
    base = 30000
    ok, errs, ids = 0, {}, []
    t0 = time.monotonic()
    for i in range(args.forwards):
        if time.monotonic() - t0 > args.budget:
            errs["budget exceeded"] = args.forwards - i
            break
        try:
            reply = add_hostfwd(sess.api_sock, base + i, NS_ECHO)
        except (OSError, ValueError) as e:
            errs[type(e).__name__ + ": " + str(e)] = errs.get(type(e).__name__ + ": " + str(e), 0) + 1
            continue
        if "return" in reply:
            ok += 1
            ids.append(reply["return"]["id"])
        else:
            d = json.dumps(reply.get("error", reply))
            errs[d] = errs.get(d, 0) + 1
    add_s = time.monotonic() - t0
    sess.daemon_alive()
    after = proc_mem_kb(pid)
    listed = api_call(sess.api_sock, {"execute": "list_hostfwd"})
    # slirp4netns answers {"entries":[...]}; tolerate the documented "return" wrapper too.
    entries = listed.get("entries", listed.get("return", {}).get("entries", []))
    entries = [e for e in entries if e.get("host_port", 0) >= base]  # not the bench's own two
    # Spot-check that forwards work: a short echo through every 100th one.
    probes = list(range(0, ok, max(1, ok // 10)))[:10]
    probe_ok = sum(run([env.tool, "rr", "127.0.0.1", str(base + i), "0.1"], 20, check=False).returncode == 0
                   for i in probes)
    t1 = time.monotonic()
    rm_err = 0
    for fid in ids:
        if "return" not in api_call(sess.api_sock, {"execute": "remove_hostfwd", "arguments": {"id": fid}}):
            rm_err += 1
    res = {"requested": args.forwards, "added": ok, "errors": errs, "add_seconds": round(add_s, 3),
           "listed": len(entries), "probes": len(probes), "probes_ok": probe_ok,
           "removed": len(ids) - rm_err, "remove_errors": rm_err, "remove_seconds": round(time.monotonic() - t1, 3),
           "rss_before_kb": before.get("VmRSS"), "rss_after_kb": after.get("VmRSS"),
           "rss_per_forward_kb": (after["VmRSS"] - before["VmRSS"]) / ok if ok else None,
           "daemon_fds": count_fds(pid)}
    log(f"  forwards: {res}")
    return res


def scale_md(report):
    m = report["meta"]
    lines = [f"# slirpnetd scale test {m['timestamp']}", "",
             f"{m['connections']} concurrent TCP connections namespace → 10.0.2.2 (host loopback server), "
             f"then {m['forwards']} port forwards added through the API.", "",
             "| contender | conns established | failed / timed out / not tried | seconds | RSS per conn (KiB) | daemon fds | "
             "healthy after | fwds added | fwd errors | add s | listed | probes ok | RSS per fwd (KiB) |",
             "|---" * 13 + "|"]
    for name, r in report["results"].items():
        c, f = r.get("connections", {}), r.get("forwards", {})
        lines.append(
            f"| {name} | {c.get('established')} / {c.get('requested')} | "
            f"{c.get('failed')} / {c.get('timed_out')} / {c.get('not_attempted')} | "
            f"{c.get('seconds')} | {fmt(c.get('rss_per_conn_kb'))} | {c.get('daemon_fds_during')} | "
            f"{c.get('healthy_after')} ({c.get('healthy_after_s', '–')} s) | {f.get('added')} / {f.get('requested')} | "
            f"{sum(f.get('errors', {}).values()) if f else '–'} | {f.get('add_seconds')} | {f.get('listed')} | "
            f"{f.get('probes_ok')}/{f.get('probes')} | {fmt(f.get('rss_per_forward_kb'))} |")
    for name, r in report["results"].items():
        kinds = r.get("connections", {}).get("error_kinds")
        if kinds:
            lines.append(f"\n{name} connection errors: {json.dumps(kinds)}")
        if r.get("forwards", {}).get("errors"):
            lines.append(f"\n{name} forward errors: {json.dumps(r['forwards']['errors'])}")
        for e in r.get("error", []):
            lines.append(f"\n{name}: error: {e}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ main
def main():
    ap = argparse.ArgumentParser(prog="netbench")
    ap.add_argument("mode", choices=["bench", "profile", "scale"])
    ap.add_argument("--work", required=True)
    ap.add_argument("--perf-dir", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5, help="iperf3 -t seconds")
    ap.add_argument("--rr-seconds", type=float, default=2, help="request/response and crr seconds")
    ap.add_argument("--mtus", type=lambda s: [int(x) for x in s.replace(",", " ").split()], default=[1500, 65520])
    ap.add_argument("--contenders", type=lambda s: s.replace(",", " ").split(), default=None)
    ap.add_argument("--full", action="store_true", help="request/response tests at every MTU too")
    ap.add_argument("--only", default=None, help="run only the tests whose key matches this regex")
    ap.add_argument("--quick", action="store_true", help="1 round, 2 s, MTU 1500 only")
    ap.add_argument("--streams", type=int, default=1, help="profile: iperf3 -P")
    ap.add_argument("--direction", default="ns2host", choices=["ns2host", "ns2host-R", "host2ns-fwd"], help="profile")
    ap.add_argument("--connections", type=int, default=10000, help="scale")
    ap.add_argument("--forwards", type=int, default=1000, help="scale")
    ap.add_argument("--budget", type=float, default=120, help="scale: seconds allowed per phase")
    args = ap.parse_args()
    if os.environ.get("NETBENCH_INNER") != "1" or os.getpid() > 200:
        sys.exit("netbench: run me through perf/bench.sh, perf/profile.sh or perf/scale.sh (sandbox)")
    if args.quick:
        args.rounds, args.duration, args.rr_seconds, args.mtus = 1, 2, 1, [1500]
    if args.contenders is None:
        args.contenders = {"bench": DEFAULT_CONTENDERS, "profile": ["slirpnetd"],
                           "scale": ["slirpnetd", "slirp4netns"]}[args.mode]
    bad = [c for c in args.contenders if c not in ALL_CONTENDERS]
    if bad:
        sys.exit(f"netbench: unknown contender(s) {bad}; choose from {ALL_CONTENDERS}")
    if args.rounds < 1 or args.duration <= 0:
        sys.exit("netbench: --rounds must be >= 1 and --duration > 0")
    env = Env(args)
    {"bench": bench, "profile": profile, "scale": scale}[args.mode](args, env)


if __name__ == "__main__":
    main()

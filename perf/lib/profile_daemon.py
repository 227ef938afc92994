#!/usr/bin/env python3
"""perf/profile.sh: `perf record -g` on the daemon during one throughput test (valgrind's
callgrind when perf is missing); writes perf/results/profile-<timestamp>.txt.
"""

import datetime
import os
import shutil
import signal
import sys
import time

from netbench import (
    Proc, Session, arg_parser, log, run, run_tput, shown_path, start,
)

# ------------------------------------------------------------------------------ profile
def profile(args, env):
    env.setup_outer()
    ts = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = os.path.join(env.perf_dir, "results", f"profile-{ts}.txt")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    name = args.contenders[0]
    use_perf = shutil.which("perf") and run(["perf", "record", "-o", os.path.join(env.work, "probe.data"),
                                             "--", "true"], 30, check=False).returncode == 0
    header = [f"# profile of {name} ({shown_path(env, env.slirpnetd) if name.startswith('slirpnetd') else shutil.which(name)})",
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


# ------------------------------------------------------------------------------ main
def main():
    ap = arg_parser("profile", ["slirpnetd"])
    ap.add_argument("--streams", type=int, default=1, help="iperf3 -P")
    ap.add_argument("--direction", default="ns2host", choices=["ns2host", "ns2host-R", "host2ns-fwd"])
    args, env = start(ap)
    profile(args, env)


if __name__ == "__main__":
    main()

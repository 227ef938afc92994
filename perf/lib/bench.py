#!/usr/bin/env python3
"""perf/bench.sh: slirpnetd against slirp4netns, pasta and a veth pair, interleaved over rounds;
writes perf/results/<timestamp>/ and perf/results/latest.*. See perf/README.md.
"""

import datetime
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

from netbench import (
    BASELINE, DEFAULT_CONTENDERS, FWD_ONLY, NotAvailable, Session, arg_parser, fmt, hermetic_facts,
    log, proc_mem_kb, run_rr, run_tput, start, versions,
)

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


# ------------------------------------------------------------------------------ main
def main():
    ap = arg_parser("bench", DEFAULT_CONTENDERS)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rr-seconds", type=float, default=2, help="request/response and crr seconds")
    ap.add_argument("--full", action="store_true", help="request/response tests at every MTU too")
    ap.add_argument("--only", default=None, help="run only the tests whose key matches this regex")
    ap.add_argument("--quick", action="store_true", help="1 round, 2 s, MTU 1500 only")
    args, env = start(ap)
    if args.quick:
        args.rounds, args.duration, args.rr_seconds, args.mtus = 1, 2, 1, [1500]
    if args.rounds < 1:
        sys.exit("bench: --rounds must be >= 1")
    bench(args, env)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""perf/scale.sh: 10,000 concurrent connections through the gateway and 1,000 port forwards
added through the API; writes perf/results/scale-<timestamp>.{md,json}.
"""

import datetime
import json
import os
import subprocess
import time

from netbench import (
    GATEWAY, HOST_ECHO, NS_ECHO, SCALE_PORT, Session, add_hostfwd, api_call, arg_parser, count_fds,
    fmt, hermetic_facts, listening, log, proc_mem_kb, run, start, versions, wait_for,
)

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
    ap = arg_parser("scale", ["slirpnetd", "slirp4netns"])
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--forwards", type=int, default=1000)
    ap.add_argument("--budget", type=float, default=120, help="seconds allowed per phase")
    args, env = start(ap)
    scale(args, env)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""scripts/bench-http.sh's report.

    scripts/bench/http_report.py RESULTS_DIR
        reads runs.tsv (round, shape, system, proxy CPU ticks, seconds, raw wrk output; written by
        bench-http.sh), systems.tsv, meta.tsv and notes.tsv; writes runs.csv with
        scripts/bench.sh's columns (workload = the shape) and report.md, with the targets of issue
        15 as pass/fail lines. A value is the median over the rounds; a ratio A/B is the median
        over rounds of A/B within the same round, with its min-max.

wrk's output is parsed by forward_report.parse_wrk (plus the bytes read, here); the tables by
report.py's Results and Markdown. python3 standard library only.
"""

import csv
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from forward_report import CSV_COLS, parse_wrk, ratios, spread, ms  # noqa: E402
from report import Markdown, Results, fmt  # noqa: E402

SHAPES = ["KA", "CLOSE", "1M"]
SUBJECTS = ["edgeproxy", "edgeproxy_uring"]
PEERS = ["haproxy", "nginx"]
GIB = float(1 << 30)
BYTES = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}

# Issue 15's targets: (shape, peer, metric, bound, at_most, what it says)
TARGETS = [
    ("KA", "haproxy", "cpu_us_per_req", 0.8, True, "CPU per request <= 0.8x HAProxy's (keep-alive)"),
    ("CLOSE", "haproxy", "cpu_us_per_req", 0.8, True, "CPU per request <= 0.8x HAProxy's (a connection per request)"),
    ("CLOSE", "haproxy", "rps", 1.3, False, "requests/s >= 1.3x HAProxy's (a connection per request)"),
    ("1M", "haproxy", "mib_s", 1.0, False, "1 MiB responses: throughput >= HAProxy's"),
]


def bytes_read(text):
    m = re.search(r"requests in [0-9.]+\w+, ([0-9.]+)(B|KB|MB|GB|TB) read", text)
    return float(m.group(1)) * BYTES[m.group(2)] if m else None


def write_runs_csv(folder, meta):
    hz = float(meta.get("clk_tck", "100"))
    rows = []
    with open(os.path.join(folder, "runs.tsv"), encoding="utf-8") as f:
        for line in f:
            rnd, shape, system, ticks, duration, raw, loadavg = line.rstrip("\n").split("\t")
            row = dict.fromkeys(CSV_COLS, "")
            row.update(workload=shape, workers="1", layout="pinned", run=rnd, system=system,
                       proxy_cpus=meta.get("proxy_cpu", ""), load_cpus=meta.get("load_cpu", ""),
                       duration_s=duration, raw=raw, loadavg1=loadavg)
            with open(os.path.join(folder, raw), encoding="utf-8", errors="replace") as g:
                text = g.read()
            r = parse_wrk(text)
            r["errors"] = r.get("errors", 0) + r.get("closes", 0)  # no proxy here closes unasked
            for key in ("requests", "rps", "p50_us", "p99_us", "errors"):
                if r.get(key) is not None:
                    row[key] = "%g" % r[key]
            cpu_s = int(ticks) / hz
            row["proxy_cpu_s"] = "%.3f" % cpu_s
            row["cpu_pct"] = "%.1f" % (cpu_s / float(duration) * 100)
            b = bytes_read(text)
            if b:
                row["bytes"] = "%.0f" % b
                row["mib_s"] = "%.1f" % (b / (1 << 20) / float(duration))
                row["cpu_ms_per_gib"] = "%.1f" % (cpu_s * 1e3 / (b / GIB))
            if r.get("requests"):
                row["cpu_us_per_req"] = "%.3f" % (cpu_s * 1e6 / r["requests"])
            else:
                row["error"] = "no completed request in %s" % raw
            rows.append(row)
    with open(os.path.join(folder, "runs.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLS)
        w.writeheader()
        w.writerows(rows)


def build_report(res):
    md = Markdown()
    m = res.meta
    md.add("# HTTP mode: edgeproxy against HAProxy and nginx (%s)" % m.get("timestamp", "?"), "")
    md.add("```", m.get("command", ""), "```", "")
    md.table(["environment", ""], [[k[4:], v] for k, v in res.meta_order if k.startswith("env.")],
             right_from=9)
    md.add(m.get("desc", ""), "")
    for shape in SHAPES:
        systems = res.systems(shape)
        if not systems:
            continue
        bulk = shape == "1M"
        md.add("## %s: %s" % (shape, m.get("desc." + shape, "")), "")
        main, main_head = ("mib_s", "MiB/s") if bulk else ("rps", "req/s")
        cpu, cpu_head, cpu_digits = (("cpu_ms_per_gib", "proxy CPU ms per GiB", 0) if bulk else
                                     ("cpu_us_per_req", "proxy CPU µs per request", 2))
        rows = []
        for s in systems:
            row = [res.label(s), fmt(res.median(shape, s, main)), fmt(res.median(shape, s, cpu), cpu_digits),
                   ms(res.median(shape, s, "p99_us")), fmt(res.median(shape, s, "cpu_pct"), 0, " %"),
                   str(res.errors(shape, s))]
            rows.append(row)
        md.table(["system", main_head, cpu_head, "p99", "proxy CPU", "errors"], rows)
        rows = []
        for s in SUBJECTS:
            for p in PEERS:
                if not (res.has(shape, s) and res.has(shape, p)):
                    continue
                rows.append(["%s / %s" % (res.label(s), res.label(p)), spread(ratios(res, shape, s, p, cpu)),
                             spread(ratios(res, shape, s, p, main)), spread(ratios(res, shape, s, p, "p99_us"))])
        if rows:
            md.add("Within-round ratios, median (min-max, rounds):", "")
            md.table(["pair", cpu_head.replace("proxy ", ""), main_head, "p99"], rows)
    rows = []
    for shape, peer, metric, bound, at_most, what in TARGETS:
        for s in SUBJECTS:
            if not (res.has(shape, s) and res.has(shape, peer)):
                continue
            q = ratios(res, shape, s, peer, metric)
            if not q:
                continue
            med = statistics.median(q)
            ok = med <= bound if at_most else med >= bound
            rows.append([what, res.label(s), spread(q), "met" if ok else "**missed**"])
    if rows:
        md.add("## Issue 15's targets", "")
        md.table(["target", "edgeproxy", "measured (median, min-max, rounds)", "status"], rows, right_from=2)
    for k, v in res.notes:
        md.add("- note: %s%s" % (k, (" " + v) if v else ""))
    md.add("", "Proxy CPU: utime + stime of the proxy's processes from /proc/PID/stat over each run, "
           "divided by the requests completed (by the GiB read in 1M). errors: wrk's socket errors "
           "and non-2xx/3xx answers. Files: runs.csv, raw/ (wrk output), logs/ (configurations).")
    return md.text()


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    folder = sys.argv[1]
    meta = dict()
    with open(os.path.join(folder, "meta.tsv"), encoding="utf-8") as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("\t")
            meta[k] = v
    write_runs_csv(folder, meta)
    res = Results(folder)
    with open(os.path.join(folder, "report.md"), "w", encoding="utf-8") as f:
        f.write(build_report(res))


if __name__ == "__main__":
    main()

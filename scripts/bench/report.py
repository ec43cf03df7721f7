#!/usr/bin/env python3
"""Turns a scripts/bench.sh results folder into report.md, summary.csv and PNG charts.

    scripts/bench/report.py RESULTS_DIR [--no-charts]

Reads runs.csv (one row per measurement), meta.tsv, systems.tsv and notes.tsv, all written by
scripts/bench.sh, so a report can be rebuilt or restyled without measuring again.  A value is the
median over the runs of a cell; a ratio A/B is the median over runs of A's value divided by B's
value in the same run (the systems are interleaved run by run, so both saw the same machine).
python3 standard library only; the charts need gnuplot (Debian: gnuplot-nox).
"""

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys

KIB_PER_MIB = 1024.0

# The targets of issue 4, evaluated on the best edgeproxy variant (by the workload's main metric).
TARGET_W1_VS_DIRECT = 0.95
TARGET_W1_VS_HAPROXY = 1.10
TARGET_W1_CPU_VS_HAPROXY = 0.70
TARGET_W1_P99_VS_HAPROXY = 1.00
TARGET_W2_VS_HAPROXY = 1.10
TARGET_W4_VS_HAPROXY_SPLICE = 1.20
TARGET_W5_MIB = 6.0
TARGET_W5_CONNS = 10000
TARGET_W7_P99_VS_HAPROXY = 0.50  # issue 13: accept priority under bulk load

COLORS = {  # chart colour per system (0xRRGGBB); unknown systems are grey
    "direct": 0x9E9E9E,
    "haproxy": 0xE8710A,
    "haproxy_splice": 0xF5A65B,
    "haproxy_splice_auto": 0xF9CB9C,
    "nginx_stream": 0x2CA02C,
    "edgeproxy": 0x1F4E9C,
    "edgeproxy_uring": 0x3C8DDE,
    "edgeproxy_splice": 0x6A3D9A,
    "edgeproxy_uring_splice": 0xA17FD1,
}
SERIES_COLORS = ["#1F4E9C", "#E8710A", "#2CA02C", "#A17FD1", "#9E9E9E", "#D62728"]

# summary.csv: the metrics reported per workload: (column, unit)
METRICS = {
    "W1": [("rps", "req/s"), ("p50_us", "us"), ("p99_us", "us"), ("cpu_us_per_req", "us/request")],
    "W2": [("rps", "conn/s"), ("p50_us", "us"), ("p99_us", "us"), ("cpu_us_per_req", "us/connection")],
    "W3": [("mib_s", "MiB/s"), ("rps", "req/s"), ("p99_us", "us"), ("cpu_ms_per_gib", "ms/GiB")],
    "W4": [("gbit_s", "Gbit/s"), ("cpu_ms_per_gib", "ms/GiB"), ("cpu_pct", "% of a CPU")],
    "W5": [("conns", "connections"), ("rss_before_kib", "KiB"), ("rss_kib", "KiB"),
           ("bytes_per_conn", "B/connection")],
    "W6-W1": [("rps", "req/s"), ("p99_us", "us"), ("cpu_us_per_req", "us/request")],
    "W6-W4": [("gbit_s", "Gbit/s"), ("cpu_ms_per_gib", "ms/GiB"), ("cpu_pct", "% of a CPU")],
    "W7": [("p50_us", "us"), ("p99_us", "us"), ("max_us", "us"), ("cpu_pct", "% of a CPU"),
           ("wait_pct", "% of the run"),
           ("mib_s", "MiB/s"), ("probes", "probes"), ("errors", "probes")],
}


def num(text):
    try:
        v = float(text)
    except (TypeError, ValueError):
        return None
    return v if v == v else None  # NaN -> None


def fmt(v, digits=0, unit=""):
    if v is None:
        return "-"
    s = "{:,.{}f}".format(v, digits).replace(",", " ")
    return s + unit


def plain(v):
    """A number for CSV: no exponent, at most 3 decimals, no trailing zeros."""
    return ("%.3f" % v).rstrip("0").rstrip(".")


def fmt_ratio(r):
    return "-" if r is None else "%.2fx" % r


def read_tsv(path):
    out = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if line:
                    key, _, value = line.partition("\t")
                    out.append((key, value))
    return out


class Results:
    """runs.csv plus the labels; every query is by workload, system, workers and streams."""

    def __init__(self, folder):
        self.folder = folder
        with open(os.path.join(folder, "runs.csv"), newline="", encoding="utf-8") as f:
            self.rows = list(csv.DictReader(f))
        self.meta = dict(read_tsv(os.path.join(folder, "meta.tsv")))
        self.meta_order = read_tsv(os.path.join(folder, "meta.tsv"))
        self.labels = dict(read_tsv(os.path.join(folder, "systems.tsv")))
        self.order = [k for k, _ in read_tsv(os.path.join(folder, "systems.tsv"))]
        self.notes = read_tsv(os.path.join(folder, "notes.tsv"))

    def label(self, system):
        return self.labels.get(system, system)

    def select(self, workload, system=None, workers=None, streams=None):
        out = []
        for r in self.rows:
            if r["workload"] != workload:
                continue
            if system is not None and r["system"] != system:
                continue
            if workers is not None and r["workers"] != str(workers):
                continue
            if streams is not None and r["streams"] != str(streams):
                continue
            out.append(r)
        return out

    def systems(self, workload):
        present = {r["system"] for r in self.select(workload)}
        ordered = [s for s in self.order if s in present]
        return ordered + sorted(present - set(ordered))

    def distinct(self, workload, column):
        vals = {r[column] for r in self.select(workload) if r[column] != ""}
        return sorted(vals, key=lambda v: (num(v) is None, num(v) or 0, v))

    def by_run(self, workload, system, metric, workers=None, streams=None):
        """{run: value} of the cell's successful measurements (a row with an error counts for
        nothing: a half-done measurement is not a data point; the report lists it)."""
        out = {}
        for r in self.select(workload, system, workers, streams):
            if r.get("error"):
                continue
            v = num(r.get(metric))
            if v is not None:
                out[r["run"]] = v
        return out

    def median(self, workload, system, metric, workers=None, streams=None):
        vals = list(self.by_run(workload, system, metric, workers, streams).values())
        return statistics.median(vals) if vals else None

    def ratio(self, workload, a, b, metric, workers=None, streams=None, workers_b=None):
        """Median over runs of a/b, pairing the two measurements of the same run."""
        va = self.by_run(workload, a, metric, workers, streams)
        vb = self.by_run(workload, b, metric, workers if workers_b is None else workers_b, streams)
        pairs = [va[k] / vb[k] for k in va if k in vb and vb[k] > 0]
        return statistics.median(pairs) if pairs else None

    def per_run(self, workload, system, metric, digits=0, workers=None, streams=None):
        rows = self.select(workload, system, workers, streams)
        rows.sort(key=lambda r: int(r["run"]) if r["run"].isdigit() else 0)
        return " / ".join(fmt(num(r.get(metric)), digits) for r in rows)

    def errors(self, workload, system, workers=None, streams=None):
        total = 0
        for r in self.select(workload, system, workers, streams):
            total += int(num(r.get("errors")) or 0)
        return total

    def has(self, workload, system):
        return any(r["system"] == system for r in self.select(workload))


# ---------------------------------------------------------------- markdown
class Markdown:
    def __init__(self):
        self.lines = []

    def add(self, *lines):
        self.lines.extend(lines)

    def table(self, header, rows, right_from=1):
        self.add("| " + " | ".join(header) + " |")
        self.add("|" + "|".join("---" if i < right_from else "---:" for i in range(len(header))) + "|")
        for row in rows:
            self.add("| " + " | ".join(row) + " |")
        self.add("")

    def text(self):
        return "\n".join(self.lines) + "\n"


def run_summary(res):
    runs, dur = res.meta.get("runs", "?"), res.meta.get("duration", "?")
    quick = " QUICK" if res.meta.get("quick") == "1" else ""
    return "%s x %s s%s" % (runs, dur, quick)


def section_http(md, res, wl, title, main, main_head, main_digits, cpu_head, extra, chart):
    systems = res.systems(wl)
    if not systems:
        return
    md.add("## %s" % title, "", res.meta.get("desc." + wl, ""), "")
    header = ["system", main_head] + [h for _, h, _ in extra] + [
        cpu_head, main_head.split()[0] + " vs direct", main_head.split()[0] + " vs HAProxy",
        "CPU vs HAProxy", "p99 vs HAProxy", main_head.split()[0] + " per run", "errors"]
    rows = []
    for s in systems:
        row = [res.label(s), fmt(res.median(wl, s, main), main_digits)]
        for col, _, conv in extra:
            row.append(conv(res.median(wl, s, col)))
        cpu_col = "cpu_ms_per_gib" if wl == "W3" else "cpu_us_per_req"
        row.append(fmt(res.median(wl, s, cpu_col), 0 if wl == "W3" else 2))
        row.append(fmt_ratio(res.ratio(wl, s, "direct", main)) if res.has(wl, "direct") else "-")
        hp = res.has(wl, "haproxy")
        row.append(fmt_ratio(res.ratio(wl, s, "haproxy", main)) if hp else "-")
        row.append(fmt_ratio(res.ratio(wl, s, "haproxy", cpu_col)) if hp else "-")
        row.append(fmt_ratio(res.ratio(wl, s, "haproxy", "p99_us")) if hp else "-")
        row.append(res.per_run(wl, s, main, main_digits))
        row.append(str(res.errors(wl, s)))
        rows.append(row)
    md.table(header, rows)
    md.add("![%s](charts/%s)" % (title, chart), "")


def ms(v):
    return "-" if v is None else "%.2f ms" % (v / 1000.0)


def section_w4(md, res):
    wl = "W4"
    systems = res.systems(wl)
    if not systems:
        return
    ref = "haproxy_splice" if res.has(wl, "haproxy_splice") else None
    md.add("## W4: bulk (iperf3)", "", res.meta.get("desc.W4", ""), "")
    header = ["system", "streams", "Gbit/s", "proxy CPU ms/GiB", "proxy CPU %", "Gbit/s vs direct",
              "Gbit/s vs HAProxy", "Gbit/s vs HAProxy+splice", "CPU/GiB vs HAProxy+splice",
              "Gbit/s per run"]
    rows = []
    for n in res.distinct(wl, "streams"):
        for s in systems:
            row = [res.label(s), n, fmt(res.median(wl, s, "gbit_s", streams=n), 2),
                   fmt(res.median(wl, s, "cpu_ms_per_gib", streams=n)),
                   fmt(res.median(wl, s, "cpu_pct", streams=n))]
            for other in ("direct", "haproxy"):
                row.append(fmt_ratio(res.ratio(wl, s, other, "gbit_s", streams=n))
                           if res.has(wl, other) else "-")
            for col in ("gbit_s", "cpu_ms_per_gib"):
                row.append(fmt_ratio(res.ratio(wl, s, ref, col, streams=n)) if ref else "-")
            row.append(res.per_run(wl, s, "gbit_s", 2, streams=n))
            rows.append(row)
    md.table(header, rows, right_from=2)
    md.add("Gbit/s = iperf3's end.sum_received; proxy CPU % = share of one CPU over the run.", "",
           "![W4](charts/w4.png)", "")


def w5_values(res, s):
    conns = res.median("W5", s, "conns")
    before = res.median("W5", s, "rss_before_kib")
    after = res.median("W5", s, "rss_kib")
    per = res.median("W5", s, "bytes_per_conn")
    est = None
    if conns and before is not None and per is not None:
        est = (before * 1024 + per * TARGET_W5_CONNS) / 1024 / KIB_PER_MIB
    return conns, before, after, per, est


def section_w5(md, res):
    systems = res.systems("W5")
    if not systems:
        return
    md.add("## W5: idle connections (memory)", "", res.meta.get("desc.W5", ""), "")
    header = ["system", "connections", "RSS before (KiB)", "RSS with the connections (KiB)",
              "RSS total (MiB)", "per connection (B)", "RSS at 10 000, extrapolated (MiB)",
              "per connection vs HAProxy"]
    rows = []
    for s in systems:
        conns, before, after, per, est = w5_values(res, s)
        rows.append([res.label(s), fmt(conns), fmt(before), fmt(after),
                     fmt(None if after is None else after / KIB_PER_MIB, 2), fmt(per), fmt(est, 2),
                     fmt_ratio(res.ratio("W5", s, "haproxy", "bytes_per_conn"))
                     if res.has("W5", "haproxy") else "-"])
    md.table(header, rows)
    md.add("RSS = VmRSS of all the proxy's processes (nginx: master and workers), read 1 s after the "
           "backend saw every connection; per connection = (with - before) / connections, so memory "
           "allocated at start-up counts only in \"before\". Kernel socket memory is in no "
           "process's RSS. The extrapolation is before + 10 000 x per connection.", "",
           "![W5](charts/w5.png)", "")


def section_w6(md, res):
    sys_w1, sys_w4 = res.systems("W6-W1"), res.systems("W6-W4")
    systems = sys_w1 + [s for s in sys_w4 if s not in sys_w1]
    if not systems:
        return
    workers = sorted(set(res.distinct("W6-W1", "workers")) | set(res.distinct("W6-W4", "workers")),
                     key=lambda v: int(v))
    base = workers[0]
    streams = (res.distinct("W6-W4", "streams") or ["?"])[0]
    md.add("## W6: scaling with workers", "", res.meta.get("desc.W6", ""), "")
    layouts = {}
    for r in res.select("W6-W1") + res.select("W6-W4"):
        layouts[r["workers"]] = (r["layout"], r["proxy_cpus"], r["load_cpus"])
    header = ["system", "workers", "layout", "req/s", "p99", "proxy CPU µs/req",
              "req/s vs %s worker" % base, "req/s vs HAProxy", "Gbit/s (-P %s)" % streams,
              "proxy CPU ms/GiB", "Gbit/s vs %s worker" % base, "Gbit/s vs HAProxy+splice"]
    rows = []
    for s in systems:
        for n in workers:
            lay = layouts.get(n, ("?", "", ""))
            lay_text = lay[0] + (" (proxy %s, load %s)" % (lay[1], lay[2]) if lay[1] else "")
            rows.append([
                res.label(s), n, lay_text,
                fmt(res.median("W6-W1", s, "rps", workers=n)),
                ms(res.median("W6-W1", s, "p99_us", workers=n)),
                fmt(res.median("W6-W1", s, "cpu_us_per_req", workers=n), 2),
                fmt_ratio(res.ratio("W6-W1", s, s, "rps", workers=n, workers_b=base)),
                fmt_ratio(res.ratio("W6-W1", s, "haproxy", "rps", workers=n)),
                fmt(res.median("W6-W4", s, "gbit_s", workers=n), 2),
                fmt(res.median("W6-W4", s, "cpu_ms_per_gib", workers=n)),
                fmt_ratio(res.ratio("W6-W4", s, s, "gbit_s", workers=n, workers_b=base)),
                fmt_ratio(res.ratio("W6-W4", s, "haproxy_splice", "gbit_s", workers=n)),
            ])
    md.table(header, rows, right_from=3)
    md.add("![W6](charts/w6.png)", "")


def busy_pct(res, s):
    """W7: median over runs of proxy CPU % + run-queue wait %, or None."""
    vals = [num(r.get("cpu_pct")) + num(r.get("wait_pct")) for r in res.select("W7", s)
            if not r.get("error") and num(r.get("cpu_pct")) is not None and num(r.get("wait_pct")) is not None]
    return statistics.median(vals) if vals else None


def section_w7(md, res):
    wl = "W7"
    systems = res.systems(wl)
    if not systems:
        return
    md.add("## W7: accept under bulk", "", res.meta.get("desc.W7", ""), "")
    hp = res.has(wl, "haproxy")
    timeout_us = (num(res.meta.get("w7_probe_timeout_ms")) or 0) * 1000

    def lat(v):  # a timed-out probe enters the latencies at the timeout: a lower bound
        return ("≥ " + ms(v)) if v is not None and timeout_us and v >= timeout_us else ms(v)
    header = ["system", "probe p50", "probe p99", "probe max", "p99 vs HAProxy", "p50 vs HAProxy",
              "proxy CPU %", "CPU + wait %", "bulk MiB/s", "p99 per run (ms)", "probes answered", "timeouts/errors"]
    rows = []
    for s in systems:
        answered = sum(int(num(r.get("probes")) or 0) for r in res.select(wl, s))
        rows.append([res.label(s), lat(res.median(wl, s, "p50_us")), lat(res.median(wl, s, "p99_us")),
                     lat(res.median(wl, s, "max_us")),
                     fmt_ratio(res.ratio(wl, s, "haproxy", "p99_us")) if hp else "-",
                     fmt_ratio(res.ratio(wl, s, "haproxy", "p50_us")) if hp else "-",
                     fmt(res.median(wl, s, "cpu_pct")), fmt(busy_pct(res, s)), fmt(res.median(wl, s, "mib_s")),
                     " / ".join(fmt(None if v is None else v / 1000.0, 1) for v in
                                (num(r.get("p99_us")) for r in sorted(
                                    res.select(wl, s), key=lambda r: int(r["run"]) if r["run"].isdigit() else 0))),
                     fmt(answered), str(res.errors(wl, s))])
    md.table(header, rows)
    md.add("Latency = connect() start to the first response byte of a new connection, per probe; "
           "p50/p99/max are per run, then the median over runs; a ratio is the median of per-run "
           "ratios. \"≥\" marks a value at the probe timeout: a probe that got no answer in time "
           "enters the latencies at the timeout, so the true value is at least that. "
           "Proxy CPU % = share of one CPU over the probing; CPU + wait % adds the time the proxy was "
           "runnable but waiting for its CPU (other load on the machine): near 100 means saturated. "
           "Bulk MiB/s = what the bulk client read, all connections together.", "",
           "![W7](charts/w7.png)", "")


def best(res, wl, metric, lowest=False, **cell):
    """The edgeproxy variant with the best median of metric in a cell, or None."""
    cands = []
    for s in res.systems(wl):
        if s.startswith("edgeproxy"):
            v = res.median(wl, s, metric, **cell)
            if v is not None:
                cands.append((v, s))
    if not cands:
        return None
    return (min if lowest else max)(cands)[1]


def status(value, threshold, at_most=False, strict=False):
    if value is None:
        return "not measured"
    if strict:
        ok = value < threshold if at_most else value > threshold
    else:
        ok = value <= threshold if at_most else value >= threshold
    return "**met**" if ok else "**missed**"


def section_targets(md, res):
    rows = []

    def add(target, wl, sys_, measured, verdict):
        rows.append([target, res.label(sys_) if sys_ else "-", measured, verdict])

    b = best(res, "W1", "rps")
    if b:
        for name, ref, col, thr, at_most in (
                ("W1 req/s >= %.2fx direct" % TARGET_W1_VS_DIRECT, "direct", "rps", TARGET_W1_VS_DIRECT, False),
                ("W1 req/s >= %.2fx HAProxy" % TARGET_W1_VS_HAPROXY, "haproxy", "rps", TARGET_W1_VS_HAPROXY, False),
                ("W1 proxy CPU/request <= %.2fx HAProxy's" % TARGET_W1_CPU_VS_HAPROXY, "haproxy",
                 "cpu_us_per_req", TARGET_W1_CPU_VS_HAPROXY, True),
                ("W1 p99 <= HAProxy's", "haproxy", "p99_us", TARGET_W1_P99_VS_HAPROXY, True)):
            r = res.ratio("W1", b, ref, col) if res.has("W1", ref) else None
            add(name, "W1", b, fmt_ratio(r), status(r, thr, at_most))
    b = best(res, "W2", "rps")
    if b:
        r = res.ratio("W2", b, "haproxy", "rps") if res.has("W2", "haproxy") else None
        add("W2 conn/s >= %.2fx HAProxy" % TARGET_W2_VS_HAPROXY, "W2", b, fmt_ratio(r),
            status(r, TARGET_W2_VS_HAPROXY))
    for n in res.distinct("W4", "streams"):
        b = best(res, "W4", "gbit_s", streams=n)
        if b:
            r = (res.ratio("W4", b, "haproxy_splice", "gbit_s", streams=n)
                 if res.has("W4", "haproxy_splice") else None)
            add("W4 %s stream(s) Gbit/s >= %.2fx HAProxy+splice" % (n, TARGET_W4_VS_HAPROXY_SPLICE),
                "W4", b, fmt_ratio(r), status(r, TARGET_W4_VS_HAPROXY_SPLICE))
    b = best(res, "W5", "rss_kib", lowest=True)
    if b:
        conns, _, after, _, est = w5_values(res, b)
        total = None if after is None else after / KIB_PER_MIB
        if conns is not None and conns < TARGET_W5_CONNS:
            measured = "%s MiB with %s connections; %s MiB extrapolated to 10 000" % (
                fmt(total, 2), fmt(conns), fmt(est, 2))
            verdict = status(est, TARGET_W5_MIB, at_most=True, strict=True) + " (extrapolated)"
        else:
            measured = "%s MiB with %s connections" % (fmt(total, 2), fmt(conns))
            verdict = status(total, TARGET_W5_MIB, at_most=True, strict=True)
        add("W5 RSS < %g MiB in total with 10 000 idle connections" % TARGET_W5_MIB, "W5", b,
            measured, verdict)
    b = best(res, "W7", "p99_us", lowest=True)
    if b:
        r = res.ratio("W7", b, "haproxy", "p99_us") if res.has("W7", "haproxy") else None
        add("W7 probe p99 <= %.2fx HAProxy's (issue 13)" % TARGET_W7_P99_VS_HAPROXY, "W7", b,
            fmt_ratio(r), status(r, TARGET_W7_P99_VS_HAPROXY, at_most=True))
    if not rows:
        return
    md.add("## Against the targets", "")
    caveats = []
    if res.meta.get("layout") != "pinned":
        caveats.append("the targets are defined for the pinned layout and this run was %s"
                       % res.meta.get("layout", "?"))
    if res.meta.get("quick") == "1":
        caveats.append("this was a QUICK run (one short run per cell): a smoke test, not a verdict")
    md.add("The edgeproxy variant is the best one in the workload by its main metric (W1, W2: "
           "req/s; W4: Gbit/s; W5: RSS; W7: probe p99), and every W1 target is checked on that same variant. "
           "Ratios are medians of per-run ratios." + (" Note: " + "; ".join(caveats) + "." if caveats else ""), "")
    md.table(["target", "edgeproxy variant", "measured", "status"], rows, right_from=2)


def build_report(res):
    md = Markdown()
    m = res.meta
    md.add("# edgeproxy side-by-side benchmark (%s)" % m.get("timestamp", "?"), "")
    if m.get("quick") == "1":
        md.add("> **QUICK run**: one %s s run per cell. A smoke test of the suite; the numbers are "
               "not for conclusions." % m.get("duration", "?"), "")
    md.add("```", m.get("command", ""), "```", "")
    env = [(k[4:], v) for k, v in res.meta_order if k.startswith("env.")]
    md.table(["environment", ""], [[k, v] for k, v in env], right_from=9)
    md.add("Every cell: %s run(s) of %s s, systems interleaved run by run (each run starts one "
           "system later), after an unrecorded warm-up. Values are medians over the runs; a ratio "
           "A/B is the median over runs of A/B within the same run. Proxy CPU = utime + stime of "
           "the proxy's processes (all threads) over the run, from /proc/PID/stat, divided by the "
           "requests, connections or GiB completed." % (m.get("runs", "?"), m.get("duration", "?")), "")
    section_targets(md, res)
    section_http(md, res, "W1", "W1: keep-alive, tiny response", "rps", "req/s", 0,
                 "proxy CPU µs/request",
                 [("p50_us", "p50", ms), ("p99_us", "p99", ms)], "w1.png")
    section_http(md, res, "W2", "W2: a new connection per request", "rps", "conn/s", 0,
                 "proxy CPU µs/connection",
                 [("p50_us", "p50", ms), ("p99_us", "p99", ms)], "w2.png")
    section_http(md, res, "W3", "W3: 1 MiB responses", "mib_s", "MiB/s", 0, "proxy CPU ms/GiB",
                 [("rps", "req/s", lambda v: fmt(v)), ("p99_us", "p99", ms)], "w3.png")
    section_w4(md, res)
    section_w5(md, res)
    section_w6(md, res)
    section_w7(md, res)
    failed = {}  # (cell, system, error) -> runs; a failed measurement is left out of every value
    for r in res.rows:
        if r.get("error"):
            cell = r["workload"] + (" -P " + r["streams"] if r["streams"] else "") + \
                (", %s worker(s)" % r["workers"] if r["workload"].startswith("W6") else "")
            failed.setdefault((cell, res.label(r["system"]), r["error"]), []).append(r["run"])
    if res.notes or failed:
        md.add("## Notes", "")
        for wl, text in res.notes:
            md.add("- %s%s" % ("" if wl == "all" else wl + ": ", text))
        for (cell, label, error), runs in failed.items():
            md.add("- **failed**: %s, %s, run %s: %s (left out of the values above)"
                   % (cell, label, ", ".join(runs), error))
        md.add("")
    md.add("Files: runs.csv (every measurement), summary.csv (medians and ratios), charts/, raw/ "
           "(wrk, iperf3 and idle-helper output), logs/, commands.txt.")
    return md.text()


# ---------------------------------------------------------------- summary.csv
def write_summary(res, path):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["workload", "workers", "streams", "system", "label", "metric", "unit", "runs",
                    "median", "min", "max", "vs_direct", "vs_haproxy", "vs_haproxy_splice",
                    "vs_first_worker_count"])
        for wl, metrics in METRICS.items():
            systems = res.systems(wl)
            if not systems:
                continue
            workers_list = res.distinct(wl, "workers") or [""]
            streams_list = res.distinct(wl, "streams") or [""]
            for n in workers_list:
                for st in streams_list:
                    cell = {"workers": n or None, "streams": st or None}
                    for s in systems:
                        for col, unit in metrics:
                            vals = list(res.by_run(wl, s, col, **cell).values())
                            if not vals:
                                continue

                            def rt(ref, cell=cell, s=s, col=col):
                                if not res.has(wl, ref):
                                    return ""
                                r = res.ratio(wl, s, ref, col, **cell)
                                return "" if r is None else "%.4f" % r
                            first = ""
                            if wl.startswith("W6"):
                                r = res.ratio(wl, s, s, col, workers_b=workers_list[0], **cell)
                                first = "" if r is None else "%.4f" % r
                            w.writerow([wl, n, st, s, res.label(s), col, unit, len(vals),
                                        plain(statistics.median(vals)), plain(min(vals)),
                                        plain(max(vals)), rt("direct"), rt("haproxy"),
                                        rt("haproxy_splice"), first])


# ---------------------------------------------------------------- charts
def gp_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dat_value(v):
    return "NaN" if v is None else "%.6g" % v


class Charts:
    def __init__(self, res, folder):
        self.res = res
        self.folder = folder
        self.script = []
        self.pngs = []
        m = res.meta
        self.subtitle = "run %s, LAYOUT=%s, %s" % (m.get("timestamp", "?"), m.get("layout", "?"),
                                                     run_summary(res))

    def write_dat(self, name, header, rows):
        with open(os.path.join(self.folder, name), "w", encoding="utf-8") as f:
            f.write("# " + " ".join(header) + "\n")
            for row in rows:
                f.write(" ".join(row) + "\n")

    def begin(self, png, title, panels):
        self.pngs.append(png)
        two_lines = gp_str(title)[:-1] + "\\n" + gp_str(self.subtitle)[1:]  # gnuplot's "\n"
        self.script += [
            "set output %s" % gp_str(png),
            "set multiplot layout 1,%d title %s font \",12\"" % (panels, two_lines),
        ]

    def end(self):
        self.script += ["unset multiplot", "set output", ""]

    def bar_panel(self, dat, col, n, title, label_fmt, target=None):
        s = self.script
        s += ["set boxwidth 0.7",
              "set xrange [-0.6:%g]" % (n - 0.4),
              "set title %s" % gp_str(title)]
        plot = ('plot %s using 0:%d:%d:xtic(1) with boxes lc rgb variable notitle, '
                '"" using 0:%d:(sprintf(%s, $%d)) with labels offset 0,0.8 font ",9" notitle'
                % (gp_str(dat), col, 2, col, gp_str(label_fmt), col))
        if target is not None:
            plot += ', %g with lines dt 2 lw 2 lc rgb "#C00000" title %s' % (target[0], gp_str(target[1]))
            s.append("set key top left")
        else:
            s.append("set key off")
        s.append(plot)

    def cluster_panel(self, dat, cols, titles, title, label_fmt):
        """Clustered bars: one cluster per row of dat, one bar per column in cols."""
        s = self.script
        m = len(cols)
        s += ["set style data histograms", "set style histogram clustered gap 1",
              "set boxwidth 1 relative", "set xrange [*:*]", "set key top right",
              "set title %s" % gp_str(title)]
        parts = []
        for i, (c, t) in enumerate(zip(cols, titles)):
            parts.append('%s using %d:xtic(1) title %s lc rgb "%s"'
                         % (gp_str(dat) if i == 0 else '""', c, gp_str(t),
                            SERIES_COLORS[i % len(SERIES_COLORS)]))
        for i, c in enumerate(cols):  # value labels centred on each bar
            off = (i - (m - 1) / 2.0) / (m + 1.0)
            parts.append('"" using ($0+%g):%d:(sprintf(%s, $%d)) with labels offset 0,0.7 font ",8" notitle'
                         % (off, c, gp_str(label_fmt), c))
        s.append("plot " + ", ".join(parts))
        s.append("set style data linespoints")

    def http_chart(self, wl, png, title, main, main_title, main_fmt, cpu, cpu_title, cpu_fmt):
        res = self.res
        systems = res.systems(wl)
        if not systems:
            return
        dat = wl.lower() + ".dat"
        rows = [[gp_str(res.label(s)), str(COLORS.get(s, 0x888888)),
                 dat_value(res.median(wl, s, main)), dat_value(res.median(wl, s, cpu))]
                for s in systems]
        self.write_dat(dat, ["label", "color", main, cpu], rows)
        self.begin(png, title, 2)
        self.bar_panel(dat, 3, len(systems), main_title, main_fmt)
        self.bar_panel(dat, 4, len(systems), cpu_title, cpu_fmt)
        self.end()

    def w4_chart(self):
        res = self.res
        systems = res.systems("W4")
        streams = res.distinct("W4", "streams")
        if not systems or not streams:
            return
        rows = []
        for s in systems:
            row = [gp_str(res.label(s))]
            row += [dat_value(res.median("W4", s, "gbit_s", streams=n)) for n in streams]
            row += [dat_value(res.median("W4", s, "cpu_ms_per_gib", streams=n)) for n in streams]
            rows.append(row)
        self.write_dat("w4.dat", ["label"] + ["gbit_P%s" % n for n in streams]
                       + ["cpu_ms_per_gib_P%s" % n for n in streams], rows)
        k = len(streams)
        titles = ["%s stream%s" % (n, "" if n == "1" else "s") for n in streams]
        self.begin("w4.png", "W4: iperf3 bulk through each system", 2)
        self.cluster_panel("w4.dat", list(range(2, 2 + k)), titles, "Gbit/s (median, higher is better)", "%.1f")
        self.cluster_panel("w4.dat", list(range(2 + k, 2 + 2 * k)), titles,
                           "proxy CPU ms per GiB (lower is better)", "%.0f")
        self.end()

    def w5_chart(self):
        res = self.res
        systems = res.systems("W5")
        if not systems:
            return
        conns = None
        rows = []
        for s in systems:
            c, _, after, per, _ = w5_values(res, s)
            conns = conns or c
            rows.append([gp_str(res.label(s)), str(COLORS.get(s, 0x888888)),
                         dat_value(None if after is None else after / KIB_PER_MIB), dat_value(per)])
        self.write_dat("w5.dat", ["label", "color", "rss_mib", "bytes_per_conn"], rows)
        self.begin("w5.png", "W5: %s idle connections" % fmt(conns), 2)
        self.bar_panel("w5.dat", 3, len(systems), "RSS in total, MiB (lower is better)", "%.1f",
                       target=(TARGET_W5_MIB, "target: %g MiB" % TARGET_W5_MIB))
        self.bar_panel("w5.dat", 4, len(systems), "RSS per idle connection, bytes", "%.0f")
        self.end()

    def w6_chart(self):
        res = self.res
        systems = [s for s in res.systems("W6-W1")]
        systems += [s for s in res.systems("W6-W4") if s not in systems]
        workers = sorted(set(res.distinct("W6-W1", "workers")) | set(res.distinct("W6-W4", "workers")),
                         key=int)
        if not systems or not workers:
            return
        streams = (res.distinct("W6-W4", "streams") or ["?"])[0]
        rows = []
        for s in systems:
            row = [gp_str(res.label(s))]
            row += [dat_value(res.median("W6-W1", s, "rps", workers=n)) for n in workers]
            row += [dat_value(res.median("W6-W4", s, "gbit_s", workers=n)) for n in workers]
            rows.append(row)
        self.write_dat("w6.dat", ["label"] + ["rps_w%s" % n for n in workers]
                       + ["gbit_w%s" % n for n in workers], rows)
        k = len(workers)
        layouts = sorted({r["layout"] for r in res.select("W6-W1") + res.select("W6-W4")})
        titles = ["%s worker%s" % (n, "" if n == "1" else "s") for n in workers]
        self.begin("w6.png", "W6: scaling with workers (W6 layout: %s)" % ", ".join(layouts), 2)
        self.cluster_panel("w6.dat", list(range(2, 2 + k)), titles, "W1 keep-alive req/s", "%.0f")
        self.cluster_panel("w6.dat", list(range(2 + k, 2 + 2 * k)), titles,
                           "W4 iperf3 -P %s Gbit/s" % streams, "%.1f")
        self.end()

    def render(self):
        self.http_chart("W1", "w1.png", "W1: keep-alive, tiny response (wrk -c100)", "rps",
                        "req/s (median, higher is better)", "%.0f", "cpu_us_per_req",
                        "proxy CPU µs per request (lower is better)", "%.1f")
        self.http_chart("W2", "w2.png", "W2: a new connection per request", "rps",
                        "connections/s (median, higher is better)", "%.0f", "cpu_us_per_req",
                        "proxy CPU µs per connection (lower is better)", "%.1f")
        self.http_chart("W3", "w3.png", "W3: 1 MiB responses (wrk -c10)", "mib_s",
                        "MiB/s (median, higher is better)", "%.0f", "cpu_ms_per_gib",
                        "proxy CPU ms per GiB (lower is better)", "%.0f")
        self.w4_chart()
        self.w5_chart()
        self.w6_chart()
        self.http_chart("W7", "w7.png", "W7: a new connection's first byte under 200 bulk transfers",
                        "p99_us", "probe p99, µs (median of runs, lower is better)", "%.0f",
                        "cpu_pct", "proxy CPU, % of one core, while probing", "%.0f")
        if not self.pngs:
            return []
        header = [
            "# written by scripts/bench/report.py; run in this folder: gnuplot charts.gp",
            'set terminal pngcairo size 1280,560 font "sans,10" noenhanced',
            "set encoding utf8",
            'set datafile missing "NaN"',
            'set style fill solid 0.85 border rgb "#444444"',
            'set grid ytics lc rgb "#DDDDDD"',
            "set border 3",
            "set xtics nomirror rotate by 25 right",
            "set ytics nomirror",
            "set yrange [0:*]",
            "set offsets 0, 0, graph 0.12, 0",
            "set bmargin 7",
            "",
        ]
        gp = os.path.join(self.folder, "charts.gp")
        with open(gp, "w", encoding="utf-8") as f:
            f.write("\n".join(header + self.script) + "\n")
        for png in self.pngs:
            p = os.path.join(self.folder, png)
            if os.path.exists(p):
                os.remove(p)
        r = subprocess.run(["gnuplot", "charts.gp"], cwd=self.folder, capture_output=True, text=True,
                           timeout=120)
        with open(os.path.join(self.folder, "gnuplot.log"), "w", encoding="utf-8") as f:
            f.write(r.stdout + r.stderr)
        if r.returncode != 0:
            print("report.py: gnuplot failed (see %s):\n%s" % (os.path.join(self.folder, "gnuplot.log"),
                                                                r.stderr[-2000:]), file=sys.stderr)
        return [p for p in self.pngs if os.path.exists(os.path.join(self.folder, p))]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("results_dir")
    p.add_argument("--no-charts", action="store_true", help="do not run gnuplot")
    args = p.parse_args()
    res = Results(args.results_dir)
    write_summary(res, os.path.join(args.results_dir, "summary.csv"))
    made = []
    if not args.no_charts:
        if shutil.which("gnuplot"):
            folder = os.path.join(args.results_dir, "charts")
            os.makedirs(folder, exist_ok=True)
            made = Charts(res, folder).render()
        else:
            print("report.py: gnuplot not found, no charts", file=sys.stderr)
    text = build_report(res)
    if not made:  # no chart images: drop the links to them
        text = "\n".join(line for line in text.split("\n") if not line.startswith("![")) + "\n"
    else:
        text = "\n".join(line for line in text.split("\n")
                         if not line.startswith("![") or line.split("/")[-1].rstrip(")") in made) + "\n"
    with open(os.path.join(args.results_dir, "report.md"), "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

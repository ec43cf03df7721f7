#!/usr/bin/env python3
"""Turns a scripts/bench-sni.sh results folder into runs.csv and report.md.

    scripts/bench/sni_report.py RESULTS_DIR

Reads runs.tsv (round, system, proxy CPU ns, seconds, raw wrk output; written by bench-sni.sh),
systems.tsv and meta.tsv; parses each wrk output; writes runs.csv with scripts/bench.sh's columns
(workload W2-SNI, so report.py's Results reads it) and report.md. A value is the median over the
rounds; a ratio A/B is the median over rounds of A/B within the same round, with its min-max.
python3 standard library only.
"""

import argparse
import csv
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import Markdown, Results, fmt, fmt_ratio, read_tsv  # noqa: E402  (the same folder)

WORKLOAD = "W2-SNI"
REFERENCE = "haproxy_sni"  # the target: edgeproxy's CPU per connection at or below this one's
CSV_COLS = ["workload", "workers", "streams", "layout", "proxy_cpus", "load_cpus", "run", "system",
            "duration_s", "requests", "rps", "mib_s", "gbit_s", "bytes", "p50_us", "p99_us",
            "errors", "proxy_cpu_s", "cpu_us_per_req", "cpu_ms_per_gib", "cpu_pct", "conns",
            "rss_before_kib", "rss_kib", "bytes_per_conn", "loadavg1", "error", "raw"]

UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 6e7}


def latency_us(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * UNITS_US[m.group(2)] if m else None


def parse_wrk(path):
    """{requests, rps, p50_us, p99_us, errors} from wrk --latency output (missing keys: none)."""
    out = {"errors": 0}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            words = line.split()
            if len(words) >= 2 and words[0] in ("50%", "99%"):
                out["p50_us" if words[0] == "50%" else "p99_us"] = latency_us(words[1])
            elif " requests in " in line:
                out["requests"] = int(words[0])
            elif line.startswith("Requests/sec:"):
                out["rps"] = float(words[1])
            elif "Socket errors:" in line:
                out["errors"] += sum(int(n) for n in re.findall(r"\d+", line.split(":", 1)[1]))
            elif "Non-2xx or 3xx responses:" in line:
                out["errors"] += int(words[-1])
    return out


def write_runs_csv(folder, meta):
    rows = []
    with open(os.path.join(folder, "runs.tsv"), encoding="utf-8") as f:
        for line in f:
            rnd, system, cpu_ns, duration, raw, loadavg = line.rstrip("\n").split("\t")
            row = dict.fromkeys(CSV_COLS, "")
            row.update(workload=WORKLOAD, workers="1", layout="pinned", run=rnd, system=system,
                       proxy_cpus=meta.get("proxy_cpu", ""), load_cpus=meta.get("load_cpu", ""),
                       duration_s=duration, raw=raw, loadavg1=loadavg)
            w = parse_wrk(os.path.join(folder, raw))
            for key in ("requests", "rps", "p50_us", "p99_us", "errors"):
                if w.get(key) is not None:
                    row[key] = "%g" % w[key]
            cpu_s = int(cpu_ns) / 1e9
            row["proxy_cpu_s"] = "%.4f" % cpu_s
            row["cpu_pct"] = "%.1f" % (cpu_s / float(duration) * 100)
            if w.get("requests"):
                row["cpu_us_per_req"] = "%.3f" % (cpu_s * 1e6 / w["requests"])
            else:
                row["error"] = "no requests in wrk's output"
            rows.append(row)
    with open(os.path.join(folder, "runs.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLS)
        w.writeheader()
        w.writerows(rows)


def ratios(res, a, b, metric):
    """Per-round a/b of `metric`, in round order."""
    va = res.by_run(WORKLOAD, a, metric)
    vb = res.by_run(WORKLOAD, b, metric)
    return [va[k] / vb[k] for k in sorted(va, key=int) if k in vb and vb[k] > 0]


def spread(values):
    if not values:
        return "-"
    return "%s (%.2f-%.2f, %d)" % (fmt_ratio(statistics.median(values)), min(values), max(values),
                                   len(values))


def plain_of(system):
    return system[:-len("_sni")] if system.endswith("_sni") else None


def build_report(res):
    md = Markdown()
    m = res.meta
    md.add("# SNI routing, a new TLS connection per request (%s)" % m.get("timestamp", "?"), "")
    md.add("```", m.get("command", ""), "```", "")
    md.table(["environment", ""], [[k[4:], v] for k, v in res.meta_order if k.startswith("env.")],
             right_from=9)
    md.add(m.get("desc", ""), "")
    systems = res.systems(WORKLOAD)
    has_ref = res.has(WORKLOAD, REFERENCE)
    ref = res.label(REFERENCE)
    header = ["system", "conn/s", "proxy CPU µs/connection", "CPU/conn vs %s: median (min-max, rounds)" % ref,
              "conn/s vs %s" % ref, "CPU/conn vs the same proxy without SNI", "p99", "CPU µs/conn per round",
              "errors"]
    rows = []
    for s in systems:
        p = plain_of(s)
        rows.append([
            res.label(s),
            fmt(res.median(WORKLOAD, s, "rps")),
            fmt(res.median(WORKLOAD, s, "cpu_us_per_req"), 2),
            spread(ratios(res, s, REFERENCE, "cpu_us_per_req")) if has_ref else "-",
            spread(ratios(res, s, REFERENCE, "rps")) if has_ref else "-",
            spread(ratios(res, s, p, "cpu_us_per_req")) if p and res.has(WORKLOAD, p) else "-",
            "-" if res.median(WORKLOAD, s, "p99_us") is None
            else "%.2f ms" % (res.median(WORKLOAD, s, "p99_us") / 1000),
            res.per_run(WORKLOAD, s, "cpu_us_per_req", 1),
            str(res.errors(WORKLOAD, s)),
        ])
    md.table(header, rows)
    if has_ref:
        md.add("## Against the target (edgeproxy's CPU per connection at or below HAProxy's)", "")
        for s in systems:
            if s.startswith("edgeproxy") and s.endswith("_sni"):
                r = ratios(res, s, REFERENCE, "cpu_us_per_req")
                verdict = "not measured" if not r else (
                    "**met**" if statistics.median(r) <= 1.0 else "**missed**")
                md.add("- %s: %s, %s" % (res.label(s), spread(r), verdict))
        md.add("")
    failed = [r for r in res.rows if r.get("error")]
    for r in failed:
        md.add("- **failed**: round %s, %s: %s" % (r["run"], res.label(r["system"]), r["error"]))
    md.add("Proxy CPU: time on CPU of every thread of the proxy over the run "
           "(/proc/PID/task/*/schedstat, nanoseconds), divided by the connections wrk completed "
           "(one request each). Files: runs.csv, raw/ (wrk output), logs/ (configs, process logs), "
           "commands.txt.")
    return md.text()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("results_dir")
    args = p.parse_args()
    write_runs_csv(args.results_dir, dict(read_tsv(os.path.join(args.results_dir, "meta.tsv"))))
    text = build_report(Results(args.results_dir))
    with open(os.path.join(args.results_dir, "report.md"), "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""scripts/bench-forward.sh's Python side: every tool's output is parsed here.

    scripts/bench/forward_report.py RESULTS_DIR
        reads runs.tsv (round, shape, system, proxy CPU ticks, seconds, raw output file; written
        by bench-forward.sh), systems.tsv, meta.tsv and notes.tsv; parses each raw output (wrk
        --latency, or scripts/bench/connect-load.c's "key value" lines); writes runs.csv with
        scripts/bench.sh's columns (workload = the shape) and report.md, with the targets of
        issue 12 as pass/fail lines. A value is the median over the rounds; a ratio A/B is the
        median over rounds of A/B within the same round, with its min-max.
    scripts/bench/forward_report.py --summary RAW_FILE
        one progress line from one raw output
    scripts/bench/forward_report.py --probe SHAPE PORT ORIGIN_PORT AUTH_BASE64
        one exchange of SHAPE (A-origin, A-absolute, B-connect; with -tcp for edgeproxy's TCP
        mode, which is not asked for credentials) through the proxy at 127.0.0.1:PORT: the
        answer must be 200 with the origin's page, and (not -tcp) the same request without
        credentials must get 407. Exit status 0 when both hold.

python3 standard library only.
"""

import argparse
import csv
import os
import re
import socket
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import Markdown, Results, fmt, fmt_ratio, read_tsv  # noqa: E402  (the same folder)

SHAPES = ["A-origin", "A-absolute", "B-connect"]
SUBJECT = "edgeproxy_fwd"
REFERENCE = "edgeproxy_tcp"  # edgeproxy's plain TCP mode: the floor a proxy's CPU is compared to
PAGE_MARKER = b"edgeproxy forward benchmark"  # in the origin's index.html
CSV_COLS = ["workload", "workers", "streams", "layout", "proxy_cpus", "load_cpus", "run", "system",
            "duration_s", "requests", "rps", "mib_s", "gbit_s", "bytes", "p50_us", "p99_us",
            "errors", "proxy_cpu_s", "cpu_us_per_req", "cpu_ms_per_gib", "cpu_pct", "conns",
            "rss_before_kib", "rss_kib", "bytes_per_conn", "loadavg1", "error", "raw"]

# The targets of issue 12: (shape, reference system, metric, at most this ratio of edgeproxy
# forward's value to the reference's, what it says). Checked on the median per-round ratio.
TARGETS = [
    ("A-origin", "edgeproxy_tcp", "cpu_us_per_req", 1.2,
     "CPU per request <= 1.2x edgeproxy's TCP mode (the seed's origin-form requests)"),
    ("A-absolute", "edgeproxy_tcp", "cpu_us_per_req", 1.2,
     "CPU per request <= 1.2x edgeproxy's TCP mode (absolute-form requests)"),
    ("A-absolute", "tinyproxy", "cpu_us_per_req", 0.2, "CPU per request <= 0.2x tinyproxy's"),
    ("A-absolute", "squid", "cpu_us_per_req", 0.2, "CPU per request <= 0.2x squid's"),
    ("A-absolute", "tinyproxy", "p99_us", 0.5, "p99 <= 0.5x tinyproxy's"),
    ("A-absolute", "squid", "p99_us", 0.5, "p99 <= 0.5x squid's"),
    ("B-connect", "tinyproxy", "cpu_us_per_req", 0.2, "CPU per connection <= 0.2x tinyproxy's"),
    ("B-connect", "squid", "cpu_us_per_req", 0.2, "CPU per connection <= 0.2x squid's"),
    ("B-connect", "tinyproxy", "p99_us", 0.5, "p99 <= 0.5x tinyproxy's"),
    ("B-connect", "squid", "p99_us", 0.5, "p99 <= 0.5x squid's"),
    ("B-connect", "edgeproxy_tcp", "cpu_us_per_req", 1.2,
     "CPU per connection <= 1.2x edgeproxy's TCP mode relaying the same GET without CONNECT "
     "(the 1.2x of the issue, stated for requests, applied to tunnels)"),
]

UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 6e7}


# ---------------------------------------------------------------- parsers
def latency_us(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * UNITS_US[m.group(2)] if m else None


def parse_wrk(text):
    """wrk --latency output: {requests, rps, p50_us, p99_us, errors, closes}. errors: connect,
    write and timeout errors and non-2xx/3xx answers; closes: wrk's "read" errors, which are also
    a server closing a keep-alive connection after a complete response (tinyproxy does after
    every response without saying Connection: close), so they are counted apart."""
    out = {"errors": 0, "closes": 0}
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] in ("50%", "99%"):
            out["p50_us" if words[0] == "50%" else "p99_us"] = latency_us(words[1])
        elif " requests in " in line:
            out["requests"] = int(words[0])
        elif line.startswith("Requests/sec:"):
            out["rps"] = float(words[1])
        elif "Socket errors:" in line:
            counts = dict(re.findall(r"(connect|read|write|timeout) (\d+)", line))
            out["closes"] += int(counts.get("read", 0))
            out["errors"] += sum(int(counts.get(k, 0)) for k in ("connect", "write", "timeout"))
        elif "Non-2xx or 3xx responses:" in line:
            out["errors"] += int(words[-1])
    return out


def parse_connect_load(text):
    """connect-load's "key value" lines: {requests, rps, p50_us, p99_us, errors, tunnel_p99_us,
    error_*}."""
    kv = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            kv[parts[0]] = parts[1]
    out = {}
    for src, dst, conv in (("connections", "requests", int), ("rate", "rps", float),
                           ("latency_p50_us", "p50_us", float), ("latency_p99_us", "p99_us", float),
                           ("errors", "errors", int), ("tunnel_p99_us", "tunnel_p99_us", float)):
        if src in kv:
            out[dst] = conv(kv[src])
    for k, v in kv.items():
        if k.startswith("error_") and v != "0":
            out[k] = int(v)
    if out.get("requests") == 0:  # percentiles of nothing
        for k in ("p50_us", "p99_us", "tunnel_p99_us"):
            out.pop(k, None)
    return out


def parse_output(path):
    """Either tool's output, told apart by its content; {} when neither is recognised."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    if re.search(r"^mode (connect|direct)$", text, re.M):
        return parse_connect_load(text)
    if "Requests/sec:" in text or " requests in " in text:
        return parse_wrk(text)
    return {}


def summary_line(path):
    r = parse_output(path)
    if not r.get("requests"):
        return "no result (%s)" % os.path.basename(path)
    unit = "req/s" if "closes" in r else "conn/s"
    s = "%.0f %s, p99 %s" % (r["rps"], unit, "-" if r.get("p99_us") is None else "%.2f ms" % (r["p99_us"] / 1e3))
    if r.get("errors"):
        s += ", %d errors" % r["errors"]
    if r.get("closes"):
        s += ", %d closes" % r["closes"]
    return s


# ---------------------------------------------------------------- runs.csv
def write_runs_csv(folder, meta):
    hz = float(meta.get("clk_tck", "100"))
    rows, closes = [], {}
    with open(os.path.join(folder, "runs.tsv"), encoding="utf-8") as f:
        for line in f:
            rnd, shape, system, ticks, duration, raw, loadavg = line.rstrip("\n").split("\t")
            row = dict.fromkeys(CSV_COLS, "")
            row.update(workload=shape, workers="1", layout="pinned", run=rnd, system=system,
                       proxy_cpus=meta.get("proxy_cpu", ""), load_cpus=meta.get("load_cpu", ""),
                       duration_s=duration, raw=raw, loadavg1=loadavg)
            r = parse_output(os.path.join(folder, raw))
            for key in ("requests", "rps", "p50_us", "p99_us", "errors"):
                if r.get(key) is not None:
                    row[key] = "%g" % r[key]
            closes[(shape, system)] = closes.get((shape, system), 0) + r.get("closes", 0)
            cpu_s = int(ticks) / hz
            row["proxy_cpu_s"] = "%.3f" % cpu_s
            row["cpu_pct"] = "%.1f" % (cpu_s / float(duration) * 100)
            if r.get("requests"):
                row["cpu_us_per_req"] = "%.3f" % (cpu_s * 1e6 / r["requests"])
            else:
                row["error"] = "no completed request in %s" % raw
            rows.append(row)
    with open(os.path.join(folder, "runs.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLS)
        w.writeheader()
        w.writerows(rows)
    return closes


# ---------------------------------------------------------------- report.md
def ratios(res, shape, a, b, metric):
    """Per-round a/b of `metric`, in round order."""
    va = res.by_run(shape, a, metric)
    vb = res.by_run(shape, b, metric)
    return [va[k] / vb[k] for k in sorted(va, key=int) if k in vb and vb[k] > 0]


def spread(values):
    if not values:
        return "-"
    return "%s (%.2f-%.2f, %d)" % (fmt_ratio(statistics.median(values)), min(values), max(values),
                                   len(values))


def ms(v):
    return "-" if v is None else "%.2f ms" % (v / 1000.0)


def build_report(res, closes):
    md = Markdown()
    m = res.meta
    md.add("# Forward proxy: edgeproxy against tinyproxy and squid (%s)" % m.get("timestamp", "?"), "")
    md.add("```", m.get("command", ""), "```", "")
    md.table(["environment", ""], [[k[4:], v] for k, v in res.meta_order if k.startswith("env.")],
             right_from=9)
    md.add(m.get("desc", ""), "")
    subject = res.label(SUBJECT)
    for shape in SHAPES:
        systems = res.systems(shape)
        if not systems:
            continue
        unit = "connection" if shape.startswith("B") else "request"
        rate = "conn/s" if shape.startswith("B") else "req/s"
        md.add("## %s" % shape, "", m.get("desc." + shape, ""), "")
        has_subject = res.has(shape, SUBJECT)
        header = ["system", rate, "proxy CPU µs/%s" % unit, "proxy CPU %", "p50", "p99",
                  "%s / this: CPU per %s, median (min-max, rounds)" % (subject, unit),
                  "%s / this: p99" % subject, "%s / this: %s" % (subject, rate),
                  "this / %s: CPU per %s" % (res.label(REFERENCE), unit),
                  "CPU µs/%s per round" % unit, "errors"]
        if any(closes.get((shape, s)) for s in systems):
            header.append("closes")
        rows = []
        for s in systems:
            other = has_subject and s != SUBJECT
            row = [res.label(s), fmt(res.median(shape, s, "rps")),
                   fmt(res.median(shape, s, "cpu_us_per_req"), 2), fmt(res.median(shape, s, "cpu_pct")),
                   ms(res.median(shape, s, "p50_us")), ms(res.median(shape, s, "p99_us")),
                   spread(ratios(res, shape, SUBJECT, s, "cpu_us_per_req")) if other else "-",
                   spread(ratios(res, shape, SUBJECT, s, "p99_us")) if other else "-",
                   spread(ratios(res, shape, SUBJECT, s, "rps")) if other else "-",
                   spread(ratios(res, shape, s, REFERENCE, "cpu_us_per_req"))
                   if s != REFERENCE and res.has(shape, REFERENCE) else "-",
                   res.per_run(shape, s, "cpu_us_per_req", 1), str(res.errors(shape, s))]
            if len(header) > len(row):
                row.append(str(closes.get((shape, s), 0)))
            rows.append(row)
        md.table(header, rows)

    md.add("## Against the targets (issue 12)", "")
    skipped = [text for text, _ in res.notes if "skipped" in text]
    rows = []
    for shape, ref, metric, limit, text in TARGETS:
        if not res.has(shape, SUBJECT) or not res.has(shape, ref):
            why = "not measured"
            if not res.has(shape, SUBJECT) and skipped:
                why += " (%s skipped: see the note below)" % subject
            rows.append([shape, text, "-", why])
            continue
        r = ratios(res, shape, SUBJECT, ref, metric)
        verdict = "not measured" if not r else ("**met**" if statistics.median(r) <= limit else "**missed**")
        rows.append([shape, text, spread(r), verdict])
    md.table(["shape", "target for %s" % subject, "measured: median (min-max, rounds)", "status"], rows,
             right_from=3)
    for text, _ in res.notes:
        md.add("- note: %s" % text)
    failed = [r for r in res.rows if r.get("error")]
    for r in failed:
        md.add("- **failed**: round %s, %s, %s: %s" % (r["run"], r["workload"], res.label(r["system"]), r["error"]))
    if res.notes or failed:
        md.add("")
    if any(closes.values()):
        md.add("\"closes\" are wrk's read errors: a proxy that closed the client connection after a "
               "complete response although it was keep-alive (tinyproxy does after every response, "
               "without a Connection: close). wrk counts the response, then reconnects; they are not "
               "failed requests. \"errors\": connect, write and timeout errors and non-2xx answers "
               "(wrk), or connections that failed (connect-load).", "")
    md.add("Proxy CPU: utime + stime of the proxy process (every thread, also the ones that ended) "
           "and its children (squid's auth helper) from /proc/PID/stat over the run, divided by "
           "the requests (A) or connections (B) completed. Files: runs.csv, raw/ (wrk and "
           "connect-load output), logs/ (configs, process logs), commands.txt.")
    return md.text()


# ---------------------------------------------------------------- --probe
def exchange(port, request, tunnel_request=None, timeout=5.0):
    """Sends request to 127.0.0.1:port and reads to EOF (or, with tunnel_request, reads the
    answer head, then sends tunnel_request and reads to EOF). Returns (first head, body bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        if tunnel_request is not None:
            while b"\r\n\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            head = data.split(b"\r\n", 1)[0]
            if not head.startswith(b"HTTP/1.1 200") and not head.startswith(b"HTTP/1.0 200"):
                return head, b""
            s.sendall(tunnel_request)
            data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if len(data) > 1 << 20:
                break
    return data.split(b"\r\n", 1)[0], data


def probe(shape, port, origin_port, auth):
    tcp = shape.endswith("-tcp")
    shape = shape[:-4] if tcp else shape
    origin = "127.0.0.1:%d" % origin_port
    cred = "Proxy-Authorization: Basic %s\r\n" % auth

    def request(with_cred):
        c = cred if with_cred else ""
        if shape == "A-origin":
            return ("GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%sConnection: close\r\n\r\n"
                    % (port, c)).encode(), None
        if shape == "A-absolute":
            return ("GET http://%s/index.html HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n\r\n"
                    % (origin, origin, c)).encode(), None
        inner = b"GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        if tcp:
            return inner, None
        return ("CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (origin, origin, c)).encode(), inner

    req, inner = request(True)
    head, body = exchange(port, req, inner)
    print("with credentials:", head.decode("latin-1"))
    if not (head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.0 200")) or PAGE_MARKER not in body:
        print("expected 200 and the origin's page, got %r" % head.decode("latin-1"))
        return 1
    if not tcp:
        req, inner = request(False)
        head, _ = exchange(port, req, inner)
        print("without credentials:", head.decode("latin-1"))
        if b" 407" not in head[:13]:
            print("expected 407 without credentials, got %r" % head.decode("latin-1"))
            return 1
    return 0


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "--probe":
        p = argparse.ArgumentParser(prog="forward_report.py --probe")
        p.add_argument("shape", choices=SHAPES + [s + "-tcp" for s in SHAPES])
        p.add_argument("port", type=int)
        p.add_argument("origin_port", type=int)
        p.add_argument("auth")
        a = p.parse_args(sys.argv[2:])
        try:
            return probe(a.shape, a.port, a.origin_port, a.auth)
        except OSError as e:
            print("exchange failed: %s" % e)
            return 1
    if len(sys.argv) == 3 and sys.argv[1] == "--summary":
        print(summary_line(sys.argv[2]))
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("results_dir")
    args = p.parse_args()
    closes = write_runs_csv(args.results_dir, dict(read_tsv(os.path.join(args.results_dir, "meta.tsv"))))
    text = build_report(Results(args.results_dir), closes)
    with open(os.path.join(args.results_dir, "report.md"), "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

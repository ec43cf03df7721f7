#!/usr/bin/env python3
"""The server, the client and the report of scripts/bench-accelerate.sh (python3 stdlib only).

  accel.py server --addr A --port P --files N --bytes B --out FILE [--timeout S]
      Accepts N connections one after another on A:P. On each it writes B bytes at once
      (sendall), then waits until the peer's kernel has acknowledged every byte (SIOCOUTQ, the
      bytes not yet acknowledged, reaches 0: "the peer took everything"), then closes. Writes one
      line per file to FILE: "file K bytes B server_ms T sendall_ms T2", where T is from accept()
      returning to the last byte acknowledged and T2 from accept() to sendall() returning (a big
      socket send buffer can make sendall return long before the peer has the bytes, so T is the
      server's time). Writes "listening" first.
  accel.py client --addr A --port P --files N --bytes B --out FILE [--timeout S]
      Fetches N files one after another: connect, read to EOF, close, then the next. Writes
      "file K bytes GOT client_ms T" per file (T from connect() to EOF).
  accel.py report DIR
      Reads DIR/setups.tsv and the raw/ files the script wrote, writes DIR/runs.csv and
      DIR/report.md.

A 1.5 Mbit/s link moves about 190 KB/s: Python is not what limits these transfers, and the one
fast part (a server writing into an accelerating proxy over loopback) is one sendall() call, a
loop in C. Every loop is bounded in count and time.
"""

import argparse
import csv
import fcntl
import os
import socket
import statistics
import struct
import sys
import termios
import time

SIOCOUTQ = termios.TIOCOUTQ  # the same ioctl number: bytes written and not yet acknowledged
PATTERN = bytes(range(256))


def now_ms():
    return time.monotonic() * 1000.0


def unacked(sock):
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), SIOCOUTQ, b"\0" * 4))[0]


def cmd_server(a):
    data = (PATTERN * (a.bytes // len(PATTERN) + 1))[: a.bytes]
    deadline = time.monotonic() + a.timeout
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((a.addr, a.port))
    ls.listen(16)
    with open(a.out, "w", encoding="utf-8") as out:
        out.write("listening\n")
        out.flush()
        for k in range(1, a.files + 1):
            ls.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                s, _ = ls.accept()
            except socket.timeout:
                out.write("error accept timed out before file %d\n" % k)
                return 1
            t0 = now_ms()
            s.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                s.sendall(data)
                t_sent = now_ms()
                while unacked(s) > 0 and time.monotonic() < deadline:  # bounded by the deadline
                    time.sleep(0.0005)
                t_acked = now_ms()
                left = unacked(s)
            except OSError as e:
                out.write("error file %d: %s\n" % (k, e))
                s.close()
                return 1
            s.close()
            if left > 0:
                out.write("error file %d: %d bytes still unacknowledged at the deadline\n" % (k, left))
                return 1
            out.write("file %d bytes %d server_ms %.3f sendall_ms %.3f\n" % (k, a.bytes, t_acked - t0, t_sent - t0))
            out.flush()
    return 0


def cmd_client(a):
    buf = bytearray(65536)
    deadline = time.monotonic() + a.timeout
    with open(a.out, "w", encoding="utf-8") as out:
        for k in range(1, a.files + 1):
            got = 0
            t0 = now_ms()
            try:
                s = socket.create_connection((a.addr, a.port), timeout=max(0.1, deadline - time.monotonic()))
                while time.monotonic() < deadline:
                    n = s.recv_into(buf)
                    if n == 0:
                        break
                    got += n
                t1 = now_ms()
                s.close()
            except OSError as e:
                out.write("error file %d after %d bytes: %s\n" % (k, got, e))
                return 1
            out.write("file %d bytes %d client_ms %.3f\n" % (k, got, t1 - t0))
            out.flush()
            if got != a.bytes:
                out.write("error file %d: %d bytes received, %d expected\n" % (k, got, a.bytes))
                return 1
    return 0


# ---------------------------------------------------------------- report
def read_lines(path):
    """{file: {key: value}} and the error lines of a server or client output file."""
    files, errors = {}, []
    if not os.path.exists(path):
        return files, ["%s missing" % os.path.basename(path)]
    with open(path, encoding="utf-8") as f:
        for line in f:
            w = line.split()
            if w and w[0] == "file" and len(w) % 2 == 0:
                files[int(w[1])] = dict(zip(w[2::2], w[3::2]))
            elif w and w[0] == "error":
                errors.append(line.strip())
    return files, errors


def f3(v):
    return "" if v is None else "%.3f" % v


def cell(v, digits=1):
    return "-" if v is None else "{:,.{}f}".format(v, digits).replace(",", " ")


def cmd_report(a):
    d = a.dir
    meta = {}
    with open(os.path.join(d, "meta.tsv"), encoding="utf-8") as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("\t")
            meta[k] = v
    setups = []
    with open(os.path.join(d, "setups.tsv"), encoding="utf-8") as f:
        for r in csv.DictReader(f, delimiter="\t"):
            setups.append(r)
    cols = ["setup", "label", "file", "bytes", "server_ms", "sendall_ms", "client_ms", "factor",
            "proxy_vmhwm_kib", "proxy_vmrss_kib", "proxy_factor_stat", "status"]
    rows, summary = [], []
    for st in setups:
        name = st["setup"]
        base = {"setup": name, "label": st["label"], "proxy_vmhwm_kib": st["vmhwm_kib"],
                "proxy_vmrss_kib": st["vmrss_kib"], "proxy_factor_stat": st["factor_stat"]}
        if st["status"] != "ok":
            rows.append(dict(base, status=st["status"]))
            summary.append((st, None, None, None, None))
            continue
        srv, srv_err = read_lines(os.path.join(d, "raw", "server-%s.txt" % name))
        cli, cli_err = read_lines(os.path.join(d, "raw", "client-%s.txt" % name))
        factors, s_tot, c_tot = [], 0.0, 0.0
        for k in range(1, int(meta["files"]) + 1):
            s, c = srv.get(k, {}), cli.get(k, {})
            sm = float(s["server_ms"]) if "server_ms" in s else None
            cm = float(c["client_ms"]) if "client_ms" in c else None
            fac = cm / sm if sm and cm else None
            ok = sm is not None and cm is not None and c.get("bytes") == meta["bytes"]
            if ok:
                factors.append(fac)
                s_tot += sm
                c_tot += cm
            rows.append(dict(base, file=k, bytes=c.get("bytes", ""), server_ms=f3(sm),
                             sendall_ms=f3(float(s["sendall_ms"])) if "sendall_ms" in s else "",
                             client_ms=f3(cm), factor=f3(fac),
                             status="ok" if ok else "; ".join(srv_err + cli_err) or "missing"))
        summary.append((st, factors, s_tot, c_tot, srv_err + cli_err))
    with open(os.path.join(d, "runs.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in cols})

    md = ["# Acceleration: a %s-byte file %s times to a %s client (%s)"
          % (meta["bytes"], meta["files"], meta["rate"], meta["timestamp"]), ""]
    if meta.get("quick") == "1":
        md += ["> **QUICK run**: a smaller file, a test of the script; not the experiment.", ""]
    md += ["```", meta["command"], "```", ""]
    md += ["| environment | |", "|---|---|"]
    md += ["| %s | %s |" % (k[4:], v) for k, v in meta.items() if k.startswith("env.")]
    md += ["", meta["method"], ""]
    md += ["| setup | files | server ms per file (median) | client ms per file (median) | "
           "factor per file (median) | factor min-max | factor of the totals | proxy VmHWM (KiB) | "
           "edgeproxy acceleration_factor stat |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for st, factors, s_tot, c_tot, _ in summary:
        if factors is None:
            md.append("| %s | %s | | | | | | | |" % (st["label"], st["status"]))
            continue
        n = len(factors)
        srv_ms = [float(r["server_ms"]) for r in rows if r["setup"] == st["setup"] and r.get("status") == "ok"]
        cli_ms = [float(r["client_ms"]) for r in rows if r["setup"] == st["setup"] and r.get("status") == "ok"]
        md.append("| %s | %d | %s | %s | %s | %s | %s | %s | %s |" % (
            st["label"], n, cell(statistics.median(srv_ms)) if n else "-",
            cell(statistics.median(cli_ms)) if n else "-",
            cell(statistics.median(factors), 2) if n else "-",
            ("%s-%s" % (cell(min(factors), 2), cell(max(factors), 2))) if n else "-",
            cell(c_tot / s_tot, 2) if n and s_tot > 0 else "-",
            st["vmhwm_kib"] or "-", st["factor_stat"] or "-"))
    md += ["", "Per file:", "",
           "| setup | file | bytes | server ms | server sendall() ms | client ms | factor | status |",
           "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if "file" not in r:
            continue
        md.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["label"], r["file"], r["bytes"], r["server_ms"], r["sendall_ms"], r["client_ms"],
            r["factor"], r["status"]))
    notes = [st for st, *_ in summary if st["status"] != "ok"]
    if notes:
        md += ["", "## Notes", ""] + ["- %s: %s" % (st["label"], st["status"]) for st in notes]
    md += ["", "Files: runs.csv (a row per setup and file), raw/ (server and client output), logs/, "
           "commands.txt."]
    with open(os.path.join(d, "report.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(md) + "\n")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("server", "client"):
        q = sub.add_parser(name)
        q.add_argument("--addr", required=True)
        q.add_argument("--port", type=int, required=True)
        q.add_argument("--files", type=int, required=True)
        q.add_argument("--bytes", type=int, required=True)
        q.add_argument("--out", required=True)
        q.add_argument("--timeout", type=float, default=600.0, help="seconds for all the files")
    q = sub.add_parser("report")
    q.add_argument("dir")
    a = p.parse_args()
    if a.cmd in ("server", "client") and not (1 <= a.files <= 1000 and 1 <= a.bytes <= 1 << 30):
        p.error("--files must be in 1..1000 and --bytes in 1..1 GiB")
    return {"server": cmd_server, "client": cmd_client, "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())

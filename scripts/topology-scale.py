#!/usr/bin/env python3
"""Start-up and reload of a large topology: 100 listeners and 1 000 servers.

    scripts/topology-scale.py [BINARY] [--workers N] [--reloads N] [--shape SHAPE]

SHAPE is `spread` (10 backends of 100 servers, each algorithm twice, 100 listeners on free
loopback ports) or `one` (one backend of 1 000 servers balanced by source hash, the costliest
ring to build, behind 100 listeners). Servers are loopback addresses nothing listens on, with
no active checks, so nothing but the configuration is measured. Prints the time from exec to the
"listening on" line, each reload's own figures (from its "reloaded" line: load, listeners and
balancers, swap), and the proxy's RSS after start-up and after the reloads. Stops only the
process it started. Timings here are measurements, never pass/fail."""

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ALGORITHMS = ["roundrobin", "leastconn", "random", "source", "first"]


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def write_config(path, shape, ports, variant):
    lines = ["global {", "    max-connections 20000", "}"]
    if shape == "one":
        backends = [("pool", "source", 1000)]
    else:
        backends = [(f"b{i}", ALGORITHMS[i % len(ALGORITHMS)], 100) for i in range(10)]
    server = 0
    for name, balance, count in backends:
        lines += [f"backend {name} {{", f"    balance {balance}"]
        for j in range(count):
            # 127.1.x.y: a distinct loopback address per server; the variant moves one server.
            a, b = divmod(server + (1 if variant and server == 0 else 0), 250)
            lines.append(f"    server s{j} 127.1.{a}.{b + 1}:9 weight {1 + j % 4}")
            server += 1
        lines.append("}")
    for i, port in enumerate(ports):
        backend = backends[i % len(backends)][0]
        lines += [f"listener l{i} {{", f"    bind 127.0.0.1:{port}", f"    backend {backend}",
                  "}"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary", nargs="?", default="build/release/edgeproxy")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--reloads", type=int, default=10)
    ap.add_argument("--shape", choices=["spread", "one"], default="spread")
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory()
    conf = os.path.join(tmp.name, "scale.conf")
    ports = free_ports(100)
    write_config(conf, args.shape, ports, False)
    lines, cond = [], threading.Condition()
    began = time.monotonic()
    proc = subprocess.Popen([args.binary, "-c", conf, "--workers", str(args.workers)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)

    def reader():
        for line in proc.stderr:
            with cond:
                lines.append((time.monotonic(), line.rstrip("\n")))
                cond.notify_all()

    threading.Thread(target=reader, daemon=True).start()

    def wait_for(needle, start, timeout=30.0):
        deadline = time.monotonic() + timeout
        with cond:
            while True:
                for i in range(start, len(lines)):
                    if needle in lines[i][1]:
                        return i
                left = deadline - time.monotonic()
                if left <= 0 or proc.poll() is not None:
                    sys.exit(f"topology-scale: no '{needle}' line; stderr:\n"
                             + "\n".join(l for _, l in lines[-20:]))
                cond.wait(left)

    try:
        ready = wait_for("listening on", 0)
        startup_ms = (lines[ready][0] - began) * 1000
        rss_start = rss_kib(proc.pid)
        figures = []
        seen = ready + 1
        for n in range(args.reloads):
            write_config(conf, args.shape, ports, n % 2 == 0)  # one server moved each time
            proc.send_signal(signal.SIGHUP)
            i = wait_for("reloaded", seen)
            seen = i + 1
            m = re.search(r"in ([\d.]+) ms \(load ([\d.]+), listeners and balancers ([\d.]+), "
                          r"swap ([\d.]+)\)", lines[i][1])
            figures.append(tuple(float(x) for x in m.groups()))
        rss_end = rss_kib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    print(f"{args.shape}: 100 listeners, 1000 servers, {args.workers} worker(s), {args.binary}")
    print(f"start-up (exec to 'listening on'): {startup_ms:.1f} ms; RSS {rss_start / 1024:.1f} MiB")
    if figures:
        for label, k in (("whole reload", 0), ("load (read, parse, resolve)", 1),
                         ("listeners and balancers", 2), ("swap (workers switched)", 3)):
            vals = [f[k] for f in figures]
            print(f"{label:<30} median {statistics.median(vals):7.1f} ms, max {max(vals):7.1f} ms"
                  f" over {len(vals)} reloads")
        print(f"RSS after {len(figures)} reloads: {rss_end / 1024:.1f} MiB")


if __name__ == "__main__":
    main()

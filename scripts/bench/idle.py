#!/usr/bin/env python3
"""Helpers for scripts/bench.sh (python3 stdlib only).

Subcommands:
  freeport                      print a free TCP port on 127.0.0.1
  waitport PORT [TIMEOUT]       exit 0 once 127.0.0.1:PORT accepts a connection
  hold PORT STATUSFILE          idle backend: accept connections and hold them
                                open (never send anything) until the peer
                                closes; writes "open accepted" to STATUSFILE
  clients ...                   open N idle connections through a proxy and
                                measure the proxy's VmRSS (see --help)

Every loop is bounded in count and time.
"""

import argparse
import os
import resource
import selectors
import socket
import sys
import time


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    new_hard = hard if hard == resource.RLIM_INFINITY or hard >= want else want
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, new_hard))
    except (ValueError, OSError):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cmd_freeport(_args):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
    s.close()
    return 0


def cmd_waitport(args):
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", args.port), timeout=0.5):
                return 0
        except OSError:
            time.sleep(0.05)
    return 1


def write_status(path, open_count, accepted):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d %d\n" % (open_count, accepted))
    os.replace(tmp, path)


def cmd_hold(args):
    raise_nofile(args.nofile)
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", args.port))
    lsock.listen(65535)
    lsock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ, None)
    conns = 0
    accepted = 0
    write_status(args.status, 0, 0)
    last_written = (0, 0)
    last_write_t = 0.0
    # Bounded lifetime: the script kills us long before this expires.
    deadline = time.monotonic() + args.max_lifetime
    while time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.2):
            if key.data is None:
                for _ in range(1024):  # accept a bounded burst
                    try:
                        c, _addr = lsock.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError as e:  # e.g. EMFILE: report, keep going
                        print("hold: accept: %s" % e, file=sys.stderr)
                        time.sleep(0.05)
                        break
                    c.setblocking(False)
                    sel.register(c, selectors.EVENT_READ, 1)
                    conns += 1
                    accepted += 1
            else:
                c = key.fileobj
                try:
                    data = c.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:  # peer closed (or reset): release the fd
                    sel.unregister(c)
                    c.close()
                    conns -= 1
                # any data received is discarded: this backend only holds
        now = time.monotonic()
        if (conns, accepted) != last_written and now - last_write_t >= 0.05:
            write_status(args.status, conns, accepted)
            last_written = (conns, accepted)
            last_write_t = now
    return 0


def read_status(path):
    try:
        with open(path) as f:
            parts = f.read().split()
        return int(parts[0]), int(parts[1])
    except (OSError, ValueError, IndexError):
        return -1, -1


def vmrss_kib(pids):
    total = 0
    for pid in pids:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
    return total


def pids_alive(pids):
    return all(os.path.exists("/proc/%d" % p) for p in pids)


def wait_backend(status, target, timeout):
    """Wait until the hold backend has >= target open connections."""
    deadline = time.monotonic() + timeout
    while True:
        open_count, _ = read_status(status)
        if open_count >= target or time.monotonic() >= deadline:
            return open_count
        time.sleep(0.02)


def count_alive(socks):
    """Connections that are still open (no EOF/reset seen on our side)."""
    alive = 0
    for s in socks:
        try:
            data = s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            if data:
                alive += 1  # unexpected data, but still open
        except (BlockingIOError, InterruptedError):
            alive += 1
        except OSError:
            pass
    return alive


def cmd_clients(args):
    raise_nofile(args.n + 1024)
    pids = args.pids
    result = {"n": args.n, "ok": 0, "error": ""}
    time.sleep(args.settle)  # let earlier (probe) connections drain first
    base_open, _ = read_status(args.status)
    if base_open < 0:
        result["error"] = "cannot read backend status file"
        print_kv(result)
        return 1
    result["backend_base"] = base_open
    result["rss_before_kib"] = vmrss_kib(pids)
    socks = []
    t0 = time.monotonic()
    deadline = t0 + args.open_timeout
    err = ""
    try:
        while len(socks) < args.n:
            if time.monotonic() >= deadline:
                err = "timeout opening connections"
                break
            if not pids_alive(pids):
                err = "proxy process died while opening connections"
                break
            batch = min(args.batch, args.n - len(socks))
            for _ in range(batch):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.settimeout(5.0)
                try:
                    s.connect(("127.0.0.1", args.port))
                except OSError as e:
                    s.close()
                    err = "connect #%d failed: %s" % (len(socks) + 1, e)
                    break
                s.settimeout(None)  # blocking: MSG_DONTWAIT peeks stay instant
                socks.append(s)
            if err:
                break
            # let the proxy catch up so its accept backlog never overflows
            wait_backend(args.status, base_open + len(socks) - args.batch, 5.0)
        result["opened"] = len(socks)
        result["open_seconds"] = round(time.monotonic() - t0, 3)
        # wait until the backend sees every connection (or a few seconds)
        seen = wait_backend(args.status, base_open + len(socks), args.wait)
        result["backend_open"] = seen - base_open
        time.sleep(args.settle)
        if not pids_alive(pids):
            err = err or "proxy process died"
        else:
            result["rss_after_kib"] = vmrss_kib(pids)
        result["alive"] = count_alive(socks)
        if not err and result["alive"] != args.n:
            err = "%d of %d client connections were closed by the proxy" % (
                args.n - result["alive"], args.n)
        if not err and result["backend_open"] < args.n:
            err = "backend saw only %d of %d connections" % (
                result["backend_open"], args.n)
    finally:
        for s in socks:
            s.close()
    # wait (bounded) until the proxy has closed its backend side too
    result["backend_open_after_close"] = (
        wait_backend_below(args.status, base_open, 10.0) - base_open)
    result["error"] = err
    result["ok"] = int(("rss_after_kib" in result) and not err)
    print_kv(result)
    return 0


def print_kv(result):
    """One key=value per line (easy to read from bash); error goes last."""
    err = result.pop("error", "")
    for k, v in result.items():
        print("%s=%s" % (k, v))
    print("error=%s" % str(err).replace("\n", " "))


def wait_backend_below(status, target, timeout):
    deadline = time.monotonic() + timeout
    while True:
        open_count, _ = read_status(status)
        if open_count <= target or time.monotonic() >= deadline:
            return open_count
        time.sleep(0.05)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    sp = sub.add_parser("freeport")
    sp.set_defaults(fn=cmd_freeport)

    sp = sub.add_parser("waitport")
    sp.add_argument("port", type=int)
    sp.add_argument("timeout", type=float, nargs="?", default=10.0)
    sp.set_defaults(fn=cmd_waitport)

    sp = sub.add_parser("hold")
    sp.add_argument("port", type=int)
    sp.add_argument("status")
    sp.add_argument("--nofile", type=int, default=65536)
    sp.add_argument("--max-lifetime", type=float, default=6 * 3600)
    sp.set_defaults(fn=cmd_hold)

    sp = sub.add_parser("clients", help="open N idle connections, report RSS")
    sp.add_argument("--port", type=int, required=True, help="proxy port")
    sp.add_argument("--status", required=True, help="hold backend status file")
    sp.add_argument("--pids", type=lambda s: [int(x) for x in s.split(",") if x.strip()],
                    required=True, help="comma-separated proxy PIDs")
    sp.add_argument("-n", type=int, default=10000)
    sp.add_argument("--batch", type=int, default=250)
    sp.add_argument("--settle", type=float, default=1.0)
    sp.add_argument("--wait", type=float, default=10.0,
                    help="max seconds to wait for the backend to see all")
    sp.add_argument("--open-timeout", type=float, default=120.0)
    sp.set_defaults(fn=cmd_clients)

    args = p.parse_args()
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())

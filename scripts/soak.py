#!/usr/bin/env python3
"""Soak test with fault injection (issue 16): a mixed load through edgeproxy while faults are
injected on a schedule; asserts that nothing is lost, every failure is explained, resources stay
flat, the proxy survives and its counters add up. Python 3 standard library only.

    scripts/soak.py run --bin build/release/edgeproxy --seconds 60 [--dir DIR]
    scripts/soak.py server NAME LETTER PORT        (a backend server; started by `run`)

Usually started by scripts/soak.sh (SOAK_SECONDS, SOAK_BACKEND, EDGEPROXY_BIN). See the "Soak"
section of docs/reliability.md for what runs, what is asserted and the last results.

Layout
  * the wire protocol between the soak's clients and its backend servers (Reader, data_chunks);
  * `server`: one backend server process (echo, uploads, downloads, half-closes, health checks,
    and HTTP/1.1 for the http listener's pooled connections);
  * Loads: one function per kind of client, each returning a Record (what happened, how many
    bytes were verified); LOADS lists them with their weights. A new kind is one more function
    and one more LOADS entry (load_http also has a listener and a backend of its own in CONFIG);
  * Faults: the scheduler (kill/restart, SIGSTOP/SIGCONT, EMFILE, drain, weight) and the reload
    and admin threads, writing the fault timeline;
  * the verdict: access log parsed, every failure classified against the timeline, samples,
    counters, sanitizer reports; a table printed and written as results.json.
"""

import argparse
import collections
import datetime
import hashlib
import json
import math
import os
import random
import re
import resource
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

KiB = 1024
MiB = 1024 * 1024

# --------------------------------------------------------------------------------------------
# Wire protocol (client <-> backend server, through the proxy)
#
# A client's first line is its hello, "A soak\n" or "B soak\n": the backend it expects. The routed
# listener routes on it; a server of the other backend answers "MISROUTE\n" and closes. Then
# commands, one per line, any number on one connection (keep-alive):
#   E N\n + N bytes           echo: the N bytes come back
#   U N\n + N bytes           upload: the server answers "<sha256 hex of the N bytes>\n"
#   D N SEED\n                download: N bytes of data_chunks(SEED, N), then the 64-hex SHA-256
#                             the server computed over what it sent
#   H N M SEED\n + N bytes, then the client's FIN (half-close): the server reads to EOF, answers
#                             "<sha256 of what it read> <count>\n", M bytes of data_chunks(SEED, M)
#                             and their SHA-256, and closes
# A health check's first line is "PING": answered "PONG\r\n", closed.
# --------------------------------------------------------------------------------------------

LINE_MAX = 256
HEAD_MAX = 8192  # an HTTP head's line
HTTP_REQUEST = re.compile(rb"^[A-Z]+ /\S* HTTP/1\.[01]\r\n$")
CHUNK = 64 * KiB
BASE = random.Random(0x50A4).randbytes(MiB + CHUNK)  # the same bytes in every process


def data_chunks(seed, size):
    """size bytes as memoryviews of BASE at offsets drawn from Random(seed): deterministic,
    cheap, and not periodic (a lost, duplicated or reordered chunk changes the SHA-256)."""
    rng = random.Random(seed)
    view = memoryview(BASE)
    left = size
    while left > 0:
        n = min(left, CHUNK - rng.randrange(0, 4096))
        off = rng.randrange(0, MiB)
        yield view[off:off + n]
        left -= n


class Reader:
    """Buffered reads from a socket, counting every byte received."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.received = 0

    def _fill(self, want=256 * KiB):
        data = self.sock.recv(want)
        if not data:
            raise EOFError("eof")
        self.received += len(data)
        self.buf += data

    def readline(self, limit=LINE_MAX):
        for _ in range(limit + 1):
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > limit:
                raise ValueError(f"line longer than {limit} bytes")
            self._fill(LINE_MAX)
        raise ValueError("no line")

    def read_exact(self, n):
        out = bytearray()
        self.read_into_hash(n, None, out)
        return bytes(out)

    def read_into_hash(self, n, h, out=None, pace=None):
        """Read exactly n bytes, feeding them to hash h (and out). pace=(bytes, seconds): a slow
        reader. Raises EOFError (with the count) if the stream ends first."""
        got = 0
        for _ in range(n + 2):
            if got >= n:
                return got
            if not self.buf:
                try:
                    self._fill(min(256 * KiB, pace[0] if pace else 256 * KiB))
                except EOFError:
                    raise EOFError(f"eof after {got} of {n} bytes") from None
                if pace:
                    time.sleep(pace[1])
            take = min(n - got, len(self.buf))
            piece = self.buf[:take]
            if h is not None:
                h.update(piece)
            if out is not None:
                out += piece
            del self.buf[:take]
            got += take
        return got

    def read_to_eof(self, limit):
        """Read until EOF; returns the bytes (at most limit, else ValueError)."""
        for _ in range(limit + 2):
            if len(self.buf) > limit:
                raise ValueError("more than expected before EOF")
            try:
                self._fill()
            except EOFError:
                return bytes(self.buf)
        raise ValueError("no EOF")


def send_chunks(sock, chunks, h=None):
    sent = 0
    for c in chunks:
        sock.sendall(c)
        if h is not None:
            h.update(c)
        sent += len(c)
    return sent


# --------------------------------------------------------------------------------------------
# Backend server process
# --------------------------------------------------------------------------------------------

def serve_connection(conn, letter):
    conn.settimeout(120)
    r = Reader(conn)
    try:
        first = r.readline()
        if first.startswith(b"PING"):
            conn.sendall(b"PONG\r\n")
            return
        if HTTP_REQUEST.match(first):
            serve_http(conn, r, first)
            return
        if first != f"{letter} soak\n".encode():
            conn.sendall(b"MISROUTE\n")
            return
        for _ in range(1 << 30):
            try:
                line = r.readline()
            except EOFError:
                return
            words = line.split()
            if not words:
                return
            cmd, args = words[0], [int(w) for w in words[1:]]
            if cmd == b"E":
                conn.sendall(r.read_exact(args[0]))
            elif cmd == b"U":
                h = hashlib.sha256()
                r.read_into_hash(args[0], h)
                conn.sendall(h.hexdigest().encode() + b"\n")
            elif cmd == b"D":
                h = hashlib.sha256()
                send_chunks(conn, data_chunks(args[1], args[0]), h)
                conn.sendall(h.hexdigest().encode())
            elif cmd == b"H":
                h = hashlib.sha256()
                count = r.read_into_hash(len(r.buf), h) if r.buf else 0
                for _ in range(1 << 40):
                    data = conn.recv(256 * KiB)
                    if not data:
                        break
                    h.update(data)
                    count += len(data)
                conn.sendall(f"{h.hexdigest()} {count}\n".encode())
                h2 = hashlib.sha256()
                send_chunks(conn, data_chunks(args[2], args[1]), h2)
                conn.sendall(h2.hexdigest().encode())
                return
            else:
                conn.sendall(b"BADCOMMAND\n")
                return
    except (OSError, EOFError, ValueError, IndexError):
        return
    finally:
        try:
            conn.close()
        except OSError:
            pass


def read_http_head(r, first=None):
    """A request or response head from r: (first line, {lower-case name: value}). The first line
    may already have been read (the server's dispatch reads it)."""
    line = first if first is not None else r.readline(HEAD_MAX)
    fields = {}
    for _ in range(100):
        field = r.readline(HEAD_MAX)
        if field in (b"\r\n", b"\n"):
            return line.rstrip(b"\r\n"), fields
        name, sep, value = field.partition(b":")
        if not sep:
            raise ValueError(f"bad header line {field[:80]!r}")
        fields[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    raise ValueError("more than 100 header lines")


def read_http_body(r, fields, h, out=None, pace=None):
    """The body framed by fields (Content-Length or chunked, trailers returned as a dict), fed
    to h; returns (count, trailers)."""
    if fields.get("transfer-encoding", "").lower() == "chunked":
        count, trailers = 0, {}
        for _ in range(1 << 30):
            size = int(r.readline(HEAD_MAX).split(b";")[0].strip(), 16)
            if size == 0:
                _, trailers = read_http_head(r, b"")
                return count, trailers
            count += r.read_into_hash(size, h, out, pace)
            if r.readline(4) not in (b"\r\n", b"\n"):
                raise ValueError("chunk data not followed by CRLF")
        raise ValueError("too many chunks")
    n = int(fields.get("content-length", "0"))
    return r.read_into_hash(n, h, out, pace), {}


def http_chunked(chunks):
    """chunks framed as chunked data (without the last chunk)."""
    for c in chunks:
        yield b"%x\r\n" % len(c) + bytes(c) + b"\r\n"


def serve_http(conn, r, first):
    """HTTP/1.1 requests of the http listener's pooled connections, one after the other:
      GET|HEAD /d/SIZE/SEED[/c][/close]  SIZE bytes of data_chunks(SEED), their SHA-256 in
                                         X-Sha256; /c: chunked, the hash again in a trailer;
                                         /close: Connection: close, and the connection ends
      POST /u                            the body (Content-Length or chunked) hashed: answers
                                         "<sha256 hex> <count>\\n"
    """
    for _ in range(1 << 30):
        line, fields = read_http_head(r, first)
        first = None
        method, target, version = line.decode("latin-1").split(" ", 2)
        parts = target.split("/")
        close = "close" in parts or fields.get("connection", "").lower() == "close"
        extra = b"Connection: close\r\n" if close else b""
        if method == "POST" and parts[1] == "u":
            h = hashlib.sha256()
            count, _ = read_http_body(r, fields, h)
            body = f"{h.hexdigest()} {count}\n".encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (len(body), extra)
                         + body)
        elif method in ("GET", "HEAD") and parts[1] == "d":
            size, seed = int(parts[2]), int(parts[3])
            h = hashlib.sha256()
            for c in data_chunks(seed, size):
                h.update(c)
            digest = h.hexdigest().encode()
            chunked = "c" in parts[4:] and version == "HTTP/1.1"
            framing = b"Transfer-Encoding: chunked\r\nTrailer: X-Sha256\r\n" if chunked \
                else b"Content-Length: %d\r\n" % size
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Sha256: %s\r\n%s%s\r\n" % (digest, framing, extra))
            if method == "GET":
                if chunked:
                    send_chunks(conn, http_chunked(data_chunks(seed, size)))
                    conn.sendall(b"0\r\nX-Sha256: %s\r\n\r\n" % digest)
                else:
                    send_chunks(conn, data_chunks(seed, size))
        else:
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close"
                         b"\r\n\r\n")
            return
        if close:
            return
        try:
            first = r.readline(HEAD_MAX)
        except EOFError:
            return


def server_main(name, letter, port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    for attempt in range(100):  # a restart may race the old socket's close
        try:
            sock.bind(("127.0.0.1", port))
            break
        except OSError:
            if attempt == 99:
                raise
            time.sleep(0.05)
    sock.listen(64)
    print(f"ready {name} {port}", flush=True)
    for _ in range(1 << 40):
        try:
            conn, _ = sock.accept()
        except OSError:
            continue
        threading.Thread(target=serve_connection, args=(conn, letter), daemon=True).start()


# --------------------------------------------------------------------------------------------
# Configuration: two valid versions, alternated by reloads
# --------------------------------------------------------------------------------------------

CONFIG = """\
# edgeproxy soak configuration, version {version} (written by scripts/soak.py)
global {{
    workers 2
    max-connections 512
    shutdown-timeout 5s
    admin unix:{dir}/admin.sock
    access-log {dir}/access.log
    access-log-format "%t %ci:%cp %f %bs %Tc %Tt %U %B %e %w"
}}
backend A {{
    balance {balance}
    server a1 127.0.0.1:{a1} weight {wa1}
    server a2 127.0.0.1:{a2}
    check interval 1s timeout 500ms rise 2 fall 2 send "PING\\r\\n" expect "PONG"
    connect-timeout 1s
    retries 2
}}
backend B {{
    balance {balance}
    server b1 127.0.0.1:{b1}
    server b2 127.0.0.1:{b2} weight {wb2}
    check interval 1s timeout 500ms rise 2 fall 2 send "PING\\r\\n" expect "PONG"
    connect-timeout 1s
    retries 2
}}
listener plain {{
    bind 127.0.0.1:{plain}
    backend A
    idle-timeout {idle}s
}}
backend H {{
    balance {hbalance}
    server a1 127.0.0.1:{a1}
    server b2 127.0.0.1:{b2}
    check interval 1s timeout 500ms rise 2 fall 2 send "PING\\r\\n" expect "PONG"
    connect-timeout 1s
    retries 2
    pool-size {pool}
    max-pending 256
    pending-timeout 5s
    pool-idle-timeout 2s
}}
listener http {{
    bind 127.0.0.1:{http}
    mode http
    backend H
    idle-timeout {idle}s
}}
listener routed {{
    bind 127.0.0.1:{routed}
    inspect-timeout {inspect}ms
    idle-timeout {idle}s
    route {{
        prefix "A " regex "^A [a-z]+\\n" backend A
        prefix "B " regex "^B [a-z]+\\n" backend B
        any close "unknown\\n"
    }}
}}
"""
VERSIONS = {
    1: dict(balance="roundrobin", wa1=1, wb2=1, idle=6, inspect=2000, hbalance="rtt", pool=2),
    2: dict(balance="leastconn", wa1=2, wb2=3, idle=8, inspect=3000, hbalance="most-idle",
            pool=4),
}
IDLE_MAX = max(v["idle"] for v in VERSIONS.values())
INSPECT_MAX = max(v["inspect"] for v in VERSIONS.values()) / 1000.0
SERVERS = {"a1": "A", "a2": "A", "b1": "B", "b2": "B"}  # server process: its letter
BACKENDS = {"A": ("a1", "a2"), "B": ("b1", "b2"), "H": ("a1", "b2")}  # H: the http listener's


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --------------------------------------------------------------------------------------------
# Records and the fault timeline
# --------------------------------------------------------------------------------------------

class Record:
    """One client connection: kind, where it went, when, how it ended, bytes verified."""
    __slots__ = ("kind", "listener", "letter", "port", "t0", "t1", "status", "error",
                 "verified", "sent", "received", "explanation", "log")

    def __init__(self, kind, listener, letter):
        self.kind, self.listener, self.letter = kind, listener, letter
        self.port = None
        self.t0 = time.time()
        self.t1 = None
        self.status = None  # ok | fail | design (a client meant to be cut or to reset)
        self.error = ""
        self.verified = 0
        self.sent = 0
        self.received = 0
        self.explanation = ""
        self.log = None


class Timeline:
    def __init__(self):
        self.lock = threading.Lock()
        self.faults = []  # [kind, target, t_start, t_end or None]

    def begin(self, kind, target):
        entry = [kind, target, time.time(), None]
        with self.lock:
            self.faults.append(entry)
        return entry

    def end(self, entry):
        with self.lock:
            entry[3] = time.time()

    def snapshot(self):
        with self.lock:
            return [list(f) for f in self.faults]


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------

class Soak:
    def __init__(self, args):
        self.args = args
        self.binary = os.path.abspath(args.bin)
        self.seconds = args.seconds
        self.dir = os.path.abspath(args.dir)
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "edgeproxy.conf")
        self.proxy_log = os.path.join(self.dir, "proxy.log")
        self.access_log = os.path.join(self.dir, "access.log")
        self.stats_file = os.path.join(self.dir, "stats.json")
        self.admin_path = os.path.join(self.dir, "admin.sock")
        self.ports = {n: free_port() for n in ("plain", "routed", "http", "a1", "a2", "b1",
                                               "b2")}
        self.servers = {}
        self.server_lock = threading.Lock()
        self.timeline = Timeline()
        self.records = []
        self.rec_lock = threading.Lock()
        self.samples = []  # (t, fds, rss_kib)
        self.stop_load = threading.Event()
        self.stop_all = threading.Event()
        self.problems = []  # failed assertions / unexplained events outside the records
        self.admin_results = collections.Counter()
        self.admin_failures = []  # (t, command, error)
        self.reloads_sent = 0
        self.version = 1
        self.emfile_accept_errors = 0
        self.emfile_phases = 0
        self.rng = random.Random(args.seed)
        self.rng_lock = threading.Lock()
        self.proxy = None
        self.log_fd = None
        self.deadline = None
        # Faults start after warmup; fds and RSS are compared from warm-up to the end (the
        # slab's slots, the access-log rings and the malloc arenas are touched as they are
        # first used, and that levels off).
        self.warmup = max(10.0, min(120.0, self.seconds / 10))
        self.sanitized = False

    # -- helpers ---------------------------------------------------------------------------------

    def rand(self):
        with self.rng_lock:
            return random.Random(self.rng.getrandbits(64))

    def add(self, rec):
        if rec.t1 is None:
            rec.t1 = time.time()
        with self.rec_lock:
            self.records.append(rec)

    def write_config(self, version):
        text = CONFIG.format(version=version, dir=self.dir, **self.ports, **VERSIONS[version])
        with open(self.conf + ".tmp", "w") as f:
            f.write(text)
        os.replace(self.conf + ".tmp", self.conf)
        with open(os.path.join(self.dir, f"edgeproxy-v{version}.conf"), "w") as f:
            f.write(text)

    def log_text(self):
        with open(self.proxy_log, "rb") as f:
            return f.read().decode("utf-8", "replace")

    # -- backend servers -------------------------------------------------------------------------

    def start_server(self, name):
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "server", name,
                                 SERVERS[name], str(self.ports[name])],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        line = proc.stdout.readline()
        if not line.startswith(b"ready"):
            raise RuntimeError(f"server {name} did not start: {line!r}")
        with self.server_lock:
            self.servers[name] = proc

    def kill_server(self, name):
        with self.server_lock:
            proc = self.servers.pop(name)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()

    def signal_server(self, name, sig):
        with self.server_lock:
            os.kill(self.servers[name].pid, sig)

    def stop_servers(self):
        with self.server_lock:
            procs = list(self.servers.values())
            self.servers.clear()
        for proc in procs:
            try:
                os.kill(proc.pid, signal.SIGCONT)
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass

    # -- the proxy -------------------------------------------------------------------------------

    def start_proxy(self):
        env = dict(os.environ)
        self.sanitized = binary_is_sanitized(self.binary)
        if self.sanitized:
            env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
            env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        self.log_fd = os.open(self.proxy_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.proxy = subprocess.Popen([self.binary, "-c", self.conf, "--stats-file",
                                       self.stats_file], stdin=subprocess.DEVNULL,
                                      stdout=self.log_fd, stderr=self.log_fd, env=env)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if "listening on" in self.log_text() and os.path.exists(self.admin_path):
                return
            if self.proxy.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"the proxy did not start; see {self.proxy_log}")

    def admin(self, command, timeout=10.0):
        """One admin command over the Unix socket: the answer's text (up to its empty line)."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(self.admin_path)
            s.sendall(command.encode() + b"\n")
            data = b""
            for _ in range(100000):
                if data.endswith(b"\n\n") or data == b"\n":
                    break
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            return data.decode("utf-8", "replace")
        finally:
            s.close()

    def stats_json(self):
        return json.loads(self.admin("show stats json").strip())

    def sampler(self):
        pid = self.proxy.pid
        for _ in range(10 ** 7):
            if self.stop_all.wait(1.0):
                return
            try:
                fds = len(os.listdir(f"/proc/{pid}/fd"))
                rss = 0
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            rss = int(line.split()[1])
                try:
                    total = self.stats_json()["total"]
                    active, blocks = total["active"], total["pool_high_water"]
                except (OSError, ValueError, KeyError):
                    active = blocks = None  # an EMFILE phase: the admin socket cannot either
                self.samples.append((time.time(), fds, rss, active, blocks))
            except OSError:
                return

    # -- loads -----------------------------------------------------------------------------------

    def connect(self, rec, rng, rcvbuf=None):
        """A client socket to a listener chosen for rec (plain: backend A; routed: A or B)."""
        if rec.listener is None:
            rec.listener = "plain" if rng.random() < 0.5 else "routed"
        if rec.letter is None:
            rec.letter = "A" if rec.listener == "plain" else rng.choice("AB")
        # No bind before connect: connect(2) picks the port by the whole 4-tuple, so the churn's
        # TIME_WAIT sockets do not exhaust the ephemeral range. A failed connect has no port
        # (and no access-log line): only an EMFILE phase explains it.
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(self.args.client_timeout)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        try:
            s.connect(("127.0.0.1", self.ports[rec.listener]))
        except BaseException:
            s.close()
            raise
        rec.port = s.getsockname()[1]
        return s

    def hello(self, s, rec):
        s.sendall(f"{rec.letter} soak\n".encode())

    def run_load(self, kind, fn, rng):
        rec = Record(kind, "http", "H") if kind == "http" else Record(kind, None, None)
        s = None
        try:
            # A slow reader's own receive buffer is kept small, so that the proxy meets its
            # backpressure rather than handing it megabytes at once.
            s = self.connect(rec, rng, 32 * KiB if kind == "slow_reader" else None)
            r = Reader(s)
            fn(s, r, rec, rng)
            if rec.status is None:
                rec.status = "ok"
        except (OSError, EOFError, ValueError, AssertionError) as e:
            if rec.status is None:
                rec.status = "fail"
                rec.error = f"{type(e).__name__}: {e}"
        finally:
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass
            self.add(rec)

    def bulk_size(self, rng, top=64 * MiB):
        return int(math.exp(rng.uniform(math.log(KiB), math.log(top))))

    def http_exchange(self, s, r, rec, requests, half_close=False):
        """Sends requests (method, target, body chunks or None, chunked, version, close) in one
        write (more than one: pipelined), then reads and verifies each response. half_close: the
        client's FIN follows the requests at once, and the proxy's must follow the responses."""
        wire = bytearray()
        expected = []
        for method, target, body, chunked, version, close in requests:
            head = f"{method} {target} {version}\r\nHost: soak\r\n"
            if close and version == "HTTP/1.1":
                head += "Connection: close\r\n"
            h = hashlib.sha256()
            size = 0
            if body is not None:
                head += "Transfer-Encoding: chunked\r\n" if chunked else \
                    f"Content-Length: {sum(len(c) for c in body)}\r\n"
            wire += head.encode() + b"\r\n"
            if body is not None:
                for c in body:
                    h.update(c)
                    size += len(c)
                wire += b"".join(http_chunked(body)) + b"0\r\n\r\n" if chunked else \
                    b"".join(body)
            expected.append((method, target, h.hexdigest(), size, close))
        s.sendall(wire)
        rec.sent += len(wire)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        for method, target, digest, size, close in expected:
            line, fields = read_http_head(r)
            words = line.split(b" ")
            if len(words) < 2 or not words[0].startswith(b"HTTP/1."):
                raise AssertionError(f"ALTERED: bad status line {line[:80]!r}")
            if words[1] != b"200":
                raise ValueError(f"HTTP {words[1].decode('latin-1')} for {method} {target}")
            h = hashlib.sha256()
            out = bytearray() if method == "POST" else None
            if method == "HEAD":
                count, trailers = 0, {}
            else:
                count, trailers = read_http_body(r, fields, h, out)
            if method == "POST":
                if out != f"{digest} {size}\n".encode():
                    raise AssertionError(f"ALTERED: upload of {size} bytes: server hashed "
                                         f"{bytes(out[:80])!r}")
                rec.verified += size
            else:
                want = int(target.split("/")[2])
                if fields.get("x-sha256") is None or (method == "GET" and (
                        count != want or h.hexdigest() != fields["x-sha256"])):
                    raise AssertionError(f"ALTERED: {method} {target}: {count} bytes, sha256 "
                                         f"differs from the server's")
                if method == "HEAD" and "content-length" in fields and \
                        int(fields["content-length"]) != want:
                    raise AssertionError(f"ALTERED: HEAD {target}: Content-Length "
                                         f"{fields['content-length']}")
                if "x-sha256" in trailers and trailers["x-sha256"] != fields["x-sha256"]:
                    raise AssertionError(f"ALTERED: {target}: trailer differs")
                rec.verified += count
            if close:
                if fields.get("connection", "").lower() != "close":
                    raise AssertionError(f"no Connection: close answering {method} {target}")
                if r.read_to_eof(0):
                    raise AssertionError("bytes after the last response")
        if half_close and r.read_to_eof(0):
            raise AssertionError("bytes after the last response to a half-closed client")

    def load_http(self, s, r, rec, rng):
        """HTTP/1.1 keep-alive requests through the http listener (mode http, pooled server
        connections): downloads Content-Length and chunked (with a trailer), uploads both ways
        framed, HEAD, a pipelined pair (GET then GET or a small POST, which a server's close
        after the first response must not cost), a server that closes after its response; the last
        request may close the client's connection (HTTP/1.1 Connection: close or HTTP/1.0) or
        be followed at once by the client's FIN (shutdown(SHUT_WR)), the responses read after."""
        def size():
            return int(math.exp(rng.uniform(0, math.log(4 * MiB))))

        def get(method="GET", close=False, version="HTTP/1.1"):
            target = f"/d/{size()}/{rng.getrandbits(32)}"
            if version == "HTTP/1.1" and rng.random() < 0.3:
                target += "/c"
            if rng.random() < 0.1:
                target += "/close"  # the server closes its pooled connection; the client's stays
            return (method, target, None, False, version, close)

        def post(n, close=False, version="HTTP/1.1"):
            data = rng.randbytes(n) if n <= 64 * KiB else \
                b"".join(bytes(c) for c in data_chunks(rng.getrandbits(32), n))
            chunked = version == "HTTP/1.1" and rng.random() < 0.4
            cuts = sorted(rng.sample(range(1, n), min(n - 1, rng.randint(0, 4)))) \
                if chunked and n > 1 else []
            body = [data[a:b] for a, b in zip([0] + cuts, cuts + [n])]
            return ("POST", "/u", body, chunked, version, close)

        count = rng.randint(1, 12)
        for i in range(count):
            close = i == count - 1 and rng.random() < 0.5
            version = "HTTP/1.0" if close and rng.random() < 0.5 else "HTTP/1.1"
            pick = rng.random()
            if pick < 0.45:
                requests = [get(close=close, version=version)]
            elif pick < 0.55:
                requests = [get("HEAD", close, version)]
            elif pick < 0.65 and not close:
                # Pipelined: the second goes out before the first's response is read, so a POST
                # there is small (the client reads nothing until it has sent it all).
                requests = [get(), get() if rng.random() < 0.5 else post(rng.randint(1, 16 * KiB))]
            else:
                requests = [post(size(), close, version)]
            half_close = i == count - 1 and not close and rng.random() < 0.3
            self.http_exchange(s, r, rec, requests, half_close)
            if rng.random() < 0.2:
                time.sleep(rng.uniform(0, 0.05))
        rec.received = r.received

    def load_keepalive(self, s, r, rec, rng):
        self.hello(s, rec)
        rec.sent += 7
        for _ in range(rng.randint(5, 40)):
            n = rng.randint(1, 16 * KiB)
            payload = rng.randbytes(n)
            s.sendall(b"E %d\n" % n + payload)
            rec.sent += len(b"E %d\n" % n) + n
            back = r.read_exact(n)
            if back != payload:
                raise AssertionError("ALTERED: echo came back different")
            rec.verified += n
            if rng.random() < 0.3:
                time.sleep(rng.uniform(0, 0.05))
        rec.received = r.received

    def load_churn(self, s, r, rec, rng):
        self.hello(s, rec)
        payload = rng.randbytes(64)
        s.sendall(b"E 64\n" + payload)
        rec.sent = 7 + 5 + 64
        if r.read_exact(64) != payload:
            raise AssertionError("ALTERED: echo came back different")
        rec.verified = 64
        rec.received = r.received

    def load_upload(self, s, r, rec, rng):
        self.hello(s, rec)
        n = self.bulk_size(rng)
        head = b"U %d\n" % n
        s.sendall(head)
        h = hashlib.sha256()
        send_chunks(s, data_chunks(rng.getrandbits(32), n), h)
        rec.sent = 7 + len(head) + n
        line = r.readline()
        if line.strip().decode() != h.hexdigest():
            raise AssertionError(f"ALTERED: upload of {n} bytes: server hashed {line!r}")
        rec.verified = n
        rec.received = r.received

    def load_download(self, s, r, rec, rng, slow=False):
        self.hello(s, rec)
        # A slow reader's download is at most 4 MiB (about 5 s at its pace, near idle-timeout):
        # the proxy may have written much of it into the client socket's send queue long
        # before the client reads it, and must count the client's progress there as activity
        # (docs/reliability.md, "Found").
        n = self.bulk_size(rng, 4 * MiB if slow else 64 * MiB)
        head = b"D %d %d\n" % (n, rng.getrandbits(32))
        s.sendall(head)
        rec.sent = 7 + len(head)
        h = hashlib.sha256()
        r.read_into_hash(n, h, pace=(8 * KiB, 0.01) if slow else None)
        trailer = r.read_exact(64).decode("ascii", "replace")
        if trailer != h.hexdigest():
            raise AssertionError(f"ALTERED: download of {n} bytes: sha256 differs from the "
                                 f"server's")
        rec.verified = n
        rec.received = r.received

    def load_slow_reader(self, s, r, rec, rng):
        self.load_download(s, r, rec, rng, slow=True)

    def load_half_close(self, s, r, rec, rng):
        self.hello(s, rec)
        up, down = self.bulk_size(rng, 16 * MiB), self.bulk_size(rng, 16 * MiB)
        head = b"H %d %d %d\n" % (up, down, rng.getrandbits(32))
        s.sendall(head)
        h = hashlib.sha256()
        send_chunks(s, data_chunks(rng.getrandbits(32), up), h)
        s.shutdown(socket.SHUT_WR)
        rec.sent = 7 + len(head) + up
        line = r.readline(200).split()
        if len(line) != 2 or line[0].decode() != h.hexdigest() or int(line[1]) != up:
            raise AssertionError(f"ALTERED: half-close upload of {up} bytes: server read "
                                 f"{line!r}")
        h2 = hashlib.sha256()
        r.read_into_hash(down, h2)
        rest = r.read_to_eof(64)
        if rest.decode("ascii", "replace") != h2.hexdigest():
            raise AssertionError(f"ALTERED: half-close reply of {down} bytes: sha256 differs")
        rec.verified = up + down
        rec.received = r.received

    def load_reset(self, s, r, rec, rng):
        """Starts a transfer and resets the connection in the middle (SO_LINGER 0)."""
        self.hello(s, rec)
        if rng.random() < 0.5:
            n = rng.randint(1, 32) * MiB
            s.sendall(b"D %d %d\n" % (n, rng.getrandbits(32)))
            r.read_into_hash(rng.randint(0, min(n - 1, 2 * MiB)), None)
        else:
            n = rng.randint(1, 32) * MiB
            s.sendall(b"U %d\n" % n)
            part = rng.randint(0, min(n - 1, 2 * MiB))
            send_chunks(s, data_chunks(1, part))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        rec.status = "design"
        rec.error = "client reset (by design)"

    def load_slowloris(self, s, r, rec, rng):
        """Trickles bytes that never complete a request: the plain listener's idle-timeout or the
        routed listener's inspect-timeout must cut it."""
        if rec.listener == "routed":
            trickle = f"{rec.letter} slow".encode() + b"x" * 40  # no newline: the rule waits
            limit = INSPECT_MAX + 3.0
        else:
            trickle = b"A s"  # half a hello, then silence
            limit = IDLE_MAX + 4.0
        start = time.monotonic()
        s.settimeout(0.4)
        outcome = None
        for i in range(len(trickle)):
            try:
                s.sendall(trickle[i:i + 1])
            except OSError as e:
                outcome = f"cut while trickling ({type(e).__name__})"
                break
            try:
                data = s.recv(4096)
                outcome = "cut (eof)" if not data else f"cut (answered {data[:16]!r})"
                break
            except (socket.timeout, TimeoutError):
                pass
            except OSError as e:
                outcome = f"cut ({type(e).__name__})"
                break
            if time.monotonic() - start > limit + 1:
                break
        if outcome is None:
            s.settimeout(max(0.1, limit - (time.monotonic() - start)))
            try:
                data = s.recv(4096)
                outcome = "cut (eof)" if not data else f"cut (answered {data[:16]!r})"
            except (socket.timeout, TimeoutError):
                outcome = None
            except OSError as e:
                outcome = f"cut ({type(e).__name__})"
        elapsed = time.monotonic() - start
        if outcome is None:
            raise AssertionError(f"slowloris on {rec.listener} not cut within {limit:.0f}s")
        rec.status = "design"
        rec.error = f"{outcome} after {elapsed:.1f}s"

    LOADS = (  # kind, method, weight
        ("keepalive", "load_keepalive", 26),
        ("churn", "load_churn", 30),
        ("upload", "load_upload", 8),
        ("download", "load_download", 8),
        ("half_close", "load_half_close", 6),
        ("slow_reader", "load_slow_reader", 4),
        ("reset", "load_reset", 4),
        ("slowloris", "load_slowloris", 2),
        ("http", "load_http", 10),
    )

    def client_thread(self, index):
        rng = self.rand()
        kinds = [k for k, _, _ in self.LOADS]
        weights = [w for _, _, w in self.LOADS]
        fns = {k: getattr(self, m) for k, m, _ in self.LOADS}
        for _ in range(10 ** 6):  # bounded; the deadline ends it first
            if self.stop_load.is_set() or time.time() >= self.deadline:
                return
            kind = rng.choices(kinds, weights)[0]
            if kind == "churn":
                for _ in range(rng.randint(5, 20)):
                    if self.stop_load.is_set():
                        break
                    self.run_load(kind, fns[kind], rng)
            else:
                self.run_load(kind, fns[kind], rng)

    def burst(self, count):
        """count short connections at once (the EMFILE phase's burst)."""
        threads = []
        for _ in range(count):
            rng = self.rand()
            t = threading.Thread(target=self.run_load, args=("burst", self.load_churn, rng),
                                 daemon=True)
            t.start()
            threads.append(t)
        return threads

    # -- faults ----------------------------------------------------------------------------------

    def fault_kill(self, name, down=3.0):
        f = self.timeline.begin("kill", name)
        self.kill_server(name)
        self.stop_all.wait(down)
        self.start_server(name)
        self.timeline.end(f)

    def fault_stop(self, name, stopped=IDLE_MAX + 1.0):
        f = self.timeline.begin("stop", name)
        self.signal_server(name, signal.SIGSTOP)
        self.stop_all.wait(stopped)
        self.signal_server(name, signal.SIGCONT)
        self.timeline.end(f)

    def fault_emfile(self, seconds=3.0):
        """Lowers the running proxy's soft RLIMIT_NOFILE (prlimit(2) on its pid, as
        `prlimit --pid PID --nofile=N:` does) to a few descriptors above what it holds, and fires
        a burst of connections: accept(2) and socket(2) fail with EMFILE. The hard limit stays,
        the soft one is put back after `seconds`."""
        pid = self.proxy.pid
        before = self.stats_json()["total"]["accept_errors"]
        soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        f = self.timeline.begin("emfile", f"nofile {fds + 4}")
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (fds + 4, hard))
        threads = self.burst(20)
        self.stop_all.wait(seconds)
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
        self.timeline.end(f)
        for t in threads:
            t.join(self.args.client_timeout + 5)
        after = self.stats_json()["total"]["accept_errors"]
        self.emfile_accept_errors += after - before
        self.emfile_phases += 1

    def fault_admin(self, drain, weight, seconds=4.0):
        """From the admin socket: drain one server (disable, enable after `seconds`) and give
        a server of the other backend weight 4 meanwhile (then 1)."""
        d = self.timeline.begin("drain", drain)
        w = self.timeline.begin("weight", weight)
        self.expect_ok(f"disable server {drain}")
        self.expect_ok(f"set weight {weight} 4")
        self.stop_all.wait(seconds)
        self.expect_ok(f"enable server {drain}")
        self.expect_ok(f"set weight {weight} 1")
        self.timeline.end(d)
        self.timeline.end(w)

    def expect_ok(self, command):
        answer = self.admin(command)
        self.admin_results[command.split()[0] + " " + command.split()[1]] += 1
        if answer.strip() != "ok":
            self.problems.append(f"admin {command!r} answered {answer.strip()!r}")

    def scheduler(self):
        """The fault cycle, one fault at a time (so a backend never loses both servers at once),
        rotating the targets; each fault leaves the backend 3 s to heal (health rise 2 x 1 s)."""
        cycle = [
            ("kill", "a1"), ("admin", ("A/a2", "B/b1")), ("stop", "b2"), ("emfile", None),
            ("kill", "b1"), ("stop", "a2"), ("admin", ("B/b2", "A/a1")), ("emfile", None),
            ("kill", "a2"), ("stop", "b1"), ("admin", ("H/a1", "B/b2")), ("emfile", None),
            ("kill", "b2"), ("stop", "a1"), ("admin", ("B/b1", "A/a2")), ("emfile", None),
        ]
        if self.stop_all.wait(5.0):
            return
        for i in range(10 ** 6):
            if time.time() > self.deadline - 12:
                return
            kind, target = cycle[i % len(cycle)]
            try:
                if kind == "kill":
                    self.fault_kill(target)
                elif kind == "stop":
                    self.fault_stop(target)
                elif kind == "emfile":
                    self.fault_emfile()
                else:
                    self.fault_admin(*target)
            except Exception as e:  # noqa: BLE001 - reported, the run goes on
                self.problems.append(f"fault {kind} {target} could not be injected: {e!r}")
            if self.stop_all.wait(3.0):
                return

    def reloader(self):
        """SIGHUP every 7 s, alternating the two versions; each must log 'reloaded'."""
        if self.stop_all.wait(3.0):
            return
        for _ in range(10 ** 6):
            if time.time() > self.deadline - 5 or self.stop_all.is_set():
                return
            with self.timeline.lock:
                emfile = any(f[0] == "emfile" and f[3] is None for f in self.timeline.faults)
            if not emfile:  # a reload opens files (the config, the access log)
                self.version = 2 if self.version == 1 else 1
                self.write_config(self.version)
                before = self.log_text().count("reloaded")
                f = self.timeline.begin("reload", f"v{self.version}")
                self.proxy.send_signal(signal.SIGHUP)
                self.reloads_sent += 1
                deadline = time.monotonic() + 15
                while self.log_text().count("reloaded") <= before:
                    if time.monotonic() > deadline:
                        self.problems.append(f"reload to v{self.version}: no 'reloaded' line")
                        break
                    time.sleep(0.1)
                self.timeline.end(f)
            if self.stop_all.wait(7.0):
                return

    def admin_loop(self):
        """show stats / show stats json / show conns / show servers / show info, every 2 s."""
        commands = ["show stats", "show stats json", "show conns 20", "show servers",
                    "show info"]
        for i in range(10 ** 6):
            if self.stop_all.wait(2.0) or time.time() > self.deadline:
                return
            command = commands[i % len(commands)]
            t = time.time()
            try:
                answer = self.admin(command)
                if command.endswith("json"):
                    json.loads(answer.strip())
                elif command == "show stats" and "accepted" not in answer:
                    raise ValueError(f"no accepted line: {answer[:200]!r}")
                elif command.startswith("show conns") and not answer.startswith("#"):
                    raise ValueError(f"unexpected answer {answer[:200]!r}")
                self.admin_results[command.split(" ")[0] + " " + command.split(" ")[1]] += 1
            except (OSError, ValueError) as e:
                self.admin_failures.append((t, time.time(), command, f"{type(e).__name__}: {e}"))

    # -- main ------------------------------------------------------------------------------------

    def run(self):
        for f in ("proxy.log", "access.log", "stats.json"):
            try:
                os.unlink(os.path.join(self.dir, f))
            except FileNotFoundError:
                pass
        self.write_config(1)
        for name in SERVERS:
            self.start_server(name)
        print(f"soak: {self.binary} ({backend_of(self.binary)}), {self.seconds}s, "
              f"{self.args.clients} clients, directory {self.dir}", flush=True)
        print(f"soak: proxy output in {self.proxy_log}, access log {self.access_log}",
              flush=True)
        try:
            self.start_proxy()
            self.quiet_start = self.quiescent_fds()
            started = time.time()
            self.deadline = started + self.seconds
            threads = [threading.Thread(target=self.sampler, daemon=True),
                       threading.Thread(target=self.scheduler, daemon=True),
                       threading.Thread(target=self.reloader, daemon=True),
                       threading.Thread(target=self.admin_loop, daemon=True)]
            clients = [threading.Thread(target=self.client_thread, args=(i,), daemon=True)
                       for i in range(self.args.clients)]
            for t in threads + clients:
                t.start()
            for t in clients:
                t.join(max(1.0, self.deadline - time.time() + self.args.client_timeout + 30))
            self.stop_load.set()
            hung = sum(t.is_alive() for t in clients)
            if hung:
                self.problems.append(f"{hung} client thread(s) still running after the deadline")
            self.stop_all.set()
            for t in threads:
                t.join(60)
            self.end_checks()
        finally:
            self.stop_all.set()
            self.stop_load.set()
            if self.proxy is not None and self.proxy.poll() is None:
                self.proxy.kill()
                self.proxy.wait(10)
            self.stop_servers()
            if self.log_fd is not None:
                os.close(self.log_fd)
        return self.verdict()

    def quiescent_fds(self):
        """The proxy's descriptor count once no client connection is open (active 0)."""
        deadline = time.monotonic() + 30
        active = pooled = None
        while time.monotonic() < deadline:
            try:
                stats = self.stats_json()
                active = stats["total"]["active"]
                # The http listener's pooled server connections: closed pool-idle-timeout (2 s)
                # after their last use.
                pooled = sum(b["pool"]["pool_idle"] + b["pool"]["pool_active"]
                             for b in stats["backends"].values() if "pool" in b)
            except (OSError, ValueError, KeyError):
                active = pooled = None
            if active == 0 and pooled == 0:
                # The least of 5 samples over a second: the health checker's sockets come and go.
                counts = []
                for _ in range(5):
                    time.sleep(0.2)
                    counts.append(len(os.listdir(f"/proc/{self.proxy.pid}/fd")))
                return min(counts)
            time.sleep(0.2)
        self.problems.append(f"connections still open 30 s after the load stopped: {active} "
                             f"(pooled server connections {pooled})")
        return len(os.listdir(f"/proc/{self.proxy.pid}/fd"))

    def end_checks(self):
        self.alive_at_end = self.proxy.poll() is None
        if not self.alive_at_end:
            self.problems.append(f"CRASH: the proxy exited during the run "
                                 f"(code {self.proxy.returncode})")
            self.exit_code = self.proxy.returncode
            return
        self.quiet_end = self.quiescent_fds()
        self.last_live = self.stats_json()
        self.proxy.send_signal(signal.SIGTERM)
        try:
            self.exit_code = self.proxy.wait(30)
        except subprocess.TimeoutExpired:
            self.exit_code = None
            self.problems.append("the proxy did not exit within 30 s of SIGTERM")

    # -- verdict ---------------------------------------------------------------------------------

    def verdict(self):
        checks = []  # (name, ok, detail)
        log_lines = parse_access_log(self.access_log)
        faults = self.timeline.snapshot()
        end = time.time()
        for f in faults:
            if f[3] is None:
                f[3] = end

        # Match records to access-log lines (listener, client port, accept time), classify.
        by_port = collections.defaultdict(list)
        for line in log_lines:
            by_port[(line["listener"], line["port"])].append(line)
        # One line per record: a line taken is never offered to another record. Completed
        # connections take theirs first (each must have one), then the others, each group in the
        # order they started, each the nearest line to its t0. The line's time (%t, whole ms) is
        # the close time less the duration in loop time: it can fall before the client's t0 by
        # the part of a worker iteration that ran before the accept, and after its t1 by the part
        # that ran before the close (a 30-minute run on a loaded machine saw 0.4 s): 2 s before
        # and 1 s after. A connection reset by its client leaves no TIME_WAIT, so its port can be
        # reused at once; a reset before the proxy read the client's address logs "-:-" (no
        # port), and such a record must not take the line of the next connection from its port:
        # hence completed records first.
        taken = set()

        def take_nearest(rec, lines):
            best = None
            for line in lines:
                if id(line) in taken or not rec.t0 - 2.0 <= line["t"] <= rec.t1 + 1.0:
                    continue
                if best is None or abs(line["t"] - rec.t0) < abs(best["t"] - rec.t0):
                    best = line
            if best is not None:
                taken.add(id(best))
            rec.log = best

        for rec in sorted(self.records, key=lambda r: (r.status != "ok", r.t0)):
            if rec.port is not None:
                take_nearest(rec, by_port.get((rec.listener, rec.port), ()))
        # A connect that failed with a reset was accepted: the proxy reset it at once (its
        # server reset it first, say) before the client had its port, and the failed socket no
        # longer has one. Its line is then one nobody took, on its listener, in its time: the
        # nearest such line is taken.
        by_listener = collections.defaultdict(list)
        for line in log_lines:
            by_listener[line["listener"]].append(line)
        for rec in sorted(self.records, key=lambda r: r.t0):
            if rec.port is None and rec.status == "fail" and \
                    rec.error.startswith("ConnectionResetError"):
                take_nearest(rec, by_listener.get(rec.listener, ()))
        for rec in self.records:
            if rec.status == "fail":
                rec.explanation = explain(rec, faults)

        kinds = [k for k, _, _ in self.LOADS] + ["burst"]
        table = []
        totals = collections.Counter()
        for kind in kinds:
            recs = [r for r in self.records if r.kind == kind]
            if not recs:
                continue
            ok = sum(r.status == "ok" for r in recs)
            design = sum(r.status == "design" for r in recs)
            failed = [r for r in recs if r.status == "fail"]
            explained = sum(bool(r.explanation) for r in failed)
            verified = sum(r.verified for r in recs if r.status == "ok")
            row = dict(kind=kind, connections=len(recs), completed=ok, by_design=design,
                       failed=len(failed), explained=explained,
                       unexplained=len(failed) - explained, verified=verified)
            table.append(row)
            for k, v in row.items():
                if k != "kind":
                    totals[k] += v

        altered = [r for r in self.records if "ALTERED" in r.error or "MISROUTE" in r.error]
        unexplained = [r for r in self.records if r.status == "fail" and not r.explanation]
        checks.append(("0 bytes lost or altered in completed transfers", not altered,
                       f"{len(altered)} altered"))
        checks.append(("every failed transfer explained by a fault", not unexplained,
                       f"{totals['failed']} failed, {len(unexplained)} unexplained"))

        # The proxy's own byte counts for completed connections: exactly what the client sent
        # and received (the http listener: received only, since %U counts what reached the
        # servers, the request heads as the proxy rebuilt them).
        completed = [r for r in self.records if r.status == "ok"]
        missing = [r for r in completed if r.log is None]
        mismatched = [r for r in completed if r.log is not None and bytes_differ(r)]
        checks.append(("access log: a line per completed connection, bytes = client's "
                       "(http: received)",
                       not missing and not mismatched,
                       f"{len(completed)} completed, {len(missing)} without a line, "
                       f"{len(mismatched)} with other byte counts"))

        # Faults happened, and EMFILE was real.
        kinds_done = collections.Counter(f[0] for f in faults)
        # One cycle needs about 50 s: a shorter run is a smoke test of the load alone.
        want = ["kill", "stop", "emfile", "drain", "weight", "reload"] \
            if self.seconds >= 55 else []
        checks.append(("every fault kind injected" + ("" if want else " (not asked: < 55 s)"),
                       all(kinds_done[k] for k in want),
                       ", ".join(f"{k} {kinds_done[k]}" for k in
                                 ["kill", "stop", "emfile", "drain", "weight", "reload"])))
        if kinds_done["emfile"]:
            checks.append(("EMFILE really hit (accept_errors during EMFILE phases)",
                           self.emfile_accept_errors > 0,
                           f"{self.emfile_accept_errors} failed accepts in "
                           f"{self.emfile_phases} phases"))
        reloaded = self.log_text().count("reloaded") if os.path.exists(self.proxy_log) else 0
        checks.append(("reloads: one 'reloaded' line each, no failure",
                       reloaded == self.reloads_sent and "reload failed" not in self.log_text(),
                       f"{self.reloads_sent} sent, {reloaded} reloaded"))
        admin_unexplained = [a for a in self.admin_failures
                             if not any(f[0] == "emfile" and f[2] - 0.5 <= a[1] and a[0] <= f[3]
                                        + 1.0 for f in faults)]
        checks.append(("admin commands answered (outside EMFILE phases)",
                       not admin_unexplained,
                       f"{sum(self.admin_results.values())} answered, "
                       f"{len(self.admin_failures)} failed, {len(admin_unexplained)} unexplained"))

        # fd count and RSS flat: the last tenth against the first tenth after warm-up.
        flat = self.flatness()
        for name, first, last, tolerance, ok in flat:
            checks.append((f"{name} flat (first vs last tenth, tolerance {tolerance})", ok,
                           f"{first:.1f} -> {last:.1f}"))
        if hasattr(self, "quiet_end"):
            # A pipe that held bytes at close and could not be replaced (out of descriptors, in
            # an EMFILE phase) is two descriptors fewer for good (splice_pipes_lost).
            lost = self.last_live["total"].get("splice_pipes_lost", 0)
            checks.append(("fds with no connection open: same at start and end (+ 2 x pipes lost)",
                           self.quiet_end + 2 * lost == self.quiet_start,
                           f"{self.quiet_start} -> {self.quiet_end}, splice_pipes_lost {lost}"))

        # No crash, clean exit, no sanitizer report.
        code = getattr(self, "exit_code", None)
        checks.append(("no crash: alive at the end, exit 0 on TERM", code == 0,
                       f"exit code {code}"))
        text = self.log_text() if os.path.exists(self.proxy_log) else ""
        reports = [line for line in text.splitlines() if SANITIZER.search(line)]
        checks.append((f"no sanitizer report ({'ASan build' if self.sanitized else 'not an ASan build'})",
                       not reports, reports[0][:160] if reports else "none"))

        # Counters: accepted == closed + active, in total, per worker, per listener (closed =
        # its access-log lines).
        checks.extend(self.counter_checks(log_lines))
        for p in self.problems:
            checks.append((p, False, ""))

        ok = all(c[1] for c in checks)
        self.print_report(table, totals, checks, faults, unexplained)
        self.write_results(table, totals, checks, faults)
        return 0 if ok else 1

    def flatness(self):
        """The mean of the last tenth of the samples (taken while the load runs, after warm-up)
        against the first tenth: no more than max(5%, absolute) above it. Descriptors are
        counted without the two each open connection holds (fds - 2 x active), so that the
        number of clients connected at that second does not show as a leak."""
        if self.deadline is None:
            return []
        start = self.deadline - self.seconds + self.warmup
        samples = [s for s in self.samples if start <= s[0] <= self.deadline]
        if len(samples) < 10:  # too short a run to tell
            return [("fds and RSS (not compared: fewer than 10 samples after warm-up)", 0,
                     len(samples), "-", True)]
        tenth = max(1, len(samples) // 10)
        rows = []
        for name, value, absolute in (
                ("fds - 2 x active", lambda s: s[1] - 2 * s[3] if s[3] is not None else None,
                 8),
                # The buffer pool's blocks are resident once first used (its mapping is
                # MAP_NORESERVE, ids are handed out last-in first-out): its share of RSS follows
                # the most blocks in use at once so far, which a rarer peak of the load raises
                # late in a short run. What is flat must be the rest.
                ("RSS KiB - 8 x pool_high_water",
                 lambda s: s[2] - 8 * s[4] if s[4] is not None else None, 2048)):
            first = [v for v in map(value, samples[:tenth]) if v is not None]
            last = [v for v in map(value, samples[-tenth:]) if v is not None]
            if not first or not last:
                rows.append((name, 0, 0, "samples", False))
                continue
            a, b = sum(first) / len(first), sum(last) / len(last)
            tol = max(0.05 * a, absolute)
            if name.startswith("RSS") and self.sanitized:
                # ASan's quarantine keeps freed memory until it reaches its cap (256 MiB): RSS
                # grows by design. Leaks are LeakSanitizer's report at exit (detect_leaks=1).
                rows.append((name + " (ASan: shown, not asserted)", a, b, "-", True))
                continue
            rows.append((name, a, b, f"max(5%, {absolute})", abs(b - a) <= tol))
        return rows

    def counter_checks(self, log_lines):
        checks = []
        try:
            with open(self.stats_file) as f:
                final = json.load(f)
        except (OSError, ValueError) as e:
            return [(f"--stats-file written at exit ({self.stats_file})", False, repr(e))]
        self.final_stats = final
        t = final["total"]
        checks.append(("total: accepted == closed + active",
                       t["accepted"] == t["closed"] + t["active"],
                       f"{t['accepted']} == {t['closed']} + {t['active']}"))
        for i, w in enumerate(final.get("workers", [])):
            checks.append((f"worker {i}: accepted == closed + active",
                           w["accepted"] == w["closed"] + w["active"],
                           f"{w['accepted']} == {w['closed']} + {w['active']}"))
        checks.append(("access log: no line dropped, a line per closed connection",
                       t["log_dropped"] == 0 and len(log_lines) == t["closed"],
                       f"log_dropped {t['log_dropped']}, {len(log_lines)} lines, "
                       f"closed {t['closed']}"))
        per = collections.Counter(line["listener"] for line in log_lines)
        total_conn = 0
        for name, ls in sorted(final["listeners"].items()):
            total_conn += ls["connections"]
            checks.append((f"listener {name}: connections == closed (log lines) + current",
                           ls["connections"] == per[name] + ls["current"],
                           f"{ls['connections']} == {per[name]} + {ls['current']}"))
        checks.append(("listeners' connections add up to accepted", total_conn == t["accepted"],
                       f"{total_conn} == {t['accepted']}"))
        return checks

    def print_report(self, table, totals, checks, faults, unexplained):
        out = []
        out.append("")
        out.append(f"soak: {self.seconds}s on {backend_of(self.binary)} "
                   f"({os.path.basename(self.binary)}{', ASan' if self.sanitized else ''}), "
                   f"directory {self.dir}")
        out.append("")
        head = ("load", "connections", "completed", "by design", "failed", "explained",
                "unexplained", "bytes verified")
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "|".join("---" for _ in head) + "|")
        for row in table + [dict(kind="total", **totals)]:
            out.append(f"| {row['kind']} | {row['connections']} | {row['completed']} | "
                       f"{row['by_design']} | {row['failed']} | {row['explained']} | "
                       f"{row['unexplained']} | {human(row['verified'])} |")
        out.append("")
        why = collections.Counter(r.explanation for r in self.records if r.explanation)
        if why:
            out.append("failures explained: " + "; ".join(f"{k}: {v}" for k, v in
                                                           why.most_common()))
        cut = collections.Counter(re.sub(r" after .*", "", r.error) for r in self.records
                                  if r.kind == "slowloris" and r.status == "design")
        if cut:
            out.append("slowloris: " + "; ".join(f"{k}: {v}" for k, v in cut.most_common()))
        for r in unexplained[:20]:
            log = r.log
            out.append(f"UNEXPLAINED {r.kind} {r.listener}/{r.letter} port {r.port} "
                       f"{time.strftime('%H:%M:%S', time.localtime(r.t0))}+{r.t1 - r.t0:.1f}s: "
                       f"{r.error} | log: {log['raw'] if log else 'no line'}")
        kinds = collections.Counter(f[0] for f in faults)
        out.append("faults: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
        if self.samples:
            fds = [s[1] for s in self.samples]
            rss = [s[2] for s in self.samples]
            out.append(f"samples: {len(self.samples)}; fds {min(fds)}-{max(fds)}, "
                       f"RSS {min(rss) / 1024:.1f}-{max(rss) / 1024:.1f} MiB")
        out.append("")
        out.append("| check | result | detail |")
        out.append("|---|---|---|")
        for name, ok, detail in checks:
            out.append(f"| {name} | {'ok' if ok else 'FAIL'} | {detail} |")
        out.append("")
        out.append(f"soak: {'PASS' if all(c[1] for c in checks) else 'FAIL'} "
                   f"(proxy output {self.proxy_log}; results {self.dir}/results.json)")
        print("\n".join(out), flush=True)

    def write_results(self, table, totals, checks, faults):
        results = dict(
            binary=self.binary, backend=backend_of(self.binary), seconds=self.seconds,
            table=table, totals=dict(totals),
            checks=[dict(name=n, ok=o, detail=d) for n, o, d in checks],
            faults=[dict(kind=k, target=t, start=s, end=e) for k, t, s, e in faults],
            unmatched=[dict(kind=r.kind, listener=r.listener, port=r.port, t0=r.t0, t1=r.t1,
                            sent=r.sent, received=r.received)
                       for r in self.records if r.status == "ok" and r.log is None],
            mismatched=[dict(kind=r.kind, port=r.port, t0=r.t0, t1=r.t1, sent=r.sent,
                             received=r.received, log=r.log["raw"])
                        for r in self.records if r.status == "ok" and r.log is not None and
                        bytes_differ(r)],
            failures=[dict(kind=r.kind, listener=r.listener, letter=r.letter, port=r.port,
                           t0=r.t0, t1=r.t1, error=r.error, explanation=r.explanation,
                           log=r.log["raw"] if r.log else None)
                      for r in self.records if r.status == "fail"],
            samples=self.samples)
        with open(os.path.join(self.dir, "results.json"), "w") as f:
            json.dump(results, f, indent=1)


SANITIZER = re.compile(r"ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error:|"
                       r"WARNING: ThreadSanitizer|SUMMARY: \w+Sanitizer")

LOG_LINE = re.compile(r"^(\S+) (\S+):(\S+) (\S+) (\S+) (-?\d+) (\d+) (\d+) (\d+) (\S+) (\d+)$")


def parse_access_log(path):
    lines = []
    try:
        f = open(path, encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return lines
    with f:
        for raw in f:
            raw = raw.rstrip("\n")
            m = LOG_LINE.match(raw)
            if not m:
                continue
            t = datetime.datetime.fromisoformat(m.group(1)).timestamp()
            port = int(m.group(3)) if m.group(3).isdigit() else None
            lines.append(dict(t=t, port=port, listener=m.group(4), server=m.group(5),
                              tc=int(m.group(6)), tt=int(m.group(7)), up=int(m.group(8)),
                              down=int(m.group(9)), end=m.group(10), raw=raw))
    return lines


def bytes_differ(rec):
    """The access log's byte counts are not the client's (rec has its line)."""
    return rec.log["down"] != rec.received or \
        (rec.listener != "http" and rec.log["up"] != rec.sent)


HEAL = 3.5  # seconds after a fault ends during which its effects may still show (health rise)


def explain(rec, faults):
    """Why a failed connection failed, from the fault timeline and its access-log line; '' when
    nothing explains it."""
    def overlapping(kind, target=None, grace=HEAL):
        for f in faults:
            if f[0] == kind and (target is None or f[1] == target) \
                    and f[2] <= rec.t1 and rec.t0 <= f[3] + grace:
                return f
        return None

    if overlapping("emfile"):
        return "EMFILE phase"
    log = rec.log
    if log is None:
        return ""  # never accepted, outside an EMFILE phase: nothing explains it
    backend, _, server = log["server"].partition("/")
    if server and server != "-":
        for kind in ("kill", "stop"):
            if overlapping(kind, server):
                return f"{kind} {server} ({log['end']})"
    # No server, or (http listener) an error answer: a server of the backend was out. A kill or
    # stop names the process, a drain the backend's server.
    if log["end"] in ("no_server", "connect_failed", "connect_timeout") or \
            log["end"].startswith("forward_5"):
        for f in faults:
            if (f[0] in ("kill", "stop") and f[1] in BACKENDS.get(backend, ()) or
                    f[0] == "drain" and f[1].partition("/")[0] == backend) \
                    and f[2] <= rec.t1 and rec.t0 <= f[3] + HEAL:
                return f"{f[0]} {f[1]} ({log['end']})"
    return ""


def human(n):
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def binary_is_sanitized(path):
    forced = os.environ.get("EDGEPROXY_ASAN")
    if forced in ("0", "1"):
        return forced == "1"
    with open(path, "rb") as f:
        for _ in range(4096):
            chunk = f.read(MiB)
            if not chunk:
                return False
            if b"__asan_init" in chunk or b"AddressSanitizer" in chunk:
                return True
    return False


def backend_of(path):
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
        text = out.stdout + out.stderr
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return "io_uring" if "uring" in text else "epoll" if "epoll" in text else "?"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("server")
    s.add_argument("name")
    s.add_argument("letter")
    s.add_argument("port", type=int)
    r = sub.add_parser("run")
    r.add_argument("--bin", required=True)
    r.add_argument("--seconds", type=float, default=1800)
    r.add_argument("--dir", required=True)
    r.add_argument("--clients", type=int, default=30, help="client threads, each with one "
                   "connection at most; an EMFILE phase adds a burst of 20 (50 at once at most)")
    r.add_argument("--client-timeout", type=float, default=30.0)
    r.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    if args.command == "server":
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        server_main(args.name, args.letter, args.port)
        return 0
    try:  # the clients' sockets, the proxy inherits it
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass
    return Soak(args).run()


if __name__ == "__main__":
    sys.exit(main())

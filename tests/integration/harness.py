"""Shared helpers for the edgeproxy integration tests (Python 3.11 standard library only).

The binary under test is named by the environment variable EDGEPROXY_BIN (absolute, or relative
to the current directory). Test modules are run as

    cd tests/integration && EDGEPROXY_BIN=/abs/path/edgeproxy python3 -m unittest -v test_relay

but nothing here depends on the current directory.

Contents:
  * Proxy            - start the binary, wait for "listening on", signal it, read its statistics
                       (SIGUSR1 or at exit), look at /proc/PID (fd count, CPU time, VmRSS).
  * TCPServer        - a threaded loopback server running one handler per accepted connection;
                       the handler's return value is collected in server.results.
  * handler factories - echo, sink, source, duplex (source+sink), reset_after_sending,
                       delayed_reply, send_then_half_close, hold_until_eof.
  * BlackholeBackend - a listener whose accept queue is full so that SYNs are dropped and a
                       connect() to it hangs; release() lets pending connects complete.
  * client helpers   - connect, recv_exact, recv_until_close, reset_close, wait_closed.
  * ProxyTestCase    - unittest base class that cleans up everything it started.
  * configuration files (issue 10) - @NAME@ placeholders filled with free ports, a proxy started
                       with -c, SIGHUP reloads, statistics read to the end of their block, servers
                       that name themselves, a Unix-socket server.

Every loop is bounded in count and time and every socket has a timeout.
"""

import collections
import hashlib
import os
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import threading
import tempfile
import time
import unittest

SOCKET_TIMEOUT = 20.0  # default timeout of every socket made here
# Seconds to wait for the "listening on" line; a slower build (ThreadSanitizer: 5 to 15 times
# slower at start) sets EDGEPROXY_READY_TIMEOUT (make test-tsan does).
READY_TIMEOUT = float(os.environ.get("EDGEPROXY_READY_TIMEOUT", "10"))
STOP_TIMEOUT = 15.0  # seconds to wait for the proxy to exit after a signal

COUNTER_NAMES = (
    "loop_iterations", "events", "stale_events", "accepted", "accept_errors", "accept_pauses",
    "connects_failed", "connect_timeouts", "idle_timeouts", "active", "peak_active", "closed",
    "bytes_c2u", "bytes_u2c", "reads_client", "reads_upstream", "writes_client",
    "writes_upstream", "backpressure_pauses", "pool_buffers", "pool_high_water", "pool_waits",
    "resets_client", "resets_upstream", "resets_sent", "shutdown_forced", "splice_bytes",
    "splice_pipe_waits", "splice_pipes_dirty", "batched_waits", "splice_pipes_lost",
    "socket_waits", "connect_retries", "linger_waits", "submit_failures", "cq_dropped",
    "lost_operations", "no_server", "topology_versions", "accel_blocks_held",
    "accel_blocks_peak", "accel_giveups", "server_finished_first", "pool_blocks_in_use",
    "splice_pipes_in_use", "log_dropped", "acceleration_factor",
)

MiB = 1024 * 1024


# --------------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------------

def binary_path():
    """Absolute path of the binary under test; raises a clear error if EDGEPROXY_BIN is unset."""
    value = os.environ.get("EDGEPROXY_BIN", "")
    if not value:
        raise RuntimeError("EDGEPROXY_BIN is not set: run as "
                           "EDGEPROXY_BIN=/abs/path/to/edgeproxy python3 -m unittest -v <module>")
    path = os.path.abspath(value)
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise RuntimeError(f"EDGEPROXY_BIN={value!r}: {path} is not an executable file")
    return path


_ASAN_CACHE = {}


def binary_is_sanitized():
    """True if the binary is an AddressSanitizer build (env EDGEPROXY_ASAN=1/0 overrides)."""
    forced = os.environ.get("EDGEPROXY_ASAN")
    if forced in ("0", "1"):
        return forced == "1"
    path = binary_path()
    if path not in _ASAN_CACHE:
        found = False
        try:
            with open(path, "rb") as f:
                for _ in range(4096):  # at most 4096 MiB read
                    chunk = f.read(MiB)
                    if not chunk:
                        break
                    if b"__asan_init" in chunk or b"AddressSanitizer" in chunk:
                        found = True
                        break
        except OSError:
            pass
        _ASAN_CACHE[path] = found
    return _ASAN_CACHE[path]


def raise_own_nofile_limit():
    """Raise this process's RLIMIT_NOFILE soft limit to its hard limit (proxies inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


raise_own_nofile_limit()


def ipv6_available():
    """True if ::1 can be bound."""
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        return False
    try:
        s.bind(("::1", 0))
        return True
    except OSError:
        return False
    finally:
        s.close()


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def free_port(host="127.0.0.1"):
    """A TCP port that is free on host right now."""
    s = socket.socket(family_of(host), socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def free_port_both():
    """A port free on both 127.0.0.1 and ::1 (bounded number of tries)."""
    for _ in range(50):
        port = free_port("127.0.0.1")
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind(("::1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no port free on both 127.0.0.1 and ::1")


def wait_until(predicate, timeout, interval=0.05):
    """Poll predicate() until it returns a truthy value or timeout passes; returns the last value."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value


# --------------------------------------------------------------------------------------------
# /proc helpers
# --------------------------------------------------------------------------------------------

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid):
    """utime + stime of pid, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    fields = text[text.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime is field 14, stime field 15
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def proc_fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def proc_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# --------------------------------------------------------------------------------------------
# Statistics parsing
# --------------------------------------------------------------------------------------------

def _stat_value(text):
    try:
        return int(text)
    except ValueError:
        return float(text)


def parse_stat_blocks(lines):
    """Parse every statistics block in lines.

    Returns a list of (dict, terminated) where terminated says a non-statistics line followed
    the block (so it cannot grow any more)."""
    blocks = []
    current = None
    for line in lines:
        if current is not None:
            # "  name value[ unit] label" lines, under " group" headings.
            if line.startswith("  ") and not line.startswith("   "):
                parts = line.split()
                if len(parts) >= 2:
                    try:
                        current[parts[0]] = _stat_value(parts[1])
                        continue
                    except ValueError:
                        pass
            elif line.startswith(" ") and len(line) > 1 and line[1] != " ":
                continue
            blocks.append((current, True))
            current = None
        if "statistics" in line and not line.startswith(" "):
            # A worker that did not answer in time leaves its counters out of the totals.
            current = {"incomplete": 1} if "(incomplete" in line else {}
    if current is not None:
        blocks.append((current, False))
    return blocks


def parse_last_stats(lines):
    blocks = parse_stat_blocks(lines)
    return blocks[-1][0] if blocks else None


# --------------------------------------------------------------------------------------------
# The proxy process
# --------------------------------------------------------------------------------------------

class ProxyError(AssertionError):
    pass


class Proxy:
    """One edgeproxy process. stderr and stdout are collected line by line by reader threads."""

    def __init__(self, args, preexec_fn=None, env=None, wrapper=()):
        self.args = [str(a) for a in args]
        self.wrapper = [str(a) for a in wrapper]  # argv prefix, e.g. a tracer that execs the proxy
        self.preexec_fn = preexec_fn
        self.env = env
        self.proc = None
        self.stderr_lines = []
        self.stdout_lines = []
        self._cond = threading.Condition()
        self._last_line_time = time.monotonic()
        self._readers = []

    # -- life cycle ---------------------------------------------------------------------------

    def start(self, wait_ready=True, timeout=READY_TIMEOUT):
        cmd = self.wrapper + [binary_path()] + self.args
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, preexec_fn=self.preexec_fn,
                                     env=self.env, close_fds=True)
        for stream, sink in ((self.proc.stderr, self.stderr_lines),
                             (self.proc.stdout, self.stdout_lines)):
            t = threading.Thread(target=self._reader, args=(stream, sink), daemon=True)
            t.start()
            self._readers.append(t)
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def _reader(self, stream, sink):
        # Whole reads, not lines: the proxy writes a statistics block with one write(), and a
        # reader that published it line by line could let stats() see half of it.
        fd = stream.fileno()
        pending = b""
        try:
            for _ in range(1 << 40):
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                pending += chunk
                *complete, pending = pending.split(b"\n")
                if not complete:
                    continue
                with self._cond:
                    sink.extend(raw.decode("utf-8", "replace").rstrip("\r") for raw in complete)
                    self._last_line_time = time.monotonic()
                    self._cond.notify_all()
        except (OSError, ValueError):
            pass
        finally:
            with self._cond:
                if pending:
                    sink.append(pending.decode("utf-8", "replace").rstrip("\r"))
                self._cond.notify_all()

    def wait_ready(self, timeout=READY_TIMEOUT):
        if not self.wait_for_stderr("listening on", timeout):
            rc = self.proc.poll()
            text = self.stderr_text()
            self.kill()
            raise ProxyError(f"proxy {self.args} not ready within {timeout}s "
                             f"(exit code {rc}); stderr:\n{text}")

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        """Exit code, or None if still running after timeout."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self._join_readers()
        return rc

    def _join_readers(self):
        for t in self._readers:
            t.join(timeout=5)

    def kill(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._join_readers()
        for stream in (self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except OSError:
                pass

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Signal the proxy and wait for it; SIGKILL it if it does not exit. Returns exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.send_signal(sig)
            rc = self.wait_exit(timeout)
            if rc is None:
                self.kill()
                raise ProxyError(f"proxy did not exit within {timeout}s of signal {sig!r}; "
                                 f"stderr:\n{self.stderr_text()}")
        self.kill()  # reap, join readers, close pipes
        return self.proc.returncode

    # -- output -------------------------------------------------------------------------------

    def stderr_text(self):
        with self._cond:
            return "\n".join(self.stderr_lines)

    def stdout_text(self):
        with self._cond:
            return "\n".join(self.stdout_lines)

    def stderr_snapshot(self):
        with self._cond:
            return list(self.stderr_lines)

    def wait_for_stderr(self, needle, timeout, start=0):
        """True once a stderr line (index >= start) contains needle."""
        deadline = time.monotonic() + timeout
        with self._cond:
            for _ in range(100000):
                if any(needle in line for line in self.stderr_lines[start:]):
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None
                                      and not any(t.is_alive() for t in self._readers)):
                    return False
                self._cond.wait(min(remaining, 0.1))
        return False

    def stats(self, timeout=10.0):
        """Send SIGUSR1 and return the statistics block it produces, parsed into a dict."""
        with self._cond:
            before = len(parse_stat_blocks(self.stderr_lines))
        self.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        with self._cond:
            for _ in range(100000):
                blocks = parse_stat_blocks(self.stderr_lines)
                if len(blocks) > before:
                    block, terminated = blocks[-1]
                    quiet_for = time.monotonic() - self._last_line_time
                    if (terminated or all(n in block for n in COUNTER_NAMES)
                            or (block and quiet_for > 0.3)):
                        return block
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if not self.alive():
                    break
                self._cond.wait(min(remaining, 0.05))
        raise ProxyError(f"no statistics block within {timeout}s of SIGUSR1; stderr:\n"
                         f"{self.stderr_text()[-4000:]}")

    def wait_stats(self, predicate, timeout=5.0):
        """Poll SIGUSR1 statistics until predicate(stats) holds; returns the last stats."""
        deadline = time.monotonic() + timeout
        stats = self.stats()
        for _ in range(1000):
            # An incomplete report (a worker too busy to answer) proves nothing either way.
            if (not stats.get("incomplete") and predicate(stats)) or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
            stats = self.stats()
        return stats

    def final_stats(self):
        """The last statistics block on stderr (call after the process exited)."""
        return parse_last_stats(self.stderr_snapshot())

    # -- /proc --------------------------------------------------------------------------------

    def fd_count(self):
        return proc_fd_count(self.pid)

    def cpu_seconds(self):
        return proc_cpu_seconds(self.pid)

    def rss_kib(self):
        return proc_rss_kib(self.pid)

    def cpu_used_over(self, seconds):
        """CPU seconds the proxy uses during the next `seconds` of wall-clock time."""
        before = self.cpu_seconds()
        time.sleep(seconds)
        return self.cpu_seconds() - before


def default_worker_args():
    """--workers from EDGEPROXY_WORKERS (the suite runs once with 1 worker and once with 2);
    tests that pass their own --workers keep it."""
    value = os.environ.get("EDGEPROXY_WORKERS", "")
    return ["--workers", value] if value else []


def worker_count():
    return int(os.environ.get("EDGEPROXY_WORKERS", "") or 1)


def proxy_args(port, backend_port, listen="127.0.0.1", backend="127.0.0.1", extra=()):
    return ["-l", listen, "-p", str(port), "-b", backend, "-P", str(backend_port)] + list(extra)


def run_binary(args, timeout=10.0):
    """Run the binary to completion: (returncode, stdout, stderr, elapsed). Kills it on timeout
    and then returns returncode None."""
    start = time.monotonic()
    proc = subprocess.Popen([binary_path()] + [str(a) for a in args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=10)
        rc = None
    return rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), \
        time.monotonic() - start


# --------------------------------------------------------------------------------------------
# Client helpers
# --------------------------------------------------------------------------------------------

def assert_refused(tc, args, needles):
    """The binary, on loopback and a free port plus `args`, exits 2 at once with nothing on stdout
    and exactly one stderr line containing every needle."""
    rc, out, err, _ = run_binary(["-l", "127.0.0.1", "-p", str(free_port())] + list(args))
    tc.assertEqual(rc, 2, f"{args}: exit code {rc}; stderr {err!r}")
    tc.assertEqual(out, "", f"{args}: stdout should be empty")
    lines = err.splitlines()
    tc.assertEqual(len(lines), 1, f"{args}: want one stderr line, got {err!r}")
    for needle in needles:
        tc.assertIn(needle, lines[0], f"{args}: {lines[0]!r} does not name {needle}")


def connect(port, host="127.0.0.1", timeout=SOCKET_TIMEOUT, nodelay=False):
    s = socket.socket(family_of(host), socket.SOCK_STREAM)
    s.settimeout(timeout)
    if nodelay:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        s.connect((host, port))
    except BaseException:
        s.close()
        raise
    return s


def recv_exact(sock, n, chunk=256 * 1024):
    parts = []
    got = 0
    for _ in range(n + 1):
        if got >= n:
            break
        data = sock.recv(min(chunk, n - got))
        if not data:
            raise EOFError(f"connection closed after {got} of {n} bytes")
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def recv_until_close(sock, limit=256 * MiB, chunk=256 * 1024, pause=0.0):
    """Read until EOF, reset or timeout, sleeping `pause` seconds after each read (a slow
    reader). Returns (data, outcome) where outcome is 'eof', 'reset' or 'timeout'."""
    parts = []
    total = 0
    outcome = "eof"
    for _ in range(limit + 1):
        try:
            data = sock.recv(chunk)
        except ConnectionResetError:
            outcome = "reset"
            break
        except (socket.timeout, TimeoutError):
            outcome = "timeout"
            break
        if not data:
            break
        parts.append(data)
        total += len(data)
        if pause:
            time.sleep(pause)
        if total > limit:
            break
    return b"".join(parts), outcome


def wait_closed(sock, timeout):
    """Read and discard until the peer closes. Returns (outcome, elapsed seconds, nbytes) with
    outcome 'eof', 'reset' or 'timeout'."""
    start = time.monotonic()
    old = sock.gettimeout()
    nbytes = 0
    outcome = "timeout"
    try:
        for _ in range(1000000):
            remaining = timeout - (time.monotonic() - start)
            if remaining <= 0:
                break
            sock.settimeout(remaining)
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                outcome = "reset"
                break
            except (socket.timeout, TimeoutError):
                break
            if not data:
                outcome = "eof"
                break
            nbytes += len(data)
    finally:
        try:
            sock.settimeout(old)
        except OSError:
            pass
    return outcome, time.monotonic() - start, nbytes


def set_linger_zero(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def reset_close(sock):
    """Close sock with an RST (SO_LINGER 0)."""
    try:
        set_linger_zero(sock)
    except OSError:
        pass
    sock.close()


def safe_close(sock):
    try:
        sock.close()
    except OSError:
        pass


def shut_down_and_join(conns, threads, seconds=3.0):
    """A test server's end: its open connections shut both ways (their threads' reads end), then
    its threads joined, `seconds` for all of them."""
    for c in conns:
        try:
            c.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    deadline = time.monotonic() + seconds
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))


def echo_rounds(port, rounds, message, errors, label):
    """One client: `rounds` messages (message(i) -> bytes) through an echo backend, each read back
    and checked. The first problem is appended to `errors` as one line naming `label` (a stall
    shows as the socket timeout); meant to run in a thread beside others."""
    try:
        s = connect(port)
        try:
            for i in range(rounds):
                msg = message(i)
                s.sendall(msg)
                if recv_exact(s, len(msg)) != msg:
                    errors.append(f"{label}: round {i} came back altered")
                    return
        finally:
            s.close()
    except (OSError, EOFError, AssertionError) as e:
        errors.append(f"{label}: {e!r}")


def echo_roundtrip(port, payload=b"ping\n", host="127.0.0.1", timeout=SOCKET_TIMEOUT):
    """Connect, send payload, read the same number of bytes back, close. Returns the bytes."""
    s = connect(port, host=host, timeout=timeout)
    try:
        s.sendall(payload)
        return recv_exact(s, len(payload))
    finally:
        s.close()


def wait_serving(port, payload=b"x\n", timeout=READY_TIMEOUT):
    """Poll until an echo round trip through port succeeds (a proxy started without waiting for
    its "listening on" line); True when it did within timeout."""
    def serving():
        try:
            return echo_roundtrip(port, payload, timeout=1) == payload
        except OSError:
            return False

    return wait_until(serving, timeout, interval=0.1)


# --------------------------------------------------------------------------------------------
# Threaded loopback servers (the scripted backends)
# --------------------------------------------------------------------------------------------

class TCPServer:
    """Accepts on host:port (0 = any free port) and runs handler(conn, server) in a thread per
    connection. Whatever the handler returns (or the exception it raised) is appended to
    self.results. Connections get a timeout of conn_timeout seconds."""

    def __init__(self, handler, host="127.0.0.1", port=0, backlog=1024, conn_timeout=30.0):
        self.handler = handler
        self.host = host
        self.conn_timeout = conn_timeout
        self.sock = self._listening_socket(host, port)
        self.sock.listen(backlog)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1] if self.sock.family != socket.AF_UNIX else None
        self.results = []
        self.accepted = 0
        self._conns = set()
        self._threads = set()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._accept_thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._accept_thread.start()

    @staticmethod
    def _listening_socket(host, port):
        sock = socket.socket(family_of(host), socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family_of(host) == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        return sock

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                if self._stop.is_set():
                    return
                time.sleep(0.05)
                continue
            conn.settimeout(self.conn_timeout)
            t = threading.Thread(target=self._run, args=(conn,), daemon=True)
            with self._cond:
                self.accepted += 1
                self._conns.add(conn)
                self._threads.add(t)
            t.start()

    def _run(self, conn):
        result = None
        try:
            result = self.handler(conn, self)
        except Exception as e:  # recorded for the test to inspect
            result = e
        finally:
            safe_close(conn)
            with self._cond:
                self._conns.discard(conn)
                self._threads.discard(threading.current_thread())
                self.results.append(result)
                self._cond.notify_all()

    def wait_results(self, n, timeout=10.0):
        """Wait until n handlers finished; returns a copy of results (may be shorter)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.results) < n:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return list(self.results)

    def wait_accepted(self, n, timeout=10.0):
        return wait_until(lambda: self.accepted >= n, timeout)

    @property
    def stopping(self):
        return self._stop.is_set()

    def close(self):
        self._stop.set()
        safe_close(self.sock)
        self._accept_thread.join(timeout=2)
        with self._cond:
            conns = list(self._conns)
            threads = list(self._threads)
        shut_down_and_join(conns, threads)


def _read_to_eof(conn, on_data=None, chunk=256 * 1024):
    """Read until EOF/reset/timeout; returns ('eof'|'reset'|'timeout', nbytes)."""
    total = 0
    for _ in range(10**9):
        try:
            data = conn.recv(chunk)
        except ConnectionResetError:
            return "reset", total
        except (socket.timeout, TimeoutError):
            return "timeout", total
        if not data:
            return "eof", total
        total += len(data)
        if on_data is not None:
            on_data(data)
    return "eof", total


def echo_handler(conn, server):
    """Echo everything back; on EOF shut down the write side and close."""
    total = 0
    buf = bytearray(256 * 1024)
    for _ in range(10**9):
        try:
            n = conn.recv_into(buf)
        except ConnectionResetError:
            return {"outcome": "reset", "bytes": total}
        except (socket.timeout, TimeoutError):
            return {"outcome": "timeout", "bytes": total}
        if n == 0:
            break
        total += n
        try:
            conn.sendall(memoryview(buf)[:n])
        except (ConnectionResetError, BrokenPipeError):
            return {"outcome": "reset", "bytes": total}
    try:
        conn.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    return {"outcome": "eof", "bytes": total}


def sink_handler(conn, server):
    """Read to EOF (or reset) hashing everything."""
    h = hashlib.sha256()
    outcome, total = _read_to_eof(conn, h.update)
    return {"outcome": outcome, "bytes": total, "sha256": h.hexdigest()}


def make_source_handler(total_bytes, block=None):
    """Send total_bytes (block repeated), shut down the write side, read to EOF. Records
    'ok' or the send error."""
    if block is None:
        block = os.urandom(MiB)

    def handler(conn, server):
        sent = 0
        view = memoryview(block)
        try:
            for _ in range(total_bytes // max(1, len(block)) + 2):
                if sent >= total_bytes:
                    break
                n = min(len(block), total_bytes - sent)
                conn.sendall(view[:n])
                sent += n
            conn.shutdown(socket.SHUT_WR)
        except (ConnectionResetError, BrokenPipeError) as e:
            return {"outcome": "send-reset", "sent": sent, "error": repr(e)}
        except (socket.timeout, TimeoutError):
            return {"outcome": "send-timeout", "sent": sent}
        outcome, _ = _read_to_eof(conn)
        return {"outcome": outcome, "sent": sent}

    return handler


def make_duplex_handler(data):
    """Source + sink at once: a thread sends `data` then shuts down the write side, while the
    handler reads to EOF hashing what it receives."""

    def handler(conn, server):
        send_result = {}

        def sender():
            try:
                view = memoryview(data)
                for off in range(0, len(data), MiB):
                    conn.sendall(view[off:off + MiB])
                conn.shutdown(socket.SHUT_WR)
                send_result["outcome"] = "ok"
            except OSError as e:
                send_result["outcome"] = repr(e)

        t = threading.Thread(target=sender, daemon=True)
        t.start()
        h = hashlib.sha256()
        outcome, total = _read_to_eof(conn, h.update)
        t.join(timeout=60)
        return {"outcome": outcome, "bytes": total, "sha256": h.hexdigest(),
                "send": send_result.get("outcome", "unfinished")}

    return handler


def make_reset_handler(send_bytes=0, read_first=0, delay=0.1):
    """Optionally read read_first bytes, send send_bytes, wait delay, then close with RST."""

    def handler(conn, server):
        got = 0
        for _ in range(read_first + 1):
            if got >= read_first:
                break
            data = conn.recv(65536)
            if not data:
                break
            got += len(data)
        if send_bytes:
            conn.sendall(b"r" * send_bytes)
        time.sleep(delay)
        set_linger_zero(conn)
        return {"outcome": "reset-sent", "read": got}

    return handler


def make_delayed_reply_handler(delay=0.3):
    """Read the request to EOF, wait `delay`, reply b'reply:' + sha256(request) hex, close."""

    def handler(conn, server):
        h = hashlib.sha256()
        outcome, total = _read_to_eof(conn, h.update)
        if outcome != "eof":
            return {"outcome": outcome, "bytes": total}
        time.sleep(delay)
        reply = b"reply:" + h.hexdigest().encode()
        try:
            conn.sendall(reply)
        except OSError as e:
            return {"outcome": "send-failed " + repr(e), "bytes": total}
        return {"outcome": "eof", "bytes": total, "sha256": h.hexdigest(), "replied": reply}

    return handler


def make_send_then_half_close_handler(greeting):
    """Send greeting, shut down the write side, then read the client's data to EOF."""

    def handler(conn, server):
        conn.sendall(greeting)
        conn.shutdown(socket.SHUT_WR)
        h = hashlib.sha256()
        outcome, total = _read_to_eof(conn, h.update)
        return {"outcome": outcome, "bytes": total, "sha256": h.hexdigest()}

    return handler


def make_hold_handler(max_hold=10.0):
    """Read to EOF, then hold the connection open (sending nothing) for up to max_hold seconds
    or until the server closes."""

    def handler(conn, server):
        outcome, total = _read_to_eof(conn)
        deadline = time.monotonic() + max_hold
        while time.monotonic() < deadline and not server.stopping:
            time.sleep(0.05)
        return {"outcome": outcome, "bytes": total}

    return handler


class BlackholeBackend:
    """A listener on 127.0.0.1 with backlog 0 whose accept queue is filled with connections that
    are never accepted, so Linux drops further SYNs and connect() to it hangs.

    release() accepts and closes the fillers so that the next SYN retransmission of a pending
    connect (after ~1 s) succeeds; from then on connections are served by `handler` (echo by
    default)."""

    def __init__(self, handler=echo_handler):
        self.handler = handler
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fillers = []
        self.filler_ports = set()
        self._server = None
        for _ in range(16):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(0.3)
            try:
                s.connect(("127.0.0.1", self.port))
            except (socket.timeout, TimeoutError, BlockingIOError):
                s.close()  # SYN dropped: the queue is full
                break
            self.fillers.append(s)
            self.filler_ports.add(s.getsockname()[1])
        else:
            self.close()
            raise RuntimeError("could not fill the backlog of the blackhole listener")
        self._stop = threading.Event()
        self._threads = []
        self.results = []

    def release(self):
        """Start accepting: fillers are closed, other connections are served by handler."""
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self._threads.append(t)

    def _accept_loop(self):
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, addr = self.sock.accept()
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                return
            if addr[1] in self.filler_ports:
                conn.close()
                continue
            conn.settimeout(SOCKET_TIMEOUT)

            def run(c=conn):
                try:
                    self.results.append(self.handler(c, self))
                except Exception as e:
                    self.results.append(e)
                finally:
                    safe_close(c)

            t = threading.Thread(target=run, daemon=True)
            t.start()
            self._threads.append(t)

    @property
    def stopping(self):
        return self._stop.is_set()

    def close(self):
        self._stop.set()
        safe_close(self.sock)
        for s in self.fillers:
            safe_close(s)
        for t in self._threads:
            t.join(timeout=2)


# --------------------------------------------------------------------------------------------
# unittest base class
# --------------------------------------------------------------------------------------------

class ProxyTestCase(unittest.TestCase):
    """Base class: everything started through these helpers is stopped in cleanup."""

    @classmethod
    def setUpClass(cls):
        binary_path()  # fails the whole class clearly if EDGEPROXY_BIN is unset

    # -- factories ----------------------------------------------------------------------------
    # Servers and client sockets are remembered so that a proxy's cleanup can close them first:
    # then the proxy has no connection left and must exit at once, with code 0, on SIGTERM.

    def _own(self, thing):
        if not hasattr(self, "_owned"):
            self._owned = []
        self._owned.append(thing)
        return thing

    def start_server(self, handler=echo_handler, host="127.0.0.1", port=0, **kw):
        server = TCPServer(handler, host=host, port=port, **kw)
        self.addCleanup(server.close)
        return self._own(server)

    def start_blackhole(self, handler=echo_handler):
        try:
            with open("/proc/sys/net/ipv4/tcp_abort_on_overflow") as f:
                if f.read().strip() != "0":
                    self.skipTest("tcp_abort_on_overflow is set: a full accept queue resets "
                                  "SYNs instead of dropping them, so no connect can hang")
        except OSError:
            pass
        bh = BlackholeBackend(handler)
        self.addCleanup(bh.close)
        return self._own(bh)

    def start_proxy(self, backend_port, extra=(), listen="127.0.0.1", backend="127.0.0.1",
                    port=None, preexec_fn=None, wait_ready=True, wrapper=()):
        """Start the proxy on listen:port (a free port if None) and wait for readiness. With a
        picked port, a lost race for it (another process took it: exit code 1 naming "in use")
        is retried with a new port, at most 3 times."""
        fixed = port is not None
        extra = list(extra)
        if not any(str(a).startswith("--workers") for a in extra):
            extra += default_worker_args()
        for attempt in range(3):
            chosen = port if fixed else free_port(listen if ":" in listen else "127.0.0.1")
            proxy = Proxy(proxy_args(chosen, backend_port, listen=listen, backend=backend,
                                     extra=extra), preexec_fn=preexec_fn, wrapper=wrapper)
            proxy.port = chosen
            proxy.listen = listen
            self.addCleanup(self._cleanup_proxy, proxy)
            try:
                proxy.start(wait_ready=wait_ready)
            except ProxyError:
                if (not fixed and attempt < 2 and proxy.proc.returncode == 1
                        and "in use" in proxy.stderr_text()):
                    continue
                raise
            return proxy
        raise AssertionError("unreachable")

    def _cleanup_proxy(self, proxy):
        """Close every peer, then SIGTERM: the proxy must exit promptly with code 0 (this also
        catches crashes and sanitizer reports at exit)."""
        if not proxy.alive():
            proxy.kill()
            return
        for thing in reversed(getattr(self, "_owned", [])):
            try:
                thing.close()
            except OSError:
                pass
        try:
            rc = proxy.stop(signal.SIGTERM, timeout=8)
        except ProxyError as e:
            raise ProxyError(f"at cleanup, with no peer left: {e}") from None
        if rc != 0:
            raise ProxyError(f"at cleanup: SIGTERM exit code {rc}, want 0; stderr:\n"
                             f"{proxy.stderr_text()[-4000:]}")

    def connect(self, port, host="127.0.0.1", timeout=SOCKET_TIMEOUT, nodelay=False):
        s = connect(port, host=host, timeout=timeout, nodelay=nodelay)
        self.addCleanup(safe_close, s)
        return self._own(s)

    # How long counters may take to move after the event a test waits for (assertMoved).
    counter_wait = 2.0

    def assertMoved(self, proxy, before, exact=True, **deltas):
        """Wait (bounded, counter_wait) until each named counter of self.counters(proxy) moved
        by at least its delta since `before`, then check it moved by exactly that (unless
        exact=False). Returns the counters."""
        def reached():
            now = self.counters(proxy)
            return now if all(now[k] - before[k] >= d for k, d in deltas.items()) else None
        now = wait_until(reached, self.counter_wait, interval=0.05) or self.counters(proxy)
        moved = {k: now[k] - before[k] for k in deltas}
        if exact:
            self.assertEqual(moved, deltas, f"counters moved by {moved}, want {deltas}")
        else:
            for k, d in deltas.items():
                self.assertGreaterEqual(moved[k], d, f"{k} moved by {moved[k]}, want >= {d}")
        return now

    def start_thread(self, target, *args):
        """Run target(*args) in a daemon thread; returns (thread, result dict with 'value' or
        'error')."""
        box = {}

        def run():
            try:
                box["value"] = target(*args)
            except BaseException as e:
                box["error"] = e

        t = threading.Thread(target=run, daemon=True)
        t.start()
        self.addCleanup(t.join, 5)
        return t, box

    # -- assertions ---------------------------------------------------------------------------

    def assertClosedByProxy(self, sock, within, allowed=("eof", "reset")):
        outcome, elapsed, _ = wait_closed(sock, within)
        self.assertIn(outcome, allowed,
                      f"connection not closed by the proxy within {within}s (outcome {outcome})")
        return outcome, elapsed

    def assertNotBusy(self, proxy, seconds=2.0, limit=0.3, what="idle"):
        used = proxy.cpu_used_over(seconds)
        self.assertLess(used, limit, f"proxy used {used:.2f}s CPU in {seconds}s while {what} "
                                     f"(busy loop?)")

    def assertCleanExit(self, rc, proxy):
        self.assertEqual(rc, 0, f"exit code {rc}; stderr:\n{proxy.stderr_text()[-4000:]}")

    def assertStatsPrinted(self, proxy):
        stats = proxy.final_stats()
        self.assertIsNotNone(stats, f"no statistics block at exit; stderr:\n"
                                    f"{proxy.stderr_text()[-4000:]}")
        for name in COUNTER_NAMES:
            self.assertIn(name, stats, f"counter {name} missing from the statistics")
        return stats

    # -- configuration files (issue 10) ------------------------------------------------------

    def config_dir(self):
        """This test's temporary directory (removed at cleanup, after the proxies stopped)."""
        if getattr(self, "_config_dir", None) is None:
            self._config_dir = tempfile.mkdtemp(prefix="edgeproxy-test-")
            self.addCleanup(shutil.rmtree, self._config_dir, True)
        return self._config_dir

    def write_config(self, text, values=None, name="edgeproxy.conf"):
        """Write `text` as `name` in config_dir(), @NAME@ placeholders filled from `values` (@DIR@
        is config_dir(); a name not in values gets a free port, added to values). Returns the
        path. Written to a temporary file first, then renamed: a reload never reads half."""
        values = {} if values is None else values
        values.setdefault("DIR", self.config_dir())
        path = os.path.join(self.config_dir(), name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "w") as f:
            f.write(fill_config(text, values))
        os.replace(path + ".tmp", path)
        return path

    def start_proxy_config(self, text, extra=(), values=None, wait_ready=True):
        """Start `edgeproxy -c FILE` on `text` (see write_config) and wait for readiness. The
        proxy gets .config_path, .values (placeholder values, kept for rewrites) and .port (the
        value of @PORT@, if used). Ports picked here and lost to another process (exit 1 naming
        "in use") are picked again, at most 3 times."""
        extra = list(extra)
        if not any(str(a).startswith("--workers") for a in extra):
            extra += default_worker_args()
        given = dict(values or {})
        for attempt in range(3):
            vals = dict(given)
            path = self.write_config(text, vals)
            proxy = Proxy(["-c", path] + extra)
            proxy.config_path, proxy.values, proxy.port = path, vals, vals.get("PORT")
            self.addCleanup(self._cleanup_proxy, proxy)
            try:
                proxy.start(wait_ready=wait_ready)
            except ProxyError:
                picked = set(vals) - set(given) - {"DIR"}
                if (picked and attempt < 2 and proxy.proc.returncode == 1
                        and "in use" in proxy.stderr_text()):
                    continue
                raise
            return proxy
        raise AssertionError("unreachable")

    def rewrite_config(self, proxy, text):
        """Replace the proxy's file by `text`, with the placeholder values it started with (a
        new placeholder gets a new free port)."""
        return self.write_config(text, proxy.values, os.path.basename(proxy.config_path))

    def reload(self, proxy, ok=True, timeout=10.0):
        """SIGHUP, then wait for the line that says how it went ("reloaded" or "reload failed")
        and check it is the one wanted. Returns the line."""
        start = len(proxy.stderr_snapshot())
        proxy.send_signal(signal.SIGHUP)
        line = wait_until(lambda: reload_outcome(proxy.stderr_snapshot()[start:]), timeout,
                          interval=0.02)
        self.assertTrue(line, f"no 'reloaded' or 'reload failed' line within {timeout}s of "
                              f"SIGHUP; stderr:\n{proxy.stderr_text()[-4000:]}")
        want = "reloaded" if ok else "reload failed"
        self.assertIn(want, line, f"want a line with {want!r}; stderr:\n"
                                  f"{proxy.stderr_text()[-4000:]}")
        return line

    def run_config(self, text, args=(), values=None, timeout=10.0):
        """Write `text` and run the binary with `args` + ["-c", path] to completion:
        (returncode, stdout, stderr, path); returncode None if it was still running after
        `timeout` (killed)."""
        path = self.write_config(text, values)
        rc, out, err, _ = run_binary(list(args) + ["-c", path], timeout=timeout)
        return rc, out, err, path

    def start_unix_server(self, path, handler=echo_handler):
        server = UnixServer(handler, path)
        self.addCleanup(server.close)
        return self._own(server)

    def who(self, port, host="127.0.0.1", source=None):
        """Connect through the proxy to a make_named_handler server: (its name, the open socket,
        closed at cleanup). The name is "reset" or "eof" when the proxy closed the client."""
        s = socket.socket(family_of(host), socket.SOCK_STREAM)
        self.addCleanup(safe_close, s)
        self._own(s)
        s.settimeout(SOCKET_TIMEOUT)
        if source is not None:
            s.bind((source, 0))
        return ask_name(s, (host, port)), s

    def start_named(self, *names):
        """{name: a make_named_handler server} for each name."""
        return {n: self.start_server(make_named_handler(n)) for n in names}

    def name_counts(self, port, count, host="127.0.0.1", source=None):
        """collections.Counter of the names who_once() gets in `count` connections."""
        return collections.Counter(self.who_once(port, host, source) for _ in range(count))

    def who_once(self, port, host="127.0.0.1", source=None):
        """who(), the connection closed at once: the name only."""
        name, s = self.who(port, host, source)
        s.close()
        return name


# --------------------------------------------------------------------------------------------
# Configuration files (issue 10)
# --------------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"@([A-Z][A-Z0-9_]*)@")


def fill_config(text, values):
    """`text` with each @NAME@ replaced by values[NAME]; a NAME not in values gets a free
    loopback port, recorded in values."""

    def value(match):
        name = match.group(1)
        if name not in values:
            values[name] = free_port()
        return str(values[name])

    return _PLACEHOLDER.sub(value, text)


def reload_outcome(lines):
    """The first line among `lines` that reports a reload's outcome, or None."""
    for line in lines:
        if "reloaded" in line or "reload failed" in line:
            return line
    return None


def full_stats(proxy, timeout=10.0):
    """SIGUSR1 statistics read to the end of the block: Proxy.stats() may return as soon as the
    process-wide counters are in, before the per-worker and per-object lines behind them."""
    proxy.stats(timeout)
    deadline = time.monotonic() + 3.0
    for _ in range(100):
        with proxy._cond:
            block, terminated = parse_stat_blocks(proxy.stderr_lines)[-1]
            quiet = time.monotonic() - proxy._last_line_time
        if terminated or quiet > 0.3 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return dict(block)


def wait_full_stats(proxy, predicate, timeout=5.0):
    """Poll full_stats() until predicate(stats) holds (or timeout); returns the last stats."""
    return wait_until(lambda: _stats_if(full_stats(proxy), predicate), timeout, interval=0.1) \
        or full_stats(proxy)


def _stats_if(stats, predicate):
    return stats if not stats.get("incomplete") and predicate(stats) else None


def per_worker(stats, name):
    """[value of `name` in each worker] from a statistics block: the workerN. lines when there
    are several workers, else the process-wide line."""
    values = [stats[k] for k in sorted(stats) if re.fullmatch(rf"worker\d+\.{re.escape(name)}", k)]
    return values or [stats[name]]


WHO = b"who\n"
PING = b"PING\r\n"


def make_named_handler(name, check_reply=b"PONG\r\n"):
    """A server that says who it is: a client sends WHO and reads back `name` and a newline,
    then the connection echoes until EOF. A health check's PING is answered with check_reply and
    the connection closed; a connect-only check just sees EOF. Results: {"kind": "client" or
    "check", "outcome": ...}."""
    reply = name.encode() + b"\n"

    def handler(conn, server):
        first = b""
        for _ in range(16):
            try:
                data = conn.recv(64)
            except (ConnectionResetError, socket.timeout, TimeoutError) as e:
                return {"kind": "check" if not first else "client", "outcome": repr(e)}
            if not data:
                return {"kind": "check", "outcome": "eof"}
            first += data
            if b"\n" in first:
                break
        if first.startswith(PING):
            conn.sendall(check_reply)
            return {"kind": "check", "outcome": "answered"}
        try:
            conn.sendall(reply)
        except OSError as e:
            return {"kind": "client", "outcome": repr(e)}
        result = echo_handler(conn, server)
        result["kind"] = "client"
        return result

    return handler


def ask_name(sock, address):
    """Connect sock to address, send WHO and read the one-line answer: the server's name, or
    "reset"/"eof" when the connection was closed before a whole line came back."""
    line = b""
    try:
        sock.connect(address)
        sock.sendall(WHO)
        for _ in range(64):
            data = sock.recv(64)
            if not data:
                return "eof"
            line += data
            if line.endswith(b"\n"):
                return line[:-1].decode()
    except (ConnectionResetError, BrokenPipeError):
        return "reset"
    return "garbled: " + repr(line)


def refuses(port, host="127.0.0.1", timeout=1.0):
    """True if a connect to host:port is refused right now."""
    try:
        s = connect(port, host=host, timeout=timeout)
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    s.close()
    return False


class UnixServer(TCPServer):
    """TCPServer on a Unix stream socket at `path` (an existing file there is replaced)."""

    def __init__(self, handler, path, backlog=1024, conn_timeout=30.0):
        self.path = path
        super().__init__(handler, host=path, port=None, backlog=backlog,
                         conn_timeout=conn_timeout)

    @staticmethod
    def _listening_socket(path, port):
        if os.path.exists(path):
            os.unlink(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)
        return sock


def one_listener_config(servers, backend=(), listener=(), top=""):
    """A file with backend `app` (one `server` line per item of `servers`, then the `backend`
    lines) and listener `web` on 127.0.0.1:@PORT@ using it (then the `listener` lines); `top`
    goes first (e.g. a global block)."""
    lines = [top, "backend app {"]
    lines += [f"    server {s}" for s in servers]
    lines += [f"    {line}" for line in backend]
    lines += ["}", "listener web {", "    bind 127.0.0.1:@PORT@", "    backend app"]
    lines += [f"    {line}" for line in listener]
    lines += ["}", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The request smuggling corpus (issue 12's, shared with issue 15's HTTP mode)
# --------------------------------------------------------------------------------------------

def smuggling_corpus(target, host, fields=()):
    """Requests every strict HTTP/1.x proxy must refuse with 400, as (what, bytes, framing):
    `framing` is True for a body framing refused (Content-Length / Transfer-Encoding), False for
    a head the parser itself refuses (bare LF or CR, obs-fold, whitespace before a colon).
    `target` is the request target (origin- or absolute-form), `host` the Host value, `fields`
    ("Name: value" strings) go right after Host in every request (e.g. Proxy-Authorization)."""
    get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"

    def req(method, extra=(), body=b"", version="1.1"):
        lines = [f"{method} {target} HTTP/{version}", f"Host: {host}"] + list(fields)
        return ("\r\n".join(lines + list(extra)) + "\r\n\r\n").encode() + body

    def post(extra, body=b"", version="1.1"):
        return req("POST", extra, body, version)

    lf_head = ("\n".join([f"GET {target} HTTP/1.1", f"Host: {host}"] + list(fields))
               + "\n\n").encode()
    return [
        ("CL and TE", post(["Content-Length: 5", "Transfer-Encoding: chunked"],
                           b"0\r\n\r\n" + get.encode()), True),
        ("TE and CL", post(["Transfer-Encoding: chunked", "Content-Length: 5"],
                           b"0\r\n\r\n" + get.encode()), True),
        ("two Content-Length", post(["Content-Length: 5", "Content-Length: 5"], b"hello"), True),
        ("two different Content-Length", post(["Content-Length: 5", "Content-Length: 6"],
                                              b"hello!"), True),
        ("Content-Length: 5, 5", post(["Content-Length: 5, 5"], b"hello"), True),
        ("Content-Length: +5", post(["Content-Length: +5"], b"hello"), True),
        ("Content-Length: -1", post(["Content-Length: -1"]), True),
        ("Content-Length: 5a", post(["Content-Length: 5a"], b"hello"), True),
        ("Content-Length: 0x5", post(["Content-Length: 0x5"], b"hello"), True),
        ("Content-Length huge", post(["Content-Length: 99999999999999999999999"]), True),
        ("TE gzip, chunked", post(["Transfer-Encoding: gzip, chunked"], b"0\r\n\r\n"), True),
        ("TE chunked, chunked", post(["Transfer-Encoding: chunked, chunked"], b"0\r\n\r\n"),
         True),
        ("TE chunked,", post(["Transfer-Encoding: chunked,"], b"0\r\n\r\n"), True),
        ("TE chunked, gzip", post(["Transfer-Encoding: chunked, gzip"], b"0\r\n\r\n"), True),
        ("TE gzip then TE chunked", post(["Transfer-Encoding: gzip",
                                          "Transfer-Encoding: chunked"], b"0\r\n\r\n"), True),
        ("TE identity", post(["Transfer-Encoding: identity"], b""), True),
        ("TE xchunked", post(["Transfer-Encoding: xchunked"], b"0\r\n\r\n"), True),
        ("TE chunked with a parameter", post(["Transfer-Encoding: chunked;q=1"], b"0\r\n\r\n"),
         True),
        ("TE in HTTP/1.0", post(["Transfer-Encoding: chunked"], b"0\r\n\r\n", "1.0"), True),
        ("bare LF line endings", lf_head, False),
        ("one bare LF", req("GET", ["X-A: 1\nX-B: 2"]), False),
        ("bare CR", req("GET", ["X-A: 1\rX-B: 2"]), False),
        ("obs-fold", req("GET", ["X-Folded: a", " b"]), False),
        ("obs-fold of Content-Length", post(["Content-Length:", " 5"], b"hello"), False),
        ("space before colon", post(["Content-Length : 5"], b"hello"), False),
        ("tab before colon", post(["Transfer-Encoding\t: chunked"], b"0\r\n\r\n"), False),
        ("space in a field name", req("GET", ["X Y: 1"]), False),
    ]

"""io_uring faults injected with strace: io_uring_enter refused (EAGAIN, EBUSY) for a window of
calls while clients relay, and refused for good from some call on. The proxy must deliver every
byte, answer USR1 with its worker's own counters, never busy-loop, and exit 0 on TERM.

Skipped on the epoll backend, and (saying why) where strace cannot trace or inject here. Each
test checks in strace's own log that faults were injected: none may pass without them."""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ProxyTestCase  # noqa: E402
from test_batch_wait import backend_name  # noqa: E402

CLIENTS = 8
ROUNDS = 48
CHUNK = 16 * 1024


_STRACE_PROBLEM = []


def strace_problem():
    """None if strace can trace a child and inject into its syscalls here, else why not."""
    if _STRACE_PROBLEM:
        return _STRACE_PROBLEM[0]
    strace = shutil.which("strace")
    problem = None
    if strace is None:
        problem = "strace is not installed (scripts/install-deps.sh installs it)"
    else:
        # getppid is made to return 4242: only a working injection prints that.
        cmd = [strace, "-D", "-f", "-qq", "-o", "/dev/null", "-e", "trace=getppid",
               "-e", "inject=getppid:retval=4242", sys.executable, "-c",
               "import os; print(os.getppid())"]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
            if out.returncode != 0 or out.stdout.strip() != "4242":
                problem = (f"strace cannot inject here (exit {out.returncode}): "
                           f"{(out.stderr or out.stdout).strip()[:300]}")
        except (OSError, subprocess.TimeoutExpired) as e:
            problem = f"strace cannot run here: {e!r}"
    _STRACE_PROBLEM.append(problem)
    return problem


def tracer_of(pid):
    """The pid tracing `pid` (0 if none), from /proc/PID/status."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("TracerPid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def relay(port, index, errors):
    """One client: ROUNDS chunks through the echo backend, each checked."""
    harness.echo_rounds(
        port, ROUNDS,
        lambda i: hashlib.sha256(f"{index}:{i}".encode()).digest() * (CHUNK // 32), errors,
        f"client {index}")


class UringFaults(ProxyTestCase):

    def setUp(self):
        if backend_name() != "io_uring":
            self.skipTest("io_uring_enter faults concern the io_uring backend only")
        problem = strace_problem()
        if problem:
            self.skipTest(problem)
        self.log_dir = tempfile.mkdtemp(prefix="edgeproxy-strace-")
        self.addCleanup(shutil.rmtree, self.log_dir, True)
        if harness.binary_is_sanitized():
            # LeakSanitizer stops the world with ptrace, which a traced process cannot: it would
            # abort at exit. AddressSanitizer and UBSan keep checking; the unit tests check leaks.
            options = os.environ.get("ASAN_OPTIONS", "")
            patcher = mock.patch.dict(os.environ, {
                "ASAN_OPTIONS": (options + ":" if options else "") + "detect_leaks=0"})
            patcher.start()
            self.addCleanup(patcher.stop)

    def start_traced(self, backend_port, error, when):
        """The proxy under strace -D (it stays the harness's direct child, so signals reach it),
        io_uring_enter made to fail with `error` on the calls `when` selects, per thread."""
        self.log = os.path.join(self.log_dir, "strace.log")
        wrapper = [shutil.which("strace"), "-D", "-f", "-qq", "-o", self.log,
                   "-e", "trace=io_uring_enter",
                   "-e", f"inject=io_uring_enter:error={error}:when={when}"]
        proxy = self.start_proxy(backend_port, extra=["--shutdown-timeout", "3"], wrapper=wrapper)
        self.tracer = tracer_of(proxy.pid)
        self.assertNotEqual(self.tracer, 0, "the proxy runs untraced")
        return proxy

    def injected(self):
        """How many io_uring_enter calls strace failed on purpose (waits for strace to finish
        its log once the proxy has exited)."""
        harness.wait_until(lambda: not os.path.exists(f"/proc/{self.tracer}"), 10)
        with open(self.log, errors="replace") as f:
            return sum(1 for line in f if "(INJECTED)" in line)

    def relay_through_a_window(self, error):
        backend = self.start_server()
        # Calls 30 to 330 of each worker thread fail: well after start-up, while clients relay.
        proxy = self.start_traced(backend.port, error, "30..330")
        errors = []
        threads = [threading.Thread(target=relay, args=(proxy.port, i, errors), daemon=True)
                   for i in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        self.assertFalse(any(t.is_alive() for t in threads), "clients still relaying after 120 s")
        self.assertEqual(errors, [])
        # A send's bytes reach the client before the worker reaps its completion (and counts
        # them), so the last counts may trail the clients' reads by a moment.
        total = CLIENTS * ROUNDS * CHUNK
        stats = proxy.wait_stats(
            lambda st: st["bytes_c2u"] == total and st["bytes_u2c"] == total, timeout=10)
        self.assertEqual(stats["accepted"], CLIENTS, "USR1 not answered by the worker(s)")
        self.assertEqual(stats["bytes_c2u"], total)
        self.assertEqual(stats["bytes_u2c"], total)
        self.assertNotBusy(proxy, what="idle after the faults")
        rc = proxy.stop(signal.SIGTERM, timeout=10)
        self.assertCleanExit(rc, proxy)
        final = self.assertStatsPrinted(proxy)
        self.assertEqual(final["active"], 0)
        self.assertGreater(self.injected(), 0, "no io_uring_enter call was refused: the test "
                                               "proved nothing")

    def test_relay_survives_enters_refused_with_eagain(self):
        self.relay_through_a_window("EAGAIN")

    def test_relay_survives_enters_refused_with_ebusy(self):
        self.relay_through_a_window("EBUSY")

    def test_kernel_refusing_every_enter_leaves_the_proxy_idle_and_responsive(self):
        # Regression (issue 9, item 5): the worker spun without reaping completions or reading
        # its control fd, so it answered no USR1 and never honoured TERM. From its second
        # io_uring_enter on, every call fails; the first wait returns on the first USR1.
        backend = self.start_server()
        proxy = self.start_traced(backend.port, "EAGAIN", "2+")
        first = proxy.stats()
        since = time.monotonic()
        self.assertGreater(first["loop_iterations"], 0)
        workers = harness.worker_count()
        # Each refused enter costs two ptrace stops on top of the proxy's own work.
        self.assertNotBusy(proxy, seconds=2.0, limit=0.3 * workers,
                           what="the kernel refuses every enter")
        second = proxy.stats()
        iterations = second["loop_iterations"] - first["loop_iterations"]
        self.assertGreater(iterations, 0,
                           "USR1 not answered by the worker while the kernel refuses enters")
        # Each refused wait gives the kernel a millisecond: about a thousand iterations a second
        # per worker at most, where a spinning loop makes as many as strace lets it.
        rate = iterations / (time.monotonic() - since) / workers
        self.assertLess(rate, 2000, f"{rate:.0f} loop iterations a second per worker: a busy "
                                    f"loop")
        start = time.monotonic()
        rc = proxy.stop(signal.SIGTERM, timeout=10)
        self.assertCleanExit(rc, proxy)
        self.assertLess(time.monotonic() - start, 5.0)
        self.assertStatsPrinted(proxy)
        self.assertGreater(self.injected(), 0, "no io_uring_enter call was refused")


if __name__ == "__main__":
    unittest.main()

"""Workers: --workers N|auto, --cpu-list, SO_REUSEPORT spreading, per-worker shares of the limits,
signals and statistics with several workers."""

import ctypes
import errno
import os
import re
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ProxyTestCase, recv_exact  # noqa: E402


def worker_threads(pid):
    """{thread name: Cpus_allowed_list} for the process's worker threads."""
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                status = f.read()
        except OSError:
            continue
        name = re.search(r"^Name:\s*(\S+)", status, re.M).group(1)
        cpus = re.search(r"^Cpus_allowed_list:\s*(\S+)", status, re.M).group(1)
        if name.startswith("edgeproxy-w"):
            threads[name] = cpus
    return threads


PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
WALL = 0x40000000  # waitpid __WALL: a tracee that is another process's thread


class StoppedThread:
    """One thread of another process held stopped by ptrace (PTRACE_SEIZE, PTRACE_INTERRUPT)
    while its other threads run; release() detaches and lets it run again. Every ptrace call
    comes from the thread that made the object: the kernel ties a tracee to one tracer thread."""

    def __init__(self, tid):
        self.tid = tid
        libc = ctypes.CDLL(None, use_errno=True)
        self._ptrace = libc.ptrace
        self._ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
        self._ptrace.restype = ctypes.c_long
        self._call(PTRACE_SEIZE, "PTRACE_SEIZE")
        self.attached = True
        try:
            self._call(PTRACE_INTERRUPT, "PTRACE_INTERRUPT")
            deadline = time.monotonic() + 5
            while os.waitpid(tid, os.WNOHANG | WALL)[0] == 0:
                if time.monotonic() > deadline:
                    raise OSError(errno.ETIMEDOUT, f"thread {tid} did not stop within 5 s")
                time.sleep(0.01)
        except OSError:
            self.release()
            raise

    def _call(self, request, name):
        if self._ptrace(request, self.tid, None, None) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{name} of thread {self.tid}: {os.strerror(err)}")

    def release(self):
        if self.attached:
            self.attached = False
            self._call(PTRACE_DETACH, "PTRACE_DETACH")


def thread_id(pid, name):
    """The id of the process's thread called `name`, or None."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if f.read().strip() == name:
                    return int(tid)
        except OSError:
            continue
    return None


def listening_line(proxy):
    for line in proxy.stderr_snapshot():
        if "listening on" in line:
            return line
    return ""


class Workers(ProxyTestCase):

    def echo(self, sock, msg):
        sock.sendall(msg)
        self.assertEqual(recv_exact(sock, len(msg)), msg)

    def test_both_workers_accept_connections(self):
        backend = self.start_server()
        proxy = self.start_proxy(backend.port, extra=["--workers", "2"])
        self.assertIn("2 worker(s)", listening_line(proxy))
        self.assertEqual(len(worker_threads(proxy.pid)), 2)
        # 64 connections from distinct source ports: the SO_REUSEPORT hash sends all of them to
        # one worker with probability 2^-63.
        clients = [self.connect(proxy.port) for _ in range(64)]
        for i, s in enumerate(clients):
            self.echo(s, f"hello {i}\n".encode())
        stats = proxy.stats()
        self.assertEqual(stats["accepted"], 64)
        self.assertEqual(stats["active"], 64)
        self.assertGreater(stats["worker0.accepted"], 0, "worker 0 accepted nothing")
        self.assertGreater(stats["worker1.accepted"], 0, "worker 1 accepted nothing")
        # The merged block is the sum of the workers'.
        for name in ("accepted", "bytes_c2u", "bytes_u2c", "pool_buffers"):
            self.assertEqual(stats[name], stats[f"worker0.{name}"] + stats[f"worker1.{name}"],
                             name)
        for s in clients:
            s.close()
        stats = proxy.wait_stats(lambda st: st["active"] == 0, timeout=10)
        self.assertEqual(stats["closed"], 64)

    def test_limits_are_divided_between_workers(self):
        backend = self.start_server()
        proxy = self.start_proxy(backend.port, extra=["--workers", "2", "--max-connections", "5",
                                                      "--buffers", "9"])
        stats = proxy.stats()
        self.assertEqual(stats["worker0.pool_buffers"], 5)
        self.assertEqual(stats["worker1.pool_buffers"], 4)
        self.assertEqual(stats["pool_buffers"], 9)

    def test_each_worker_serves_at_most_its_share_then_queued_clients_follow(self):
        # --max-connections 2 over 2 workers: one slot each. Clients beyond a worker's slot wait
        # in that worker's backlog (never refused) and are served when its slot frees.
        backend = self.start_server()
        proxy = self.start_proxy(backend.port, extra=["--workers", "2", "--max-connections", "2"])
        clients = [self.connect(proxy.port) for _ in range(6)]
        for i, s in enumerate(clients):
            s.sendall(f"c{i}\n".encode())
        served = []
        deadline = time.monotonic() + 2.0
        for i, s in enumerate(clients):
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                if recv_exact(s, 3) == f"c{i}\n".encode():
                    served.append(i)
            except (socket.timeout, TimeoutError):
                pass
        self.assertGreaterEqual(len(served), 1)
        self.assertLessEqual(len(served), 2, "more clients served at once than --max-connections")
        stats = proxy.stats()
        self.assertLessEqual(stats["worker0.peak_active"], 1)
        self.assertLessEqual(stats["worker1.peak_active"], 1)
        # Closing served clients lets the queued ones through, until every one was served.
        done = set()
        for _ in range(len(clients)):
            for i in served:
                if i not in done:
                    clients[i].close()
                    done.add(i)
            if len(done) == len(clients):
                break
            served = []
            for i, s in enumerate(clients):
                if i in done:
                    continue
                s.settimeout(0.3)
                try:
                    if recv_exact(s, 3) == f"c{i}\n".encode():
                        served.append(i)
                except (socket.timeout, TimeoutError):
                    pass
            self.assertTrue(served, f"no queued client served after a slot freed; done {done}")
        self.assertEqual(len(done), len(clients))
        stats = proxy.wait_stats(lambda st: st["active"] == 0, timeout=10)
        self.assertEqual(stats["accepted"], 6)

    def test_auto_starts_one_worker_per_allowed_cpu(self):
        backend = self.start_server()
        proxy = self.start_proxy(backend.port, extra=["--workers", "auto"])
        n = len(os.sched_getaffinity(0))
        self.assertIn(f"{n} worker(s)", listening_line(proxy))
        self.assertEqual(len(worker_threads(proxy.pid)), n)

    def test_auto_respects_an_inherited_mask(self):
        first = min(os.sched_getaffinity(0))
        backend = self.start_server()
        proxy = self.start_proxy(backend.port, extra=["--workers", "auto"],
                                 preexec_fn=lambda: os.sched_setaffinity(0, {first}))
        self.assertIn("1 worker(s)", listening_line(proxy))
        self.assertEqual(list(worker_threads(proxy.pid).values()), [str(first)])
        with self.connect(proxy.port) as s:
            self.echo(s, b"pinned by taskset\n")

    def test_cpu_list_pins_worker_i_to_the_ith_cpu(self):
        cpus = sorted(os.sched_getaffinity(0))
        order = list(reversed(cpus[:2])) if len(cpus) >= 2 else [cpus[0]]
        listed = ",".join(str(c) for c in order)
        backend = self.start_server()
        proxy = self.start_proxy(backend.port, extra=["--workers", "3", "--cpu-list", listed])
        threads = worker_threads(proxy.pid)
        expected = {f"edgeproxy-w{i}": str(order[i % len(order)]) for i in range(3)}
        self.assertEqual(threads, expected)
        self.assertIn("on CPUs", listening_line(proxy))
        with self.connect(proxy.port) as s:
            self.echo(s, b"pinned\n")

    def test_cpu_list_with_auto_starts_one_worker_per_listed_cpu(self):
        first = min(os.sched_getaffinity(0))
        backend = self.start_server()
        proxy = self.start_proxy(backend.port, extra=["--workers", "auto", "--cpu-list",
                                                      f"{first},{first}"])
        self.assertEqual(worker_threads(proxy.pid),
                         {"edgeproxy-w0": str(first), "edgeproxy-w1": str(first)})

    def test_graceful_quit_with_two_workers_lets_connections_finish(self):
        backend = self.start_server()
        proxy = self.start_proxy(backend.port, extra=["--workers", "2"])
        clients = [self.connect(proxy.port) for _ in range(16)]
        for i, s in enumerate(clients):
            self.echo(s, f"before {i}\n".encode())
        proxy.send_signal(signal.SIGQUIT)
        time.sleep(0.3)
        self.assertTrue(proxy.alive(), "QUIT must wait for open connections")
        for i, s in enumerate(clients):
            self.echo(s, f"after {i}\n".encode())
            s.close()
        self.assertEqual(proxy.wait_exit(10), 0)
        stats = proxy.final_stats()
        self.assertEqual(stats["accepted"], 16)
        self.assertEqual(stats["closed"], 16)
        self.assertEqual(stats["shutdown_forced"], 0)

    def test_term_deadline_resets_what_is_left_in_every_worker(self):
        backend = self.start_server()
        proxy = self.start_proxy(backend.port, extra=["--workers", "2", "--shutdown-timeout", "1"])
        clients = [self.connect(proxy.port) for _ in range(16)]
        for i, s in enumerate(clients):
            self.echo(s, f"held {i}\n".encode())
        stats = proxy.stats()
        self.assertGreater(stats["worker0.active"], 0)
        self.assertGreater(stats["worker1.active"], 0)
        proxy.send_signal(signal.SIGTERM)
        self.assertEqual(proxy.wait_exit(10), 0)
        stats = proxy.final_stats()
        self.assertEqual(stats["shutdown_forced"], 16)
        for i, s in enumerate(clients):
            s.settimeout(5)
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                continue
            self.fail(f"client {i} got {data!r} after the deadline, want a reset")


    def test_a_second_term_resets_every_worker_at_once(self):
        # Two TERMs are two requests to every worker, never merged: the second ends the grace
        # period (60 s here) and the process exits with its connections reset.
        backend = self.start_server()
        proxy = self.start_proxy(backend.port, extra=["--workers", "2", "--shutdown-timeout", "60"])
        clients = [self.connect(proxy.port) for _ in range(16)]
        for i, s in enumerate(clients):
            self.echo(s, f"held {i}\n".encode())
        proxy.send_signal(signal.SIGTERM)
        # Two identical standard signals pending at once are one to the kernel: send the second
        # after both workers reported the first.
        self.assertTrue(harness.wait_until(
            lambda: proxy.stderr_text().count("fast shutdown") == 2, 5))
        proxy.send_signal(signal.SIGTERM)
        self.assertEqual(proxy.wait_exit(20), 0, "a second TERM must not wait for the deadline")
        self.assertEqual(proxy.final_stats()["shutdown_forced"], 16)

    def test_statistics_asked_while_workers_exit_do_not_hold_the_exit(self):
        backend = self.start_server()
        # -v: the exit report's per-worker lines are checked too.
        proxy = self.start_proxy(backend.port, extra=["--workers", "2", "-v"])
        clients = [self.connect(proxy.port) for _ in range(8)]
        for i, s in enumerate(clients):
            self.echo(s, f"x{i}\n".encode())
        proxy.send_signal(signal.SIGQUIT)
        for s in clients:
            s.close()
        for _ in range(20):
            if not proxy.alive():
                break
            proxy.send_signal(signal.SIGUSR1)
            time.sleep(0.01)
        self.assertEqual(proxy.wait_exit(10), 0)
        stats = proxy.final_stats()
        self.assertEqual(stats["accepted"], 8)
        self.assertEqual(stats["worker0.accepted"] + stats["worker1.accepted"], 8)

    def test_a_worker_that_does_not_answer_is_named_not_counted_as_zeros(self):
        backend = self.start_server()
        proxy = self.start_proxy(backend.port, extra=["--workers", "2"])
        tid = thread_id(proxy.pid, "edgeproxy-w1")
        self.assertIsNotNone(tid, "no thread named edgeproxy-w1")
        try:
            stopped = StoppedThread(tid)
        except OSError as e:
            self.skipTest(f"cannot stop one worker thread with ptrace: {e}")
        self.addCleanup(stopped.release)  # runs before the proxy's cleanup (LIFO)
        start = time.monotonic()
        stats = proxy.stats()
        waited = time.monotonic() - start
        stopped.release()
        headers = [line for line in proxy.stderr_snapshot()
                   if "statistics" in line and not line.startswith(" ")]
        self.assertEqual(headers[-1], "edgeproxy: statistics "
                                      "(incomplete: worker 1 did not answer within 2 s)")
        self.assertGreater(waited, 1.5, "the report did not wait for the stopped worker")
        self.assertIn("worker0.accepted", stats)
        self.assertFalse([n for n in stats if n.startswith("worker1.")],
                         "the stopped worker's lines were printed (as zeros)")
        # Running again, it answers: the next report is complete.
        stats = proxy.stats()
        self.assertEqual(proxy.stderr_snapshot().count("edgeproxy: statistics"), 1)
        self.assertIn("worker1.accepted", stats)


class WorkerErrors(ProxyTestCase):

    def assertFails(self, args, needle, code=1):
        rc, out, err, _ = harness.run_binary(["-l", "127.0.0.1", "-p", "1"] + args)
        self.assertEqual(rc, code, err)
        lines = [line for line in err.splitlines() if line.strip()]
        self.assertEqual(len(lines), 1, f"want one error line, got:\n{err}")
        self.assertIn(needle, lines[0])

    def test_a_cpu_outside_the_mask_is_refused(self):
        self.assertFails(["--cpu-list", "1023"], "--cpu-list: CPU 1023 is not in this process's")

    def test_more_workers_than_connections_is_refused(self):
        self.assertFails(["--workers", "3", "--max-connections", "2"],
                         "--max-connections 2 is less than the number of workers (3)")

    def test_too_few_buffers_per_worker_is_refused(self):
        self.assertFails(["--workers", "2", "--buffers", "3"], "--buffers 3 is less than 2 per")

    def test_a_port_in_use_is_refused_not_shared(self):
        # Without the probe, a second proxy with several workers would join the first one's
        # SO_REUSEPORT group and silently take part of its connections.
        backend = self.start_server()
        first = self.start_proxy(backend.port, extra=["--workers", "2"])
        rc, out, err, _ = harness.run_binary(["-l", "127.0.0.1", "-p", first.port, "-P",
                                              backend.port, "--workers", "2"])
        self.assertEqual(rc, 1, err)
        lines = [line for line in err.splitlines() if line.strip()]
        self.assertEqual(len(lines), 1, f"want one error line, got:\n{err}")
        self.assertIn("address already in use", lines[0])
        self.assertEqual(first.stats()["accepted"], 0)

    def test_bad_values_are_usage_errors(self):
        self.assertFails(["--workers", "0"], "--workers: invalid value '0'", code=2)
        self.assertFails(["--workers", "two"], "--workers: invalid value 'two'", code=2)
        self.assertFails(["--cpu-list", "1-0"], "--cpu-list: invalid CPU range '1-0'", code=2)
        self.assertFails(["--cpu-list", "a"], "--cpu-list: invalid CPU list item 'a'", code=2)


if __name__ == "__main__":
    unittest.main()

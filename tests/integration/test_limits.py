"""Limits: many concurrent clients, many sequential clients, a full slab, a low fd limit."""

import os
import resource
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ProxyTestCase, echo_roundtrip, recv_exact  # noqa: E402


class ManyClients(ProxyTestCase):

    def test_1000_concurrent_clients_each_get_their_echo(self):
        n = 1000
        soft = harness.raise_own_nofile_limit()
        if soft < 2 * n + 100:
            self.skipTest(f"RLIMIT_NOFILE {soft} too low for {n} clients plus their backends")
        backend = self.start_server()
        # SO_REUSEPORT spreads clients over the workers by a hash, not evenly, and each worker
        # has its share of --max-connections: leave every worker room for all of them.
        extra = [] if harness.worker_count() == 1 else [
            "--max-connections", str(n * harness.worker_count())]
        proxy = self.start_proxy(backend.port, extra=extra)  # default 1024 >= 1000
        clients = []
        for i in range(n):
            clients.append(self.connect(proxy.port))
        messages = [f"client {i} says {os.urandom(6).hex()}\n".encode() for i in range(n)]
        for s, msg in zip(clients, messages):
            s.sendall(msg)
        for i, (s, msg) in enumerate(zip(clients, messages)):
            self.assertEqual(recv_exact(s, len(msg)), msg, f"client {i} got a wrong echo")
        stats = proxy.stats()
        self.assertEqual(stats["active"], n)
        # peak_active is the busiest worker's peak; the workers' peaks together cover every client.
        workers = harness.worker_count()
        peaks = ([stats[f"worker{i}.peak_active"] for i in range(workers)] if workers > 1
                 else [stats["peak_active"]])
        self.assertEqual(stats["peak_active"], max(peaks))
        self.assertGreaterEqual(sum(peaks), n)
        for s in clients:
            s.close()
        stats = proxy.wait_stats(lambda st: st["active"] == 0, timeout=10)
        self.assertEqual(stats["active"], 0)
        self.assertEqual(stats["accepted"], n)

    def test_a_backlog_queued_while_the_proxy_sleeps_is_accepted_whole(self):
        # Every client is queued in the kernel before the proxy runs again, so one report of the
        # listener stands for all of them: a listener that took one connection per report and
        # were only told of new arrivals (edge-triggered, decision 0019) would leave the rest
        # in the backlog for good.
        n = 300
        backend = self.start_server()
        proxy = self.start_proxy(backend.port, extra=["--workers", "1"])
        os.kill(proxy.pid, signal.SIGSTOP)
        try:
            clients = [self.connect(proxy.port) for _ in range(n)]
            messages = [f"queued {i} {os.urandom(4).hex()}\n".encode() for i in range(n)]
            for sock, msg in zip(clients, messages):
                sock.sendall(msg)
        finally:
            os.kill(proxy.pid, signal.SIGCONT)
        for i, (sock, msg) in enumerate(zip(clients, messages)):
            self.assertEqual(recv_exact(sock, len(msg)), msg, f"queued client {i} not served")
        for sock in clients:
            sock.close()
        stats = proxy.wait_stats(lambda st: st["active"] == 0, timeout=10)
        self.assertEqual(stats["accepted"], n)
        self.assertEqual(stats["accept_errors"], 0)
        self.assertNotBusy(proxy, what="the backlog is empty")

    def test_5000_sequential_connections_leak_nothing(self):
        backend = self.start_server()
        proxy = self.start_proxy(backend.port)
        base_fds = proxy.fd_count()
        for i in range(5000):
            msg = f"seq {i}\n".encode()
            s = harness.connect(proxy.port)
            try:
                s.sendall(msg)
                self.assertEqual(recv_exact(s, len(msg)), msg, f"connection {i}: bad echo")
            finally:
                s.close()
        stats = proxy.wait_stats(lambda st: st["active"] == 0, timeout=10)
        self.assertEqual(stats["active"], 0)
        self.assertEqual(stats["accepted"], 5000)
        harness.wait_until(lambda: proxy.fd_count() <= base_fds, 5)
        self.assertLessEqual(proxy.fd_count(), base_fds,
                             f"proxy holds {proxy.fd_count()} fds after 5000 connections, "
                             f"{base_fds} before")


class SlabFull(ProxyTestCase):

    def test_third_client_waits_until_a_slot_frees(self):
        backend = self.start_server()
        # One worker: with several, each has its own share of the cap (see test_workers).
        proxy = self.start_proxy(backend.port, extra=["--max-connections", "2", "--workers", "1"])
        a = self.connect(proxy.port)
        b = self.connect(proxy.port)
        for s, msg in ((a, b"a\n"), (b, b"b\n")):
            s.sendall(msg)
            self.assertEqual(recv_exact(s, 2), msg)
        c = self.connect(proxy.port)  # succeeds: the kernel queues it
        c.sendall(b"c\n")
        c.settimeout(1.0)
        with self.assertRaises((socket.timeout, TimeoutError),
                               msg="third client served beyond --max-connections 2"):
            c.recv(16)
        self.assertNotBusy(proxy, what="a client waits for a free slot")
        a.close()
        c.settimeout(10)
        self.assertEqual(recv_exact(c, 2), b"c\n", "third client not served after a slot freed")
        b.sendall(b"B\n")
        self.assertEqual(recv_exact(b, 2), b"B\n")
        self.assertLessEqual(proxy.stats()["peak_active"], 2)


class BufferPool(ProxyTestCase):

    def test_exhausted_buffer_pool_delays_but_delivers_everything(self):
        # 6 connections, each with a stalled reader holding data in the proxy, share 2 buffers:
        # connections must wait for buffers (pool_waits), then all finish intact. Each sends
        # more than the kernel's socket buffers between proxy and client can absorb (tcp_wmem
        # and tcp_rmem autotune to a few MiB), so blocks stay held while the client stalls.
        n, size = 6, 16 * harness.MiB
        block = os.urandom(harness.MiB)
        backend = self.start_server(harness.make_source_handler(size, block))
        # One worker: 2 buffers cannot be shared by several. No splice: pipes would carry the
        # bulk bytes past the buffer pool this test exhausts.
        proxy = self.start_proxy(backend.port, extra=["--max-connections", "8",
                                                      "--buffers", "2", "--workers", "1",
                                                      "--splice", "never"])
        clients = [self.connect(proxy.port) for _ in range(n)]
        time.sleep(0.7)
        results = {}

        def read_all(i):
            data, outcome = harness.recv_until_close(clients[i])
            results[i] = (outcome, len(data), data == block * (size // len(block)))

        threads = [self.start_thread(read_all, i)[0] for i in range(n)]
        for t in threads:
            t.join(timeout=30)
        for i in range(n):
            self.assertEqual(results.get(i), ("eof", size, True), f"client {i}")
        stats = proxy.stats()
        self.assertGreaterEqual(stats["pool_waits"], 1)
        self.assertLessEqual(stats["pool_high_water"], 2)


def _limit_nofile_40():
    resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))


class LowFdLimit(ProxyTestCase):

    def test_low_nofile_limit_lowers_cap_and_stays_idle_when_full(self):
        backend = self.start_server()
        proxy = self.start_proxy(backend.port, extra=["--max-connections", "1000"],
                                 preexec_fn=_limit_nofile_40)
        startup = [ln for ln in proxy.stderr_snapshot() if "listening on" not in ln]
        warnings = [ln for ln in startup
                    if "limit" in ln.lower() or "nofile" in ln.lower()]
        self.assertEqual(len(warnings), 1, f"want one warning line about the fd limit, "
                                           f"stderr:\n{proxy.stderr_text()}")
        self.assertEqual(echo_roundtrip(proxy.port, b"low\n"), b"low\n")

        clients = [self.connect(proxy.port) for _ in range(40)]
        time.sleep(0.5)
        self.assertTrue(proxy.alive(), f"proxy died: {proxy.stderr_text()}")
        self.assertNotBusy(proxy, what="40 idle clients are connected under RLIMIT_NOFILE 40")
        for s in clients:
            s.close()

        def served():
            try:
                return echo_roundtrip(proxy.port, b"again\n", timeout=3) == b"again\n"
            except OSError:
                return False

        self.assertTrue(harness.wait_until(served, 15, interval=0.2),
                        "new clients not served after the 40 clients closed")
        self.assertTrue(proxy.alive())
        stats = proxy.wait_stats(lambda st: st["active"] == 0, timeout=10)
        self.assertEqual(stats["active"], 0)



def fds_of(pid):
    return sorted(int(n) for n in os.listdir(f"/proc/{pid}/fd"))


class DescriptorsAtTheUpstreamSocket(ProxyTestCase):
    """Out of descriptors at the upstream socket() as at accept: the client waits, it is not
    reset (issue 9, item 8)."""

    def test_out_of_descriptors_at_the_upstream_socket_keeps_the_client(self):
        backend = self.start_server()
        proxy = self.start_proxy(backend.port, extra=["--workers", "1"])
        a = self.connect(proxy.port)
        a.sendall(b"a\n")
        self.assertEqual(recv_exact(a, 2), b"a\n")
        # The smallest limit that leaves exactly one descriptor free: the next client's accept
        # takes it, and the socket() for its backend then fails with EMFILE.
        fds = fds_of(proxy.pid)
        limit = next(n for n in range(1, fds[-1] + 3) if n - sum(1 for f in fds if f < n) == 1)
        old = resource.prlimit(proxy.pid, resource.RLIMIT_NOFILE)
        resource.prlimit(proxy.pid, resource.RLIMIT_NOFILE, (limit, old[1]))
        self.addCleanup(resource.prlimit, proxy.pid, resource.RLIMIT_NOFILE, old)
        b = self.connect(proxy.port)
        b.sendall(b"b\n")
        b.settimeout(0.7)
        try:
            got = b.recv(16)
            self.fail(f"the waiting client got {got!r}: it was reset or closed")
        except (socket.timeout, TimeoutError):
            pass
        except ConnectionResetError:
            self.fail("the client was reset for want of a descriptor at the upstream socket()")
        self.assertNotBusy(proxy, seconds=1.0, what="a client waits for a descriptor")
        a.close()  # two descriptors come back
        b.settimeout(10)
        self.assertEqual(recv_exact(b, 2), b"b\n", "the waiting client was not served")
        resource.prlimit(proxy.pid, resource.RLIMIT_NOFILE, old)
        self.assertEqual(harness.echo_roundtrip(proxy.port, b"c\n"), b"c\n")
        stats = proxy.stats()
        self.assertGreaterEqual(stats["socket_waits"], 1)


if __name__ == "__main__":
    unittest.main()

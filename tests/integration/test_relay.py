"""Relaying bytes: echo, large duplex transfer, tiny writes, a slow reader (backpressure)."""

import hashlib
import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import MiB, ProxyTestCase, recv_exact, recv_until_close  # noqa: E402


class Relay(ProxyTestCase):

    def test_echo_roundtrip(self):
        backend = self.start_server()
        proxy = self.start_proxy(backend.port)
        s = self.connect(proxy.port)
        for i in range(5):
            msg = f"hello {i} through edgeproxy\n".encode()
            s.sendall(msg)
            self.assertEqual(recv_exact(s, len(msg)), msg)
        s.shutdown(socket.SHUT_WR)
        data, outcome = recv_until_close(s)
        self.assertEqual((data, outcome), (b"", "eof"))
        stats = proxy.wait_stats(lambda st: st["active"] == 0)
        self.assertEqual(stats["active"], 0)
        self.assertGreaterEqual(stats["accepted"], 1)

    def test_64mib_both_directions_at_once_intact(self):
        size = 64 * MiB
        down = os.urandom(size)  # backend -> client
        up = os.urandom(size)  # client -> backend
        backend = self.start_server(harness.make_duplex_handler(down))
        proxy = self.start_proxy(backend.port)
        s = self.connect(proxy.port)

        def send_all():
            view = memoryview(up)
            for off in range(0, size, MiB):
                s.sendall(view[off:off + MiB])
            s.shutdown(socket.SHUT_WR)

        sender, box = self.start_thread(send_all)
        h = hashlib.sha256()
        received = 0
        buf = bytearray(MiB)
        for _ in range(size + 1):
            n = s.recv_into(buf)
            if n == 0:
                break
            h.update(memoryview(buf)[:n])
            received += n
        sender.join(timeout=60)
        self.assertNotIn("error", box, f"client send failed: {box.get('error')!r}")
        self.assertEqual(received, size, "client received a wrong number of bytes")
        self.assertEqual(h.hexdigest(), hashlib.sha256(down).hexdigest(),
                         "backend -> client data corrupted")
        results = backend.wait_results(1, timeout=30)
        self.assertEqual(len(results), 1, "backend handler did not finish")
        r = results[0]
        self.assertIsInstance(r, dict, f"backend failed: {r!r}")
        self.assertEqual(r["outcome"], "eof")
        self.assertEqual(r["send"], "ok")
        self.assertEqual(r["bytes"], size, "backend received a wrong number of bytes")
        self.assertEqual(r["sha256"], hashlib.sha256(up).hexdigest(),
                         "client -> backend data corrupted")
        stats = proxy.wait_stats(lambda st: st["active"] == 0)
        self.assertEqual(stats["bytes_c2u"], size)
        self.assertEqual(stats["bytes_u2c"], size)

    def test_tiny_one_byte_writes_arrive_intact(self):
        backend = self.start_server(harness.sink_handler)
        proxy = self.start_proxy(backend.port, extra=["--no-delay"])
        s = self.connect(proxy.port, nodelay=True)
        payload = bytes((i * 7 + 3) % 256 for i in range(2000))
        for i in range(len(payload)):
            s.send(payload[i:i + 1])
        s.shutdown(socket.SHUT_WR)
        results = backend.wait_results(1, timeout=20)
        self.assertEqual(len(results), 1, "backend did not see EOF")
        self.assertEqual(results[0]["outcome"], "eof")
        self.assertEqual(results[0]["bytes"], len(payload))
        self.assertEqual(results[0]["sha256"], hashlib.sha256(payload).hexdigest())

    def test_tiny_one_byte_writes_echoed_intact(self):
        backend = self.start_server()
        proxy = self.start_proxy(backend.port)
        s = self.connect(proxy.port, nodelay=True)
        payload = bytes((i * 13 + 1) % 256 for i in range(2000))
        received = bytearray()

        def reader():
            for _ in range(len(payload) + 1):
                if len(received) >= len(payload):
                    break
                data = s.recv(65536)
                if not data:
                    break
                received.extend(data)

        t, box = self.start_thread(reader)
        for i in range(len(payload)):
            s.send(payload[i:i + 1])
        t.join(timeout=20)
        self.assertNotIn("error", box, f"reader failed: {box.get('error')!r}")
        self.assertEqual(bytes(received), payload)

    def test_slow_reader_memory_stays_bounded(self):
        total = 256 * MiB
        backend = self.start_server(harness.make_source_handler(total))
        proxy = self.start_proxy(backend.port)
        baseline_kib = proxy.rss_kib()
        # Budget: 32 MiB absolute; an AddressSanitizer build has a large fixed overhead, so
        # there the budget is 32 MiB above the RSS at start.
        limit_kib = 32 * 1024 + (baseline_kib if harness.binary_is_sanitized() else 0)
        s = self.connect(proxy.port)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)

        # Phase 1: read nothing for 2 s while the backend pushes as fast as it can.
        cpu_before = proxy.cpu_seconds()
        peak = 0
        for _ in range(20):
            time.sleep(0.1)
            peak = max(peak, proxy.rss_kib())
        cpu_used = proxy.cpu_seconds() - cpu_before
        self.assertLess(peak, limit_kib, f"proxy VmRSS {peak} KiB while the client is not "
                                         f"reading (limit {limit_kib} KiB)")
        self.assertLess(cpu_used, 0.3, f"proxy used {cpu_used:.2f}s CPU in 2 s while blocked "
                                       f"on a slow reader (busy loop?)")

        # Phase 2: read everything at full speed, sampling RSS meanwhile.
        stop = threading.Event()
        samples = []

        def sampler():
            for _ in range(100000):
                if stop.is_set():
                    break
                try:
                    samples.append(proxy.rss_kib())
                except OSError:
                    break
                time.sleep(0.05)

        t, _ = self.start_thread(sampler)
        received = 0
        buf = bytearray(MiB)
        s.settimeout(30)
        try:
            for _ in range(total + 1):
                n = s.recv_into(buf)
                if n == 0:
                    break
                received += n
        finally:
            stop.set()
            t.join(timeout=5)
        self.assertEqual(received, total, "client received a wrong number of bytes")
        peak = max(samples + [proxy.rss_kib()])
        self.assertLess(peak, limit_kib, f"proxy VmRSS {peak} KiB while relaying 256 MiB "
                                         f"(limit {limit_kib} KiB)")
        s.close()
        stats = proxy.wait_stats(lambda st: st["active"] == 0)
        self.assertEqual(stats["bytes_u2c"], total)
        self.assertGreaterEqual(stats["backpressure_pauses"], 1)


if __name__ == "__main__":
    unittest.main()

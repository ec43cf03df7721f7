"""Idle timeout."""

import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ProxyTestCase, recv_exact  # noqa: E402


class IdleTimeout(ProxyTestCase):

    def test_idle_connection_is_closed(self):
        backend = self.start_server()
        proxy = self.start_proxy(backend.port, extra=["--idle-timeout", "1"])
        s = self.connect(proxy.port)
        s.sendall(b"one message, then silence")
        recv_exact(s, len(b"one message, then silence"))
        outcome, elapsed = self.assertClosedByProxy(s, within=6)
        self.assertLess(elapsed, 3.0, f"idle connection closed only after {elapsed:.2f}s "
                                      f"with --idle-timeout 1")
        stats = proxy.wait_stats(lambda st: st["active"] == 0)
        self.assertGreaterEqual(stats["idle_timeouts"], 1)
        self.assertEqual(stats["active"], 0)
        backend_results = backend.wait_results(1, timeout=5)
        self.assertEqual(len(backend_results), 1, "backend side not closed on idle timeout")

    def test_idle_timeout_in_mid_stream_resets_instead_of_a_fin(self):
        # A FIN would say the stream ended; it was cut: both sides get a reset (decision 0004).
        def handler(conn, server):
            conn.sendall(b"x" * 1000)
            try:
                data = conn.recv(1)
            except ConnectionResetError:
                return {"outcome": "reset"}
            return {"outcome": "eof" if not data else "data"}

        backend = self.start_server(handler)
        proxy = self.start_proxy(backend.port, extra=["--idle-timeout", "1"])
        s = self.connect(proxy.port)
        self.assertEqual(recv_exact(s, 1000), b"x" * 1000)
        outcome, elapsed = self.assertClosedByProxy(s, within=6)
        self.assertEqual(outcome, "reset", "an idle cut in mid-stream looked like a clean end")
        self.assertEqual(backend.wait_results(1, timeout=5)[0]["outcome"], "reset")
        stats = proxy.wait_stats(lambda st: st["active"] == 0)
        self.assertGreaterEqual(stats["idle_timeouts"], 1)

    def test_a_slow_reader_draining_the_send_queue_is_not_idle(self):
        # The server wrote everything at once; the proxy handed it all to the kernel, and the
        # client takes it slowly: the send queue shrinking is activity (found by the soak).
        size = 3 * 1024 * 1024

        def handler(conn, server):
            conn.sendall(b"y" * size)
            conn.recv(1)
            return {}

        backend = self.start_server(handler)
        proxy = self.start_proxy(backend.port, extra=["--idle-timeout", "1"])
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        s.connect(("127.0.0.1", proxy.port))
        self.addCleanup(s.close)
        got = 0
        deadline = time.monotonic() + 60
        while got < size and time.monotonic() < deadline:
            data = s.recv(8192)  # about 800 KiB/s: the last bytes leave the proxy seconds later
            if not data:
                break
            got += len(data)
            time.sleep(0.01)
        self.assertEqual(got, size, "a client still reading was cut as idle")

    def test_trickling_connection_is_not_closed(self):
        backend = self.start_server()
        proxy = self.start_proxy(backend.port, extra=["--idle-timeout", "1"])
        s = self.connect(proxy.port)
        deadline = time.monotonic() + 3.0
        for i in range(20):
            if time.monotonic() >= deadline:
                break
            msg = bytes([65 + i % 26])
            s.sendall(msg)
            self.assertEqual(recv_exact(s, 1), msg, f"trickle byte {i} not echoed")
            time.sleep(0.3)
        s.sendall(b"still here")
        self.assertEqual(recv_exact(s, len(b"still here")), b"still here")
        stats = proxy.stats()
        self.assertEqual(stats["idle_timeouts"], 0, "a connection trickling every 300 ms was "
                                                    "closed by the 1 s idle timeout")
        self.assertEqual(stats["active"], 1)

    def test_idle_timeout_zero_never_closes(self):
        backend = self.start_server()
        proxy = self.start_proxy(backend.port, extra=["--idle-timeout", "0"])
        s = self.connect(proxy.port)
        s.sendall(b"a")
        self.assertEqual(recv_exact(s, 1), b"a")
        time.sleep(1.5)
        s.sendall(b"b")
        self.assertEqual(recv_exact(s, 1), b"b", "connection closed with --idle-timeout 0")
        self.assertEqual(proxy.stats()["idle_timeouts"], 0)


if __name__ == "__main__":
    unittest.main()

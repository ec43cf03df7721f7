"""The backend connect: refused, hanging (connect timeout), slow, and clients that do not wait."""

import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ProxyTestCase, echo_roundtrip, free_port, recv_exact  # noqa: E402


class BackendDown(ProxyTestCase):

    def connect_and_wait_closed(self, port, within):
        """Connect, send, and wait for the proxy to close the connection; returns the seconds
        from connect to close. The proxy may reset the client so early that connect() or send()
        already fails with ECONNRESET/EPIPE: that counts as closed."""
        start = time.monotonic()
        try:
            s = self.connect(port)
            s.sendall(b"anyone there?")
            self.assertClosedByProxy(s, within=within)
        except (ConnectionResetError, BrokenPipeError):
            pass
        return time.monotonic() - start

    def test_backend_down_closes_client_promptly(self):
        dead_port = free_port()
        proxy = self.start_proxy(dead_port)
        for i in range(3):
            elapsed = self.connect_and_wait_closed(proxy.port, within=5)
            self.assertLess(elapsed, 2.0, f"client {i} closed only after {elapsed:.2f}s")
        stats = proxy.wait_stats(lambda st: st["active"] == 0)
        self.assertGreaterEqual(stats["connects_failed"], 3)
        self.assertEqual(stats["active"], 0)

    def test_backend_down_then_up_proxy_keeps_serving(self):
        dead_port = free_port()
        proxy = self.start_proxy(dead_port)
        self.connect_and_wait_closed(proxy.port, within=5)
        self.start_server(port=dead_port)  # the backend comes up on the same port
        self.assertEqual(echo_roundtrip(proxy.port, b"back again\n"), b"back again\n")
        self.assertGreaterEqual(proxy.stats()["connects_failed"], 1)


class ConnectTimeout(ProxyTestCase):

    def test_connect_timeout_closes_client(self):
        blackhole = self.start_blackhole()
        proxy = self.start_proxy(blackhole.port, extra=["--connect-timeout", "300"])
        s = self.connect(proxy.port)
        s.sendall(b"hello?")
        outcome, elapsed = self.assertClosedByProxy(s, within=5)
        self.assertLess(elapsed, 2.0, f"client closed only after {elapsed:.2f}s with "
                                      f"--connect-timeout 300")
        stats = proxy.wait_stats(lambda st: st["active"] == 0)
        self.assertGreaterEqual(stats["connect_timeouts"], 1)
        self.assertEqual(stats["active"], 0)

    def test_no_busy_loop_while_backend_connect_pending(self):
        blackhole = self.start_blackhole()
        proxy = self.start_proxy(blackhole.port, extra=["--connect-timeout", "10000"])
        s = self.connect(proxy.port)
        s.sendall(b"waiting")
        time.sleep(0.2)
        self.assertNotBusy(proxy, what="a backend connect is pending")
        self.assertTrue(proxy.alive())


class EarlyData(ProxyTestCase):

    def test_data_sent_before_backend_accepts_is_delivered(self):
        # The backend accepts 0.5 s late (the kernel completes the handshake meanwhile).
        backend = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(backend.close)
        backend.bind(("127.0.0.1", 0))
        backend.listen(16)
        backend.settimeout(10)
        proxy = self.start_proxy(backend.getsockname()[1])
        s = self.connect(proxy.port)
        payload = os.urandom(20000)
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        time.sleep(0.5)
        conn, _ = backend.accept()
        self.addCleanup(conn.close)
        conn.settimeout(10)
        data, outcome = harness.recv_until_close(conn)
        self.assertEqual(outcome, "eof")
        self.assertEqual(data, payload, "data sent before the backend accepted was lost")

    def test_data_sent_while_backend_connect_pending_is_delivered(self):
        # The backend's SYN queue drops SYNs until released, so the proxy's connect completes
        # only on a SYN retransmission (~1 s later); the client's data sent right after its own
        # connect must still arrive, in order, followed by the echo.
        blackhole = self.start_blackhole()
        proxy = self.start_proxy(blackhole.port, extra=["--connect-timeout", "8000"])
        s = self.connect(proxy.port)
        payload = os.urandom(30000)
        s.sendall(payload)
        time.sleep(0.3)
        blackhole.release()
        self.assertEqual(recv_exact(s, len(payload)), payload,
                         "data sent during the backend connect lost or corrupted")
        stats = proxy.stats()
        self.assertEqual(stats["connect_timeouts"], 0)


class ClientLeavesDuringConnect(ProxyTestCase):

    def test_client_leaving_during_connect_leaks_nothing(self):
        blackhole = self.start_blackhole()
        proxy = self.start_proxy(blackhole.port, extra=["--connect-timeout", "1500"])
        base_fds = proxy.fd_count()
        for i in range(10):
            s = harness.connect(proxy.port)
            if i % 2:
                harness.reset_close(s)
            else:
                s.sendall(b"bye")
                s.close()
        # Either the proxy notices the client leaving, or the connect times out (1.5 s):
        # within 8 s everything must be released.
        stats = proxy.wait_stats(lambda st: st["active"] == 0 and st["accepted"] >= 10,
                                 timeout=8)
        self.assertEqual(stats["accepted"], 10)
        self.assertEqual(stats["active"], 0, "connections leaked after clients left")
        harness.wait_until(lambda: proxy.fd_count() <= base_fds, 5)
        self.assertLessEqual(proxy.fd_count(), base_fds,
                             f"fd count {proxy.fd_count()} > baseline {base_fds}")
        self.assertTrue(proxy.alive())


if __name__ == "__main__":
    unittest.main()

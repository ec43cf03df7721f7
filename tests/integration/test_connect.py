"""The backend connect: refused, hanging (connect timeout), slow, clients that do not wait, and
a backend name with several addresses (each tried in order, the one that worked remembered)."""

import ctypes
import os
import socket
import subprocess
import sys
import tempfile
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



MULTI_NAME = "edgeproxy-multi.test"


def private_hosts(path):
    """A preexec_fn: the child gets a mount namespace of its own where /etc/hosts is `path`
    (the rest of the system is untouched). Needs root (CAP_SYS_ADMIN)."""

    def run():
        libc = ctypes.CDLL(None, use_errno=True)
        clone_newns, ms_rec, ms_private, ms_bind = 0x00020000, 0x4000, 0x40000, 0x1000
        if libc.unshare(clone_newns) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
        if libc.mount(None, b"/", None, ms_rec | ms_private, None) != 0:
            raise OSError(ctypes.get_errno(), "mount --make-rprivate /")
        if libc.mount(path.encode(), b"/etc/hosts", None, ms_bind, None) != 0:
            raise OSError(ctypes.get_errno(), "mount --bind /etc/hosts")

    return run


class BackendAddresses(ProxyTestCase):
    """A backend name that resolves to several addresses (issue 9, item 7)."""

    def hosts(self, text):
        """A hosts file, and a check that a child can see it as /etc/hosts here."""
        if not harness.ipv6_available():
            self.skipTest("::1 cannot be bound")
        f = tempfile.NamedTemporaryFile("w", prefix="edgeproxy-hosts-", delete=False)
        f.write(text)
        f.close()
        self.addCleanup(os.unlink, f.name)
        # The order the resolver gives there, asked as the proxy asks (AI_ADDRCONFIG).
        probe = ("import socket; print([a[4][0] for a in socket.getaddrinfo("
                 f"'{MULTI_NAME}', 1, 0, socket.SOCK_STREAM, 0, socket.AI_ADDRCONFIG)])")
        try:
            out = subprocess.run([sys.executable, "-c", probe], preexec_fn=private_hosts(f.name),
                                 check=True, timeout=10, capture_output=True, text=True).stdout
        except (subprocess.SubprocessError, OSError) as e:
            self.skipTest(f"no private mount namespace for /etc/hosts here: {e}")
        if out.strip() != "['::1', '127.0.0.1']":
            self.skipTest(f"the resolver orders {MULTI_NAME} as {out.strip()}, not ::1 first")
        return f.name

    def start_named_proxy(self, hosts, port, extra=()):
        return self.start_proxy(port, backend=MULTI_NAME, preexec_fn=private_hosts(hosts),
                                extra=["--workers", "1"] + list(extra))

    def test_each_resolved_address_is_tried_in_order_and_the_good_one_remembered(self):
        hosts = self.hosts(f"::1 {MULTI_NAME}\n127.0.0.1 {MULTI_NAME}\n")
        port = harness.free_port_both()
        self.start_server(port=port)  # on 127.0.0.1 only: [::1] refuses
        proxy = self.start_named_proxy(hosts, port)
        for i in range(5):
            msg = f"try {i}\n".encode()
            self.assertEqual(echo_roundtrip(proxy.port, msg), msg, f"client {i} not served")
        stats = proxy.wait_stats(lambda st: st["active"] == 0)
        self.assertEqual(stats["accepted"], 5)
        self.assertEqual(stats["connects_failed"], 1, "the working address was not remembered")
        self.assertEqual(stats["connect_retries"], 1)

    def test_a_connect_timeout_tries_the_next_address(self):
        hosts = self.hosts(f"::1 {MULTI_NAME}\n127.0.0.1 {MULTI_NAME}\n")
        port = harness.free_port_both()
        # [::1]:port drops SYNs (a full accept queue), 127.0.0.1:port serves.
        hole = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        self.addCleanup(hole.close)
        hole.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        hole.bind(("::1", port))
        hole.listen(0)
        for _ in range(16):
            f = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            self.addCleanup(f.close)
            f.settimeout(0.3)
            try:
                f.connect(("::1", port))
            except (socket.timeout, TimeoutError, BlockingIOError):
                break
        else:
            self.skipTest("could not fill the accept queue of [::1]")
        self.start_server(port=port)
        proxy = self.start_named_proxy(hosts, port, extra=["--connect-timeout", "300"])
        self.assertEqual(echo_roundtrip(proxy.port, b"slow start\n"), b"slow start\n")
        self.assertEqual(echo_roundtrip(proxy.port, b"then fast\n"), b"then fast\n")
        stats = proxy.wait_stats(lambda st: st["active"] == 0)
        self.assertEqual(stats["connect_timeouts"], 1)
        self.assertEqual(stats["connect_retries"], 1)

    def test_a_connect_failure_is_logged_with_its_reason(self):
        dead_port = free_port()
        proxy = self.start_proxy(dead_port, extra=["-v"])
        try:
            self.assertClosedByProxy(self.connect(proxy.port), within=5)
        except (ConnectionResetError, BrokenPipeError):
            pass  # reset before connect() or the first read returned
        self.assertTrue(proxy.wait_for_stderr("Connection refused", 5),
                        f"no reason in the log:\n{proxy.stderr_text()}")


if __name__ == "__main__":
    unittest.main()

"""Address families and host names: IPv6 on either side, `localhost`."""

import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ProxyTestCase, echo_roundtrip, recv_exact  # noqa: E402

HAVE_IPV6 = harness.ipv6_available()


@unittest.skipUnless(HAVE_IPV6, "::1 cannot be bound")
class IPv6(ProxyTestCase):

    def test_listen_ipv6_backend_ipv4(self):
        backend = self.start_server(host="127.0.0.1")
        proxy = self.start_proxy(backend.port, listen="::1", backend="127.0.0.1",
                                 port=harness.free_port("::1"))
        self.assertEqual(echo_roundtrip(proxy.port, b"six to four\n", host="::1"),
                         b"six to four\n")
        with self.assertRaises(OSError, msg="listening on ::1 must not accept on 127.0.0.1"):
            echo_roundtrip(proxy.port, b"x", host="127.0.0.1", timeout=2)

    def test_listen_ipv4_backend_ipv6(self):
        backend = self.start_server(host="::1")
        proxy = self.start_proxy(backend.port, listen="127.0.0.1", backend="::1")
        s = self.connect(proxy.port)
        payload = os.urandom(200 * 1024)
        s.sendall(payload)
        self.assertEqual(recv_exact(s, len(payload)), payload)
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(harness.recv_until_close(s), (b"", "eof"))

    def test_ipv6_both_sides(self):
        backend = self.start_server(host="::1")
        proxy = self.start_proxy(backend.port, listen="::1", backend="::1",
                                 port=harness.free_port("::1"))
        self.assertEqual(echo_roundtrip(proxy.port, b"six\n", host="::1"), b"six\n")


class HostNames(ProxyTestCase):

    def backend_on_localhost(self):
        """Echo servers on every loopback address `localhost` may resolve to, on one port."""
        if HAVE_IPV6:
            port = harness.free_port_both()
            first = self.start_server(host="127.0.0.1", port=port)
            self.start_server(host="::1", port=port)
            return first
        return self.start_server(host="127.0.0.1")

    def test_backend_given_as_localhost(self):
        backend = self.backend_on_localhost()
        proxy = self.start_proxy(backend.port, backend="localhost")
        self.assertEqual(echo_roundtrip(proxy.port, b"by name\n"), b"by name\n")

    def test_listen_given_as_localhost(self):
        backend = self.start_server()
        port = harness.free_port_both() if HAVE_IPV6 else harness.free_port()
        proxy = self.start_proxy(backend.port, listen="localhost", port=port)
        s = socket.create_connection(("localhost", proxy.port), timeout=harness.SOCKET_TIMEOUT)
        self.addCleanup(s.close)
        s.settimeout(harness.SOCKET_TIMEOUT)
        s.sendall(b"listen by name\n")
        self.assertEqual(recv_exact(s, 15), b"listen by name\n")


if __name__ == "__main__":
    unittest.main()

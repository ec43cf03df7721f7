"""tcp-smart-accept, tcp-smart-connect and defer-accept (decision 0017): the socket options the
proxy leaves on its listening sockets, read from the kernel (the listener is borrowed from the
proxy with pidfd_getfd), across a reload; and what a server sees at accept: with
tcp-smart-connect the handshake's last ACK rides with the client's first bytes (the server's
socket counts one segment fewer), except when the client has sent nothing (a server that speaks
first connects as before)."""

import ctypes
import errno
import os
import socket
import struct
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ProxyTestCase, recv_exact  # noqa: E402

SYS_PIDFD_GETFD = 438
TCPI_RTT = 68  # struct tcp_info: tcpi_rtt (µs), first measured from the SYN-ACK to its ACK
TCPI_SEGS_IN = 140  # struct tcp_info: tcpi_segs_out at 136, tcpi_segs_in at 140 (Linux 4.2+)


def listening_inodes(port):
    """Socket inodes of the TCP sockets listening on 127.0.0.1:port."""
    inodes = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and local == f"0100007F:{port:04X}":
                inodes.add(inode)
    return inodes


def borrow_listeners(pid, port):
    """Duplicates of the proxy's listening sockets on `port` (one per worker, or one shared)."""
    inodes = listening_inodes(port)
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    socks = []
    try:
        fd_dir = f"/proc/{pid}/fd"
        for name in os.listdir(fd_dir):
            try:
                target = os.readlink(os.path.join(fd_dir, name))
            except OSError:
                continue
            if not (target.startswith("socket:[") and target[8:-1] in inodes):
                continue
            fd = libc.syscall(SYS_PIDFD_GETFD, pidfd, int(name), 0)
            if fd < 0:
                err = ctypes.get_errno()
                if err in (errno.EPERM, errno.ENOSYS):
                    raise unittest.SkipTest(f"pidfd_getfd refused here ({os.strerror(err)}): "
                                            "a seccomp profile without CAP_SYS_PTRACE, Yama "
                                            "ptrace_scope >= 2, or a kernel before 5.6")
                raise OSError(err, "pidfd_getfd")
            socks.append(socket.socket(fileno=fd))
    finally:
        os.close(pidfd)
    return socks


def segments_in(sock):
    return struct.unpack_from("I", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256),
                              TCPI_SEGS_IN)[0]


def counting_echo(conn, server):
    """Reads the first bytes, notes how many segments the socket had received by then (the SYN,
    the handshake's last ACK unless it rode with the bytes, the bytes), echoes them."""
    data = conn.recv(65536)
    if not data:
        return None
    segments = segments_in(conn)
    conn.sendall(data)
    return segments


def banner_first(conn, server):
    """Speaks first; returns the handshake's round trip as the kernel measured it (from its
    SYN-ACK to the ACK) and what the client then sent."""
    rtt_us = struct.unpack_from("I", conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256),
                                TCPI_RTT)[0]
    conn.sendall(b"220 ready\r\n")
    return rtt_us, conn.recv(64)


class SmartAckTestCase(ProxyTestCase):

    def quick_ack_and_defer(self, proxy, port):
        socks = borrow_listeners(proxy.pid, port)
        self.assertTrue(socks, "no listening socket found")
        try:
            return {(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK),
                     s.getsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT)) for s in socks}
        finally:
            for s in socks:
                s.close()

    def first_segments(self, proxy, server, n=5):
        """n connections through the proxy, each sending its bytes at once; the segment counts
        the server saw."""
        before = len(server.results)
        for i in range(n):
            with self.connect(proxy.port) as s:
                s.sendall(b"hello %d\n" % i)
                self.assertEqual(recv_exact(s, 8), b"hello %d\n" % i)
        results = server.wait_results(before + n)[before:]
        self.assertEqual(len(results), n, results)
        return results


class ListenerOptions(SmartAckTestCase):

    def config(self, tcp_lines=(), http_lines=()):
        lines = ["backend app {", "    server a 127.0.0.1:@BACKEND@", "}",
                 "listener raw {", "    bind 127.0.0.1:@PORT@", "    backend app"]
        lines += [f"    {line}" for line in tcp_lines]
        lines += ["}", "listener web {", "    bind 127.0.0.1:@PORT2@", "    mode http",
                  "    backend app"]
        lines += [f"    {line}" for line in http_lines]
        return "\n".join(lines + ["}"]) + "\n"

    def test_defaults_follow_the_mode_and_a_reload_changes_them_both_ways(self):
        backend = self.start_server()
        proxy = self.start_proxy_config(self.config(), values={"BACKEND": backend.port})
        raw, web = proxy.values["PORT"], proxy.values["PORT2"]
        # tcp: quick ACKs, no deferred accept; http: smart accept (HAProxy's default).
        self.assertEqual(self.quick_ack_and_defer(proxy, raw), {(1, 0)})
        self.assertEqual(self.quick_ack_and_defer(proxy, web), {(0, 0)})
        self.rewrite_config(proxy, self.config(tcp_lines=["tcp-smart-accept on",
                                                          "defer-accept 1s"],
                                               http_lines=["tcp-smart-accept off"]))
        self.reload(proxy)
        raw_state = self.quick_ack_and_defer(proxy, raw)
        self.assertEqual({q for q, _ in raw_state}, {0})
        self.assertTrue(all(d > 0 for _, d in raw_state), raw_state)
        self.assertEqual(self.quick_ack_and_defer(proxy, web), {(1, 0)})
        self.rewrite_config(proxy, self.config())
        self.reload(proxy)
        self.assertEqual(self.quick_ack_and_defer(proxy, raw), {(1, 0)})
        self.assertEqual(self.quick_ack_and_defer(proxy, web), {(0, 0)})
        # The relay is unchanged by any of it.
        self.assertEqual(harness.echo_roundtrip(raw), b"ping\n")

    def test_command_line_flags(self):
        backend = self.start_server()
        proxy = self.start_proxy(backend.port, extra=["--tcp-smart-accept", "--defer-accept",
                                                      "2"])
        state = self.quick_ack_and_defer(proxy, proxy.port)
        self.assertEqual({q for q, _ in state}, {0})
        self.assertTrue(all(d > 0 for _, d in state), state)
        self.assertEqual(harness.echo_roundtrip(proxy.port), b"ping\n")

    def test_bad_values_are_refused(self):
        to = ["-b", "127.0.0.1", "-P", "9"]
        harness.assert_refused(self, to + ["--defer-accept", "1500ms"], ["--defer-accept", "1500ms"])
        harness.assert_refused(self, to + ["--defer-accept", "2h"], ["--defer-accept", "2h"])
        harness.assert_refused(self, to + ["--tcp-smart-connect=maybe"], ["tcp-smart-connect"])


class SmartConnect(SmartAckTestCase):

    def test_the_handshake_ack_rides_with_the_first_bytes(self):
        server = self.start_server(counting_echo)
        # defer-accept: the proxy accepts each client with its bytes already queued, so every
        # connect has bytes to follow it.
        proxy = self.start_proxy(server.port, extra=["--tcp-smart-connect", "--defer-accept",
                                                     "1"])
        self.assertEqual(self.first_segments(proxy, server), [2] * 5,
                         "SYN, then the bytes with the ACK")

    def test_off_the_handshake_ack_is_a_segment_of_its_own(self):
        server = self.start_server(counting_echo)
        proxy = self.start_proxy(server.port, extra=["--defer-accept", "1"])
        self.assertEqual(self.first_segments(proxy, server), [3] * 5,
                         "SYN, the ACK, then the bytes")

    def test_bytes_held_by_routing_count(self):
        server = self.start_server(counting_echo)
        for option, want in (("on", 2), ("off", 3)):
            text = ("backend app {\n    server a 127.0.0.1:@BACKEND@\n"
                    f"    tcp-smart-connect {option}\n}}\n"
                    "listener raw {\n    bind 127.0.0.1:@PORT@\n    route {\n"
                    "        prefix \"hello\" backend app\n    }\n    backend app\n}\n")
            proxy = self.start_proxy_config(text, values={"BACKEND": server.port})
            self.assertEqual(self.first_segments(proxy, server, n=3), [want] * 3, option)
            proxy.stop()

    def test_an_http_request_counts_when_a_pooled_connection_opens(self):
        seen = []

        def http_origin(conn, server):
            while True:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return None
                    head += chunk
                seen.append(segments_in(conn))
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

        server = self.start_server(http_origin)
        for option, want in (("on", 2), ("off", 3)):
            del seen[:]
            text = ("backend app {\n    server a 127.0.0.1:@BACKEND@\n"
                    f"    tcp-smart-connect {option}\n}}\n"
                    "listener web {\n    bind 127.0.0.1:@PORT@\n    mode http\n"
                    "    backend app\n}\n")
            proxy = self.start_proxy_config(text, values={"BACKEND": server.port},
                                            extra=["--workers", "1"])
            with self.connect(proxy.port) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                answer, how = harness.recv_until_close(s)
                self.assertTrue(answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer)
                self.assertTrue(answer.endswith(b"\r\n\r\nok"), answer)
            self.assertEqual(seen, [want], f"tcp-smart-connect {option}: the pool's first "
                             "connection, its request")
            proxy.stop()

    def test_a_proxy_header_counts_as_bytes_to_send(self):
        def header_then_echo(conn, server):
            head = b""
            while not head.endswith(b"\r\n"):
                chunk = conn.recv(1)
                if not chunk:
                    return None
                head += chunk
            segments = segments_in(conn)
            conn.sendall(b"go")
            conn.sendall(conn.recv(64))
            return segments

        server = self.start_server(header_then_echo)
        proxy = self.start_proxy(server.port, extra=["--tcp-smart-connect",
                                                     "--proxy-protocol", "v1"])
        # The client sends nothing until the server spoke: the header alone follows the connect.
        with self.connect(proxy.port) as s:
            self.assertEqual(recv_exact(s, 2), b"go")
            s.sendall(b"x")
            self.assertEqual(recv_exact(s, 1), b"x")
        self.assertEqual(server.wait_results(1), [2], "SYN, then the header with the ACK")

    def test_a_server_that_speaks_first_gets_its_handshake_ack_at_once(self):
        server = self.start_server(banner_first)
        proxy = self.start_proxy(server.port, extra=["--tcp-smart-connect"])
        for _ in range(3):
            with self.connect(proxy.port) as s:
                self.assertEqual(recv_exact(s, 11), b"220 ready\r\n")
                s.sendall(b"QUIT\r\n")
                self.assertEqual(harness.recv_until_close(s), (b"", "eof"))
        results = server.wait_results(3)
        self.assertEqual([r[1] for r in results], [b"QUIT\r\n"] * 3, results)
        # The client sent nothing, so the connect kept quick ACKs: the kernel answers the SYN-ACK
        # from its receive path (microseconds). A held-back ACK would leave on the delayed-ACK
        # timer, 200 ms later, and the server's kernel would measure that as its round trip.
        for rtt_us, _ in results:
            self.assertLess(rtt_us, 100_000, results)


if __name__ == "__main__":
    unittest.main()

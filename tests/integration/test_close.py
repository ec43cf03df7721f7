"""Closing: half-close in both directions, resets in both directions, peer vanishing."""

import errno
import hashlib
import os
import select
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import MiB, ProxyTestCase, recv_exact, recv_until_close  # noqa: E402


class HalfClose(ProxyTestCase):

    def test_client_half_close_then_delayed_reply_arrives(self):
        backend = self.start_server(harness.make_delayed_reply_handler(0.3))
        proxy = self.start_proxy(backend.port)
        s = self.connect(proxy.port)
        request = os.urandom(100 * 1024)
        s.sendall(request)
        s.shutdown(socket.SHUT_WR)
        data, outcome = recv_until_close(s)
        expected = b"reply:" + hashlib.sha256(request).hexdigest().encode()
        self.assertEqual(outcome, "eof", "reply must end with a clean EOF")
        self.assertEqual(data, expected, "delayed reply lost or corrupted after half-close")
        results = backend.wait_results(1)
        self.assertEqual(results[0]["bytes"], len(request))
        stats = proxy.wait_stats(lambda st: st["active"] == 0)
        self.assertEqual(stats["active"], 0, "connection not released after both sides closed")

    def test_backend_half_close_then_client_keeps_sending(self):
        greeting = b"server speaks first, then stops talking\n"
        backend = self.start_server(harness.make_send_then_half_close_handler(greeting))
        proxy = self.start_proxy(backend.port)
        s = self.connect(proxy.port)
        data, outcome = recv_until_close(s)
        self.assertEqual((data, outcome), (greeting, "eof"),
                         "backend's data and EOF not relayed to the client")
        h = hashlib.sha256()
        sent = 0
        for i in range(10):  # keep sending after the EOF, spread over ~0.3 s
            chunk = os.urandom(100 * 1024)
            s.sendall(chunk)
            h.update(chunk)
            sent += len(chunk)
            time.sleep(0.03)
        s.shutdown(socket.SHUT_WR)
        results = backend.wait_results(1, timeout=10)
        self.assertEqual(len(results), 1, "backend never saw the client's EOF")
        r = results[0]
        self.assertEqual(r["outcome"], "eof")
        self.assertEqual(r["bytes"], sent, "client data after the backend's half-close lost")
        self.assertEqual(r["sha256"], h.hexdigest())
        stats = proxy.wait_stats(lambda st: st["active"] == 0)
        self.assertEqual(stats["active"], 0, "connection not released after both sides closed")

    def test_client_eof_forwarded_only_after_buffered_bytes(self):
        # The backend starts reading late, so the proxy still holds data when the client's EOF
        # arrives: the EOF must reach the backend after all of it.
        def late_sink(conn, server):
            time.sleep(0.5)
            return harness.sink_handler(conn, server)

        backend = self.start_server(late_sink)
        proxy = self.start_proxy(backend.port)
        s = self.connect(proxy.port)
        request = os.urandom(8 * MiB)
        s.sendall(request)
        s.shutdown(socket.SHUT_WR)
        results = backend.wait_results(1, timeout=20)
        self.assertEqual(len(results), 1, "backend never saw the client's EOF")
        r = results[0]
        self.assertEqual(r["outcome"], "eof")
        self.assertEqual(r["bytes"], len(request), "bytes lost before the forwarded EOF")
        self.assertEqual(r["sha256"], hashlib.sha256(request).hexdigest())

    def test_backend_close_after_burst_reaches_slow_client_in_full(self):
        # The backend sends 8 MiB and closes at once (a clean close); the client starts reading
        # late. Everything must arrive, followed by a clean EOF (not a reset).
        payload = os.urandom(8 * MiB)

        def burst_then_close(conn, server):
            conn.sendall(payload)
            return {"outcome": "sent"}

        backend = self.start_server(burst_then_close)
        proxy = self.start_proxy(backend.port)
        s = self.connect(proxy.port)
        time.sleep(0.5)  # the backend sends and closes meanwhile (as far as buffers allow)
        data, outcome = recv_until_close(s)
        self.assertEqual(outcome, "eof", f"client saw {outcome} after {len(data)} bytes")
        self.assertEqual(len(data), len(payload))
        self.assertEqual(data, payload)

    def test_no_busy_loop_while_client_half_closed(self):
        backend = self.start_server(harness.make_hold_handler(max_hold=8))
        proxy = self.start_proxy(backend.port)
        s = self.connect(proxy.port)
        s.sendall(b"request")
        s.shutdown(socket.SHUT_WR)
        self.assertTrue(harness.wait_until(lambda: backend.accepted >= 1, 5))
        time.sleep(0.3)  # let the EOF travel through
        self.assertNotBusy(proxy, what="the client has half-closed and the backend is silent")

    def test_no_busy_loop_while_backend_half_closed(self):
        backend = self.start_server(harness.make_send_then_half_close_handler(b"hi"))
        proxy = self.start_proxy(backend.port)
        s = self.connect(proxy.port)
        data, outcome = recv_until_close(s)
        self.assertEqual((data, outcome), (b"hi", "eof"))
        self.assertNotBusy(proxy, what="the backend has half-closed and the client is silent")
        s.sendall(b"still open")
        s.shutdown(socket.SHUT_WR)
        r = backend.wait_results(1)
        self.assertEqual(r[0]["bytes"], len(b"still open"))


class Resets(ProxyTestCase):

    def test_backend_reset_mid_transfer_resets_client(self):
        backend = self.start_server(harness.make_reset_handler(send_bytes=256 * 1024, delay=0.2))
        proxy = self.start_proxy(backend.port)
        s = self.connect(proxy.port)
        s.sendall(b"start")
        data, outcome = recv_until_close(s)
        self.assertEqual(outcome, "reset", f"client saw {outcome} after {len(data)} bytes, "
                                           f"want a reset (ECONNRESET) after the backend reset")
        stats = proxy.wait_stats(lambda st: st["active"] == 0)
        self.assertEqual(stats["active"], 0)
        self.assertGreaterEqual(stats["resets_upstream"], 1, "backend reset not counted")
        self.assertGreaterEqual(stats["resets_sent"], 1, "reset sent to the client not counted")

    def test_client_reset_mid_transfer_resets_backend(self):
        backend = self.start_server(harness.make_duplex_handler(os.urandom(8 * MiB)))
        proxy = self.start_proxy(backend.port)
        s = self.connect(proxy.port)
        s.sendall(os.urandom(64 * 1024))
        recv_exact(s, 64 * 1024)  # the backend's stream is flowing; then stop reading
        time.sleep(0.3)
        harness.reset_close(s)
        results = backend.wait_results(1, timeout=10)
        self.assertEqual(len(results), 1, "backend connection not closed after client reset")
        r = results[0]
        # The reset is reported once per socket: to the backend's reading thread, or to its
        # sending thread (then the reader sees the socket as closed).
        self.assertTrue(r["outcome"] == "reset" or "ConnectionResetError" in r["send"],
                        f"backend saw {r!r}, want a reset")
        stats = proxy.wait_stats(lambda st: st["active"] == 0)
        self.assertEqual(stats["active"], 0)
        self.assertGreaterEqual(stats["resets_client"], 1, "client reset not counted")
        self.assertGreaterEqual(stats["resets_sent"], 1, "reset sent to the backend not counted")

    def test_client_vanishing_with_unread_data_keeps_proxy_alive(self):
        # The client closes with unread data (the kernel answers with RST), so the proxy's next
        # writes to it fail with EPIPE/ECONNRESET: that must not kill it (SIGPIPE).
        backend = self.start_server(harness.make_source_handler(64 * MiB))
        proxy = self.start_proxy(backend.port)
        for _ in range(3):
            s = harness.connect(proxy.port)
            recv_exact(s, MiB)
            s.close()
        results = backend.wait_results(3, timeout=10)
        self.assertEqual(len(results), 3, "backend connections not closed after client left")
        for r in results:
            self.assertIn(r["outcome"], ("send-reset", "reset"), f"backend saw {r!r}")
        self.assertTrue(proxy.alive(), f"proxy died: rc {proxy.proc.returncode}\n"
                                       f"{proxy.stderr_text()}")
        s = self.connect(proxy.port)
        self.assertEqual(len(recv_exact(s, MiB)), MiB, "proxy no longer serving")
        stats = proxy.stats()
        self.assertGreaterEqual(stats["resets_client"] + stats["resets_sent"], 1)



def make_send_then_reset_handler(data):
    """Send `data`, then close with a reset (SO_LINGER 0)."""

    def handler(conn, server):
        try:
            conn.sendall(data)
            time.sleep(0.05)
        except OSError as e:
            return {"outcome": "send-failed " + repr(e)}
        harness.set_linger_zero(conn)
        return {"outcome": "reset-sent"}

    return handler


def slow_read(sock, delay=0.3):
    """A slow client: waits, then reads 64 KiB at a time until EOF or reset."""
    time.sleep(delay)
    return recv_until_close(sock, chunk=64 * 1024, pause=0.01)


class ResetAfterBytes(ProxyTestCase):
    """A reset passes on, but only after the bytes its side sent before it (issue 9, item 4)."""

    def check_reset_after_bytes(self, extra):
        data = os.urandom(MiB)
        backend = self.start_server(make_send_then_reset_handler(data))
        proxy = self.start_proxy(backend.port, extra=extra)
        direct, direct_outcome = slow_read(self.connect(backend.port))
        through, outcome = slow_read(self.connect(proxy.port))
        self.assertEqual(direct_outcome, "reset")
        self.assertEqual(outcome, "reset", "the backend's reset must still reach the client")
        self.assertEqual(through, data[:len(through)], "bytes altered")
        self.assertGreaterEqual(len(through), len(direct),
                                f"through the proxy the client read {len(through)} bytes before "
                                f"the reset, connected directly {len(direct)}")
        stats = proxy.wait_stats(lambda st: st["active"] == 0)
        self.assertEqual(stats["active"], 0)
        self.assertGreaterEqual(stats["resets_upstream"], 1)

    def test_backend_reset_after_1mib_reaches_a_slow_client_after_the_bytes(self):
        self.check_reset_after_bytes([])

    def test_backend_reset_after_1mib_reaches_a_slow_client_after_the_bytes_spliced(self):
        self.check_reset_after_bytes(["--splice", "always"])

    def test_a_reset_of_the_side_a_lingering_connection_waits_on_closes_it(self):
        # The client uploads and resets; the backend reads nothing, so the proxy lingers until
        # it acknowledges the upload. The backend resets instead: the connection must close then,
        # not at the idle timeout (here: never).
        release = threading.Event()

        def handler(conn, server):
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            release.wait(10)
            harness.set_linger_zero(conn)
            return {"outcome": "reset-sent"}

        backend = self.start_server(handler)
        proxy = self.start_proxy(backend.port, extra=["--idle-timeout", "0"])
        s = self.connect(proxy.port)
        s.sendall(os.urandom(256 * 1024))
        time.sleep(0.3)
        harness.reset_close(s)
        stats = proxy.wait_stats(lambda st: st["linger_waits"] >= 1)
        self.assertEqual(stats["active"], 1, "the proxy must hold the bytes for the backend")
        self.assertGreaterEqual(stats["linger_waits"], 1, stats)
        release.set()
        stats = proxy.wait_stats(lambda st: st["active"] == 0, timeout=5)
        self.assertEqual(stats["active"], 0, "a lingering connection outlived both sides' resets")

    def test_client_reset_after_its_half_close_is_noticed_within_a_second(self):
        # No operation is left on a client that half-closed and waits for a reply: its reset
        # must still reach the backend at once, not at the idle timeout.
        seen = {}

        def handler(conn, server):
            outcome, n = harness._read_to_eof(conn)
            seen["eof_at"] = time.monotonic()
            # Reads now return 0 at once: wait for the socket's error or hang-up instead.
            p = select.poll()
            p.register(conn, 0)  # POLLERR and POLLHUP are always reported
            if not p.poll(5000):
                return {"outcome": "nothing within 5 s", "bytes": n}
            seen["closed_at"] = time.monotonic()
            # A reset in CLOSE_WAIT (the backend had the FIN) is reported as EPIPE.
            err = conn.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            return {"outcome": "reset" if err in (errno.ECONNRESET, errno.EPIPE)
                    else f"hang-up {err}", "bytes": n}

        backend = self.start_server(handler)
        proxy = self.start_proxy(backend.port)
        s = self.connect(proxy.port)
        s.sendall(b"request")
        s.shutdown(socket.SHUT_WR)
        self.assertTrue(harness.wait_until(lambda: "eof_at" in seen, 5), "request not delivered")
        time.sleep(0.3)
        reset_at = time.monotonic()
        harness.reset_close(s)
        results = backend.wait_results(1, timeout=5)
        self.assertEqual(len(results), 1, "the backend was not told within 5 s")
        self.assertEqual(results[0]["outcome"], "reset", f"backend saw {results[0]!r}")
        self.assertLess(seen["closed_at"] - reset_at, 1.0, "the reset took a second or more")
        stats = proxy.wait_stats(lambda st: st["active"] == 0)
        self.assertGreaterEqual(stats["resets_client"], 1)


if __name__ == "__main__":
    unittest.main()

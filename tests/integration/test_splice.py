"""Splice (--splice always / auto): bulk bytes moved through pipes arrive byte-exact both ways,
half-closes wait for the pipe to drain, resets propagate, an exhausted pipe pool falls back to
buffers, and a pipe left holding bytes by a reset is replaced, never reused dirty."""

import hashlib
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import MiB, ProxyTestCase, recv_exact, recv_until_close, run_binary  # noqa: E402


def recv_hash(sock, limit):
    """Read to EOF (at most limit + 1 reads): (bytes, sha256 hex, outcome)."""
    h = hashlib.sha256()
    total = 0
    outcome = "eof"
    buf = bytearray(MiB)
    for _ in range(limit + 1):
        try:
            n = sock.recv_into(buf)
        except ConnectionResetError:
            outcome = "reset"
            break
        if n == 0:
            break
        h.update(memoryview(buf)[:n])
        total += n
    return total, h.hexdigest(), outcome


def make_random_block_source(total_bytes):
    """Like harness.make_source_handler, but every connection repeats its own random 1 MiB
    block: bytes left over from another connection cannot look like this one's."""

    def handler(conn, server):
        return harness.make_source_handler(total_bytes, block=os.urandom(MiB))(conn, server)

    return handler


def assert_one_repeated_block(test, data):
    first = data[:MiB]
    for off in range(MiB, len(data), MiB):
        test.assertEqual(data[off:off + MiB], first, f"the MiB at offset {off} differs")


class _SpliceTests:
    """Every test here runs once per mode (the subclasses below)."""

    MODE = ()

    def splice_proxy(self, backend_port, extra=()):
        return self.start_proxy(backend_port, extra=list(self.MODE) + list(extra))

    def test_64mib_both_directions_at_once_intact(self):
        size = 64 * MiB
        down = os.urandom(size)
        up = os.urandom(size)
        backend = self.start_server(harness.make_duplex_handler(down))
        proxy = self.splice_proxy(backend.port)
        s = self.connect(proxy.port)

        def send_all():
            view = memoryview(up)
            for off in range(0, size, MiB):
                s.sendall(view[off:off + MiB])
            s.shutdown(socket.SHUT_WR)

        sender, box = self.start_thread(send_all)
        received, digest, outcome = recv_hash(s, size)
        sender.join(timeout=60)
        self.assertNotIn("error", box, f"client send failed: {box.get('error')!r}")
        self.assertEqual(outcome, "eof")
        self.assertEqual(received, size, "client received a wrong number of bytes")
        self.assertEqual(digest, hashlib.sha256(down).hexdigest(), "backend -> client corrupted")
        r = backend.wait_results(1, timeout=30)
        self.assertEqual(len(r), 1, "backend handler did not finish")
        self.assertIsInstance(r[0], dict, f"backend failed: {r[0]!r}")
        self.assertEqual((r[0]["outcome"], r[0]["send"], r[0]["bytes"]), ("eof", "ok", size))
        self.assertEqual(r[0]["sha256"], hashlib.sha256(up).hexdigest(),
                         "client -> backend corrupted")
        stats = proxy.wait_stats(lambda st: st["active"] == 0)
        self.assertEqual(stats["bytes_c2u"], size)
        self.assertEqual(stats["bytes_u2c"], size)
        # Most of it went through pipes: auto switches after its threshold, and always leaves
        # only what the client sent before the backend connect completed in a buffer.
        self.assertGreater(stats["splice_bytes"], size)
        self.assertLessEqual(stats["splice_bytes"], 2 * size)
        self.assertEqual(stats["splice_pipes_dirty"], 0)

    def test_client_half_close_then_delayed_reply_arrives(self):
        backend = self.start_server(harness.make_delayed_reply_handler(0.3))
        proxy = self.splice_proxy(backend.port)
        s = self.connect(proxy.port)
        request = os.urandom(4 * MiB)
        s.sendall(request)
        s.shutdown(socket.SHUT_WR)
        data, outcome = recv_until_close(s)
        expected = b"reply:" + hashlib.sha256(request).hexdigest().encode()
        self.assertEqual(outcome, "eof", "the reply must end with a clean EOF")
        self.assertEqual(data, expected, "reply lost or corrupted after the half-close")
        results = backend.wait_results(1)
        self.assertEqual(results[0]["bytes"], len(request))
        stats = proxy.wait_stats(lambda st: st["active"] == 0)
        self.assertGreater(stats["splice_bytes"], 0)

    def test_client_eof_forwarded_only_after_piped_bytes(self):
        # The backend reads late, so the proxy still holds bytes in its pipe when the client's
        # EOF arrives: the FIN must reach the backend after all of them.
        def late_sink(conn, server):
            time.sleep(0.5)
            return harness.sink_handler(conn, server)

        backend = self.start_server(late_sink)
        proxy = self.splice_proxy(backend.port)
        s = self.connect(proxy.port)
        request = os.urandom(16 * MiB)
        s.sendall(request)
        s.shutdown(socket.SHUT_WR)
        results = backend.wait_results(1, timeout=30)
        self.assertEqual(len(results), 1, "backend never saw the client's EOF")
        self.assertEqual(results[0]["outcome"], "eof")
        self.assertEqual(results[0]["bytes"], len(request), "bytes lost before the FIN")
        self.assertEqual(results[0]["sha256"], hashlib.sha256(request).hexdigest())
        self.assertGreater(proxy.wait_stats(lambda st: st["active"] == 0)["splice_bytes"], 0)

    def test_backend_close_after_burst_reaches_slow_client_in_full(self):
        payload = os.urandom(16 * MiB)

        def burst_then_close(conn, server):
            conn.sendall(payload)
            return {"outcome": "sent"}

        backend = self.start_server(burst_then_close)
        proxy = self.splice_proxy(backend.port)
        s = self.connect(proxy.port)
        time.sleep(0.5)  # the backend sends and closes meanwhile, as far as buffers allow
        received, digest, outcome = recv_hash(s, len(payload))
        self.assertEqual(outcome, "eof", f"client saw {outcome} after {received} bytes")
        self.assertEqual(received, len(payload))
        self.assertEqual(digest, hashlib.sha256(payload).hexdigest())
        stats = proxy.wait_stats(lambda st: st["active"] == 0)
        self.assertGreater(stats["splice_bytes"], 0)
        self.assertEqual(stats["resets_sent"], 0, "a clean end must not be turned into a reset")

    def test_backend_reset_mid_transfer_resets_client(self):
        backend = self.start_server(harness.make_reset_handler(send_bytes=4 * MiB, delay=0.2))
        proxy = self.splice_proxy(backend.port)
        s = self.connect(proxy.port)
        s.sendall(b"start")
        data, outcome = recv_until_close(s)
        self.assertEqual(outcome, "reset", f"client saw {outcome} after {len(data)} bytes, "
                                           f"want a reset after the backend's reset")
        stats = proxy.wait_stats(lambda st: st["active"] == 0)
        self.assertGreaterEqual(stats["resets_upstream"], 1)
        self.assertGreaterEqual(stats["resets_sent"], 1)

    def test_client_reset_mid_transfer_resets_backend(self):
        backend = self.start_server(harness.make_duplex_handler(os.urandom(32 * MiB)))
        proxy = self.splice_proxy(backend.port)
        s = self.connect(proxy.port)
        s.sendall(os.urandom(MiB))
        recv_exact(s, MiB)  # the backend's stream is flowing; then stop reading
        time.sleep(0.3)
        harness.reset_close(s)
        results = backend.wait_results(1, timeout=10)
        self.assertEqual(len(results), 1, "backend connection not closed after client reset")
        r = results[0]
        self.assertTrue(r["outcome"] == "reset" or "ConnectionResetError" in r["send"],
                        f"backend saw {r!r}, want a reset")
        stats = proxy.wait_stats(lambda st: st["active"] == 0)
        self.assertGreaterEqual(stats["resets_client"], 1)
        self.assertGreaterEqual(stats["resets_sent"], 1)

    # -- one pipe ----------------------------------------------------------------------------

    def stall_with_full_pipe(self, proxy, backend_port):
        """A connection whose client never reads while its backend pushes far more than every
        buffer on the way holds: once bytes_u2c stops moving, its pipe is stuck full (an empty
        pipe would be refilled from the backend at once). Returns the client socket."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(harness.SOCKET_TIMEOUT)
        s.connect(("127.0.0.1", proxy.port))
        self.addCleanup(harness.safe_close, s)
        self._own(s)
        last = -1
        for _ in range(100):
            time.sleep(0.3)
            moved = proxy.stats()["bytes_u2c"]
            if moved == last and moved > 0:
                return s
            last = moved
        self.fail("the stalled connection never stopped moving bytes")

    def test_exhausted_pipe_pool_falls_back_to_buffers(self):
        backend = self.start_server(make_random_block_source(128 * MiB))
        proxy = self.splice_proxy(backend.port, ["--splice-pipes", "1", "--workers", "1"])
        self.stall_with_full_pipe(proxy, backend.port)
        # The only pipe is stuck full: a second connection relays through buffers.
        s = self.connect(proxy.port)
        got = recv_exact(s, 8 * MiB)
        assert_one_repeated_block(self, got)
        self.assertGreater(proxy.stats()["splice_pipe_waits"], 0,
                           "the second connection should have found no pipe free")

    def test_pipe_left_dirty_by_a_reset_is_replaced(self):
        backend = self.start_server(make_random_block_source(128 * MiB))
        proxy = self.splice_proxy(backend.port, ["--splice-pipes", "1", "--workers", "1"])
        stalled = self.stall_with_full_pipe(proxy, backend.port)
        harness.reset_close(stalled)
        stats = proxy.wait_stats(lambda st: st["active"] == 0, timeout=10)
        self.assertEqual(stats["active"], 0)
        self.assertEqual(stats["splice_pipes_dirty"], 1, "the stuck pipe was not replaced")
        self.assertGreaterEqual(stats["resets_sent"], 1, "bytes were lost: the backend is reset")
        # The only pipe serves the next connection: not one stale byte may come out of it.
        before = stats["splice_bytes"]
        s = self.connect(proxy.port)
        assert_one_repeated_block(self, recv_exact(s, 16 * MiB))
        self.assertGreater(proxy.stats()["splice_bytes"], before, "the new pipe was not used")


class SpliceAlways(_SpliceTests, ProxyTestCase):
    MODE = ("--splice", "always")


class SpliceAuto(_SpliceTests, ProxyTestCase):
    MODE = ("--splice", "auto", "--splice-threshold", "65536")


class SpliceOptions(ProxyTestCase):

    def check_rejected(self, bad_args, needle):
        harness.assert_refused(self, bad_args, [needle])

    def test_bad_values_are_refused_with_one_line(self):
        self.check_rejected(["--splice", "sometimes"], "--splice")
        self.check_rejected(["--splice"], "--splice")
        self.check_rejected(["--splice-threshold", "-1"], "--splice-threshold")
        self.check_rejected(["--splice-pipes", "0"], "--splice-pipes")

    def test_help_names_the_splice_options(self):
        rc, out, _, _ = run_binary(["--help"])
        self.assertEqual(rc, 0)
        for opt in ("--splice ", "--splice-threshold", "--splice-pipes"):
            self.assertIn(opt, out)

    def test_never_moves_no_byte_through_a_pipe(self):
        backend = self.start_server()
        proxy = self.start_proxy(backend.port, extra=["--splice", "never"])
        payload = os.urandom(4 * MiB)
        s = self.connect(proxy.port)
        sender, _ = self.start_thread(s.sendall, payload)
        self.assertEqual(recv_exact(s, len(payload)), payload)
        sender.join(timeout=10)
        self.assertEqual(proxy.stats()["splice_bytes"], 0)


if __name__ == "__main__":
    unittest.main()

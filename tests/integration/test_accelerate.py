"""Slow-client acceleration (issue 13, decision 0011): with `accelerate`, a fast server's whole
answer is held in pool blocks, so its sendall returns and the proxy releases it while a slow client
has read less than half; without it the server is held back until the client has read most. Every
transfer is checked by SHA-256 at both ends. A tiny pool gives way (accel_giveups) and still
delivers every byte; the counters move and return to 0.

On loopback the kernel alone holds about 4 MiB per connection (the proxy's client socket's send
buffer grows to net.ipv4.tcp_wmem's maximum at once, the MSS being 64 KiB), so the answers here are
larger than that: what the proxy holds must make the difference."""

import hashlib
import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import MiB, ProxyTestCase, one_listener_config  # noqa: E402

SIZE = 16 * MiB
ACCELERATE = ["--accelerate", "24m", "--buffers", "4096"]  # the pool holds the whole answer
SERVER_SNDBUF = 64 * 1024  # the server's own socket holds little: sendall waits for the proxy
CLIENT_RCVBUF = 16 * 1024
READ_BYTES = 64 * 1024
PACE_S = 0.003  # between two client reads of at most READ_BYTES: at most about 20 MB/s


def make_burst_handler(data, progress):
    """A fast server: sends `data` at once, notes how much the client had read when its sendall
    returned, then half-closes and reads to the client's end."""

    def handler(conn, server):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SERVER_SNDBUF)
        conn.sendall(data)
        progress["client_at_sendall"] = progress["client"]
        conn.shutdown(socket.SHUT_WR)
        outcome, _ = harness._read_to_eof(conn)
        progress["client_at_server_eof"] = progress["client"]
        return {"outcome": outcome, "sha256": hashlib.sha256(data).hexdigest()}

    return handler


def slow_client(port, progress, pace=PACE_S, limit=SIZE * 2, stall=0.0):
    """Connects with a small receive buffer, ends its own side at once (it sends nothing), waits
    `stall` seconds, then reads at a bounded pace until EOF; returns (sha256 hex, bytes,
    outcome)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_RCVBUF)
    s.settimeout(harness.SOCKET_TIMEOUT)
    try:
        s.connect(("127.0.0.1", port))
        s.shutdown(socket.SHUT_WR)
        time.sleep(stall)
        h = hashlib.sha256()
        outcome = "limit"
        for _ in range(limit // 1024 + 2):  # bounded: at least 1 KiB per read until EOF
            try:
                chunk = s.recv(READ_BYTES)
            except ConnectionResetError:
                outcome = "reset"
                break
            if not chunk:
                outcome = "eof"
                break
            h.update(chunk)
            progress["client"] += len(chunk)
            if progress["client"] > limit:
                break
            time.sleep(pace)
        return h.hexdigest(), progress["client"], outcome
    finally:
        s.close()


class Accelerate(ProxyTestCase):

    def transfer(self, extra, size=SIZE):
        """One fast server, one slow client through a proxy started with `extra`; checks the bytes
        and returns (proxy, progress, server result)."""
        data = os.urandom(size)
        progress = {"client": 0}
        backend = self.start_server(make_burst_handler(data, progress))
        proxy = self.start_proxy(backend.port, extra=extra)
        t, box = self.start_thread(slow_client, proxy.port, progress)
        t.join(timeout=60)
        self.assertFalse(t.is_alive(), "the slow client did not finish")
        self.assertNotIn("error", box, f"client failed: {box.get('error')!r}")
        digest, received, outcome = box["value"]
        self.assertEqual((received, outcome), (size, "eof"))
        self.assertEqual(digest, hashlib.sha256(data).hexdigest(), "server -> client corrupted")
        results = backend.wait_results(1, timeout=30)
        self.assertEqual(len(results), 1, "server handler did not finish")
        self.assertIsInstance(results[0], dict, f"server failed: {results[0]!r}")
        self.assertEqual(results[0]["outcome"], "eof")
        return proxy, progress

    def test_a_fast_server_is_released_while_the_slow_client_has_read_less_than_half(self):
        proxy, progress = self.transfer(ACCELERATE)
        self.assertLess(progress["client_at_sendall"], SIZE // 2,
                        "with acceleration the server's sendall returns long before the client "
                        "has read half")
        stats = proxy.wait_stats(lambda st: st["active"] == 0)
        self.assertGreaterEqual(stats["server_finished_first"], 1)
        self.assertGreater(stats["accel_blocks_peak"], SIZE // 2 // 8192,
                           "most of the answer was held in chained blocks")
        self.assertEqual(stats["accel_blocks_held"], 0, "every block returned")
        self.assertEqual(stats["accel_giveups"], 0)
        self.assertEqual(stats["bytes_u2c"], SIZE)
        self.assertGreater(stats["acceleration_factor"], 2.0)

    def test_the_server_is_released_before_the_client_has_drained(self):
        """The server's slot (server.app/s.current) is freed while the client still reads."""
        data = os.urandom(SIZE)
        progress = {"client": 0}
        backend = self.start_server(make_burst_handler(data, progress))
        proxy = self.start_proxy_config(one_listener_config(
            [f"s 127.0.0.1:{backend.port}"], listener=["accelerate 24m"]),
            extra=["-v", "--buffers", "4096"])
        t, box = self.start_thread(slow_client, proxy.port, progress)
        released = harness.wait_full_stats(
            proxy, lambda st: st.get("server.app/s.current") == 0 and st.get("active") == 1,
            timeout=20)
        at_release = progress["client"]
        t.join(timeout=60)
        self.assertFalse(t.is_alive(), "the slow client did not finish")
        self.assertEqual(released.get("server.app/s.current"), 0, released)
        self.assertEqual(released.get("active"), 1, "the client's connection was still open")
        self.assertLess(at_release, SIZE // 2, "released before the client had read half")
        self.assertNotIn("error", box, f"client failed: {box.get('error')!r}")
        self.assertEqual(box["value"][:2], (hashlib.sha256(data).hexdigest(), SIZE))
        proxy.wait_stats(lambda st: st["active"] == 0)
        self.assertTrue(proxy.wait_for_stderr("acceleration factor", timeout=5),
                        "-v logs the connection's own factor at close")

    def test_without_acceleration_the_server_is_held_back(self):
        proxy, progress = self.transfer([])
        self.assertGreater(progress["client_at_sendall"], SIZE // 2,
                           "without acceleration the server's sendall waits for the client")
        stats = proxy.wait_stats(lambda st: st["active"] == 0)
        self.assertEqual(stats["accel_blocks_peak"], 0)

    def test_a_tiny_pool_gives_way_and_every_transfer_completes(self):
        # Each answer is larger than what the kernel holds for a client that does not read yet,
        # so the proxy wants to chain, and 16 blocks for three connections are at the reserve.
        clients = 3
        size = 6 * MiB
        datas = [os.urandom(size) for _ in range(clients)]
        served = iter(range(clients))
        lock = threading.Lock()
        progresses = [{"client": 0} for _ in range(clients)]

        def handler(conn, server):
            with lock:
                k = next(served)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SERVER_SNDBUF)
            conn.sendall(datas[k][:8])  # which answer this is, then the rest
            conn.sendall(datas[k][8:])
            conn.shutdown(socket.SHUT_WR)
            return harness._read_to_eof(conn)[0]

        backend = self.start_server(handler)
        proxy = self.start_proxy(backend.port, extra=["--accelerate", "2m", "--buffers", "16",
                                                       "--workers", "1"])
        threads = []
        for k in range(clients):
            def run(k=k):
                return slow_client(proxy.port, progresses[k], pace=0.0, limit=2 * size, stall=1.5)
            threads.append(self.start_thread(run))
        digests = {hashlib.sha256(d).hexdigest() for d in datas}
        for t, box in threads:
            t.join(timeout=90)
            self.assertFalse(t.is_alive(), "a slow client did not finish")
            self.assertNotIn("error", box, f"client failed: {box.get('error')!r}")
        got = [box.get("value") for _, box in threads]
        for r in got:
            self.assertIsNotNone(r)
            self.assertEqual((r[1], r[2]), (size, "eof"))
            self.assertIn(r[0], digests, "an answer arrived corrupted")
        self.assertEqual(len({r[0] for r in got}), clients, "each client got its own answer")
        stats = proxy.wait_stats(lambda st: st["active"] == 0)
        self.assertGreater(stats["accel_giveups"], 0, "the reserve stopped some chains")
        self.assertEqual(stats["accel_blocks_held"], 0)
        self.assertLessEqual(stats["pool_high_water"], 16)
        self.assertEqual(stats["bytes_u2c"], clients * size)

    def test_splice_always_still_delivers_both_directions(self):
        """The accelerating direction reads through blocks; the other one still splices."""
        size = 8 * MiB
        down = os.urandom(size)
        up = os.urandom(size)
        backend = self.start_server(harness.make_duplex_handler(down))
        proxy = self.start_proxy(backend.port, extra=["--accelerate", "1m", "--splice", "always"])
        s = self.connect(proxy.port)

        def send_all():
            s.sendall(up)
            s.shutdown(socket.SHUT_WR)

        sender, box = self.start_thread(send_all)
        data, outcome = harness.recv_until_close(s, limit=2 * size)
        sender.join(timeout=60)
        self.assertNotIn("error", box)
        self.assertEqual((len(data), outcome), (size, "eof"))
        self.assertEqual(hashlib.sha256(data).digest(), hashlib.sha256(down).digest())
        r = backend.wait_results(1, timeout=30)[0]
        self.assertIsInstance(r, dict, f"backend failed: {r!r}")
        self.assertEqual(r["sha256"], hashlib.sha256(up).hexdigest())
        stats = proxy.wait_stats(lambda st: st["active"] == 0)
        self.assertGreater(stats["splice_bytes"], 0, "client -> server spliced")
        self.assertLessEqual(stats["splice_bytes"], size, "server -> client never spliced")
        self.assertEqual(stats["accel_blocks_held"], 0)

    def test_a_forward_listener_refuses_accelerate(self):
        rc, _, err, _ = self.run_config(
            "listener p {\n  bind 127.0.0.1:@PORT@\n  mode forward\n  accelerate 1m\n}\n",
            args=["-t"])
        self.assertEqual(rc, 1, err)
        self.assertIn("does not accelerate", err)

    def test_accelerate_parses_sizes_and_off(self):
        for value in ("2m", "512k", "off", "0", "65536"):
            rc, _, err, _ = self.run_config(one_listener_config(
                ["s 127.0.0.1:9"], listener=[f"accelerate {value}"]), args=["-t"])
            self.assertEqual(rc, 0, f"{value}: {err}")
        rc, _, err, _ = self.run_config(one_listener_config(
            ["s 127.0.0.1:9"], listener=["accelerate lots"]), args=["-t"])
        self.assertEqual(rc, 1)
        self.assertIn("accelerate", err)


if __name__ == "__main__":
    unittest.main()

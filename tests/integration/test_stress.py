"""A bounded, seeded mix of clean, half-closed, abandoned and reset connections at once."""

import os
import random
import socket
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ProxyTestCase, recv_exact, recv_until_close  # noqa: E402

WORKERS = 8
CONNECTIONS_PER_WORKER = 100


def one_connection(port, rng):
    """Run one randomly chosen client behaviour; returns an error string or None."""
    kind = rng.choice(("pingpong", "halfclose", "reset", "abandon"))
    s = harness.connect(port, timeout=15)
    try:
        if kind == "pingpong":
            for _ in range(rng.randint(1, 8)):
                chunk = rng.randbytes(rng.randint(1, 16 * 1024))
                s.sendall(chunk)
                if recv_exact(s, len(chunk)) != chunk:
                    return "pingpong: echo corrupted"
            s.shutdown(socket.SHUT_WR)
            data, outcome = recv_until_close(s)
            if (data, outcome) != (b"", "eof"):
                return f"pingpong: ended with {outcome} after {len(data)} extra bytes"
        elif kind == "halfclose":
            payload = rng.randbytes(rng.randint(0, 64 * 1024))
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            data, outcome = recv_until_close(s)
            if outcome != "eof" or data != payload:
                return f"halfclose: {outcome}, {len(data)} of {len(payload)} bytes"
        elif kind == "reset":
            s.sendall(rng.randbytes(rng.randint(1, 32 * 1024)))
            if rng.random() < 0.5:
                s.recv(1024)
            harness.reset_close(s)
        else:  # abandon: send and close without reading the echo
            s.sendall(rng.randbytes(rng.randint(1, 32 * 1024)))
            s.close()
        return None
    except OSError as e:
        if kind in ("reset", "abandon"):
            return None
        return f"{kind}: {e!r}"
    finally:
        harness.safe_close(s)


class MixedTraffic(ProxyTestCase):

    def test_mixed_concurrent_traffic_leaves_proxy_clean(self):
        backend = self.start_server()
        proxy = self.start_proxy(backend.port)
        base_fds = proxy.fd_count()
        errors = []
        lock = threading.Lock()

        def worker(seed):
            rng = random.Random(seed)
            for _ in range(CONNECTIONS_PER_WORKER):
                err = one_connection(proxy.port, rng)
                if err:
                    with lock:
                        errors.append(err)

        threads = [self.start_thread(worker, 1000 + i)[0] for i in range(WORKERS)]
        for t in threads:
            t.join(timeout=60)
        self.assertFalse(any(t.is_alive() for t in threads), "workers did not finish in 60 s")
        self.assertEqual(errors, [])
        self.assertTrue(proxy.alive(), f"proxy died:\n{proxy.stderr_text()[-4000:]}")
        stats = proxy.wait_stats(lambda st: st["active"] == 0, timeout=10)
        self.assertEqual(stats["active"], 0)
        self.assertEqual(stats["accepted"], WORKERS * CONNECTIONS_PER_WORKER)
        harness.wait_until(lambda: proxy.fd_count() <= base_fds, 5)
        self.assertLessEqual(proxy.fd_count(), base_fds)


if __name__ == "__main__":
    unittest.main()

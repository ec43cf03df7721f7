"""--batch-wait: the io_uring backend's batched completion wait. Many concurrent connections
relay intact under a long minimum wait (a wait that never released a partial batch would stall
them), a lone connection is never held back for a batch, the epoll backend refuses a non-zero
value, and bad values are refused with one line."""

import os
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ProxyTestCase, assert_refused, recv_exact, run_binary  # noqa: E402


def backend_name():
    """The backend the binary under test was built with (CTest says; else --version does)."""
    name = os.environ.get("EDGEPROXY_BACKEND_NAME")
    if name:
        return name
    _, out, _, _ = run_binary(["--version"])
    return "io_uring" if "backend io_uring" in out else "epoll"


class BatchWait(ProxyTestCase):

    def test_bad_values_are_refused(self):
        for value in ("10001", "-1", "abc", "", "1.5", "100us"):
            with self.subTest(value=value):
                assert_refused(self, ["--batch-wait", value], ["--batch-wait"])

    def test_epoll_refuses_a_nonzero_value_and_accepts_zero(self):
        if backend_name() != "epoll":
            self.skipTest("the io_uring backend batches")
        assert_refused(self, ["--batch-wait", "100"], ["--batch-wait", "epoll"])
        backend = self.start_server()
        proxy = self.start_proxy(backend.port, extra=["--batch-wait", "0"])
        s = self.connect(proxy.port)
        s.sendall(b"zero\n")
        self.assertEqual(recv_exact(s, 5), b"zero\n")

    def round_trips(self, port, rounds, errors, index):
        harness.echo_rounds(port, rounds,
                            lambda i: f"client {index} round {i:04d}\n".encode(), errors,
                            f"client {index}")

    def test_many_connections_relay_intact_under_a_long_minimum_wait(self):
        if backend_name() != "io_uring":
            self.skipTest("only the io_uring backend batches")
        backend = self.start_server()
        # 10 ms: a batch that is not released after the minimum wait would stall every client
        # until the socket timeout; one that is released costs at most 10 ms per wake-up.
        proxy = self.start_proxy(backend.port, extra=["--batch-wait", "10000"])
        errors = []
        threads = [threading.Thread(target=self.round_trips, args=(proxy.port, 40, errors, i))
                   for i in range(48)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        self.assertFalse(any(t.is_alive() for t in threads), "clients still running after 120 s")
        self.assertEqual(errors, [])
        stats = proxy.wait_stats(lambda st: st["active"] == 0)
        self.assertEqual(stats["accepted"], 48)
        # Each worker logs this when it creates its ring, before "listening on".
        if "no minimum wait" in proxy.stderr_text():
            self.skipTest("this kernel has no io_uring minimum wait (6.12+): nothing can batch, "
                          "so batched_waits is not checked (the relay above was)")
        self.assertGreater(stats["batched_waits"], 0, "48 busy connections never batched")

    def test_a_lone_connection_is_never_held_for_a_batch(self):
        if backend_name() != "io_uring":
            self.skipTest("only the io_uring backend batches")
        backend = self.start_server()
        proxy = self.start_proxy(backend.port, extra=["--batch-wait", "10000"])
        errors = []
        self.round_trips(proxy.port, 200, errors, 0)
        self.assertEqual(errors, [])
        stats = proxy.wait_stats(lambda st: st["active"] == 0)
        self.assertEqual(stats["batched_waits"], 0, "a wait asked a lone connection for a batch")


if __name__ == "__main__":
    unittest.main()

"""What an operator sees (issue 18): a dead backend is reported at the default log level, with
its address and reason, rate-limited, and its return is reported; resets_sent counts resets
actually sent; an absurd --workers is refused; -q prints nothing but errors at exit; the exit
report leaves per-worker lines to -v."""

import os
import re
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ProxyTestCase, free_port, recv_exact  # noqa: E402


def try_echo(port, payload=b"ping\n"):
    """One client: 'echo' when answered, 'reset' or 'eof' when the proxy gave up on it."""
    try:
        s = harness.connect(port, timeout=5)
    except ConnectionResetError:  # reset before connect() returned
        return "reset"
    try:
        s.sendall(payload)
        data = s.recv(len(payload))
        return "echo" if data == payload else "eof"
    except (ConnectionResetError, BrokenPipeError):
        return "reset"
    finally:
        s.close()


def down_lines(proxy):
    return [ln for ln in proxy.stderr_snapshot() if " is DOWN " in ln]


def up_lines(proxy):
    return [ln for ln in proxy.stderr_snapshot() if " is UP " in ln]


class DeadBackend(ProxyTestCase):

    def test_a_dead_backend_is_reported_once_with_address_and_reason(self):
        dead = free_port()
        proxy = self.start_proxy(dead)
        outcomes = [try_echo(proxy.port) for _ in range(5)]
        self.assertNotIn("echo", outcomes)
        self.assertTrue(harness.wait_until(lambda: down_lines(proxy), 5),
                        f"no DOWN line at the default level:\n{proxy.stderr_text()}")
        line = down_lines(proxy)[0]
        self.assertIn(f"127.0.0.1:{dead}", line, "the line must name the address")
        self.assertIn("Connection refused", line, "the line must give the reason")
        self.assertIn("warning", line)

    def test_failed_retries_are_rate_limited_and_the_return_is_reported(self):
        dead = free_port()
        proxy = self.start_proxy(dead)
        started = time.monotonic()
        # Keep clients coming across several passive retries (one every 2 s by default): each
        # retry fails and takes the server down again.
        deadline = started + 5.0
        while time.monotonic() < deadline:
            try_echo(proxy.port)
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        stats = proxy.stats()
        self.assertGreaterEqual(stats["server.main/main.downs"], 2,
                                "the test needs at least one failed retry")
        allowed = 1 + int(elapsed // 10)  # at most one line per server per 10 s
        self.assertLessEqual(len(down_lines(proxy)), allowed,
                             f"DOWN lines not rate-limited:\n{proxy.stderr_text()}")
        self.assertFalse(up_lines(proxy), "a retry alone is no return: UP only once a connect "
                                          f"succeeds:\n{proxy.stderr_text()}")
        # The backend comes back: the next retry's connect succeeds and says so, once, with the
        # failed connects it had not reported.
        backend = self.start_server(port=dead)
        self.assertTrue(harness.wait_until(lambda: try_echo(proxy.port) == "echo", 10,
                                           interval=0.2), "the backend's return not noticed")
        self.assertTrue(harness.wait_until(lambda: up_lines(proxy), 5))
        ups = up_lines(proxy)
        self.assertEqual(len(ups), 1, "\n".join(ups))
        self.assertIn(f"127.0.0.1:{dead}", ups[0])
        self.assertRegex(ups[0], r"\d+ more failed connects since the last report")
        backend.close()


class ResetsSent(ProxyTestCase):

    def test_a_refused_backend_connect_counts_one_reset_per_client(self):
        dead = free_port()
        proxy = self.start_proxy(dead)
        outcomes = [try_echo(proxy.port) for _ in range(6)]
        self.assertNotIn("echo", outcomes)
        stats = proxy.wait_stats(lambda st: st["active"] == 0, timeout=10)
        # Only the clients can receive a reset: the upstream sockets never connected.
        self.assertEqual(stats["resets_sent"], stats["accepted"])
        self.assertEqual(stats["accepted"], 6)


class Workers(ProxyTestCase):

    def test_absurd_worker_count_is_refused_with_one_line(self):
        rc, _, err, _ = harness.run_binary(["-l", "127.0.0.1", "-p", "1", "-b", "127.0.0.1",
                                            "-P", "2", "--workers", "999"])
        self.assertEqual(rc, 1, err)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        self.assertEqual(len(lines), 1, err)
        self.assertIn("--workers 999", lines[0])
        self.assertIn("per CPU", lines[0])

    def test_exit_report_has_per_worker_lines_only_with_verbose(self):
        backend = self.start_server()
        for verbose in (False, True):
            extra = ["--workers", "2"] + (["-v"] if verbose else [])
            proxy = self.start_proxy(backend.port, extra=extra)
            self.assertEqual(harness.echo_roundtrip(proxy.port, b"w\n"), b"w\n")
            proxy.stop()
            stats = proxy.final_stats()
            self.assertEqual(stats["accepted"], 1)
            has_workers = any(k.startswith("worker0.") for k in stats)
            self.assertEqual(has_workers, verbose, f"verbose={verbose}: {sorted(stats)[:5]}")


class Quiet(ProxyTestCase):

    def test_quiet_prints_nothing_at_exit_but_usr1_still_reports(self):
        backend = self.start_server()
        port = free_port()
        proxy = harness.Proxy(harness.proxy_args(port, backend.port, extra=["-q"]))
        self.addCleanup(self._cleanup_proxy, proxy)
        proxy.start(wait_ready=False)  # -q: no "listening on" line to wait for
        self.assertTrue(harness.wait_serving(port, b"q\n", timeout=10), proxy.stderr_text())
        # wait_serving() tries again after a round trip slower than 1 s (a sanitizer build on a
        # busy machine), so one connection or more.
        self.assertGreaterEqual(proxy.stats()["accepted"], 1, "SIGUSR1 must still print the block")
        before = len(proxy.stderr_snapshot())
        rc = proxy.stop()
        self.assertEqual(rc, 0)
        after = proxy.stderr_snapshot()[before:]
        self.assertEqual([ln for ln in after if ln.strip()], [],
                         "-q printed at exit:\n" + "\n".join(after))


if __name__ == "__main__":
    unittest.main()

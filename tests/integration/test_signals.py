"""Signals: TERM/INT (graceful with deadline), QUIT (graceful, no deadline), USR1, PIPE, and HUP
and every other signal that would end the process: logged and ignored."""

import os
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import COUNTER_NAMES, ProxyTestCase, echo_roundtrip, recv_exact  # noqa: E402

CHUNK = 64 * 1024


def slow_source_handler(chunks, interval):
    """Send `chunks` chunks of 64 KiB, one every `interval` seconds, then close cleanly."""

    def handler(conn, server):
        for i in range(chunks):
            conn.sendall(bytes([i % 256]) * CHUNK)
            time.sleep(interval)
        conn.shutdown(socket.SHUT_WR)
        outcome, _ = harness._read_to_eof(conn)
        return {"outcome": outcome, "sent": chunks * CHUNK}

    return handler


class Signals(ProxyTestCase):

    def assertRefused(self, port, within=2.0):
        """New connections are refused (polls briefly: the signal is asynchronous)."""
        self.assertTrue(harness.wait_until(lambda: harness.refuses(port), within, interval=0.05),
                        "new connections still accepted after the shutdown signal")

    def assertExitsAfterLastConnection(self, proxy, s):
        """Half-closes s, the proxy's last connection after a shutdown signal: it must end with
        EOF and the proxy exit 0 with statistics, which are returned."""
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(harness.recv_until_close(s), (b"", "eof"))
        rc = proxy.wait_exit(5)
        self.assertIsNotNone(rc, "proxy did not exit after its last connection finished")
        self.assertCleanExit(rc, proxy)
        return self.assertStatsPrinted(proxy)

    def check_graceful(self, sig):
        backend = self.start_server()
        proxy = self.start_proxy(backend.port, extra=["--shutdown-timeout", "10"])
        s = self.connect(proxy.port)
        s.sendall(b"before\n")
        self.assertEqual(recv_exact(s, 7), b"before\n")
        proxy.send_signal(sig)
        self.assertRefused(proxy.port)
        s.sendall(b"after signal\n")
        self.assertEqual(recv_exact(s, 13), b"after signal\n",
                         "existing connection stopped flowing after the signal")
        self.assertTrue(proxy.alive(), "proxy exited while a connection was still open")
        stats = self.assertExitsAfterLastConnection(proxy, s)
        self.assertEqual(stats["shutdown_forced"], 0)
        self.assertEqual(stats["active"], 0)

    def test_term_refuses_new_and_lets_existing_connection_finish(self):
        self.check_graceful(signal.SIGTERM)

    def test_int_refuses_new_and_lets_existing_connection_finish(self):
        self.check_graceful(signal.SIGINT)

    def check_exit_without_connections(self, sig):
        backend = self.start_server()
        proxy = self.start_proxy(backend.port)
        start = time.monotonic()
        rc = proxy.stop(sig, timeout=10)
        elapsed = time.monotonic() - start
        self.assertCleanExit(rc, proxy)
        self.assertLess(elapsed, 3.0, f"idle proxy took {elapsed:.2f}s to exit on {sig!r}")
        self.assertStatsPrinted(proxy)

    def test_term_without_connections_exits_zero_with_statistics(self):
        self.check_exit_without_connections(signal.SIGTERM)

    def test_int_without_connections_exits_zero_with_statistics(self):
        self.check_exit_without_connections(signal.SIGINT)

    def test_quit_without_connections_exits_zero_with_statistics(self):
        self.check_exit_without_connections(signal.SIGQUIT)

    def test_term_closes_idle_connection_after_shutdown_timeout(self):
        backend = self.start_server()
        proxy = self.start_proxy(backend.port, extra=["--shutdown-timeout", "1"])
        s = self.connect(proxy.port)
        s.sendall(b"x")
        self.assertEqual(recv_exact(s, 1), b"x")
        start = time.monotonic()
        proxy.send_signal(signal.SIGTERM)
        rc = proxy.wait_exit(6)
        elapsed = time.monotonic() - start
        self.assertIsNotNone(rc, "proxy still running 6 s after SIGTERM with "
                                 "--shutdown-timeout 1 and an idle connection")
        self.assertCleanExit(rc, proxy)
        self.assertLess(elapsed, 3.0, f"exit took {elapsed:.2f}s with --shutdown-timeout 1")
        self.assertGreater(elapsed, 0.8, f"exited after {elapsed:.2f}s: the held connection "
                                         f"was not given its --shutdown-timeout 1")
        outcome, _, _ = harness.wait_closed(s, 2)
        self.assertEqual(outcome, "reset", "a connection cut at the shutdown deadline should be "
                                           "reset")
        stats = self.assertStatsPrinted(proxy)
        self.assertGreaterEqual(stats["shutdown_forced"], 1)

    def test_quit_lets_in_flight_transfer_finish_past_shutdown_timeout(self):
        chunks, interval = 30, 0.05  # ~1.5 s of transfer, longer than --shutdown-timeout 1
        backend = self.start_server(slow_source_handler(chunks, interval))
        proxy = self.start_proxy(backend.port, extra=["--shutdown-timeout", "1"])
        s = self.connect(proxy.port)
        first = recv_exact(s, CHUNK)
        proxy.send_signal(signal.SIGQUIT)
        self.assertRefused(proxy.port)
        rest, outcome = harness.recv_until_close(s)
        self.assertEqual(outcome, "eof", "in-flight transfer cut short after SIGQUIT")
        self.assertEqual(len(first) + len(rest), chunks * CHUNK)
        expected = b"".join(bytes([i % 256]) * CHUNK for i in range(chunks))
        self.assertEqual(first + rest, expected)
        s.close()
        rc = proxy.wait_exit(5)
        self.assertIsNotNone(rc, "proxy did not exit after its last connection finished")
        self.assertCleanExit(rc, proxy)
        stats = self.assertStatsPrinted(proxy)
        self.assertEqual(stats["shutdown_forced"], 0)

    def test_usr1_prints_statistics_and_keeps_running(self):
        backend = self.start_server()
        proxy = self.start_proxy(backend.port)
        self.assertEqual(echo_roundtrip(proxy.port, b"count me\n"), b"count me\n")
        first = proxy.stats()
        for name in COUNTER_NAMES:
            self.assertIn(name, first, f"counter {name} missing from the SIGUSR1 statistics")
        self.assertIsInstance(first["acceleration_factor"], (int, float))
        self.assertGreaterEqual(first["accepted"], 1)
        self.assertGreaterEqual(first["bytes_c2u"], len(b"count me\n"))
        self.assertTrue(proxy.alive(), "proxy exited on SIGUSR1")
        self.assertEqual(echo_roundtrip(proxy.port, b"again\n"), b"again\n")
        second = proxy.stats()
        self.assertGreaterEqual(second["accepted"], first["accepted"] + 1)
        self.assertTrue(proxy.alive())

    def test_sigpipe_does_not_kill(self):
        backend = self.start_server()
        proxy = self.start_proxy(backend.port)
        proxy.send_signal(signal.SIGPIPE)
        time.sleep(0.3)
        self.assertTrue(proxy.alive(), f"proxy killed by SIGPIPE (rc {proxy.proc.returncode})")
        self.assertEqual(echo_roundtrip(proxy.port, b"pipe\n"), b"pipe\n")

    def test_sighup_and_other_terminating_signals_are_ignored(self):
        # Each signal whose default action ends the process, with the names its log line may
        # give it (29 is both SIGIO and SIGPOLL).
        # (USR2 reopens the access log: test_access_log.)
        signals = [(signal.SIGHUP, ("SIGHUP",)),
                   (signal.SIGALRM, ("SIGALRM",)), (signal.SIGVTALRM, ("SIGVTALRM",)),
                   (signal.SIGPROF, ("SIGPROF",)), (signal.SIGIO, ("SIGIO", "SIGPOLL")),
                   (signal.SIGPWR, ("SIGPWR",)), (signal.SIGXCPU, ("SIGXCPU",)),
                   (signal.SIGXFSZ, ("SIGXFSZ",)), (signal.SIGRTMIN, ("SIGRTMIN",)),
                   (signal.SIGRTMIN + 3, ("SIGRTMIN+3",)), (signal.SIGRTMAX, ("SIGRTMAX",))]
        if hasattr(signal, "SIGSTKFLT"):
            signals.append((signal.SIGSTKFLT, ("SIGSTKFLT",)))
        signals.append((signal.SIGHUP, ("SIGHUP",)))  # every time it comes
        backend = self.start_server()
        proxy = self.start_proxy(backend.port)
        s = self.connect(proxy.port)
        s.sendall(b"before\n")
        self.assertEqual(recv_exact(s, 7), b"before\n")
        for sig, names in signals:
            start = len(proxy.stderr_snapshot())
            proxy.send_signal(sig)

            def logged():
                return any(f"{name} ignored" in line for line in proxy.stderr_snapshot()[start:]
                           for name in names)

            self.assertTrue(harness.wait_until(logged, 5) and proxy.alive(),
                            f"{names[0]}: no line saying it is ignored (exit code "
                            f"{proxy.proc.poll()}); stderr:\n{proxy.stderr_text()[-2000:]}")
            msg = f"after {names[0]}\n".encode()
            s.sendall(msg)
            self.assertEqual(recv_exact(s, len(msg)), msg,
                             f"the connection stopped after {names[0]}")
        hup = [line for line in proxy.stderr_snapshot() if "SIGHUP ignored" in line]
        self.assertEqual(len(hup), 2, "one line for each SIGHUP")
        self.assertIn("reload", hup[0], "the SIGHUP line should say there is nothing to reload")
        self.assertEqual(len([line for line in proxy.stderr_snapshot() if "ignored" in line]),
                         len(signals), "one line per signal")
        self.assertIsNone(proxy.final_stats(),
                          "a statistics block was printed on an ignored signal")
        proxy.send_signal(signal.SIGTERM)
        stats = self.assertExitsAfterLastConnection(proxy, s)
        self.assertEqual(stats["accepted"], 1)
        self.assertEqual(stats["resets_sent"], 0)


if __name__ == "__main__":
    unittest.main()

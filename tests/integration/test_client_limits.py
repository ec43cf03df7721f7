"""Per-connection and per-client limits (docs/limits.md): max-lifetime, upload-limit,
download-limit, rate-limit-up/-down, max-connections-per-client, new-connections-per-client,
their counters and reload. Each limit is shown working on a limited listener and leaving the
connections of an unlimited listener of the same proxy alone.

Rates are checked from below only (a limiter can make a transfer slower, never faster than its
rate plus its burst): a loaded machine can only make the check easier to pass for the limited
listener, and nothing is asserted about the unlimited one's speed."""

import hashlib
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import MiB, ProxyTestCase, echo_roundtrip, recv_exact  # noqa: E402

KiB = 1024


def two_listeners(backend_port, limits, free=()):
    """Listener `limited` (the `limits` lines) and listener `free` (the `free` lines), both to
    the same backend."""
    lines = ["backend app {", f"    server a 127.0.0.1:{backend_port}", "}",
             "listener limited {", "    bind 127.0.0.1:@PORT@", "    backend app"]
    lines += [f"    {x}" for x in limits]
    lines += ["}", "listener free {", "    bind 127.0.0.1:@FREE@", "    backend app"]
    lines += [f"    {x}" for x in free]
    lines += ["}", ""]
    return "\n".join(lines)


def connect_from(port, source, timeout=harness.SOCKET_TIMEOUT):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def refused(sock, timeout=5.0):
    """True when the proxy closed `sock` without answering a byte (EOF or reset)."""
    sock.settimeout(timeout)
    try:
        sock.sendall(b"ping\n")
        return sock.recv(16) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


class Limits(ProxyTestCase):

    def limited_proxy(self, backend_port, limits, free=()):
        proxy = self.start_proxy_config(two_listeners(backend_port, limits, free))
        return proxy, proxy.values["PORT"], proxy.values["FREE"]

    def limit_stats(self, proxy, predicate=lambda st: True):
        return harness.wait_full_stats(proxy, predicate, timeout=10)

    # --- per connection --------------------------------------------------------------------------

    def test_max_lifetime_resets_a_busy_connection_and_spares_the_free_listener(self):
        backend = self.start_server()
        proxy, port, free_port = self.limited_proxy(backend.port, ["max-lifetime 1s"])
        limited = self.connect(port)
        free = self.connect(free_port)
        # Busy all along: the lifetime is not an idle timeout.
        deadline = time.monotonic() + 10
        cut = False
        while time.monotonic() < deadline:
            try:
                limited.sendall(b"still here\n")
                if recv_exact(limited, 11) != b"still here\n":
                    break
            except (ConnectionResetError, BrokenPipeError, ConnectionError):
                cut = True
                break
            time.sleep(0.1)
        self.assertTrue(cut, "the limited connection outlived max-lifetime 1s by 10 s")
        self.assertEqual(echo_roundtrip(free_port), b"ping\n")
        free.sendall(b"free\n")
        self.assertEqual(recv_exact(free, 5), b"free\n")
        stats = self.limit_stats(proxy, lambda st: st["listener.limited.limits.lifetime_closes"] == 1)
        self.assertEqual(stats["listener.limited.limits.lifetime_closes"], 1)
        self.assertNotIn("listener.free.limits.lifetime_closes", stats)
        self.assertIn("max-lifetime", proxy.stderr_text())

    def test_upload_limit_resets_past_the_limit(self):
        backend = self.start_server(harness.sink_handler)
        proxy, port, free_port = self.limited_proxy(backend.port, ["upload-limit 64k"])
        ok = self.connect(port)
        ok.sendall(os.urandom(32 * KiB))
        over = self.connect(port)
        with self.assertRaises((ConnectionResetError, BrokenPipeError)):
            for _ in range(64):  # 2 MiB: far past 64 KiB, bounded
                over.sendall(os.urandom(32 * KiB))
                time.sleep(0.01)
            over.recv(1)
        free = self.connect(free_port)
        free.sendall(os.urandom(MiB))
        free.shutdown(socket.SHUT_WR)
        self.assertEqual(free.recv(1), b"")  # the sink closes after EOF: no reset
        stats = self.limit_stats(proxy, lambda st: st["listener.limited.limits.upload_closes"] >= 1)
        self.assertEqual(stats["listener.limited.limits.upload_closes"], 1)
        ok.sendall(b"x")  # the connection under its limit is still open
        self.assertNotIn("listener.free.limits.upload_closes", stats)

    def test_download_limit_resets_past_the_limit(self):
        total = 2 * MiB
        backend = self.start_server(harness.make_source_handler(total))
        proxy, port, free_port = self.limited_proxy(backend.port, ["download-limit 256k"])
        limited = self.connect(port)
        got = 0
        reset = False
        try:
            while True:
                chunk = limited.recv(64 * KiB)
                if not chunk:
                    break
                got += len(chunk)
        except ConnectionResetError:
            reset = True
        # The reset discards what the client's kernel still held unread, so the client's count
        # says little; the proxy's count of delivered bytes is the limit's.
        self.assertTrue(reset, f"no reset after {got} bytes")
        self.assertLess(got, total)
        free = self.connect(free_port)
        data, outcome = harness.recv_until_close(free)
        self.assertEqual((len(data), outcome), (total, "eof"))
        stats = self.limit_stats(
            proxy, lambda st: st["listener.limited.limits.download_closes"] >= 1)
        self.assertEqual(stats["listener.limited.limits.download_closes"], 1)
        limited_out = stats["listener.limited.bytes_out"]
        self.assertGreater(limited_out, 256 * KiB)
        # Past the limit by at most one read: a splice moves at most a pipe's 256 KiB.
        self.assertLessEqual(limited_out, 256 * KiB + 256 * KiB)

    def test_rate_limit_down_paces_the_server_without_spinning(self):
        total = 768 * KiB
        data = os.urandom(total)
        backend = self.start_server(harness.make_source_handler(total, block=data))
        proxy, port, free_port = self.limited_proxy(
            backend.port, ["rate-limit-down 256k/s", "rate-limit-burst 32k"])
        limited = self.connect(port)
        started = time.monotonic()
        result = {}

        def read_all():
            result["data"] = harness.recv_until_close(limited)[0]

        t, _ = self.start_thread(read_all)
        # Paused reads wait for a timer: the proxy is close to idle meanwhile.
        self.assertNotBusy(proxy, seconds=1.0, limit=0.3, what="pacing a rate-limited download")
        t.join(30)
        elapsed = time.monotonic() - started
        self.assertEqual(hashlib.sha256(result.get("data", b"")).digest(),
                         hashlib.sha256(data).digest())
        # 768 KiB at 256 KiB/s after a 32 KiB burst: at least 2.8 s (checked from below only).
        self.assertGreaterEqual(elapsed, 2.5)
        free = self.connect(free_port)
        self.assertEqual(hashlib.sha256(harness.recv_until_close(free)[0]).digest(),
                         hashlib.sha256(data).digest())
        stats = self.limit_stats(proxy)
        self.assertGreater(stats["listener.limited.limits.rate_pauses_down"], 0)
        self.assertEqual(stats["listener.limited.limits.rate_pauses_up"], 0)
        self.assertNotIn("listener.free.limits.rate_pauses_down", stats)

    def test_rate_limit_up_paces_the_client(self):
        total = 512 * KiB
        data = os.urandom(total)
        backend = self.start_server()
        proxy, port, _ = self.limited_proxy(
            backend.port, ["rate-limit-up 128k", "rate-limit-burst 16k"])
        s = self.connect(port)
        started = time.monotonic()
        echoed = {}

        def read_back():
            echoed["data"] = recv_exact(s, total)

        t, _ = self.start_thread(read_back)
        s.sendall(data)
        t.join(30)
        elapsed = time.monotonic() - started
        self.assertEqual(echoed.get("data"), data)
        self.assertGreaterEqual(elapsed, 3.0)  # 512 KiB at 128 KiB/s: about 4 s
        stats = self.limit_stats(proxy)
        self.assertGreater(stats["listener.limited.limits.rate_pauses_up"], 0)

    # --- per client ------------------------------------------------------------------------------

    def test_max_connections_per_client_refuses_the_extra_one_at_once(self):
        backend = self.start_server()
        proxy, port, free_port = self.limited_proxy(backend.port,
                                                    ["max-connections-per-client 3"])
        held = [self.connect(port) for _ in range(3)]
        for s in held:
            s.sendall(b"in\n")
            self.assertEqual(recv_exact(s, 3), b"in\n")
        self.assertFalse(served(port), "a fourth connection from one client was served")
        # Another client address is not counted with the first.
        other = connect_from(port, "127.0.0.2")
        self.addCleanup(other.close)
        other.sendall(b"other\n")
        self.assertEqual(recv_exact(other, 6), b"other\n")
        # Unlimited listener: as many as wanted.
        frees = [self.connect(free_port) for _ in range(6)]
        for s in frees:
            s.sendall(b"f\n")
            self.assertEqual(recv_exact(s, 2), b"f\n")
        # A closed connection gives its place back.
        held.pop().close()
        self.assertTrue(harness.wait_until(lambda: served(port), 5),
                        "a closed connection did not give its client's place back")
        stats = self.limit_stats(proxy, lambda st: st["listener.limited.limits.client_too_many"] >= 1)
        self.assertGreaterEqual(stats["listener.limited.limits.client_too_many"], 1)
        self.assertIn("max-connections-per-client", proxy.stderr_text())

    def test_new_connections_per_client_refuses_a_burst_past_the_rate(self):
        backend = self.start_server()
        proxy, port, _ = self.limited_proxy(backend.port, ["new-connections-per-client 5/s"])
        # 12 connects at once (the kernel completes them; the proxy accepts them in a burst,
        # well within the 1.4 s the bucket would need to refill 7 tokens), then see which
        # were served.
        socks = []
        for _ in range(12):
            try:
                socks.append(harness.connect(port))
            except ConnectionResetError:
                socks.append(None)
        outcomes = []
        for s in socks:
            outcomes.append(s is not None and not refused(s, timeout=2.0))
            if s is not None:
                s.close()
        self.assertGreaterEqual(outcomes.count(True), 5, outcomes)
        self.assertIn(False, outcomes)
        time.sleep(1.2)  # the bucket refills at 5 a second
        self.assertEqual(echo_roundtrip(port), b"ping\n")
        stats = self.limit_stats(proxy, lambda st: st["listener.limited.limits.client_too_fast"] >= 1)
        self.assertGreaterEqual(stats["listener.limited.limits.client_too_fast"], 1)

    def test_command_line_flags_limit_the_one_listener(self):
        backend = self.start_server()
        proxy = self.start_proxy(backend.port, extra=["--max-connections-per-client", "1"])
        first = self.connect(proxy.port)
        first.sendall(b"one\n")
        self.assertEqual(recv_exact(first, 4), b"one\n")
        self.assertFalse(served(proxy.port))
        stats = self.limit_stats(
            proxy, lambda st: st.get("listener.main.limits.client_too_many", 0) >= 1)
        self.assertGreaterEqual(stats.get("listener.main.limits.client_too_many", 0), 1)

    # --- reload ----------------------------------------------------------------------------------

    def test_a_reload_applies_a_new_lifetime_to_open_connections(self):
        backend = self.start_server()
        text = two_listeners(backend.port, [])
        proxy = self.start_proxy_config(text)
        port = proxy.values["PORT"]
        s = self.connect(port)
        s.sendall(b"before\n")
        self.assertEqual(recv_exact(s, 7), b"before\n")
        self.rewrite_config(proxy, two_listeners(backend.port, ["max-lifetime 1s"]))
        self.reload(proxy)
        # Accepted more than a second ago: its lifetime is over as soon as the reload applies.
        self.assertClosedByProxy(s, within=5.0, allowed=("reset",))
        stats = self.limit_stats(proxy, lambda st: st["listener.limited.limits.lifetime_closes"] == 1)
        self.assertEqual(stats["listener.limited.limits.lifetime_closes"], 1)

    def test_a_reload_lifts_a_rate_limit_of_an_open_connection(self):
        total = 4 * MiB
        backend = self.start_server(harness.make_source_handler(total))
        proxy = self.start_proxy_config(two_listeners(
            backend.port, ["rate-limit-down 64k", "rate-limit-burst 16k"]))
        s = self.connect(proxy.values["PORT"])
        first = recv_exact(s, 32 * KiB)
        self.assertEqual(len(first), 32 * KiB)
        self.rewrite_config(proxy, two_listeners(backend.port, []))
        self.reload(proxy)
        # 4 MiB at 64 KiB/s would take a minute; lifted, it arrives within the socket timeout.
        rest, outcome = harness.recv_until_close(s)
        self.assertEqual((len(first) + len(rest), outcome), (total, "eof"))

    def test_bad_limit_values_are_refused_with_one_line(self):
        for line, needle in [("rate-limit-up 5x", "rate-limit-up"),
                             ("new-connections-per-client 5/m", "new-connections-per-client"),
                             ("client-ipv6-prefix 129", "client-ipv6-prefix"),
                             ("max-lifetime 1500ms", "max-lifetime")]:
            rc, _, err, _ = self.run_config(two_listeners(9, [line]), args=["-t"])
            self.assertEqual(rc, 1, f"{line}: {err}")
            self.assertIn(needle, err)
            self.assertEqual(len(err.strip().splitlines()), 1, err)


def served(port):
    """One connection: True when it got its echo, False when the proxy closed it at once (the
    reset may come before connect() returns)."""
    try:
        s = harness.connect(port)
    except ConnectionResetError:
        return False
    try:
        return not refused(s, timeout=2.0)
    finally:
        s.close()


if __name__ == "__main__":
    unittest.main()

"""Reload on SIGHUP (issue 10): a transfer and a hammering client unharmed by reloads, listeners
added and removed, servers added and removed (their open connections finishing normally), an
invalid file changing nothing, and old topology versions let go once their connections close."""

import hashlib
import os
import signal
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import MiB, ProxyTestCase, recv_exact  # noqa: E402

PLACEHOLDERS = {"web": "PORT", "web2": "PORT2"}


def config(servers, listeners=("web",), backend=()):
    """Backend app with `servers` ({name: port}) and the named listeners (web on @PORT@, web2
    on @PORT2@), all using it."""
    lines = ["backend app {"]
    lines += [f"    server {n} 127.0.0.1:{p}" for n, p in servers.items()]
    lines += [f"    {line}" for line in backend]
    lines.append("}")
    for name in listeners:
        lines += [f"listener {name} {{", f"    bind 127.0.0.1:@{PLACEHOLDERS[name]}@",
                  "    backend app", "}"]
    return "\n".join(lines) + "\n"


class ReloadTestCase(ProxyTestCase):

    def ports(self, servers):
        return {n: s.port for n, s in servers.items()}

    def reload_to(self, proxy, text, ok=True):
        self.rewrite_config(proxy, text)
        return self.reload(proxy, ok=ok)

    def echo(self, sock, message):
        sock.sendall(message)
        self.assertEqual(recv_exact(sock, len(message)), message)

    def assertEndsNormally(self, sock, what):
        """Half-close: the echo server's EOF must come back as EOF (no reset)."""
        sock.shutdown(socket.SHUT_WR)
        self.assertEqual(harness.recv_until_close(sock), (b"", "eof"), what)


class ReloadKeepsTraffic(ReloadTestCase):

    def test_a_transfer_survives_20_reloads_intact(self):
        backend = self.start_server()
        texts = [config({"a": backend.port}, backend=[f"connect-timeout {t}s"]) for t in (1, 2)]
        proxy = self.start_proxy_config(texts[0])
        s = self.connect(proxy.port)
        received = hashlib.sha256()
        _, box = self.start_thread(harness._read_to_eof, s, received.update)
        sent = hashlib.sha256()
        reloads = 0
        for i in range(64):
            chunk = os.urandom(MiB)
            sent.update(chunk)
            s.sendall(chunk)
            if i % 3 == 1 and reloads < 20:
                reloads += 1
                self.reload_to(proxy, texts[reloads % 2])
        self.assertEqual(reloads, 20)
        s.shutdown(socket.SHUT_WR)
        harness.wait_until(lambda: box, 60)
        self.assertEqual(box.get("value"), ("eof", 64 * MiB), box)
        self.assertEqual(received.hexdigest(), sent.hexdigest(), "the echoed stream differs")
        stats = harness.full_stats(proxy)
        self.assertEqual(stats["reloads"], 20)
        self.assertEqual(stats["epoch"], 21)
        self.assertEqual(stats["reload_failures"], 0)

    def test_a_hammering_client_sees_no_refusal_or_reset_during_10_reloads(self):
        backend = self.start_server()
        text = config({"a": backend.port})
        proxy = self.start_proxy_config(text)
        stop = threading.Event()
        done, errors = [0], []

        def hammer():
            deadline = time.monotonic() + 30
            for i in range(20000):
                if stop.is_set() or time.monotonic() > deadline:
                    return
                message = b"hammer%05d" % i
                try:
                    if harness.echo_roundtrip(proxy.port, message) != message:
                        errors.append(f"connection {i}: altered")
                except (OSError, EOFError) as e:
                    errors.append(f"connection {i}: {e!r}")
                done[0] += 1

        thread, _ = self.start_thread(hammer)
        self.addCleanup(stop.set)
        self.assertTrue(harness.wait_until(lambda: done[0] >= 20, 10), "the hammer is stuck")
        for _ in range(10):
            self.reload_to(proxy, text)
        at_last_reload = done[0]
        harness.wait_until(lambda: done[0] >= at_last_reload + 50 or not thread.is_alive(), 10)
        stop.set()
        thread.join(10)
        self.assertEqual(errors, [])
        self.assertGreater(done[0], at_last_reload, "the hammer ended before the last reload")
        self.assertEqual(harness.full_stats(proxy)["epoch"], 11)


class Listeners(ReloadTestCase):

    def test_a_listener_added_by_reload_accepts(self):
        servers = self.start_named("a")
        proxy = self.start_proxy_config(config(self.ports(servers)))
        self.reload_to(proxy, config(self.ports(servers), listeners=("web", "web2")))
        self.assertEqual(self.who_once(proxy.values["PORT2"]), "a")
        self.assertEqual(self.who_once(proxy.port), "a")

    def test_a_listener_removed_by_reload_refuses_but_its_connection_finishes(self):
        servers = self.start_named("a")
        proxy = self.start_proxy_config(config(self.ports(servers), listeners=("web", "web2")))
        port2 = proxy.values["PORT2"]
        name, held = self.who(port2)
        self.assertEqual(name, "a")
        self.reload_to(proxy, config(self.ports(servers)))
        self.assertTrue(harness.wait_until(lambda: harness.refuses(port2), 5),
                        "the removed listener still accepts")
        self.echo(held, b"still here\n")
        self.assertEndsNormally(held, "the removed listener's connection did not end normally")
        self.assertEqual(self.who_once(proxy.port), "a")

    def test_a_renamed_listener_keeps_its_socket(self):
        # A bind is kept by its address, whichever listener names it: renaming is no rebind
        # (which would fail with "address already in use" while the old socket is held).
        servers = self.start_named("a")
        proxy = self.start_proxy_config(config(self.ports(servers)))
        name, held = self.who(proxy.port)
        self.assertEqual(name, "a")
        self.reload_to(proxy, config(self.ports(servers)).replace("listener web {",
                                                                  "listener www {"))
        self.assertEqual(self.who_once(proxy.port), "a")
        self.echo(held, b"same socket\n")
        self.assertIn("listener.www.connections", harness.full_stats(proxy))

    def test_a_reload_during_a_graceful_shutdown_is_refused(self):
        servers = self.start_named("a")
        proxy = self.start_proxy_config(config(self.ports(servers)))
        name, held = self.who(proxy.port)
        self.assertEqual(name, "a")
        start = len(proxy.stderr_snapshot())
        proxy.send_signal(signal.SIGQUIT)
        self.assertTrue(proxy.wait_for_stderr("graceful shutdown", 5, start=start))
        self.rewrite_config(proxy, config(self.ports(servers), listeners=("web", "web2")))
        proxy.send_signal(signal.SIGHUP)
        self.assertTrue(proxy.wait_for_stderr("SIGHUP ignored: shutting down", 5, start=start),
                        f"stderr:\n{proxy.stderr_text()[-2000:]}")
        self.assertTrue(harness.refuses(proxy.values["PORT2"]), "a reload bound a new port")
        self.echo(held, b"draining\n")
        self.assertEndsNormally(held, "the draining connection did not end normally")
        self.assertEqual(proxy.wait_exit(10), 0)

    def test_a_failed_reload_changes_nothing_at_all(self):
        # The new file is valid but its new listener's port is taken: the whole reload fails,
        # the backend change in it included.
        servers = self.start_named("a", "b")
        proxy = self.start_proxy_config(config({"a": servers["a"].port}))
        taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        proxy.values["PORT2"] = taken.getsockname()[1]
        self.reload_to(proxy, config({"b": servers["b"].port}, listeners=("web", "web2")),
                       ok=False)
        self.assertEqual(self.name_counts(proxy.port, 4), {"a": 4})
        stats = harness.full_stats(proxy)
        self.assertEqual((stats["epoch"], stats["reloads"], stats["reload_failures"]), (1, 0, 1))


class Servers(ReloadTestCase):

    def test_servers_added_and_removed_by_reload_move_traffic(self):
        servers = self.start_named("a", "b")
        proxy = self.start_proxy_config(config({"a": servers["a"].port}))
        self.assertEqual(self.name_counts(proxy.port, 4), {"a": 4})
        self.reload_to(proxy, config(self.ports(servers)))
        self.assertIn("b", self.name_counts(proxy.port, 4 * harness.worker_count()))
        self.reload_to(proxy, config({"b": servers["b"].port}))
        self.assertEqual(self.name_counts(proxy.port, 6), {"b": 6})

    def test_an_invalid_file_keeps_the_old_config_serving(self):
        servers = self.start_named("a", "b")
        proxy = self.start_proxy_config(config({"a": servers["a"].port}))
        start = len(proxy.stderr_snapshot())
        self.rewrite_config(proxy, config({"b": servers["b"].port}) + "frobnicate yes\n")
        line = self.reload(proxy, ok=False)
        failures = [ln for ln in proxy.stderr_snapshot()[start:] if "reload failed" in ln]
        self.assertEqual(len(failures), 1, failures)
        self.assertIn(os.path.basename(proxy.config_path), line)
        self.assertEqual(self.name_counts(proxy.port, 4), {"a": 4})
        stats = harness.full_stats(proxy)
        self.assertEqual((stats["epoch"], stats["reloads"], stats["reload_failures"]), (1, 0, 1))
        self.reload_to(proxy, config({"b": servers["b"].port}))
        self.assertEqual(self.name_counts(proxy.port, 4), {"b": 4})
        stats = harness.full_stats(proxy)
        self.assertEqual((stats["epoch"], stats["reloads"], stats["reload_failures"]), (2, 1, 1))

    def test_a_kept_server_keeps_its_health(self):
        # a is down by its checks; a reload that keeps it (same name and address) must not bring
        # it back up, nor send clients to it.
        servers = self.start_named("b")
        ports = {"a": harness.free_port(), "b": servers["b"].port}  # nothing listens on a
        checks = ["check interval 200ms timeout 1s rise 2 fall 2"]
        proxy = self.start_proxy_config(config(ports, backend=checks + ["connect-timeout 1s"]))
        harness.wait_full_stats(proxy, lambda st: st["server.app/a.up"] == 0)
        self.reload_to(proxy, config(ports, backend=checks + ["connect-timeout 2s"]))
        stats = harness.full_stats(proxy)
        self.assertEqual((stats["server.app/a.up"], stats["server.app/a.downs"]), (0, 1))
        self.assertEqual(self.name_counts(proxy.port, 6), {"b": 6})
        after = harness.full_stats(proxy)
        self.assertEqual(after["server.app/a.connect_failures"],
                         stats["server.app/a.connect_failures"],
                         "clients were sent to a server the reload should have kept down")

    def test_settings_that_size_the_process_keep_their_running_values(self):
        servers = self.start_named("a", "b")
        top = "global {\n    buffers %d\n    max-connections 32\n}\n"
        proxy = self.start_proxy_config(top % 64 + config({"a": servers["a"].port}))
        start = len(proxy.stderr_snapshot())
        self.reload_to(proxy, top % 128 + config(self.ports(servers)))
        warnings = [ln for ln in proxy.stderr_snapshot()[start:] if "need a restart" in ln]
        self.assertEqual(len(warnings), 1, proxy.stderr_text()[-2000:])
        self.assertIn("buffers", warnings[0])
        self.assertEqual(harness.full_stats(proxy)["pool_buffers"], 64)
        self.assertIn("b", self.name_counts(proxy.port, 4 * harness.worker_count()),
                      "the rest of the file was not applied")

    def test_a_removed_server_keeps_its_open_connections_until_they_end(self):
        servers = self.start_named("a", "b")
        proxy = self.start_proxy_config(config({"a": servers["a"].port}))
        held = [self.who(proxy.port) for _ in range(3)]
        self.assertEqual([name for name, _ in held], ["a"] * 3)
        self.reload_to(proxy, config({"b": servers["b"].port}))
        self.assertEqual(self.name_counts(proxy.port, 4), {"b": 4})
        self.assertGreaterEqual(max(harness.per_worker(harness.full_stats(proxy),
                                                       "topology_versions")), 2,
                                "no worker keeps the old version for the open connections")
        for i, (_, s) in enumerate(held):
            self.echo(s, f"after the reload {i}\n".encode())
            self.assertEndsNormally(s, f"held connection {i}")
        results = servers["a"].wait_results(3)
        self.assertEqual(sorted(r["outcome"] for r in results if r.get("kind") == "client"),
                         ["eof"] * 3)
        stats = harness.wait_full_stats(
            proxy, lambda st: all(v == 1 for v in harness.per_worker(st, "topology_versions")))
        self.assertEqual(harness.per_worker(stats, "topology_versions"),
                         [1] * len(harness.per_worker(stats, "topology_versions")),
                         "old topology versions kept after their last connection closed")


if __name__ == "__main__":
    unittest.main()

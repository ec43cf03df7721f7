"""Balancing (issue 10): roundrobin weights, leastconn across workers, source hashing (kept by
a reload that removes another server), first with max-connections, backups, no usable server,
and connects retried on another server. Every server says its name (harness.make_named_handler)
so a client knows where the proxy sent it."""

import collections
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ProxyTestCase, free_port, one_listener_config  # noqa: E402

# A long timeout: a refused connect fails at once anyway, and a check of a live server must not
# time out because a busy machine ran the checker late.
FAST_CHECK = "check interval 100ms timeout 1s rise 1 fall 1"


class BalanceTestCase(ProxyTestCase):

    def start_balanced(self, servers, balance, options=None, backend=()):
        """A proxy whose backend `app` has `servers` ({name: server}) in order, each with
        options.get(name, "") after its address, balanced by `balance`."""
        options = options or {}
        lines = [f"{n} 127.0.0.1:{s.port} {options.get(n, '')}".rstrip()
                 for n, s in servers.items()]
        return self.start_proxy_config(one_listener_config(
            lines, backend=[f"balance {balance}"] + list(backend)))

    def wait_health(self, proxy, *names, up=0):
        """Wait until server.app/<name>.up is `up` for every name; returns the statistics."""
        keys = [f"server.app/{n}.up" for n in names]
        stats = harness.wait_full_stats(proxy, lambda st: all(st.get(k) == up for k in keys),
                                        timeout=5)
        for k in keys:
            self.assertEqual(stats.get(k), up, f"{k}; stderr:\n{proxy.stderr_text()[-3000:]}")
        return stats


class Balance(BalanceTestCase):

    def test_roundrobin_follows_the_weights(self):
        servers = self.start_named("a", "b")
        proxy = self.start_balanced(servers, "roundrobin", {"a": "weight 3"})
        workers = harness.worker_count()
        counts = self.name_counts(proxy.port, 40 * workers)
        self.assertEqual(sum(counts.values()), 40 * workers, counts)
        if workers == 1:
            self.assertEqual(counts, {"a": 30, "b": 10})
        else:  # smooth per worker: each worker is at most one pick off 3:1
            self.assertAlmostEqual(counts["a"], 30 * workers, delta=workers, msg=str(counts))

    def test_random_uses_every_server(self):
        servers = self.start_named("a", "b")
        proxy = self.start_balanced(servers, "random")
        counts = self.name_counts(proxy.port, 40)
        self.assertEqual(set(counts), {"a", "b"}, counts)

    def test_leastconn_sends_new_connections_to_the_least_loaded_server(self):
        servers = self.start_named("a", "b")
        proxy = self.start_balanced(servers, "leastconn")
        held = [self.who(proxy.port) for _ in range(4)]
        self.assertEqual(collections.Counter(name for name, _ in held), {"a": 2, "b": 2})
        for name, s in held:
            if name == "a":
                s.close()
        harness.wait_full_stats(proxy, lambda st: st.get("server.app/a.current") == 0)
        self.assertEqual([self.who(proxy.port)[0] for _ in range(2)], ["a", "a"],
                         "with a at 0 connections and b at 2, new connections must go to a")

    def test_source_keeps_each_client_address_on_one_server(self):
        servers = self.start_named("a", "b", "c")
        proxy = self.start_balanced(servers, "source")
        sources = [f"127.0.0.{i}" for i in range(1, 17)]
        first = {ip: self.who_once(proxy.port, source=ip) for ip in sources}
        for _ in range(2):
            self.assertEqual({ip: self.who_once(proxy.port, source=ip) for ip in sources}, first)
        used = collections.Counter(first.values())
        self.assertGreaterEqual(len(used), 2, f"16 client addresses all hashed to one: {used}")
        self.assertTrue(set(used) <= set(servers), used)
        # Remove one server that has clients: only its clients move.
        gone = min(used, key=lambda n: used[n])
        kept = {n: s for n, s in servers.items() if n != gone}
        self.rewrite_config(proxy, one_listener_config(
            [f"{n} 127.0.0.1:{s.port}" for n, s in kept.items()], backend=["balance source"]))
        self.reload(proxy)
        after = {ip: self.who_once(proxy.port, source=ip) for ip in sources}
        for ip in sources:
            if first[ip] == gone:
                self.assertIn(after[ip], kept, f"{ip} (was on the removed {gone})")
            else:
                self.assertEqual(after[ip], first[ip], f"{ip} moved though its server stayed")

    def test_first_fills_servers_in_order_up_to_their_max_connections(self):
        servers = self.start_named("a", "b", "c")
        proxy = self.start_balanced(servers, "first", {"a": "max-connections 2",
                                                       "b": "max-connections 2"})
        held = [self.who(proxy.port) for _ in range(5)]
        self.assertEqual([name for name, _ in held], ["a", "a", "b", "b", "c"])
        held[0][1].close()
        harness.wait_full_stats(proxy, lambda st: st.get("server.app/a.current") == 1)
        self.assertEqual(self.who(proxy.port)[0], "a", "a slot freed on a: back to a")


class Backups(BalanceTestCase):

    def test_a_backup_serves_only_while_no_primary_is_up(self):
        servers = self.start_named("a", "c")
        port_a = servers["a"].port
        proxy = self.start_balanced(servers, "roundrobin", {"c": "backup"}, [FAST_CHECK])
        self.assertEqual(self.name_counts(proxy.port, 6), {"a": 6})
        servers["a"].close()
        self.wait_health(proxy, "a")
        self.assertEqual(self.name_counts(proxy.port, 6), {"c": 6})
        self.start_server(harness.make_named_handler("a"), port=port_a)
        self.wait_health(proxy, "a", up=1)
        self.assertEqual(self.name_counts(proxy.port, 6), {"a": 6})

    def test_no_usable_server_resets_the_client_and_counts_it(self):
        servers = {"a": free_port(), "b": free_port()}  # nothing listens
        text = one_listener_config([f"{n} 127.0.0.1:{p}" for n, p in servers.items()],
                                   backend=[FAST_CHECK])
        proxy = self.start_proxy_config(text)
        before = self.wait_health(proxy, "a", "b")
        self.assertEqual(self.name_counts(proxy.port, 3), {"reset": 3})
        stats = harness.wait_full_stats(
            proxy, lambda st: st["backend.app.no_server"] >= before["backend.app.no_server"] + 3)
        self.assertEqual(stats["backend.app.no_server"] - before["backend.app.no_server"], 3)
        self.assertEqual(stats["server.app/a.connect_failures"],
                         before["server.app/a.connect_failures"],
                         "a client was sent to a server that is down")


class Retries(BalanceTestCase):

    def start_with_a_refusing(self, retries):
        b = self.start_named("b")["b"]
        text = one_listener_config([f"a 127.0.0.1:{free_port()}", f"b 127.0.0.1:{b.port}"],
                                   backend=[f"retries {retries}"])
        return self.start_proxy_config(text)

    def test_a_refused_connect_is_retried_on_another_server(self):
        proxy = self.start_with_a_refusing(2)
        self.assertEqual(self.name_counts(proxy.port, 10), {"b": 10})
        stats = harness.full_stats(proxy)
        self.assertGreaterEqual(stats["server.app/a.connect_failures"], 1)
        self.assertEqual(stats["backend.app.retries"], stats["server.app/a.connect_failures"])
        self.assertEqual(stats["server.app/b.connections"], 10)

    def test_without_retries_a_client_of_the_refusing_server_is_reset(self):
        proxy = self.start_with_a_refusing(0)
        counts = self.name_counts(proxy.port, 4)
        self.assertIn("reset", counts, counts)
        self.assertTrue(set(counts) <= {"b", "reset"}, counts)
        self.assertEqual(harness.full_stats(proxy)["backend.app.retries"], 0)


if __name__ == "__main__":
    unittest.main()

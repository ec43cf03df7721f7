"""Health (issue 10): active checks (TCP connect, send/expect) taking a server down and up again,
traffic avoiding a server that is down, and passive checks (failed connects of real traffic)
taking a server down and trying it again after the check interval."""

import collections
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ProxyTestCase, free_port, one_listener_config  # noqa: E402

# A long timeout: a refused connect or a wrong reply fails at once anyway, and a check of a live
# server must not time out because a busy machine ran the checker or the Python server late.
CHECK = "check interval 200ms timeout 1s rise 2 fall 2"


class HealthTestCase(ProxyTestCase):

    def start_two(self, a_port, b_handler=None, backend=()):
        """A proxy over server a on a_port and server b (a named server, started here)."""
        b = self.start_server(b_handler or harness.make_named_handler("b"))
        return self.start_proxy_config(one_listener_config(
            [f"a 127.0.0.1:{a_port}", f"b 127.0.0.1:{b.port}"], backend=backend))

    def assertLogged(self, proxy, words, start=0, timeout=5.0):
        """A stderr line (from index start) contains every one of `words`; returns its index."""
        def find():
            lines = proxy.stderr_snapshot()
            for i in range(start, len(lines)):
                if all(w in lines[i] for w in words):
                    return i + 1  # never 0: wait_until wants a truthy value
            return None

        found = harness.wait_until(find, timeout)
        self.assertTrue(found, f"no line with {words} within {timeout}s; stderr:\n"
                               f"{proxy.stderr_text()[-3000:]}")
        return found - 1


class ActiveChecks(HealthTestCase):

    def test_a_closed_port_goes_down_traffic_avoids_it_and_it_comes_back(self):
        port_a = free_port()
        proxy = self.start_two(port_a, backend=[CHECK])
        down = self.assertLogged(proxy, ("app/a", "is DOWN"))
        stats = harness.full_stats(proxy)
        self.assertEqual(stats["server.app/a.up"], 0)
        self.assertEqual(stats["server.app/b.up"], 1)
        self.assertEqual(stats["server.app/a.downs"], 1)
        self.assertEqual(self.name_counts(proxy.port, 10), {"b": 10})
        after = harness.full_stats(proxy)
        self.assertEqual(after["server.app/a.connections"], stats["server.app/a.connections"])
        self.assertEqual(after["backend.app.retries"], stats["backend.app.retries"],
                         "clients were sent to a server that is down (and retried)")
        self.start_server(harness.make_named_handler("a"), port=port_a)
        self.assertLogged(proxy, ("app/a", "is UP"), start=down)
        self.assertEqual(harness.full_stats(proxy)["server.app/a.up"], 1)
        self.assertIn("a", self.name_counts(proxy.port, 10), "a is up again but gets no traffic")

    def test_a_reply_that_does_not_match_expect_takes_the_server_down(self):
        a = self.start_server(harness.make_named_handler("a", check_reply=b"NOPE\r\n"))
        proxy = self.start_two(a.port, backend=[CHECK + ' send "PING\\r\\n" expect "PONG"'])
        self.assertLogged(proxy, ("app/a", "is DOWN"))
        self.assertEqual(self.name_counts(proxy.port, 6), {"b": 6})
        checks = [r for r in a.results if isinstance(r, dict) and r.get("kind") == "check"]
        self.assertTrue(checks, "server a never saw a check")
        self.assertTrue(all(r["outcome"] == "answered" for r in checks),
                        f"the checks did not send PING: {checks}")
        stats = harness.full_stats(proxy)
        self.assertEqual(stats["server.app/a.up"], 0)
        self.assertEqual(stats["server.app/b.up"], 1, "b answers PONG and must stay up")
        self.assertNotIn("app/b", "".join(line for line in proxy.stderr_snapshot()
                                          if "is DOWN" in line))

    def test_bare_check_is_a_valid_directive(self):
        rc, out, err, _ = self.run_config(one_listener_config(["a 127.0.0.1:9"],
                                                              backend=["check"]), args=["-t"])
        self.assertEqual(rc, 0, f"stdout {out!r} stderr {err!r}")


class PassiveChecks(HealthTestCase):

    def drive_until_down(self, proxy, limit=30):
        """Clients one by one until a is DOWN (at most `limit`): each must be served by b (a
        failed connect is retried). Returns the statistics once a is down."""
        for i in range(limit):
            self.assertEqual(self.who_once(proxy.port), "b", f"client {i}")
            stats = harness.full_stats(proxy)
            if stats["server.app/a.up"] == 0:
                return stats
        self.fail(f"a still up after {limit} clients whose connects to it failed; stderr:\n"
                  f"{proxy.stderr_text()[-3000:]}")

    def test_failed_connects_take_a_server_down_and_it_is_tried_again_later(self):
        port_a = free_port()
        proxy = self.start_two(port_a)
        stats = self.drive_until_down(proxy)
        self.assertEqual(stats["server.app/a.downs"], 1)
        self.assertGreaterEqual(stats["server.app/a.connect_failures"], 3)  # default fall 3
        self.assertLogged(proxy, ("app/a", "is DOWN"))
        # Still refusing: after the check interval (2 s default) traffic tries it once more,
        # the client being retried on b.
        failures = stats["server.app/a.connect_failures"]
        deadline = time.monotonic() + 8
        for i in range(200):
            self.assertEqual(self.who_once(proxy.port), "b", f"client {i} after the down")
            now = harness.full_stats(proxy)["server.app/a.connect_failures"]
            if now > failures or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertGreater(now, failures, "a server passive checks took down was never tried "
                                          "again")

    def test_a_server_passive_checks_took_down_is_used_again_once_it_answers(self):
        port_a = free_port()
        proxy = self.start_two(port_a)
        self.drive_until_down(proxy)
        self.start_server(harness.make_named_handler("a"), port=port_a)
        deadline = time.monotonic() + 8
        seen = collections.Counter()
        for _ in range(200):
            seen[self.who_once(proxy.port)] += 1
            if seen["a"] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertTrue(set(seen) <= {"a", "b"}, seen)
        self.assertGreater(seen["a"], 0, f"a never used again: {seen}")
        stats = harness.wait_full_stats(proxy, lambda st: st["server.app/a.up"] == 1)
        self.assertEqual(stats["server.app/a.up"], 1)


if __name__ == "__main__":
    unittest.main()

"""Prometheus metrics (issue 14): `metrics ADDR:PORT` / --metrics serves GET /metrics in text
format 0.0.4. A real scrape passes `promtool check metrics`; its values match the traffic the
test made (per listener, backend, server and summed over workers, histogram counts); a server
whose health checks fail shows up 0; other paths, methods and malformed heads get 404, 405 and
400; a flood of metrics connections is refused while the proxy keeps relaying; bad values are
refused with one line."""

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ProxyTestCase, free_port, one_listener_config  # noqa: E402

MAX_SESSIONS = 4  # MetricsServer::kMaxSessions
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$')


def http(port, request, timeout=10.0):
    """Sends `request` (bytes) to 127.0.0.1:port, reads to EOF: (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        data, _ = harness.recv_until_close(s)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1]) if lines and lines[0].startswith("HTTP/") else 0
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def scrape(port):
    status, headers, body = http(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    if status != 200:
        raise AssertionError(f"scrape answered {status}")
    return headers, body.decode("utf-8")


def samples(text):
    """'name{labels}' -> float for every sample line."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if m is None:
            raise AssertionError(f"not a sample line: {line!r}")
        out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def total(values, name):
    """The sum of every series of `name` (no other family shares the prefix plus a brace)."""
    return sum(v for k, v in values.items() if k == name or k.startswith(name + "{"))


def promtool():
    """promtool's path. Missing: the test fails under CI (CI is set), else it is skipped."""
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI"):
            raise AssertionError("promtool not found: install Debian's prometheus package "
                                 "(scripts/install-deps.sh)")
        raise unittest.SkipTest("promtool not found (scripts/install-deps.sh installs it)")
    return path


class MetricsTestCase(ProxyTestCase):

    def start_with_metrics(self, servers, backend=(), listener=()):
        top = "global {\n    metrics 127.0.0.1:@METRICS@\n}"
        proxy = self.start_proxy_config(one_listener_config(servers, backend=backend,
                                                            listener=listener, top=top))
        proxy.metrics = proxy.values["METRICS"]
        return proxy

    def wait_values(self, proxy, predicate, timeout=10.0):
        """Scrapes until predicate(values) holds (a 503, every session busy, is tried again);
        returns the last values."""
        last = {}

        def check():
            status, _, body = http(proxy.metrics, b"GET /metrics HTTP/1.1\r\n\r\n")
            if status == 503:
                return False  # sessions just closed by the client are not yet free
            self.assertEqual(status, 200)
            last["v"] = samples(body.decode("utf-8"))
            return predicate(last["v"])

        ok = harness.wait_until(check, timeout, interval=0.1)
        self.assertTrue(ok, f"metrics never satisfied the condition: {last.get('v')}")
        return last["v"]


class Scrape(MetricsTestCase):

    def test_a_scrape_passes_promtool_and_matches_the_traffic(self):
        s1 = self.start_server()
        s2 = self.start_server()
        proxy = self.start_with_metrics([f"s1 127.0.0.1:{s1.port}", f"s2 127.0.0.1:{s2.port}"])
        sizes = [1, 100, 5000, 70000, 12345, 3]
        for n in sizes:
            with self.connect(proxy.port) as c:
                c.sendall(b"x" * n)
                self.assertEqual(len(harness.recv_exact(c, n)), n)
                c.shutdown(socket.SHUT_WR)
                self.assertEqual(harness.recv_until_close(c), (b"", "eof"))
        count = len(sizes)
        sent = sum(sizes)
        values = self.wait_values(
            proxy, lambda v: total(v, "edgeproxy_connections_closed_total") == count)
        self.assertEqual(total(values, "edgeproxy_connections_accepted_total"), count)
        self.assertEqual(total(values, "edgeproxy_connections_current"), 0)
        self.assertEqual(total(values, "edgeproxy_client_to_upstream_bytes_total"), sent)
        self.assertEqual(total(values, "edgeproxy_upstream_to_client_bytes_total"), sent)
        web = '{listener="web"}'
        self.assertEqual(values["edgeproxy_listener_connections_total" + web], count)
        self.assertEqual(values["edgeproxy_listener_current_connections" + web], 0)
        self.assertEqual(values["edgeproxy_listener_client_to_upstream_bytes_total" + web], sent)
        self.assertEqual(values["edgeproxy_listener_upstream_to_client_bytes_total" + web], sent)
        app = '{backend="app"}'
        self.assertEqual(values["edgeproxy_backend_connections_total" + app], count)
        self.assertEqual(values["edgeproxy_backend_client_to_upstream_bytes_total" + app], sent)
        per_server = {}
        for name, server in (("s1", s1), ("s2", s2)):
            labels = f'{{backend="app",server="{name}"}}'
            conns = values["edgeproxy_server_connections_total" + labels]
            server.wait_results(int(conns))
            got = sum(r["bytes"] for r in server.results)
            self.assertEqual(values["edgeproxy_server_client_to_upstream_bytes_total" + labels],
                             got, name)
            self.assertEqual(values["edgeproxy_server_upstream_to_client_bytes_total" + labels],
                             got, name)
            self.assertEqual(values["edgeproxy_server_up" + labels], 1)
            per_server[name] = conns
        self.assertEqual(sum(per_server.values()), count)
        for h in ("edgeproxy_connection_duration_seconds", "edgeproxy_backend_connect_seconds"):
            self.assertEqual(total(values, h + "_count"), count, h)
            inf = sum(v for k, v in values.items()
                      if k.startswith(h + "_bucket{") and 'le="+Inf"' in k)
            self.assertEqual(inf, count, h)
        self.assertEqual(total(values, "edgeproxy_pool_blocks_in_use"), 0)
        self.assertEqual(total(values, "edgeproxy_splice_pipes_in_use"), 0)
        self.assertEqual(values["edgeproxy_workers"], harness.worker_count())

        headers, body = scrape(proxy.metrics)
        self.assertEqual(headers["content-type"], "text/plain; version=0.0.4")
        self.assertEqual(int(headers["content-length"]), len(body.encode()))
        check = subprocess.run([promtool(), "check", "metrics"], input=body.encode(),
                               capture_output=True, timeout=60)
        self.assertEqual(check.returncode, 0, "promtool check metrics: " +
                         (check.stdout + check.stderr).decode("utf-8", "replace"))

    def test_command_line_flag_serves_metrics_and_head_has_no_body(self):
        backend = self.start_server()
        port = free_port()
        # Two picks of a free port can return the same one: the listener takes another.
        listen = next(p for p in iter(free_port, None) if p != port)
        proxy = self.start_proxy(backend.port, port=listen,
                                 extra=["--metrics", f"127.0.0.1:{port}"])
        self.assertEqual(harness.echo_roundtrip(proxy.port, b"abc\n"), b"abc\n")
        proxy.metrics = port
        values = self.wait_values(
            proxy, lambda v: total(v, "edgeproxy_connections_closed_total") == 1)
        self.assertEqual(values['edgeproxy_listener_connections_total{listener="main"}'], 1)
        status, headers, body = http(port, b"HEAD /metrics HTTP/1.0\r\n\r\n")
        self.assertEqual(status, 200)
        self.assertGreater(int(headers["content-length"]), 0)
        self.assertEqual(body, b"")

    def test_a_server_whose_checks_fail_shows_up_zero(self):
        a = self.start_server()
        b = self.start_server()
        proxy = self.start_with_metrics([f"a 127.0.0.1:{a.port}", f"b 127.0.0.1:{b.port}"],
                                        backend=["check interval 200ms timeout 1s rise 2 fall 2"])
        up_a = 'edgeproxy_server_up{backend="app",server="a"}'
        up_b = 'edgeproxy_server_up{backend="app",server="b"}'
        self.wait_values(proxy, lambda v: v[up_a] == 1 and v[up_b] == 1)
        a.close()
        values = self.wait_values(proxy, lambda v: v[up_a] == 0)
        self.assertEqual(values[up_b], 1)
        self.assertEqual(values['edgeproxy_server_downs_total{backend="app",server="a"}'], 1)


class Refusals(MetricsTestCase):

    def test_other_paths_methods_and_malformed_heads(self):
        backend = self.start_server()
        proxy = self.start_with_metrics([f"s 127.0.0.1:{backend.port}"])
        port = proxy.metrics
        self.assertEqual(http(port, b"GET / HTTP/1.1\r\n\r\n")[0], 404)
        self.assertEqual(http(port, b"GET /metrics/x HTTP/1.0\r\n\r\n")[0], 404)
        status, headers, _ = http(port, b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
        self.assertEqual(status, 405)
        self.assertEqual(headers["allow"], "GET, HEAD")
        self.assertEqual(http(port, b"GET /metrics HTTP/3.0\r\n\r\n")[0], 400)
        self.assertEqual(http(port, b"GET /metrics HTTP/1.1\r\nbroken header\r\n\r\n")[0], 400)
        self.assertEqual(http(port, b"\x16\x03\x01\x00\x05hello\r\n\r\n")[0], 400)
        # A head that never ends within 8 KiB is closed without an answer.
        status, _, body = http(port, b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 9000)
        self.assertEqual((status, body), (0, b""))
        values = samples(scrape(port)[1])
        self.assertEqual(values["edgeproxy_metrics_errors_total"], 7)
        self.assertEqual(values["edgeproxy_metrics_scrapes_total"], 1)

    def test_a_slow_reader_and_an_unfinished_head_block_nothing(self):
        backend = self.start_server()
        proxy = self.start_with_metrics([f"s 127.0.0.1:{backend.port}"])
        slow = socket.create_connection(("127.0.0.1", proxy.metrics), timeout=20)
        self.addCleanup(slow.close)
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        slow.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")  # never read until the end
        unfinished = socket.create_connection(("127.0.0.1", proxy.metrics), timeout=20)
        self.addCleanup(unfinished.close)
        unfinished.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # no blank line
        values = self.wait_values(proxy, lambda v: True)
        self.assertGreaterEqual(values["edgeproxy_metrics_scrapes_total"], 2)
        self.assertEqual(harness.echo_roundtrip(proxy.port, b"relayed\n"), b"relayed\n")
        # The unfinished head is closed by its deadline without an answer.
        self.assertEqual(harness.recv_until_close(unfinished), (b"", "eof"))
        data, outcome = harness.recv_until_close(slow)
        self.assertEqual(outcome, "eof")
        self.assertTrue(data.startswith(b"HTTP/1.1 200 OK\r\n"))

    def test_a_flood_of_metrics_connections_is_refused_while_the_proxy_relays(self):
        backend = self.start_server()
        proxy = self.start_with_metrics([f"s 127.0.0.1:{backend.port}"])
        held = []
        for _ in range(MAX_SESSIONS):
            held.append(socket.create_connection(("127.0.0.1", proxy.metrics), timeout=10))
        self.addCleanup(lambda: [s.close() for s in held])
        flood = 30
        refused = 0
        for i in range(flood):
            with socket.create_connection(("127.0.0.1", proxy.metrics), timeout=10) as s:
                data, _ = harness.recv_until_close(s)
                refused += data.startswith(b"HTTP/1.1 503 ")
            if i % 10 == 0:
                self.assertEqual(harness.echo_roundtrip(proxy.port, b"still here\n"),
                                 b"still here\n")
        self.assertEqual(refused, flood)
        for s in held:
            s.close()
        # The held sessions' closes race the next scrape: until the server has seen them, a
        # scrape is refused too (and counted). So scrape by hand, counting those refusals.
        deadline = time.monotonic() + 10
        while True:
            with socket.create_connection(("127.0.0.1", proxy.metrics), timeout=10) as s:
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data, _ = harness.recv_until_close(s)
            if not data.startswith(b"HTTP/1.1 503 "):
                break
            refused += 1
            self.assertLess(time.monotonic(), deadline, "the held sessions were never let go")
            time.sleep(0.05)
        values = self.wait_values(proxy, lambda v: True)
        self.assertEqual(values["edgeproxy_metrics_refused_total"], refused)


class BadValues(ProxyTestCase):

    def test_bad_metrics_values_are_refused_with_one_line(self):
        for value in ("nope", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "unix:/tmp/m.sock",
                      ":9100", "[::1]9100"):
            harness.assert_refused(self, ["-b", "127.0.0.1", "-P", "9", "--metrics", value],
                                   ("--metrics", value))

    def test_a_bad_value_in_the_file_names_its_line(self):
        rc, out, err, path = self.run_config(
            "global {\n    metrics localhost\n}\n" + one_listener_config(["s 127.0.0.1:9"]))
        self.assertEqual(rc, 2, err)
        lines = err.splitlines()
        self.assertEqual(len(lines), 1, err)
        self.assertIn(":2:", lines[0])
        self.assertIn("metrics", lines[0])

    def test_a_metrics_port_in_use_fails_the_start_with_one_line(self):
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        self.addCleanup(taken.close)
        port = taken.getsockname()[1]
        rc, out, err, _ = harness.run_binary(
            ["-l", "127.0.0.1", "-p", str(free_port()), "-b", "127.0.0.1", "-P", "9",
             "--metrics", f"127.0.0.1:{port}"])
        self.assertEqual(rc, 1, err)
        lines = err.splitlines()
        self.assertEqual(len(lines), 1, err)
        self.assertIn("metrics", lines[0])
        self.assertIn("in use", lines[0])

    def test_a_metrics_address_that_a_listener_binds_is_refused(self):
        rc, out, err, path = self.run_config(
            "global {\n    metrics 127.0.0.1:@PORT@\n}\n" + one_listener_config(["s 127.0.0.1:9"]),
            args=["-t"])
        self.assertEqual(rc, 1, err)
        self.assertIn("metrics", err)
        self.assertIn("as does", err)


if __name__ == "__main__":
    unittest.main()

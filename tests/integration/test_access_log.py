"""The access log (docs/access-log.md): one line per connection at close, checked against what
each test did: the client's port, the listener and server names, the bytes each way (exactly, as
the peers counted them) and how the connection ended (client FIN, server FIN, client reset,
connect refused, idle timeout, upload limit, a route's reject, a per-client refusal, an admin
`kill conn`). Then the destinations (a file reopened on SIGUSR2 after a logrotate-style rename,
stdout), -q, the lines flushed at exit, a reload that turns the log on, and refused values."""

import os
import signal
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ProxyTestCase, recv_exact  # noqa: E402
from test_admin import AdminSession  # noqa: E402  (the class only: no test case is imported)

WAIT = 10.0  # seconds for a line to reach the file (the writer drains every 100 ms)


def read_lines(path):
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def fields(line):
    """The default line's fields: time, client, listener, backend/server, Tc, Tt, U, B, end."""
    parts = line.split(" ")
    assert len(parts) == 9, line
    return {"time": parts[0], "client": parts[1], "listener": parts[2], "route": parts[3],
            "connect_ms": int(parts[4]), "duration_ms": int(parts[5]), "up": int(parts[6]),
            "down": int(parts[7]), "end": parts[8]}


class AccessLogCase(ProxyTestCase):

    def log_path(self):
        return os.path.join(self.config_dir(), "access.log")

    def start_logged(self, backend_port, extra=()):
        return self.start_proxy(backend_port, extra=["--access-log", self.log_path()] + list(extra))

    def start_with_listener(self, backend_port, name, lines):
        """A file logging to log_path(): backend `app` (server `a`) and listener `name` on @PORT@
        with the directives `lines`."""
        body = "".join(f"    {x}\n" for x in lines)
        return self.start_proxy_config(
            "global {\n    access-log @DIR@/access.log\n}\n"
            "backend app {\n    server a 127.0.0.1:@B@\n}\n"
            f"listener {name} {{\n    bind 127.0.0.1:@PORT@\n{body}}}\n",
            values={"B": backend_port})

    def connect_refused_early(self, port):
        """Connects to `port` from a port bound first (a reset the proxy sends at once may beat
        connect()'s return) and waits for the proxy to close; returns the local port."""
        s = socket.socket()
        self.addCleanup(harness.safe_close, s)
        s.bind(("127.0.0.1", 0))
        s.settimeout(10)
        try:
            s.connect(("127.0.0.1", port))
            self.assertClosedByProxy(s, 10)
        except (ConnectionResetError, ConnectionRefusedError):
            pass
        return s.getsockname()[1]

    def wait_line(self, port, path=None, source=None):
        """The line of the client whose local port is `port`, from `path` (the log file) or from
        `source()` (a list of lines)."""
        needle = f"127.0.0.1:{port} "
        get = source or (lambda: read_lines(path or self.log_path()))

        def found():
            for line in get():
                if needle in line:
                    return line
            return None

        line = harness.wait_until(found, WAIT)
        self.assertTrue(line, f"no access-log line for client port {port}; lines: {get()}")
        return fields(line)


class Ends(AccessLogCase):

    def test_client_fin_line_counts_bytes_each_way(self):
        backend = self.start_server()
        # -q does not silence it (and hides the "listening" line readiness waits for).
        port = harness.free_port()
        proxy = harness.Proxy(["-q", "--access-log", self.log_path()] +
                              harness.proxy_args(port, backend.port) +
                              harness.default_worker_args())
        self.addCleanup(self._cleanup_proxy, proxy)
        proxy.start(wait_ready=False)
        self.assertTrue(harness.wait_serving(port, b"x", timeout=10), proxy.stderr_text())
        s = self.connect(port)
        port = s.getsockname()[1]
        payload = os.urandom(3000)
        s.sendall(payload)
        self.assertEqual(recv_exact(s, len(payload)), payload)
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(s.recv(16), b"")
        s.close()
        f = self.wait_line(port)
        self.assertEqual(f["client"], f"127.0.0.1:{port}")
        self.assertEqual(f["listener"], "main")
        self.assertEqual(f["route"], "main/main")
        self.assertEqual((f["up"], f["down"]), (3000, 3000))
        self.assertEqual(f["end"], "client_fin")
        self.assertGreaterEqual(f["connect_ms"], 0)
        self.assertGreaterEqual(f["duration_ms"], 0)
        self.assertRegex(f["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")

    def test_server_fin(self):
        backend = self.start_server(harness.make_send_then_half_close_handler(b"hello"))
        proxy = self.start_logged(backend.port)
        s = self.connect(proxy.port)
        port = s.getsockname()[1]
        self.assertEqual(recv_exact(s, 5), b"hello")
        self.assertEqual(s.recv(16), b"")
        s.sendall(b"abcdefg")
        s.shutdown(socket.SHUT_WR)
        result = backend.wait_results(1)[0]
        self.assertEqual(result["bytes"], 7)
        f = self.wait_line(port)
        self.assertEqual((f["up"], f["down"]), (7, 5))
        self.assertEqual(f["end"], "server_fin")

    def test_client_reset(self):
        backend = self.start_server()
        proxy = self.start_logged(backend.port)
        s = self.connect(proxy.port)
        port = s.getsockname()[1]
        s.sendall(b"0123456789")
        self.assertEqual(recv_exact(s, 10), b"0123456789")
        harness.reset_close(s)
        f = self.wait_line(port)
        self.assertEqual((f["up"], f["down"]), (10, 10))
        self.assertEqual(f["end"], "client_rst")

    def test_connect_refused(self):
        dead_port = harness.free_port()  # nothing listens there
        proxy = self.start_logged(dead_port)
        f = self.wait_line(self.connect_refused_early(proxy.port))
        self.assertEqual(f["end"], "connect_failed")
        self.assertEqual(f["route"], "main/main")
        self.assertEqual(f["connect_ms"], -1)
        self.assertEqual((f["up"], f["down"]), (0, 0))

    def test_idle_timeout(self):
        backend = self.start_server()
        proxy = self.start_logged(backend.port, extra=["--idle-timeout", "1"])
        s = self.connect(proxy.port)
        port = s.getsockname()[1]
        s.sendall(b"ping")
        self.assertEqual(recv_exact(s, 4), b"ping")
        self.assertClosedByProxy(s, 10)
        f = self.wait_line(port)
        self.assertEqual(f["end"], "idle_timeout")
        self.assertEqual((f["up"], f["down"]), (4, 4))

    def test_upload_limit(self):
        backend = self.start_server(harness.sink_handler)
        proxy = self.start_with_listener(backend.port, "limited", ["backend app", "upload-limit 64k"])
        s = self.connect(proxy.port)
        port = s.getsockname()[1]
        try:
            s.sendall(os.urandom(1024 * 1024))
        except (ConnectionResetError, BrokenPipeError):
            pass
        self.assertClosedByProxy(s, 10)
        received = backend.wait_results(1)[0]["bytes"]
        f = self.wait_line(port)
        self.assertEqual(f["end"], "upload_limit")
        self.assertEqual(f["listener"], "limited")
        self.assertEqual(f["route"], "app/a")
        # The reset discards what the server had not read yet: the line gives what the proxy
        # delivered, as the listener's counter does.
        stats = proxy.stats()
        self.assertEqual(f["up"], stats["listener.limited.bytes_in"])
        self.assertGreaterEqual(f["up"], received)
        self.assertGreater(f["up"], 64 * 1024)
        self.assertEqual(f["down"], 0)

    def test_route_reject_and_close(self):
        backend = self.start_server()
        proxy = self.start_with_listener(
            backend.port, "routed",
            ["route {", "    prefix \"X:\" reject", "    prefix \"Q:\" close", "}", "backend app"])
        rejected = self.connect(proxy.port)
        rejected_port = rejected.getsockname()[1]
        rejected.sendall(b"X:")
        self.assertClosedByProxy(rejected, 10)
        closed = self.connect(proxy.port)
        closed_port = closed.getsockname()[1]
        closed.sendall(b"Q:")
        self.assertClosedByProxy(closed, 10)
        f = self.wait_line(rejected_port)
        self.assertEqual((f["end"], f["route"], f["listener"]), ("route_reject", "-", "routed"))
        f = self.wait_line(closed_port)
        self.assertEqual((f["end"], f["route"]), ("route_close", "-"))

    def test_inspect_timeout_that_closes_is_logged_inspect_timeout(self):
        # on-timeout close (the default) ends the connection because of the timeout, not a rule:
        # the soak found it logged route_close.
        backend = self.start_server()
        proxy = self.start_with_listener(
            backend.port, "web",
            ["inspect-timeout 300ms", "route {", "    prefix \"A \" backend app", "}"])
        s = self.connect(proxy.port)
        port = s.getsockname()[1]
        s.sendall(b"A")
        self.assertClosedByProxy(s, 10)
        f = self.wait_line(port)
        self.assertEqual((f["end"], f["route"], f["listener"], f["up"]),
                         ("inspect_timeout", "-", "web", 0))

    def test_per_client_refusal(self):
        backend = self.start_server()
        proxy = self.start_with_listener(backend.port, "web",
                                         ["backend app", "max-connections-per-client 1"])
        first = self.connect(proxy.port)
        first.sendall(b"a")
        self.assertEqual(recv_exact(first, 1), b"a")
        f = self.wait_line(self.connect_refused_early(proxy.port))
        self.assertEqual((f["end"], f["listener"], f["route"]), ("client_refused", "web", "-"))

    def test_admin_kill(self):
        backend = self.start_server()
        admin_path = os.path.join(self.config_dir(), "admin.sock")
        proxy = self.start_logged(backend.port, extra=["--admin", admin_path])
        s = self.connect(proxy.port)
        port = s.getsockname()[1]
        s.sendall(b"hello")
        self.assertEqual(recv_exact(s, 5), b"hello")
        a = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(harness.safe_close, a)
        a.settimeout(10)
        a.connect(admin_path)
        session = AdminSession(a)
        rows = [line.split() for line in session.command("show conns")[1:]]
        ids = [row[0] for row in rows if row[1] == f"127.0.0.1:{port}"]
        self.assertEqual(len(ids), 1, rows)
        self.assertEqual(session.command("kill conn " + ids[0]), ["ok"])
        f = self.wait_line(port)
        self.assertEqual((f["end"], f["up"], f["down"]), ("admin_kill", 5, 5))


class Destinations(AccessLogCase):

    def roundtrip(self, port):
        s = self.connect(port)
        local = s.getsockname()[1]
        s.sendall(b"hi")
        self.assertEqual(recv_exact(s, 2), b"hi")
        s.close()
        return local

    def test_sigusr2_reopens_after_rename(self):
        backend = self.start_server()
        proxy = self.start_logged(backend.port)
        first = self.roundtrip(proxy.port)
        self.wait_line(first)
        rotated = self.log_path() + ".1"
        os.rename(self.log_path(), rotated)
        # Until USR2 the proxy still writes to the renamed file.
        second = self.roundtrip(proxy.port)
        self.wait_line(second, path=rotated)
        proxy.send_signal(signal.SIGUSR2)
        self.assertTrue(harness.wait_until(lambda: os.path.exists(self.log_path()), WAIT),
                        "SIGUSR2 did not create the file again")
        third = self.roundtrip(proxy.port)
        self.wait_line(third)
        self.assertEqual(len(read_lines(self.log_path())), 1, read_lines(self.log_path()))
        self.assertEqual(len(read_lines(rotated)), 2, read_lines(rotated))
        self.assertEqual(oct(os.stat(self.log_path()).st_mode & 0o777), oct(0o640))
        self.assertTrue(proxy.alive())

    def test_stdout(self):
        backend = self.start_server()
        proxy = self.start_proxy(backend.port, extra=["--access-log", "stdout"])
        port = self.roundtrip(proxy.port)
        f = self.wait_line(port, source=lambda: list(proxy.stdout_lines))
        self.assertEqual((f["up"], f["down"], f["end"]), (2, 2, "client_fin"))

    def test_lines_are_flushed_at_exit(self):
        backend = self.start_server()
        proxy = self.start_logged(backend.port)
        ports = [self.roundtrip(proxy.port) for _ in range(20)]
        # Every client closed (its FIN read) before the stop: each connection ends, and its line
        # is written, before the process exits.
        harness.wait_until(lambda: proxy.stats().get("closed", 0) >= 20, WAIT)
        self.assertEqual(proxy.stop(signal.SIGTERM), 0)
        text = "\n".join(read_lines(self.log_path()))
        for p in ports:
            self.assertIn(f"127.0.0.1:{p} ", text)

    def test_reload_turns_the_log_on_and_changes_the_format(self):
        backend = self.start_server()
        config = ("global {\n@LOG@}\n"
                  "backend app {\n    server a 127.0.0.1:@B@\n}\n"
                  "listener web {\n    bind 127.0.0.1:@PORT@\n    backend app\n}\n")
        proxy = self.start_proxy_config(config.replace("@LOG@", ""), values={"B": backend.port})
        before = self.roundtrip(proxy.port)
        self.rewrite_config(proxy, config.replace(
            "@LOG@", "    access-log @DIR@/access.log\n    access-log-format \"%cp %e %U\"\n"))
        self.reload(proxy)
        # A report answered by every worker: each has installed the new version (a worker slow
        # to confirm it may still accept a connection under the old one in the same iteration).
        proxy.stats()
        after = self.roundtrip(proxy.port)
        line = harness.wait_until(
            lambda: next((x for x in read_lines(self.log_path()) if x.startswith(f"{after} ")),
                         None), WAIT)
        self.assertEqual(line, f"{after} client_fin 2", read_lines(self.log_path()))
        self.assertFalse(any(x.startswith(f"{before} ") for x in read_lines(self.log_path())))


class Refusals(AccessLogCase):

    def test_unknown_format_variable_names_file_line_column(self):
        path = self.write_config(
            "global {\n    access-log stderr\n    access-log-format \"%ci %zz\"\n}\n"
            "backend app {\n    server a 127.0.0.1:1\n}\n"
            "listener web {\n    bind 127.0.0.1:0\n    backend app\n}\n")
        rc, out, err, _ = harness.run_binary(["-c", path])
        self.assertNotEqual(rc, 0)
        lines = err.splitlines()
        self.assertEqual(len(lines), 1, err)
        self.assertIn(f"{path}:3:", lines[0])
        self.assertIn("unknown variable '%z'", lines[0])

    def test_unwritable_file(self):
        rc, out, err, _ = harness.run_binary(
            ["-l", "127.0.0.1", "-p", str(harness.free_port()), "--access-log",
             "/nonexistent-dir/access.log"])
        self.assertNotEqual(rc, 0)
        lines = err.splitlines()
        self.assertEqual(len(lines), 1, err)
        self.assertIn("/nonexistent-dir/access.log", lines[0])

    def test_empty_destination(self):
        harness.assert_refused(self, ["--access-log", ""], ["access-log"])

    def test_unknown_variable_on_the_command_line(self):
        harness.assert_refused(self, ["--access-log", "stderr", "--access-log-format", "%ci %q"],
                               ["access-log-format", "unknown variable '%q' at character 5"])


if __name__ == "__main__":
    unittest.main()

"""Admin socket (issue 14, docs/admin.md): every command, drain and weights as the balancers see
them, kill conn, reload and shutdown through the socket, refused peers (another uid through
setpriv, a wrong TCP token), a reader that never reads, and a flood of admin connections. Runs on
both backends; asserts behaviour, never timings."""

import json
import os
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ProxyTestCase, one_listener_config, wait_until  # noqa: E402

TIMEOUT = 10.0


class AdminSession:
    """One admin connection: command() sends a line and returns the answer's lines (the empty
    line that ends it excluded)."""

    def __init__(self, sock):
        self.sock = sock
        self.sock.settimeout(TIMEOUT)
        self.buffer = b""

    def read_line(self):
        while b"\n" not in self.buffer:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError(f"admin session closed; pending {self.buffer!r}")
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()

    def answer(self):
        lines = []
        while True:
            line = self.read_line()
            if line == "":
                return lines
            lines.append(line)

    def command(self, text):
        self.sock.sendall(text.encode() + b"\n")
        return self.answer()

    def close(self):
        harness.safe_close(self.sock)


class AdminTestCase(ProxyTestCase):

    def admin_path(self):
        # A directory others may traverse: the SO_PEERCRED check, not the path, must refuse them.
        d = os.path.join(self.config_dir(), "run")
        os.makedirs(d, exist_ok=True)
        os.chmod(self.config_dir(), 0o711)
        os.chmod(d, 0o711)
        return os.path.join(d, "admin.sock")

    def start_admin_proxy(self, servers, balance="roundrobin", admin_lines=(), extra=()):
        """A proxy whose backend `app` has `servers` ({name: server}), with an admin socket at
        admin_path() (mode 0666) plus `admin_lines` in the global block."""
        self.sock_path = self.admin_path()
        top = "\n".join(["global {", f"    admin unix:{self.sock_path} mode 0666"] +
                        [f"    {line}" for line in admin_lines] + ["}"])
        lines = [f"{n} 127.0.0.1:{s.port}" for n, s in servers.items()]
        return self.start_proxy_config(
            one_listener_config(lines, backend=[f"balance {balance}"], top=top), extra=extra)

    def start_tcp_admin_proxy(self, token="tok"):
        """start_admin_proxy() with server a, plus a TCP admin socket whose token is `token`;
        returns the TCP port."""
        token_path = os.path.join(self.config_dir(), "token")
        with open(token_path, "w") as f:
            f.write(token + "\n")
        port = harness.free_port()
        self.start_admin_proxy(
            self.start_named("a"),
            admin_lines=[f"admin tcp 127.0.0.1:{port} token-file {token_path}"])
        return port

    def admin(self, path=None):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(TIMEOUT)
        s.connect(path or self.sock_path)
        self.addCleanup(harness.safe_close, s)
        self._own(s)
        return AdminSession(s)

    def info(self, session):
        return dict(line.split(" ", 1) for line in session.command("show info"))

    def servers(self, session, backend="app"):
        """{server name: {"up": ..., "drained": ..., "weight": int, other counters}}"""
        out = {}
        for line in session.command(f"show servers {backend}"):
            words = line.split()
            name = words[0].split("/", 1)[1]
            fields = {"address": words[1], "up": words[2], "state": words[3]}
            rest = words[4:]
            fields.update({rest[i]: int(rest[i + 1]) if rest[i + 1].isdigit() else rest[i + 1]
                           for i in range(0, len(rest) - 1, 2) if rest[i] != "backup"})
            out[name] = fields
        return out


class AdminCommands(AdminTestCase):

    def test_help_lists_every_command_and_bad_commands_keep_the_session(self):
        proxy = self.start_admin_proxy(self.start_named("a"))
        a = self.admin()
        helped = "\n".join(a.command("help"))
        for cmd in ("show info", "show stats", "show listeners", "show backends", "show servers",
                    "show conns", "disable server", "enable server", "set weight", "kill conn",
                    "reload", "shutdown"):
            self.assertIn(cmd, helped)
        for bad in ("bogus", "show", "show nothing", "set weight app/a 0", "set weight app 3",
                    "kill conn x", "show conns 0", "shutdown now", "\x01\x02", "disable server"):
            answer = a.command(bad)
            self.assertEqual(len(answer), 1, (bad, answer))
            self.assertTrue(answer[0].startswith("error: "), (bad, answer))
        # An overlong line is refused once, whole; the session goes on.
        answer = a.command("show " + "x" * 100_000)
        self.assertEqual(answer, ["error: line too long"])
        self.assertEqual(a.command("show backends")[0].split()[0], "app")
        self.assertGreaterEqual(int(self.info(a)["admin.command_errors"]), 11)
        self.assertEqual(self.who_once(proxy.port), "a")

    def test_a_pipeline_then_half_close_gets_every_answer(self):
        """What `printf 'show stats json\\nhelp\\n' | nc -U PATH` does."""
        self.start_admin_proxy(self.start_named("a"))
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(harness.safe_close, s)
        s.settimeout(TIMEOUT)
        s.connect(self.sock_path)
        s.sendall(b"show stats json\nhelp\nshow conns\n")
        s.shutdown(socket.SHUT_WR)
        data, outcome = harness.recv_until_close(s)
        self.assertEqual(outcome, "eof")
        answers = data.decode().split("\n\n")
        self.assertEqual(answers[-1], "")
        self.assertEqual(len(answers), 4, answers)
        self.assertEqual(json.loads(answers[0])["total"]["accepted"], 0)
        self.assertTrue(answers[1].startswith("help "), answers[1])
        self.assertTrue(answers[2].startswith("# 0 open, 0 shown"), answers[2])

    def test_show_info_listeners_backends_servers(self):
        proxy = self.start_admin_proxy(self.start_named("a", "b"))
        self.assertIn(self.who_once(proxy.port), ("a", "b"))
        a = self.admin()
        info = self.info(a)
        self.assertEqual(info["version"].count("."), 2)
        self.assertIn(info["backend"], ("epoll", "io_uring"))
        self.assertEqual(int(info["workers"]), harness.worker_count())
        self.assertIn("max_connections", info)
        self.assertIn("buffers", info)
        self.assertEqual(info["admin"], "unix:" + self.sock_path)
        listeners = a.command("show listeners")
        self.assertEqual(len(listeners), 1)
        self.assertTrue(listeners[0].startswith("web mode tcp binds 127.0.0.1:"), listeners)
        self.assertIn(" backend app connections 1 ", listeners[0])
        backends = a.command("show backends")
        self.assertTrue(backends[0].startswith("app balance roundrobin servers 2 up 2 "), backends)
        servers = self.servers(a)
        self.assertEqual(set(servers), {"a", "b"})
        self.assertEqual(servers["a"]["up"], "up")
        self.assertEqual(servers["a"]["state"], "enabled")
        self.assertEqual(servers["a"]["weight"], 1)
        self.assertEqual(servers["a"]["connections"] + servers["b"]["connections"], 1)
        self.assertEqual(a.command("show servers nope"), ["error: no backend nope"])

    def test_show_stats_text_and_json_match_the_traffic(self):
        proxy = self.start_admin_proxy(self.start_named("a"))
        for _ in range(3):
            self.assertEqual(self.who_once(proxy.port), "a")
        a = self.admin()

        def settled():
            doc = json.loads("\n".join(a.command("show stats json")))
            return doc if doc["total"]["closed"] == 3 else None
        doc = wait_until(settled, TIMEOUT)
        self.assertIsNotNone(doc)
        self.assertEqual(doc["total"]["accepted"], 3)
        self.assertEqual(len(doc["workers"]), harness.worker_count())
        self.assertEqual(doc["listeners"]["web"]["connections"], 3)
        self.assertEqual(doc["backends"]["app"]["servers"]["a"]["connections"], 3)
        self.assertIs(doc["backends"]["app"]["servers"]["a"]["up"], True)
        self.assertEqual(doc["backends"]["app"]["servers"]["a"]["bytes_in"], 12)
        self.assertGreaterEqual(doc["admin"]["commands"], 1)
        text = a.command("show stats")
        self.assertTrue(text[0].startswith("edgeproxy: statistics"), text[:2])
        # "  name value[ unit] label" lines under " group" headings (the SIGUSR1 block's format).
        values = harness.parse_last_stats(text)
        self.assertIsNotNone(values, text[:5])
        values = {k: str(v) for k, v in values.items()}
        self.assertEqual(values["accepted"], "3")
        self.assertEqual(values["server.app/a.connections"], "3")
        self.assertIn("admin.sessions", values)

    def test_show_conns_and_kill_conn_resets_that_client(self):
        proxy = self.start_admin_proxy(self.start_named("a"))
        name1, c1 = self.who(proxy.port)
        name2, c2 = self.who(proxy.port)
        self.assertEqual((name1, name2), ("a", "a"))
        a = self.admin()
        conns = a.command("show conns")
        self.assertTrue(conns[0].startswith("# 2 open, 2 shown"), conns)
        rows = [line.split() for line in conns[1:]]
        self.assertEqual(len(rows), 2)
        by_client = {row[1]: row for row in rows}
        mine = "%s:%d" % c1.getsockname()
        self.assertIn(mine, by_client, rows)
        row = by_client[mine]
        self.assertEqual(row[2:5], ["web", "app/a", "relaying"])
        self.assertEqual(int(row[5]), 4)  # WHO\n
        self.assertEqual(a.command("show conns 1")[0], "# 2 open, 1 shown: id client listener "
                         "server state bytes_in bytes_out age_ms")
        self.assertEqual(a.command("kill conn " + row[0]), ["ok"])
        with self.assertRaises((ConnectionResetError, EOFError)):
            data = c1.recv(100)
            if data == b"":
                raise EOFError("FIN instead of a reset")
        c2.sendall(b"still\n")
        self.assertEqual(harness.recv_exact(c2, 6), b"still\n")
        self.assertEqual(a.command("kill conn " + row[0]), ["error: no connection " + row[0]])
        self.assertEqual(a.command("kill conn 99.0.0"), ["error: no connection 99.0.0"])

    def test_disable_drains_and_enable_brings_the_server_back(self):
        servers = self.start_named("a", "b")
        proxy = self.start_admin_proxy(servers)
        a = self.admin()
        # An open connection to a, then a is drained.
        held = None
        for _ in range(4):
            name, s = self.who(proxy.port)
            if name == "a":
                held = s
                break
        self.assertIsNotNone(held)
        self.assertEqual(a.command("disable server app/a"), ["ok"])
        self.assertEqual(self.servers(a)["a"]["state"], "drained")
        counts = self.name_counts(proxy.port, 12)
        self.assertEqual(counts, {"b": 12})
        held.sendall(b"after drain\n")
        self.assertEqual(harness.recv_exact(held, 12), b"after drain\n")
        self.assertEqual(a.command("enable server app/a"), ["ok"])
        counts = self.name_counts(proxy.port, 12)
        self.assertGreater(counts["a"], 0, counts)
        self.assertEqual(a.command("disable server app/zz"), ["error: no server zz in backend app"])
        self.assertEqual(a.command("enable server nope/a"), ["error: no backend nope"])

    def test_set_weight_changes_the_distribution_until_a_reload_changes_it(self):
        servers = self.start_named("a", "b")
        proxy = self.start_admin_proxy(servers)
        a = self.admin()
        self.assertEqual(a.command("set weight app/a 3"), ["ok"])
        self.assertEqual(self.servers(a)["a"]["weight"], 3)
        workers = harness.worker_count()
        # The workers take the new balancers between two iterations: wait for the first sign.
        wait_until(lambda: self.name_counts(proxy.port, 4 * workers)["a"] >= 3 * workers,
                   TIMEOUT)
        counts = self.name_counts(proxy.port, 40 * workers)
        self.assertAlmostEqual(counts["a"], 30 * workers, delta=2 * workers, msg=str(counts))
        # A reload that keeps the configured weight keeps the one set at run time...
        self.assertEqual(a.command("reload"), ["ok"])
        self.assertEqual(self.servers(a)["a"]["weight"], 3)
        # ...one that changes it goes back to the file's.
        with open(proxy.config_path) as f:
            text = f.read()
        text = text.replace(
            f"server a 127.0.0.1:{servers['a'].port}",
            f"server a 127.0.0.1:{servers['a'].port} weight 2")
        with open(proxy.config_path + ".tmp", "w") as f:
            f.write(text)
        os.replace(proxy.config_path + ".tmp", proxy.config_path)
        self.assertEqual(a.command("reload"), ["ok"])
        self.assertEqual(self.servers(a)["a"]["weight"], 2)
        self.assertEqual(a.command("set weight app/c 2"), ["error: no server c in backend app"])


class AdminControl(AdminTestCase):

    def test_reload_through_the_socket(self):
        servers = self.start_named("a", "b")
        proxy = self.start_admin_proxy({"a": servers["a"]})
        a = self.admin()
        with open(proxy.config_path) as f:
            text = f.read()
        grown = text.replace(f"server a 127.0.0.1:{servers['a'].port}",
                             f"server a 127.0.0.1:{servers['a'].port}\n"
                             f"    server b 127.0.0.1:{servers['b'].port}")
        with open(proxy.config_path, "w") as f:
            f.write(grown)
        self.assertEqual(a.command("reload"), ["ok"])
        self.assertEqual(set(self.servers(a)), {"a", "b"})
        self.assertEqual(self.info(a)["epoch"], "2")
        with open(proxy.config_path, "w") as f:
            f.write(grown.replace("balance roundrobin", "balance sideways"))
        answer = a.command("reload")
        self.assertEqual(len(answer), 1)
        self.assertTrue(answer[0].startswith("error: ") and "balance" in answer[0], answer)
        self.assertEqual(self.info(a)["epoch"], "2")
        self.assertEqual(self.info(a)["reload_failures"], "1")
        self.assertIn(self.who_once(proxy.port), ("a", "b"))

    def test_shutdown_graceful_lets_open_connections_finish(self):
        proxy = self.start_admin_proxy(self.start_named("a"))
        name, held = self.who(proxy.port)
        self.assertEqual(name, "a")
        a = self.admin()
        self.assertEqual(a.command("shutdown graceful"), ["ok"])
        self.assertTrue(proxy.wait_for_stderr("graceful shutdown", TIMEOUT))
        held.sendall(b"more\n")
        self.assertEqual(harness.recv_exact(held, 5), b"more\n")
        self.assertTrue(proxy.alive())
        held.close()
        self.assertEqual(proxy.wait_exit(TIMEOUT), 0)

    def test_shutdown_fast_and_stats_file(self):
        stats_path = os.path.join(self.config_dir(), "stats.json")
        proxy = self.start_admin_proxy(self.start_named("a"), extra=["--stats-file", stats_path])
        self.assertEqual(self.who_once(proxy.port), "a")
        a = self.admin()
        self.assertEqual(a.command("shutdown fast"), ["ok"])
        self.assertEqual(proxy.wait_exit(TIMEOUT), 0)
        with open(stats_path) as f:
            doc = json.load(f)
        self.assertEqual(doc["total"]["accepted"], 1)
        self.assertEqual(doc["listeners"]["web"]["connections"], 1)
        self.assertEqual(doc["admin"]["accepted"], 1)
        self.assertFalse(os.path.exists(self.sock_path))

    def test_admin_on_the_command_line(self):
        server = self.start_server()
        path = self.admin_path()
        proxy = self.start_proxy(server.port, extra=["--admin", path])
        a = self.admin(path)
        self.assertEqual(self.info(a)["source"], "command line")
        self.assertEqual(a.command("reload"),
                         ["error: started from the command line, there is no file to reload"])
        self.assertEqual(harness.echo_roundtrip(proxy.port), b"ping\n")


class AdminRefusals(AdminTestCase):

    def connect_as_nobody(self, path, command=None):
        """What a peer of uid nobody reads from `path`: until the proxy closes (no command), or
        the answer to `command` up to its empty line."""
        if os.geteuid() != 0:
            self.skipTest("setpriv to another uid needs root")
        code = ("import socket, sys\n"
                "s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])\n"
                "if len(sys.argv) > 2: s.sendall(sys.argv[2].encode() + b'\\n')\n"
                "out = b''\n"
                "while not out.endswith(b'\\n\\n'):\n"
                "    d = s.recv(4096)\n"
                "    if not d: break\n"
                "    out += d\n"
                "sys.stdout.write(out.decode())\n")
        args = [path] + ([command] if command else [])
        r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                            sys.executable, "-c", code] + args, capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_a_peer_of_another_uid_is_refused_counted_and_logged(self):
        proxy = self.start_admin_proxy(self.start_named("a"))
        self.assertEqual(self.connect_as_nobody(self.sock_path), "error: permission denied\n")
        a = self.admin()
        self.assertEqual(self.info(a)["admin.denied"], "1")
        nobody = subprocess.run(["id", "-u", "nobody"], capture_output=True, text=True).stdout
        self.assertTrue(proxy.wait_for_stderr(f"peer uid {nobody.strip()}", TIMEOUT))

    def test_admin_users_lets_a_named_user_in(self):
        self.start_admin_proxy(self.start_named("a"), admin_lines=["admin-users root nobody"])
        out = self.connect_as_nobody(self.sock_path, "show info")
        self.assertIn("admin.accepted 1", out)

    def test_a_wrong_token_is_refused_on_tcp(self):
        token_path = os.path.join(self.config_dir(), "token")
        with open(token_path, "w") as f:
            f.write("s3cret-token\n")
        port = harness.free_port()
        proxy = self.start_admin_proxy(
            self.start_named("a"),
            admin_lines=[f"admin tcp 127.0.0.1:{port} token-file {token_path}"])
        bad = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.addCleanup(harness.safe_close, bad)
        bad.sendall(b"s3cret-tokem\nshow info\n")
        self.assertEqual(harness.recv_until_close(bad)[0], b"error: permission denied\n")
        good = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.addCleanup(harness.safe_close, good)
        session = AdminSession(good)
        good.sendall(b"s3cret-token\n")
        self.assertEqual(self.info(session)["admin.denied"], "1")
        self.assertEqual(self.who_once(proxy.port), "a")

    def test_a_tcp_peer_without_token_cannot_hold_a_session(self):
        port = self.start_tcp_admin_proxy()
        silent = socket.create_connection(("127.0.0.1", port), timeout=3 * TIMEOUT)
        self.addCleanup(harness.safe_close, silent)
        self.assertEqual(harness.recv_until_close(silent)[0], b"error: permission denied\n")
        a = self.admin()
        self.assertEqual(self.info(a)["admin.denied"], "1")

    def test_tcp_peers_never_take_the_last_session_from_the_unix_socket(self):
        port = self.start_tcp_admin_proxy()
        held = []
        for _ in range(3):  # unauthenticated, holding their slots until the token deadline
            t = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
            self.addCleanup(harness.safe_close, t)
            held.append(t)
        fourth = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.addCleanup(harness.safe_close, fourth)
        self.assertEqual(harness.recv_until_close(fourth)[0],
                         b"error: too many admin sessions\n")
        # The Unix socket still has its slot.
        self.assertEqual(self.admin().command("show backends")[0].split()[0], "app")

    def test_bad_admin_directives_are_refused_with_one_line(self):
        for line, needle in (("admin bogus", "expected admin unix:PATH"),
                             ("admin unix:/tmp/x.sock mode 999", "mode: invalid value"),
                             ("admin unix:/tmp/x.sock color red", "unexpected 'color'"),
                             ("admin tcp 127.0.0.1:1 token /x", "unexpected 'token'"),
                             ("admin-users", "missing argument")):
            path = self.write_config(one_listener_config(
                ["a 127.0.0.1:9"], top="global {\n    " + line + "\n}"))
            rc, out, err, _ = harness.run_binary(["-t", "-c", path])
            self.assertNotEqual(rc, 0, line)
            self.assertIn(needle, err + out, line)


class AdminLimits(AdminTestCase):

    def test_a_reader_that_never_reads_stalls_nothing_and_is_closed(self):
        proxy = self.start_admin_proxy(self.start_named("a"))
        slow = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(harness.safe_close, slow)
        slow.connect(self.sock_path)
        slow.setblocking(False)
        sent = 0
        request = b"show stats\nshow conns\n" * 64
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:  # until the proxy stops reading it
            try:
                sent += slow.send(request)
            except BlockingIOError:
                break
        self.assertGreater(sent, 0)
        # Traffic and another admin session are served meanwhile.
        for _ in range(5):
            self.assertEqual(self.who_once(proxy.port), "a")
        a = self.admin()
        self.assertEqual(a.command("show backends")[0].split()[0], "app")
        self.assertTrue(wait_until(lambda: self.info(a)["admin.slow_closed"] == "1",
                                   3 * TIMEOUT), self.info(a))
        self.assertEqual(self.who_once(proxy.port), "a")

    def test_a_flood_of_admin_connections_is_refused_and_counted(self):
        proxy = self.start_admin_proxy(self.start_named("a"))
        sessions = [self.admin() for _ in range(4)]
        for s in sessions:
            self.assertEqual(s.command("show backends")[0].split()[0], "app")
        refused = 0
        for _ in range(6):
            extra = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.addCleanup(harness.safe_close, extra)
            extra.settimeout(TIMEOUT)
            extra.connect(self.sock_path)
            self.assertEqual(harness.recv_until_close(extra)[0],
                             b"error: too many admin sessions\n")
            refused += 1
            self.assertEqual(self.who_once(proxy.port), "a")
        info = self.info(sessions[0])
        self.assertEqual(info["admin.refused"], str(refused))
        self.assertEqual(info["admin.sessions"], "4")
        # A closed session makes room for a new one.
        sessions[3].close()
        self.assertTrue(wait_until(lambda: self.info(sessions[0])["admin.sessions"] == "3",
                                   TIMEOUT))
        self.assertEqual(self.admin().command("show backends")[0].split()[0], "app")


if __name__ == "__main__":
    unittest.main()

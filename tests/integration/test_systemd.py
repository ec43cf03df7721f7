"""systemd integration: the sd_notify messages on a fake $NOTIFY_SOCKET (READY=1 with a STATUS once
the listener accepts, RELOADING=1 with MONOTONIC_USEC then READY=1 around a SIGHUP reload,
STOPPING=1 on SIGTERM), and socket activation (a listening socket passed at fd 3 with LISTEN_FDS,
LISTEN_FDNAMES and LISTEN_PID, taken by name or by address; LISTEN_PID of another process
ignored). The proxy runs with -c FILE, a configuration file each test writes."""

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ProxyTestCase, echo_roundtrip  # noqa: E402

# The launcher's shell keeps its pid across exec, so the proxy sees LISTEN_PID equal to its own.
LISTEN_PID_WRAPPER = ("sh", "-c", 'export LISTEN_PID=$$; exec "$0" "$@"')


def monotonic_usec():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def config_text(bind, backend_port, name="web"):
    return (f"listener {name} {{\n"
            f"    bind {bind}\n"
            f"    backend app\n"
            f"}}\n"
            f"backend app {{\n"
            f"    server a 127.0.0.1:{backend_port}\n"
            f"}}\n")


class NotifySocket:
    """The service manager's end of $NOTIFY_SOCKET: a datagram socket bound in `directory`. Every
    message is kept, in order, as a list of (key, value) pairs."""

    def __init__(self, directory):
        self.path = os.path.join(directory, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []

    def close(self):
        harness.safe_close(self.sock)

    def next(self, timeout):
        """The next message as (key, value) pairs, or None when none comes within timeout."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            return None
        pairs = []
        for line in data.decode("utf-8", "replace").split("\n"):
            key, sep, value = line.partition("=")
            pairs.append((key, value if sep else None))
        self.messages.append(pairs)
        return pairs

    def wait_for(self, key, timeout):
        """Reads messages until one holds `key`; returns it, or None after timeout."""
        deadline = time.monotonic() + timeout
        for _ in range(10000):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            message = self.next(remaining)
            if message is not None and key in dict(message):
                return message
        return None


class ActivatedProxy(harness.Proxy):
    """A Proxy whose process gets `sockets` at fds 3, 4, ... as a socket-activating launcher
    passes them (harness.Proxy closes every descriptor above 2 in the child)."""

    def __init__(self, args, sockets, env, wrapper=LISTEN_PID_WRAPPER):
        super().__init__(args, preexec_fn=self._place, env=env, wrapper=wrapper)
        self.fds = [s.fileno() for s in sockets]

    def _place(self):
        # In the child between fork and exec. Through descriptors above every target first, so a
        # source that is itself a target (3, 4, ...) is not overwritten before it is copied.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in self.fds]
        for i, fd in enumerate(high):
            os.dup2(fd, 3 + i)  # dup2 clears FD_CLOEXEC: the proxy inherits it

    def start(self, wait_ready=False, timeout=harness.READY_TIMEOUT):
        cmd = self.wrapper + [harness.binary_path()] + self.args
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, preexec_fn=self.preexec_fn,
                                     env=self.env, close_fds=True,
                                     pass_fds=tuple(range(3, 3 + len(self.fds))))
        for stream, sink in ((self.proc.stderr, self.stderr_lines),
                             (self.proc.stdout, self.stdout_lines)):
            t = threading.Thread(target=self._reader, args=(stream, sink), daemon=True)
            t.start()
            self._readers.append(t)
        return self


class Systemd(ProxyTestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="edgeproxy-systemd-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.notify = NotifySocket(self.dir)
        self.addCleanup(self.notify.close)
        self.config = os.path.join(self.dir, "edgeproxy.conf")

    def write_activation_config(self, text):
        # Written to a new file then renamed over the old one, as editors and config managers do:
        # a reload never reads half a file.
        temporary = self.config + ".new"
        with open(temporary, "w") as f:
            f.write(text)
        os.replace(temporary, self.config)

    def environment(self, **extra):
        env = {k: v for k, v in os.environ.items()
               if k not in ("NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")}
        env["NOTIFY_SOCKET"] = self.notify.path
        env.update(extra)
        return env

    def launch(self, proxy):
        """Starts `proxy` (stopped at cleanup) and waits for READY=1; returns that message."""
        self.addCleanup(self._cleanup_proxy, proxy)
        proxy.start(wait_ready=False)
        ready = self.notify.wait_for("READY", harness.READY_TIMEOUT)
        if ready is None:
            rc = proxy.proc.poll()
            proxy.kill()
            self.fail(f"no READY=1 within {harness.READY_TIMEOUT}s (exit code {rc}); messages "
                      f"{self.notify.messages}; stderr:\n{proxy.stderr_text()[-4000:]}")
        return ready

    def start_configured(self, text):
        self.write_activation_config(text)
        proxy = harness.Proxy(["-c", self.config] + harness.default_worker_args(),
                              env=self.environment())
        return proxy, self.launch(proxy)

    def assertMessage(self, message, pairs, what):
        self.assertIsNotNone(message, f"{what}: no message; all: {self.notify.messages}")
        self.assertEqual([k for k, _ in message], [k for k, _ in pairs], f"{what}: {message}")
        for (key, value), (_, want) in zip(message, pairs):
            if want is not None:
                self.assertEqual(value, want, f"{what}: {key} in {message}")

    def assertReady(self, message, what):
        """READY=1 and a non-empty one-line STATUS."""
        self.assertMessage(message, [("READY", "1"), ("STATUS", None)], what)
        self.assertTrue(dict(message)["STATUS"].strip(), f"{what}: empty STATUS in {message}")

    def reload(self, proxy):
        """SIGHUP; returns (RELOADING message, the READY message after it, the time the signal
        was sent in CLOCK_MONOTONIC microseconds, the time RELOADING came)."""
        sent = monotonic_usec()
        proxy.send_signal(signal.SIGHUP)
        reloading = self.notify.wait_for("RELOADING", 5)
        received = monotonic_usec()
        ready = self.notify.wait_for("READY", 10)
        return reloading, ready, sent, received

    def assertReloadAnnounced(self, proxy, reloading, ready, sent, received):
        self.assertIsNotNone(reloading, f"no RELOADING=1 after SIGHUP; messages "
                                        f"{self.notify.messages}; stderr:\n"
                                        f"{proxy.stderr_text()[-2000:]}")
        # One datagram, RELOADING first: what Type=notify-reload (systemd 253+) reads.
        self.assertMessage(reloading[:2], [("RELOADING", "1"), ("MONOTONIC_USEC", None)],
                           "reload")
        usec = dict(reloading)["MONOTONIC_USEC"]
        self.assertTrue(usec.isdigit(), f"MONOTONIC_USEC={usec!r} is not a number")
        self.assertGreaterEqual(int(usec), sent, "MONOTONIC_USEC before the SIGHUP was sent: not "
                                                 "CLOCK_MONOTONIC, or not in microseconds")
        self.assertLessEqual(int(usec), received)
        self.assertIsNotNone(ready, f"no READY=1 after RELOADING=1; messages "
                                    f"{self.notify.messages}")
        self.assertEqual(dict(ready).get("READY"), "1")

    # -- notify ---------------------------------------------------------------------------------

    def test_ready_once_listening_then_reload_then_stopping(self):
        backend = self.start_server()
        port = harness.free_port()
        proxy, ready = self.start_configured(config_text(f"127.0.0.1:{port}", backend.port))
        self.assertReady(ready, "start-up")
        # READY=1 comes once the listener accepts: no retry, no refused connection.
        self.assertEqual(echo_roundtrip(port, b"ready\n"), b"ready\n")
        self.assertIsNone(self.notify.wait_for("READY", 0.3),
                          f"more than one READY=1 at start-up: {self.notify.messages}")

        reloading, ready, sent, received = self.reload(proxy)
        self.assertReloadAnnounced(proxy, reloading, ready, sent, received)
        self.assertTrue(proxy.alive(), "proxy exited on SIGHUP")
        self.assertEqual(echo_roundtrip(port, b"after reload\n"), b"after reload\n")

        before = len(self.notify.messages)
        proxy.send_signal(signal.SIGTERM)
        stopping = self.notify.wait_for("STOPPING", 5)
        self.assertIsNotNone(stopping, f"no STOPPING=1 on SIGTERM; messages "
                                       f"{self.notify.messages[before:]}")
        self.assertEqual(stopping[0], ("STOPPING", "1"), f"{stopping}")
        rc = proxy.wait_exit(10)
        self.assertIsNotNone(rc, "proxy did not exit after SIGTERM")
        self.assertCleanExit(rc, proxy)

    def test_reload_applies_the_new_file_before_ready(self):
        first = self.start_server()
        second = self.start_server(harness.make_delayed_reply_handler(0))
        port = harness.free_port()
        proxy, _ = self.start_configured(config_text(f"127.0.0.1:{port}", first.port))
        self.assertEqual(echo_roundtrip(port, b"first\n"), b"first\n")
        self.write_activation_config(config_text(f"127.0.0.1:{port}", second.port))
        reloading, ready, sent, received = self.reload(proxy)
        self.assertReloadAnnounced(proxy, reloading, ready, sent, received)
        # READY=1 after a reload means every worker serves the new version: the very next
        # connection goes to the new backend.
        s = self.connect(port)
        s.sendall(b"second\n")
        s.shutdown(socket.SHUT_WR)
        reply, outcome = harness.recv_until_close(s)
        self.assertEqual(outcome, "eof")
        self.assertTrue(reply.startswith(b"reply:"), f"the connection after READY=1 went to the "
                                                     f"old backend: {reply!r}")

    def test_invalid_file_on_reload_changes_nothing_and_ends_ready(self):
        backend = self.start_server()
        port = harness.free_port()
        proxy, _ = self.start_configured(config_text(f"127.0.0.1:{port}", backend.port))
        s = self.connect(port)
        s.sendall(b"open\n")
        self.assertEqual(harness.recv_exact(s, 5), b"open\n")
        self.write_activation_config("listener web {\n    bind\n")
        reloading, ready, sent, received = self.reload(proxy)
        # systemd leaves "reloading" only on READY=1, so a failed reload must send it too.
        self.assertReloadAnnounced(proxy, reloading, ready, sent, received)
        self.assertTrue(proxy.alive(), "an invalid file on reload stopped the proxy")
        s.sendall(b"still\n")
        self.assertEqual(harness.recv_exact(s, 6), b"still\n", "an open connection was cut")
        self.assertEqual(echo_roundtrip(port, b"new\n"), b"new\n")

    def test_no_notify_socket_changes_nothing(self):
        backend = self.start_server()
        port = harness.free_port()
        self.write_activation_config(config_text(f"127.0.0.1:{port}", backend.port))
        env = self.environment()
        del env["NOTIFY_SOCKET"]
        proxy = harness.Proxy(["-c", self.config] + harness.default_worker_args(), env=env)
        self.addCleanup(self._cleanup_proxy, proxy)
        proxy.start(wait_ready=False)
        self.assertTrue(harness.wait_serving(port),
                        f"not serving without NOTIFY_SOCKET; stderr:\n{proxy.stderr_text()}")
        self.assertEqual(self.notify.next(0.2), None)
        self.assertNotIn("NOTIFY_SOCKET", proxy.stderr_text())

    # -- socket activation ----------------------------------------------------------------------

    def activation_socket(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(harness.safe_close, s)
        s.bind(("127.0.0.1", 0))
        s.listen(128)
        return s, s.getsockname()[1]

    def start_activated(self, bind, backend_port, names, listen_pid_wrapper=LISTEN_PID_WRAPPER):
        sock, port = self.activation_socket()
        self.write_activation_config(config_text(bind if bind else f"127.0.0.1:{port}", backend_port))
        extra = {"LISTEN_FDS": "1"}
        if names is not None:
            extra["LISTEN_FDNAMES"] = names
        proxy = ActivatedProxy(["-c", self.config] + harness.default_worker_args(), [sock],
                               env=self.environment(**extra), wrapper=listen_pid_wrapper)
        self.launch(proxy)
        return proxy, sock, port

    def assertServes(self, port, what):
        self.assertEqual(echo_roundtrip(port, f"{what}\n".encode(), timeout=5),
                         f"{what}\n".encode(),
                         f"{what}: no echo through the proxy")

    def test_activated_socket_taken_by_name(self):
        backend = self.start_server()
        unused = harness.free_port()
        # The file binds another port: the socket named "web" wins, and that port stays unbound.
        proxy, sock, port = self.start_activated(f"127.0.0.1:{unused}", backend.port, "web")
        # The launcher's copy is closed: only the proxy's inherited one is left to accept.
        sock.close()
        for i in range(3):
            self.assertServes(port, f"by name {i}")
        with self.assertRaises(ConnectionRefusedError):
            harness.connect(unused, timeout=2).close()

    def test_activated_socket_taken_by_address_without_names(self):
        backend = self.start_server()
        proxy, sock, port = self.start_activated(None, backend.port, None)
        sock.close()
        self.assertServes(port, "by address")

    def test_an_activated_sockets_own_options_are_kept(self):
        # A socket unit's DeferAcceptSec= (TCP_DEFER_ACCEPT) on a listener whose file says
        # nothing of defer-accept or tcp-smart-accept: the proxy leaves both as they came
        # (decision 0017), at start and at a reload. The launcher's copy is the same socket.
        backend = self.start_server()
        sock, port = self.activation_socket()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 5)
        self.write_activation_config(config_text(f"127.0.0.1:{port}", backend.port))
        proxy = ActivatedProxy(["-c", self.config] + harness.default_worker_args(), [sock],
                               env=self.environment(LISTEN_FDS="1"))
        self.launch(proxy)
        self.assertServes(port, "deferred")
        self.assertGreater(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT), 0)
        self.assertEqual(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK), 1)
        self.reload_with(proxy, config_text(f"127.0.0.1:{port}", backend.port))
        self.assertGreater(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT), 0)
        # Asked for in the file, the options are set, and cleared when the file stops asking.
        self.reload_with(proxy, config_text(f"127.0.0.1:{port}", backend.port)
                         .replace("    backend app\n", "    backend app\n    tcp-smart-accept on\n"))
        self.assertEqual(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK), 0)
        self.reload_with(proxy, config_text(f"127.0.0.1:{port}", backend.port))
        self.assertEqual(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK), 1)
        self.assertServes(port, "after the reloads")

    def reload_with(self, proxy, text):
        start = len(proxy.stderr_snapshot())
        self.write_activation_config(text)
        proxy.send_signal(signal.SIGHUP)
        self.assertTrue(proxy.wait_for_stderr("reloaded", 10, start=start),
                        f"no reload; stderr:\n{proxy.stderr_text()[-3000:]}")
        self.assertNotIn("reload failed", "\n".join(proxy.stderr_snapshot()[start:]))
        self.assertNotIn("installed, but", "\n".join(proxy.stderr_snapshot()[start:]))

    def test_an_activated_listener_removed_then_added_again_serves(self):
        # Regression (review of issue 10): a worker closing its copy of a passed socket left its
        # epoll registration (the supervisor keeps systemd's descriptor), so adding the listener
        # back failed with EEXIST and its connections were never accepted.
        backend = self.start_server()
        unused = harness.free_port()
        proxy, sock, port = self.start_activated(f"127.0.0.1:{unused}", backend.port, "web")
        sock.close()
        other = harness.free_port()
        self.reload_with(proxy, config_text(f"127.0.0.1:{other}", backend.port, name="other"))
        self.assertServes(other, "other listener")
        # "other" stays, so the lowest free descriptor (dup'ed for web) is web's old number.
        self.reload_with(proxy, config_text(f"127.0.0.1:{other}", backend.port, name="other") +
                         config_text(f"127.0.0.1:{unused}", backend.port).split("backend app {")[0])
        for i in range(3):
            self.assertServes(port, f"web again {i}")
        self.assertServes(other, "other listener kept")

    def test_a_bind_added_next_to_an_activated_one_is_bound(self):
        # Regression (review of issue 10): the passed socket a kept bind serves was matched
        # again, by name, to the reload's new bind, which was then never bound.
        backend = self.start_server()
        unused = harness.free_port()
        proxy, sock, port = self.start_activated(f"127.0.0.1:{unused}", backend.port, "web")
        sock.close()
        added = harness.free_port()
        self.reload_with(proxy, config_text(f"127.0.0.1:{unused}", backend.port).replace(
            "    backend app\n", f"    bind 127.0.0.1:{added}\n    backend app\n", 1))
        self.assertServes(added, "the added bind")
        self.assertServes(port, "the passed socket")

    def test_listen_pid_of_another_process_is_ignored(self):
        backend = self.start_server()
        own = harness.free_port()
        # LISTEN_PID is the shell's parent (this test), not the proxy: the passed socket is not
        # its own, so it binds the file's address itself.
        wrapper = ("sh", "-c", 'export LISTEN_PID=$PPID; exec "$0" "$@"')
        proxy, sock, port = self.start_activated(f"127.0.0.1:{own}", backend.port, "web",
                                                 listen_pid_wrapper=wrapper)
        self.assertServes(own, "own bind")


if __name__ == "__main__":
    unittest.main()

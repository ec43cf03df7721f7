"""Command line: --help, --version, option forms, bad command lines, start-up failures."""

import os
import re
import socket
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ProxyTestCase, echo_roundtrip, free_port, run_binary  # noqa: E402

ALL_LONG_OPTIONS = (
    "--listen", "--port", "--backend", "--backend-port", "--max-connections", "--buffers",
    "--connect-timeout", "--idle-timeout", "--backlog", "--no-delay", "--no-no-delay",
    "--shutdown-timeout", "--batch-wait", "--verbose", "--quiet", "--help", "--version",
    "--config", "--test", "--log-level",
)
ALL_SHORT_OPTIONS = ("-l", "-p", "-b", "-P", "-v", "-q", "-h", "-V", "-c", "-t")
EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples")

EXIT_USAGE = 2
EXIT_STARTUP = 1


def names_it(line, needle):
    """needle occurs in line; short needles (e.g. '0', '-p') only as a whole token."""
    if len(needle) >= 3:
        return needle in line
    return re.search(r"(?<![\w-])" + re.escape(needle) + r"(?![\w])", line) is not None


class InfoOptions(ProxyTestCase):

    def check_help(self, flag):
        rc, out, err, _ = run_binary([flag])
        self.assertEqual(rc, 0, f"{flag}: exit code {rc}, stderr {err!r}")
        for opt in ALL_LONG_OPTIONS + ALL_SHORT_OPTIONS:
            self.assertIn(opt, out, f"{flag} output does not name {opt}:\n{out}")

    def test_help_long_prints_usage_naming_every_option(self):
        self.check_help("--help")

    def test_help_short_prints_usage_naming_every_option(self):
        self.check_help("-h")

    def check_version(self, flag):
        rc, out, err, _ = run_binary([flag])
        self.assertEqual(rc, 0, f"{flag}: exit code {rc}, stderr {err!r}")
        # CTest names the backend the binary was built with; by hand, either is accepted.
        expected = os.environ.get("EDGEPROXY_BACKEND_NAME")
        names = [expected] if expected else ["epoll", "io_uring"]
        lines = [ln for ln in out.splitlines()
                 if "edgeproxy" in ln and any(f"backend {n})" in ln for n in names)]
        self.assertTrue(lines, f"{flag}: no stdout line with 'edgeproxy' and backend {names}: {out!r}")

    def test_version_long_names_program_and_backend(self):
        self.check_version("--version")

    def test_version_short_names_program_and_backend(self):
        self.check_version("-V")


class BadCommandLines(ProxyTestCase):
    """Each bad command line: exit code (2 usage, 1 start-up), within a few seconds, exactly one
    non-empty stderr line naming the offending flag or value, nothing on stdout."""

    def check_rejected(self, bad_args, needles, exit_code=EXIT_USAGE, prefix=True):
        # A loopback listen address and a free port come first so that a binary that wrongly
        # accepts the command line never listens beyond loopback (it is killed after 10 s).
        args = (["-l", "127.0.0.1", "-p", str(free_port())] if prefix else []) + bad_args
        rc, out, err, elapsed = run_binary(args, timeout=10.0)
        self.assertIsNotNone(rc, f"{bad_args}: still running after 10 s (accepted?); "
                                 f"stderr {err!r}")
        self.assertGreaterEqual(rc, 0, f"{bad_args}: killed by signal {-rc}; stderr {err!r}")
        self.assertEqual(rc, exit_code, f"{bad_args}: exit code {rc}, want {exit_code}; "
                                        f"stderr {err!r}")
        self.assertEqual(out, "", f"{bad_args}: stdout should be empty, got {out!r}")
        lines = err.splitlines()
        self.assertEqual(len(lines), 1, f"{bad_args}: want exactly one stderr line, got {err!r}")
        self.assertTrue(lines[0].strip(), f"{bad_args}: the stderr line is empty")
        self.assertTrue(any(names_it(lines[0], n) for n in needles),
                        f"{bad_args}: stderr line {lines[0]!r} names none of {needles}")
        return lines[0]

    # -- flags --------------------------------------------------------------------------------

    def test_unknown_long_flag(self):
        self.check_rejected(["--bogus-flag"], ["--bogus-flag", "bogus-flag"])

    def test_unknown_short_flag(self):
        self.check_rejected(["-Z"], ["-Z", "'Z'"])

    def test_missing_value_for_short_port_as_last_arg(self):
        self.check_rejected(["-p"], ["-p", "--port", "'p'"], prefix=False)

    def test_missing_value_for_long_backend_port_as_last_arg(self):
        self.check_rejected(["-l", "127.0.0.1", "-p", str(free_port()), "--backend-port"],
                            ["--backend-port", "backend-port"], prefix=False)

    def test_missing_value_for_max_connections_as_last_arg(self):
        self.check_rejected(["--max-connections"], ["--max-connections", "max-connections"])

    # -- ports --------------------------------------------------------------------------------

    def test_port_zero(self):
        self.check_rejected(["--port", "0"], ["--port", "0"])

    def test_port_65536(self):
        self.check_rejected(["--port", "65536"], ["--port", "65536"])

    def test_port_negative(self):
        self.check_rejected(["--port", "-1"], ["--port", "-1"])

    def test_port_with_trailing_garbage(self):
        self.check_rejected(["--port", "80x"], ["--port", "80x"])

    def test_port_with_trailing_garbage_equals_form(self):
        self.check_rejected(["--port=80x"], ["--port", "80x"])

    def test_port_with_trailing_garbage_short_form(self):
        self.check_rejected(["-p", "80x"], ["-p", "--port", "80x"])

    def test_port_empty(self):
        self.check_rejected(["--port", ""], ["--port"])

    def test_backend_port_zero(self):
        self.check_rejected(["-P", "0"], ["-P", "--backend-port", "0"])

    def test_backend_port_65536(self):
        self.check_rejected(["--backend-port", "65536"], ["--backend-port", "65536"])

    # -- counts -------------------------------------------------------------------------------

    def test_max_connections_zero(self):
        self.check_rejected(["--max-connections", "0"], ["--max-connections", "0"])

    def test_max_connections_non_numeric(self):
        self.check_rejected(["--max-connections", "many"], ["--max-connections", "many"])

    def test_buffers_non_numeric(self):
        self.check_rejected(["--buffers", "lots"], ["--buffers", "lots"])

    def test_connect_timeout_non_numeric(self):
        self.check_rejected(["--connect-timeout", "soon"], ["--connect-timeout", "soon"])

    def test_idle_timeout_non_numeric(self):
        # "1h" is an hour since the option table (durations take units); "1d" is not a unit.
        self.check_rejected(["--idle-timeout", "1d"], ["--idle-timeout", "1d"])

    def test_backlog_non_numeric(self):
        self.check_rejected(["--backlog", "deep"], ["--backlog", "deep"])

    def test_shutdown_timeout_non_numeric(self):
        self.check_rejected(["--shutdown-timeout", "later"], ["--shutdown-timeout", "later"])

    # -- start-up failures (exit 1) -----------------------------------------------------------

    def test_unresolvable_backend_host(self):
        self.check_rejected(["-b", "no-such-host.invalid", "-P", "9"],
                            ["no-such-host.invalid"], exit_code=EXIT_STARTUP)

    def test_unresolvable_listen_host(self):
        self.check_rejected(["-l", "no-such-host.invalid", "-p", str(free_port()),
                             "-b", "127.0.0.1", "-P", "9"],
                            ["no-such-host.invalid"], exit_code=EXIT_STARTUP, prefix=False)

    def test_listen_address_already_in_use(self):
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(holder.close)
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        self.check_rejected(["-l", "127.0.0.1", "-p", str(port), "-b", "127.0.0.1", "-P", "9"],
                            [str(port), "--port", "--listen", "127.0.0.1"],
                            exit_code=EXIT_STARTUP, prefix=False)


class ConfigurationCheck(ProxyTestCase):
    """-t checks the configuration (-c FILE, else the command line) and exits; -c refuses the
    one-listener flags."""

    def test_check_command_line(self):
        rc, out, err, _ = run_binary(["-t", "-l", "127.0.0.1", "-p", "1", "-b", "127.0.0.1"])
        self.assertEqual((rc, err), (0, ""))
        self.assertIn("command line test is successful", out)

    def test_check_example_file(self):
        path = os.path.join(EXAMPLES, "minimal.conf")
        rc, out, err, _ = run_binary(["-t", "-c", path])
        self.assertEqual((rc, err), (0, ""))
        self.assertIn("minimal.conf test is successful", out)

    def test_check_refuses_a_bad_file_in_one_line(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        path = os.path.join(tmp.name, "bad.conf")
        with open(path, "w") as f:
            f.write("listener web {\n    bind 127.0.0.1:1\n    backend nope\n}\n")
        rc, out, err, _ = run_binary(["-t", "-c", path])
        self.assertEqual(rc, 1)  # -t: 0 or 1, like nginx -t
        self.assertEqual(out, "")
        self.assertEqual(err.splitlines(), [f"edgeproxy: configuration file {path} test failed: "
                                            f"{path}:3:13: listener 'web' names backend "
                                            "'nope', which is not defined (expected a "
                                            "'backend NAME { ... }' block)"])

    def test_config_refuses_listen_flags(self):
        rc, out, err, _ = run_binary(["-c", "x.conf", "-p", "80"])
        self.assertEqual(rc, EXIT_USAGE)
        self.assertEqual(len(err.splitlines()), 1)
        self.assertIn("-p: not with -c", err)


class AcceptedForms(ProxyTestCase):
    """Valid option spellings start the proxy and it relays."""

    def serve_with(self, args, listen_port):
        backend = self.start_server()
        proxy = harness.Proxy(args(backend.port))
        self.addCleanup(self._cleanup_proxy, proxy)
        proxy.start()
        self.assertEqual(echo_roundtrip(listen_port, b"form\n"), b"form\n")
        return proxy

    def test_long_options_with_separate_values(self):
        port = free_port()
        self.serve_with(lambda bp: ["--listen", "127.0.0.1", "--port", str(port),
                                    "--backend", "127.0.0.1", "--backend-port", str(bp)], port)

    def test_long_options_with_equals_values(self):
        port = free_port()
        self.serve_with(lambda bp: [f"--listen=127.0.0.1", f"--port={port}",
                                    "--backend=127.0.0.1", f"--backend-port={bp}"], port)

    def test_short_options(self):
        port = free_port()
        self.serve_with(lambda bp: ["-l", "127.0.0.1", "-p", str(port),
                                    "-b", "127.0.0.1", "-P", str(bp)], port)

    def test_all_tuning_options_accepted(self):
        port = free_port()
        self.serve_with(lambda bp: ["-l", "127.0.0.1", "-p", str(port), "-b", "127.0.0.1",
                                    "-P", str(bp), "--max-connections", "64", "--buffers", "32",
                                    "--connect-timeout", "2000", "--idle-timeout", "0",
                                    "--backlog", "16", "--no-delay", "--shutdown-timeout", "3",
                                    "-v"], port)

    def test_no_no_delay_accepted(self):
        port = free_port()
        self.serve_with(lambda bp: ["-l", "127.0.0.1", "-p", str(port), "-b", "127.0.0.1",
                                    "-P", str(bp), "--no-no-delay"], port)

    def test_quiet_still_serves(self):
        backend = self.start_server()
        port = free_port()
        proxy = harness.Proxy(["-q", "-l", "127.0.0.1", "-p", str(port), "-b", "127.0.0.1",
                               "-P", str(backend.port)])
        self.addCleanup(self._cleanup_proxy, proxy)
        proxy.start(wait_ready=False)
        self.assertTrue(harness.wait_serving(port, b"quiet\n", timeout=10),
                        f"-q proxy not serving; stderr:\n{proxy.stderr_text()}")


if __name__ == "__main__":
    unittest.main()

"""Urgent (out-of-band) data: splice(2) stops at the urgent mark, where read(2) steps over the
urgent byte. Whatever --splice says, a stream with urgent data arrives whole (the urgent byte
dropped, as read() drops it), is never cut short at the mark nor held back behind it, and the
proxy never spins at the mark. Telnet sends urgent data (its Synch)."""

import os
import signal
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import MiB, ProxyTestCase  # noqa: E402

HALF = 256 * 1024


class Recorder:
    """A backend handler that keeps what it reads where the test can watch it grow."""

    def __init__(self):
        self.data = bytearray()
        self.outcome = None
        self.lock = threading.Lock()

    def __call__(self, conn, server):
        for _ in range(10**6):
            try:
                chunk = conn.recv(256 * 1024)
            except ConnectionResetError:
                self.outcome = "reset"
                return self.outcome
            except (socket.timeout, TimeoutError):
                self.outcome = "timeout"
                return self.outcome
            if not chunk:
                break
            with self.lock:
                self.data += chunk
        self.outcome = "eof"
        return self.outcome

    def size(self):
        with self.lock:
            return len(self.data)


class _UrgentTests:
    """Run once per --splice mode (the subclasses below)."""

    MODE = "never"
    PREFIX = 0  # bulk bytes sent first (auto splices only once a direction has moved this much)

    def start(self):
        rec = Recorder()
        backend = self.start_server(rec)
        proxy = self.start_proxy(backend.port, extra=["--splice", self.MODE])
        s = self.connect(proxy.port, nodelay=True)
        if self.PREFIX:
            s.sendall(b"p" * self.PREFIX)
        return rec, proxy, s

    def wait_size(self, rec, size, timeout=10.0):
        deadline = time.monotonic() + timeout
        while rec.size() < size and time.monotonic() < deadline:
            time.sleep(0.02)
        return rec.size()

    def send_across_the_mark(self, s):
        """256 KiB, one urgent byte, 256 KiB: the urgent byte is not part of the stream."""
        s.sendall(b"a" * HALF)
        time.sleep(0.1)
        s.send(b"!", socket.MSG_OOB)
        s.sendall(b"b" * HALF)

    def test_urgent_data_does_not_truncate_the_stream(self):
        rec, proxy, s = self.start()
        self.send_across_the_mark(s)
        s.shutdown(socket.SHUT_WR)
        want = b"p" * self.PREFIX + b"a" * HALF + b"b" * HALF
        self.wait_size(rec, len(want))
        deadline = time.monotonic() + 10
        while rec.outcome is None and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertEqual(rec.size(), len(want), "the backend got a truncated stream")
        self.assertEqual(bytes(rec.data), want, "the stream arrived altered")
        self.assertEqual(rec.outcome, "eof")

    def test_urgent_mark_never_spins_nor_holds_the_rest_back(self):
        # The client sends across the mark and then waits: the bytes after the mark must arrive
        # without a FIN behind them, and the proxy must not spin meanwhile.
        rec, proxy, s = self.start()
        self.send_across_the_mark(s)
        want = self.PREFIX + 2 * HALF
        self.assertEqual(self.wait_size(rec, want), want, "bytes after the mark held back")
        self.assertNotBusy(proxy, seconds=1.0, limit=0.3, what="a client idles past an urgent mark")
        s.sendall(b"after")
        self.assertEqual(self.wait_size(rec, want + 5), want + 5)

    def test_urgent_byte_in_one_burst_is_not_held_back(self):
        # Stopped, the proxy finds data, the urgent byte and more data queued at once: the read
        # that stops at the mark is no proof that the socket is drained.
        rec, proxy, s = self.start()
        self.assertEqual(self.wait_size(rec, self.PREFIX), self.PREFIX)
        os.kill(proxy.pid, signal.SIGSTOP)
        try:
            s.send(b"abc")
            s.send(b"X", socket.MSG_OOB)
            s.send(b"def")
            time.sleep(0.2)
        finally:
            os.kill(proxy.pid, signal.SIGCONT)
        self.assertEqual(self.wait_size(rec, self.PREFIX + 6, timeout=5), self.PREFIX + 6,
                         "the bytes after the urgent mark were held back")
        self.assertEqual(bytes(rec.data[self.PREFIX:]), b"abcdef")


class UrgentNever(_UrgentTests, ProxyTestCase):
    MODE = "never"


class UrgentAlways(_UrgentTests, ProxyTestCase):
    MODE = "always"


class UrgentAuto(_UrgentTests, ProxyTestCase):
    MODE = "auto"
    PREFIX = MiB  # past --splice-threshold (64 KiB) in buffer-filling reads: the direction splices


if __name__ == "__main__":
    unittest.main()

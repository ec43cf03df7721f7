"""Content-aware routing by TLS ClientHello and the PROXY protocol (docs/routing.md), black box.

Every backend server here records the bytes it receives (it speaks no TLS: a client's
ClientHello is all it gets), so a test knows which backend a connection reached and that the
bytes arrived unchanged. Covered:

  * SNI from real ClientHellos (python3's ssl module, `openssl s_client`) and hand-built ones:
    exact names, `*.suffix` patterns (whole labels only), names compared without case, no name
    (the listener's backend), `alpn h2`;
  * a ClientHello split into 3-byte TCP segments, and one fragmented into 3-byte TLS records;
  * a ClientHello larger than 16 KiB (two records): routed with `inspect-bytes 32k`, sent whole
    to `on-full`'s backend with the default 8k;
  * a client that is not TLS missing the `sni` rules at once (no wait for `inspect-timeout`);
  * `accept-proxy`: v1 and v2 (IPv4, IPv6, TLVs) headers stripped, `balance source` on the
    address the header gave, malformed headers refused at once, a missing one at
    `inspect-timeout`;
  * `proxy-protocol v1|v2` (and a server's override): the header the server receives, with the
    client's and the listener's addresses, or the ones an accepted header gave;
  * HAProxy 2.6 on either side (`send-proxy`, `send-proxy-v2`, `accept-proxy`): the client's
    address crosses both hops.
"""

import functools
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ProxyTestCase, free_port, wait_closed, wait_until  # noqa: E402

ARRIVAL_TIMEOUT = 5.0  # seconds for bytes to reach a recording server through the proxy
HAPROXY = "/usr/sbin/haproxy"
CLIENT_SOURCE = "127.0.0.5"  # clients bind here: an address no proxy hop would write by itself


# --------------------------------------------------------------------------------------------
# TLS ClientHellos
# --------------------------------------------------------------------------------------------

def tls_records(message, size=16384):
    """`message` (handshake bytes) cut into TLS handshake records of at most `size` bytes."""
    out = b""
    for at in range(0, len(message), size):
        fragment = message[at:at + size]
        out += bytes([22, 3, 1]) + struct.pack("!H", len(fragment)) + fragment
    return out


def _extension(kind, data):
    return struct.pack("!HH", kind, len(data)) + data


def built_hello(sni=None, alpn=(), padding=0, record_size=16384):
    """A TLS 1.3-style ClientHello built by hand: SNI `sni` (sent as given, case included),
    ALPN `alpn`, an X25519MLKEM768-sized key share and a padding extension of `padding` bytes,
    cut into records of `record_size` bytes."""
    extensions = b""
    if sni is not None:
        name = sni.encode()
        entry = b"\x00" + struct.pack("!H", len(name)) + name
        extensions += _extension(0, struct.pack("!H", len(entry)) + entry)
    extensions += _extension(10, b"\x00\x04\x11\xec\x00\x1d")  # supported_groups
    extensions += _extension(13, b"\x00\x04\x08\x04\x04\x03")  # signature_algorithms
    if alpn:
        names = b"".join(bytes([len(p)]) + p.encode() for p in alpn)
        extensions += _extension(16, struct.pack("!H", len(names)) + names)
    extensions += _extension(43, b"\x02\x03\x04")  # supported_versions: TLS 1.3
    share = os.urandom(1216)
    entry = struct.pack("!HH", 0x11EC, len(share)) + share
    extensions += _extension(51, struct.pack("!H", len(entry)) + entry)  # key_share
    if padding:
        extensions += _extension(21, bytes(padding))
    body = (b"\x03\x03" + os.urandom(32) + b"\x20" + os.urandom(32)
            + b"\x00\x04\x13\x01\x13\x02" + b"\x01\x00"
            + struct.pack("!H", len(extensions)) + extensions)
    return tls_records(b"\x01" + len(body).to_bytes(3, "big") + body, record_size)


@functools.lru_cache(maxsize=None)
def _client_context(alpn):
    ctx = ssl.create_default_context()  # loads the CA store: made once per ALPN list
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def python_hello(server_hostname, alpn=None):
    """The first flight of python3's ssl module (MemoryBIO, no socket): its ClientHello."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = _client_context(tuple(alpn or ())).wrap_bio(incoming, outgoing,
                                                       server_hostname=server_hostname)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def hello_message(data):
    """(the handshake message, bytes of records it took) if `data` starts with a whole
    ClientHello, else None."""
    handshake, pos = b"", 0
    while pos + 5 <= len(data) and data[pos] == 22:
        length = int.from_bytes(data[pos + 3:pos + 5], "big")
        if pos + 5 + length > len(data):
            return None
        handshake += data[pos + 5:pos + 5 + length]
        pos += 5 + length
        if len(handshake) >= 4 and len(handshake) >= 4 + int.from_bytes(handshake[1:4], "big"):
            return handshake, pos
    return None


def hello_complete(data):
    return hello_message(data) is not None


def hello_fields(data):
    """(server name or None, [ALPN protocols]) of the whole ClientHello at the start of data."""
    found = hello_message(data)
    assert found is not None, f"no whole ClientHello in {len(data)} bytes: {data[:40]!r}"
    body = found[0][4:]
    pos = 2 + 32
    pos += 1 + body[pos]  # session id
    pos += 2 + int.from_bytes(body[pos:pos + 2], "big")  # cipher suites
    pos += 1 + body[pos]  # compression methods
    end = pos + 2 + int.from_bytes(body[pos:pos + 2], "big")
    pos += 2
    name, alpn = None, []
    while pos < end:
        kind, length = struct.unpack("!HH", body[pos:pos + 4])
        data = body[pos + 4:pos + 4 + length]
        pos += 4 + length
        if kind == 0:
            name = data[5:5 + int.from_bytes(data[3:5], "big")].decode()
        elif kind == 16:
            at = 2
            while at < len(data):
                alpn.append(data[at + 1:at + 1 + data[at]].decode())
                at += 1 + data[at]
    return name, alpn


# --------------------------------------------------------------------------------------------
# PROXY protocol
# --------------------------------------------------------------------------------------------

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_FAMILIES = {0x11: "TCP4", 0x21: "TCP6"}


def proxy_v1(source, destination):
    family = "TCP6" if ":" in source[0] else "TCP4"
    return (f"PROXY {family} {source[0]} {destination[0]} {source[1]} {destination[1]}\r\n"
            .encode())


def tlv(kind, value):
    return bytes([kind]) + struct.pack("!H", len(value)) + value


def proxy_v2(source, destination, tlvs=b""):
    """A v2 PROXY command over TCP (IPv4 or IPv6 by the addresses), then `tlvs`."""
    af, family = (socket.AF_INET6, 0x21) if ":" in source[0] else (socket.AF_INET, 0x11)
    body = (socket.inet_pton(af, source[0]) + socket.inet_pton(af, destination[0])
            + struct.pack("!HH", source[1], destination[1]) + tlvs)
    return V2_SIGNATURE + bytes([0x21, family]) + struct.pack("!H", len(body)) + body


PROXY_V2_LOCAL = V2_SIGNATURE + b"\x20\x00\x00\x00"


def _address(text):
    af = socket.AF_INET6 if ":" in text else socket.AF_INET
    return socket.inet_ntop(af, socket.inet_pton(af, text))  # one spelling per address


def split_proxy_header(data):
    """(header fields, the bytes after it) for the v1 or v2 header at the start of `data`, or
    None while it is incomplete. Fields: version, family (TCP4/TCP6/...), source and
    destination as (address, port); v2 adds command and tlvs."""
    if data.startswith(b"PROXY "[:len(data)]) and not data.startswith(V2_SIGNATURE[:1]):
        end = data.find(b"\r\n")
        if end < 0:
            return None
        parts = data[:end].decode("ascii").split(" ")
        if len(parts) != 6:
            return {"version": 1, "family": parts[1] if len(parts) > 1 else None}, data[end + 2:]
        _, family, src, dst, sport, dport = parts
        return ({"version": 1, "family": family, "source": (_address(src), int(sport)),
                 "destination": (_address(dst), int(dport))}, data[end + 2:])
    if V2_SIGNATURE.startswith(data[:12]):
        if len(data) < 16:
            return None
        length = struct.unpack("!H", data[14:16])[0]
        if len(data) < 16 + length:
            return None
        body = data[16:16 + length]
        fields = {"version": data[12] >> 4, "command": data[12] & 15,
                  "family": V2_FAMILIES.get(data[13], data[13])}
        af, size = {"TCP4": (socket.AF_INET, 4), "TCP6": (socket.AF_INET6, 16)}.get(
            fields["family"], (None, 0))
        if af is not None:
            sport, dport = struct.unpack("!HH", body[2 * size:2 * size + 4])
            fields["source"] = (socket.inet_ntop(af, body[:size]), sport)
            fields["destination"] = (socket.inet_ntop(af, body[size:2 * size]), dport)
            fields["tlvs"] = body[2 * size + 4:]
        return fields, data[16 + length:]
    raise AssertionError(f"no PROXY header at the start of {data[:40]!r}")


def tcp_header(version, source, destination):
    """The fields split_proxy_header gives for a TCP header without TLVs."""
    fields = {"version": version, "family": "TCP6" if ":" in source[0] else "TCP4",
              "source": (_address(source[0]), source[1]),
              "destination": (_address(destination[0]), destination[1])}
    if version == 2:
        fields.update(command=1, tlvs=b"")
    return fields


# --------------------------------------------------------------------------------------------
# Recording servers
# --------------------------------------------------------------------------------------------

class Recording:
    """One connection a recording server accepted: its bytes so far, growing."""

    def __init__(self, peer):
        self.peer = peer
        self.lock = threading.Lock()
        self.buffer = bytearray()
        self.outcome = None

    @property
    def data(self):
        with self.lock:
            return bytes(self.buffer)


def make_recording_handler(records, close_when=None, greeting=b""):
    """A handler that appends a Recording to `records` per connection, sends `greeting`, then
    records what arrives until EOF, or until close_when(bytes so far) holds (then it closes)."""

    def handler(conn, server):
        rec = Recording(conn.getpeername())
        records.append(rec)
        try:
            if greeting:
                conn.sendall(greeting)
            for _ in range(1 << 20):
                chunk = conn.recv(65536)
                if not chunk:
                    rec.outcome = "eof"
                    break
                with rec.lock:
                    rec.buffer += chunk
                if close_when is not None and close_when(rec.data):
                    rec.outcome = "closed"
                    break
        except OSError as e:
            rec.outcome = repr(e)
        return rec

    return handler


class RecordingServer(harness.TCPServer):
    """A TCPServer whose close() wakes its accept thread at once (shutdown of the listening
    socket) instead of after the accept timeout: a test with five servers stops in no time."""

    def __init__(self, close_when=None, greeting=b"", port=0):
        self.records = []  # a Recording per accepted connection, in order
        super().__init__(make_recording_handler(self.records, close_when, greeting),
                         port=port, conn_timeout=10.0)

    def close(self):
        self._stop.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        super().close()


def stats_with(proxy, *keys, timeout=10.0):
    """The statistics block a SIGUSR1 prints, once it holds every key (the per-listener lines
    come after the process-wide ones): no waiting for the output to go quiet."""
    before = len(harness.parse_stat_blocks(proxy.stderr_snapshot()))
    proxy.send_signal(signal.SIGUSR1)

    def ready():
        blocks = harness.parse_stat_blocks(proxy.stderr_snapshot())
        if len(blocks) > before and all(k in blocks[before][0] for k in keys):
            return blocks[before][0]
        return None

    block = wait_until(ready, timeout, interval=0.01)
    if not block:
        raise AssertionError(f"no statistics block with {keys} within {timeout}s of SIGUSR1; "
                             f"stderr:\n{proxy.stderr_text()[-3000:]}")
    return block


def counters(proxy, listener, *names):
    """(listener.LISTENER.NAME for each name) from a fresh statistics block."""
    keys = [f"listener.{listener}.{n}" for n in names]
    block = stats_with(proxy, *keys)
    return tuple(block[k] for k in keys)


class RecordingTestCase(ProxyTestCase):

    def start_recorder(self, port=0, close_when=None, greeting=b""):
        """A server that records every connection (server.records, a list of Recording)."""
        server = RecordingServer(close_when, greeting, port)
        self.addCleanup(server.close)
        return self._own(server)

    def start_recorders(self, *names, **kw):
        return {n: self.start_recorder(**kw) for n in names}

    def describe(self, recorders):
        return {n: [len(r.data) for r in s.records] for n, s in recorders.items()}

    def client(self, port, source=CLIENT_SOURCE, host="127.0.0.1"):
        """A connected client socket (TCP_NODELAY), bound to `source` if given; closed at
        cleanup."""
        s = socket.socket(harness.family_of(host), socket.SOCK_STREAM)
        self.addCleanup(harness.safe_close, s)
        self._own(s)
        s.settimeout(harness.SOCKET_TIMEOUT)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if source is not None:
            s.bind((source, 0))
        s.connect((host, port))
        return s

    def arrival(self, recorders, before, done, proxy=None):
        """Wait until one recorder has a connection beyond before[name] whose bytes satisfy
        done(bytes); returns (name, bytes). Fails, saying what every recorder holds, if none does
        within ARRIVAL_TIMEOUT, or if another recorder got a connection too."""

        def found():
            for name, server in recorders.items():
                new = server.records[before[name]:]
                if new and done(new[0].data):
                    return name, new[0].data
            return None

        got = wait_until(found, ARRIVAL_TIMEOUT, interval=0.01)
        stderr = proxy.stderr_text()[-3000:] if proxy is not None else ""
        self.assertTrue(got, f"nothing arrived whole within {ARRIVAL_TIMEOUT}s; recorders "
                             f"(bytes per connection): {self.describe(recorders)}\n{stderr}")
        others = {n: len(s.records) - before[n] for n, s in recorders.items()
                  if n != got[0] and len(s.records) > before[n]}
        self.assertEqual(others, {}, f"{got[0]} got the connection, but so did others")
        return got

    def deliver(self, port, chunks, recorders, done, proxy=None, pause=0.0,
                source=CLIENT_SOURCE, host="127.0.0.1"):
        """Connect to host:`port`, send `chunks` (bytes, or a list of them with `pause` seconds
        after each), and return (name, bytes received, client socket) from arrival()."""
        before = {n: len(s.records) for n, s in recorders.items()}
        s = self.client(port, source=source, host=host)
        if isinstance(chunks, bytes):
            chunks = [chunks]
        for chunk in chunks:
            s.sendall(chunk)
            if pause:
                time.sleep(pause)
        name, data = self.arrival(recorders, before, done, proxy)
        return name, data, s

    def route(self, proxy, port, payload, recorders, **kw):
        """deliver() `payload` and check it arrived byte-exact; returns the recorder's name."""
        name, data, s = self.deliver(port, payload, recorders,
                                     lambda d: len(d) >= len(payload), proxy, **kw)
        self.assertEqual(len(data), len(payload), f"{name} got a different number of bytes")
        self.assertEqual(data, payload, f"{name} got altered bytes")
        s.close()
        return name


# --------------------------------------------------------------------------------------------
# A-D: routing by ClientHello
# --------------------------------------------------------------------------------------------

SNI_CONFIG = """
backend exact    { server s 127.0.0.1:@EXACT@ }
backend wild     { server s 127.0.0.1:@WILD@ }
backend h2       { server s 127.0.0.1:@H2@ }
backend fallback { server s 127.0.0.1:@FALLBACK@ }
backend overflow { server s 127.0.0.1:@OVERFLOW@ }

listener tls {
    bind 127.0.0.1:@PORT@
    inspect-timeout 10s
    route {
        sni exact.example.org backend exact
        sni *.example.com backend wild
        alpn h2 backend h2
    }
    backend fallback
}

listener big {
    bind 127.0.0.1:@BIG@
    inspect-timeout 10s
    inspect-bytes 32k
    route {
        sni big.example.com backend wild
    }
    backend fallback
}

listener small {
    bind 127.0.0.1:@SMALL@
    inspect-timeout 10s
    route {
        sni big.example.com backend wild
    }
    on-full backend overflow
    backend fallback
}
"""


class SniRouting(RecordingTestCase):
    """One proxy per test on SNI_CONFIG; each recorder closes once a whole ClientHello is in,
    so an `openssl s_client` waiting for the server's answer ends."""

    def setUp(self):
        self.recorders = self.start_recorders("exact", "wild", "h2", "fallback", "overflow",
                                              close_when=hello_complete)
        self.proxy = self.start_proxy_config(
            SNI_CONFIG, values={n.upper(): s.port for n, s in self.recorders.items()})

    def where(self, hello, port=None, **kw):
        return self.route(self.proxy, port or self.proxy.port, hello, self.recorders, **kw)

    def openssl(self, name, *args):
        """Run `openssl s_client -servername name` through the proxy; returns (recorder name,
        the ClientHello it got)."""
        before = {n: len(s.records) for n, s in self.recorders.items()}
        cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{self.proxy.port}",
               "-servername", name] + list(args)
        try:  # it ends when the recorder, holding the whole hello, closes
            said = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, timeout=ARRIVAL_TIMEOUT,
                                  check=False).stderr
        except subprocess.TimeoutExpired as e:  # run() has killed it
            said = e.stderr or b""
        got, hello = self.arrival(self.recorders, before, hello_complete, self.proxy)
        self.assertEqual(hello_message(hello)[1], len(hello),
                         f"{cmd}: {got} got bytes beyond the ClientHello; openssl said "
                         f"{said[-500:]!r}")
        return got, hello

    def test_python_ssl_hello_routed_by_exact_name_byte_exact(self):
        hello = python_hello("exact.example.org")
        self.assertEqual(hello_fields(hello)[0], "exact.example.org")
        self.assertEqual(self.where(hello), "exact")
        self.assertEqual(counters(self.proxy, "tls", "rule1.matches", "routed"), (1, 1))

    def test_wildcard_matches_whole_label_suffixes_only(self):
        routed = {name: self.where(python_hello(name))
                  for name in ("a.example.com", "a.b.example.com", "example.com",
                               "badexample.com", "example.com.evil", "exact.example.org.evil")}
        self.assertEqual(routed, {"a.example.com": "wild", "a.b.example.com": "wild",
                                  "example.com": "fallback", "badexample.com": "fallback",
                                  "example.com.evil": "fallback",
                                  "exact.example.org.evil": "fallback"})
        self.assertEqual(counters(self.proxy, "tls", "routed", "defaulted", "rule2.matches"),
                         (2, 4, 2))

    def test_names_compared_without_case_or_trailing_dot(self):
        # python3's ssl lower-cases server_hostname (IDNA): these hellos are built by hand.
        routed = {}
        for name in ("A.EXAMPLE.COM", "Exact.Example.ORG", "b.example.com.", "EXAMPLE.COM"):
            hello = built_hello(name)
            self.assertEqual(hello_fields(hello)[0], name)
            routed[name] = self.where(hello)
        got, hello = self.openssl("Mixed.Example.COM")
        routed["openssl Mixed.Example.COM"] = got
        self.assertEqual(hello_fields(hello)[0], "Mixed.Example.COM",
                         "openssl sent the name in another case: the test proves nothing")
        self.assertEqual(routed, {"A.EXAMPLE.COM": "wild", "Exact.Example.ORG": "exact",
                                  "b.example.com.": "wild", "EXAMPLE.COM": "fallback",
                                  "openssl Mixed.Example.COM": "wild"})

    def test_hello_without_server_name_goes_to_the_listener_backend(self):
        hellos = {"python, server_hostname None": python_hello(None),
                  "python, server_hostname 127.0.0.1": python_hello("127.0.0.1"),
                  "built, no SNI": built_hello(None)}
        for what, hello in hellos.items():
            self.assertIsNone(hello_fields(hello)[0], f"{what}: the hello has a name")
        self.assertEqual({what: self.where(h) for what, h in hellos.items()},
                         dict.fromkeys(hellos, "fallback"))
        self.assertEqual(counters(self.proxy, "tls", "defaulted", "inspect_timeouts"), (3, 0))

    def test_alpn_h2_routes_when_no_earlier_rule_decides(self):
        cases = {"other.test h2": ("other.test", ["h2", "http/1.1"]),
                 "no name h2": (None, ["http/1.1", "h2"]),
                 "other.test http/1.1": ("other.test", ["http/1.1"]),
                 "a.example.com h2": ("a.example.com", ["h2"])}
        routed = {}
        for what, (name, alpn) in cases.items():
            hello = python_hello(name, alpn)
            self.assertEqual(hello_fields(hello), (name, alpn))
            routed[what] = self.where(hello)
        self.assertEqual(routed, {"other.test h2": "h2", "no name h2": "h2",
                                  "other.test http/1.1": "fallback",
                                  "a.example.com h2": "wild"})

    def test_openssl_s_client_routed_by_name_and_alpn(self):
        routed = {}
        for name, args in (("exact.example.org", ()), ("www.example.com", ("-alpn", "h2")),
                           ("other.test", ("-alpn", "h2,http/1.1")), ("other.test", ())):
            got, hello = self.openssl(name, *args)
            self.assertEqual(hello_fields(hello)[0], name)
            routed[(name,) + args] = got
        self.assertEqual(routed, {("exact.example.org",): "exact",
                                  ("www.example.com", "-alpn", "h2"): "wild",
                                  ("other.test", "-alpn", "h2,http/1.1"): "h2",
                                  ("other.test",): "fallback"})

    # B ----------------------------------------------------------------------------------------

    def test_hello_in_three_byte_segments_routes_the_same_byte_exact(self):
        hello = python_hello("seg.example.com", ["http/1.1"])
        chunks = [hello[i:i + 3] for i in range(0, len(hello), 3)]
        before = {n: len(s.records) for n, s in self.recorders.items()}
        s = self.client(self.proxy.port)
        for chunk in chunks[:-1]:
            s.sendall(chunk)
            time.sleep(0.001)
        self.assertEqual({n: len(r.records) - before[n] for n, r in self.recorders.items()},
                         dict.fromkeys(self.recorders, 0),
                         "a server was connected before the ClientHello was whole")
        s.sendall(chunks[-1])
        name, data = self.arrival(self.recorders, before, lambda d: len(d) >= len(hello),
                                  self.proxy)
        self.assertEqual((name, data), ("wild", hello))
        self.assertEqual(counters(self.proxy, "tls", "routed"), (1,))

    def test_hello_fragmented_into_three_byte_records_routes_byte_exact(self):
        hello = built_hello("frag.example.com", record_size=3)  # the 4-byte header split too
        self.assertGreater(hello.count(b"\x16\x03\x01\x00\x03"), 400)
        self.assertEqual(hello_fields(hello)[0], "frag.example.com")
        self.assertEqual(self.where(hello), "wild")

    # C ----------------------------------------------------------------------------------------

    def large_hello(self):
        hello = built_hello("big.example.com", padding=17000)
        message, used = hello_message(hello)
        self.assertEqual(used, len(hello))
        self.assertGreater(len(hello), 16384 + 5, "the hello must span two records")
        self.assertEqual(hello_fields(hello)[0], "big.example.com")
        return hello

    def test_large_hello_routed_by_name_with_32k_inspect_bytes(self):
        hello = self.large_hello()
        self.assertEqual(self.where(hello, port=self.proxy.values["BIG"]), "wild")
        self.assertEqual(counters(self.proxy, "big", "routed", "inspect_overflows"), (1, 0))

    def test_large_hello_over_default_8k_goes_whole_to_on_full_backend(self):
        hello = self.large_hello()
        got = self.where(hello, port=self.proxy.values["SMALL"])
        seen = counters(self.proxy, "small", "inspect_overflows", "defaulted", "rule1.matches")
        self.assertEqual((got,) + seen, ("overflow", 1, 0, 0),
                         "(backend reached, inspect_overflows, defaulted, rule1.matches)")

    # D ----------------------------------------------------------------------------------------

    def test_client_that_is_not_tls_goes_to_the_default_backend_at_once(self):
        # inspect-timeout is 10s: a proxy waiting for more bytes fails arrival()'s 5s bound.
        for payload in (b"GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n",
                        b"SSH-2.0-OpenSSH_9.2p1\r\n", b"\x16\x02"):
            self.assertEqual(self.where(payload), "fallback", payload)
        self.assertEqual(counters(self.proxy, "tls", "defaulted", "inspect_timeouts"), (3, 0))


# --------------------------------------------------------------------------------------------
# E: accept-proxy
# --------------------------------------------------------------------------------------------

ACCEPT_CONFIG = """
backend one { server s 127.0.0.1:@ONE@ }
backend src {
    balance source
    server a 127.0.0.1:@A@
    server b 127.0.0.1:@B@
    server c 127.0.0.1:@C@
    server d 127.0.0.1:@D@
}

listener pp {
    bind 127.0.0.1:@PORT@
    accept-proxy
    inspect-timeout 10s
    backend one
}

listener ppsource {
    bind 127.0.0.1:@SOURCE@
    accept-proxy
    inspect-timeout 10s
    backend src
}

listener ppshort {
    bind 127.0.0.1:@SHORT@
    accept-proxy
    inspect-timeout 300ms
    backend one
}
"""

CLIENT_V4 = ("203.0.113.7", 5555)
SERVER_V4 = ("192.0.2.1", 80)
CLIENT_V6 = ("2001:db8::7", 5555)
SERVER_V6 = ("2001:db8::1", 443)


class AcceptProxy(RecordingTestCase):

    def setUp(self):
        self.recorders = self.start_recorders("one", "a", "b", "c", "d")
        self.one = {"one": self.recorders["one"]}
        self.spread = {n: self.recorders[n] for n in "abcd"}
        self.proxy = self.start_proxy_config(
            ACCEPT_CONFIG, values={n.upper(): s.port for n, s in self.recorders.items()})

    def data_only(self, port, chunks, data, recorders=None, pause=0.0):
        """Send chunks (a PROXY header, then data); the server must get `data` alone, exactly.
        Returns the recorder's name."""
        recorders = recorders or self.one
        name, got, s = self.deliver(port, chunks, recorders, lambda d: len(d) >= len(data),
                                    self.proxy, pause=pause)
        self.assertEqual(got, data, "the server must receive the data alone, byte-exact")
        s.close()
        return name

    def test_v1_header_stripped_data_byte_exact(self):
        data = os.urandom(100_000)
        header = proxy_v1(CLIENT_V4, SERVER_V4)
        self.assertEqual(header, b"PROXY TCP4 203.0.113.7 192.0.2.1 5555 80\r\n")
        self.data_only(self.proxy.port, header + data, data)
        # The header in pieces, then the data in its own segments.
        self.data_only(self.proxy.port, [header[:7], header[7:30], header[30:], data[:10],
                                         data[10:]], data, pause=0.02)
        self.data_only(self.proxy.port, proxy_v1(CLIENT_V6, SERVER_V6) + b"x", b"x")
        self.assertEqual(counters(self.proxy, "pp", "proxy_headers", "proxy_header_errors"),
                         (3, 0))

    def test_v2_headers_ipv4_ipv6_with_tlvs_stripped(self):
        data = b"hello after a v2 header\n" + os.urandom(20_000)
        tlvs = tlv(0x02, b"authority.example") + tlv(0x04, bytes(10))  # AUTHORITY, NOOP
        for header in (proxy_v2(CLIENT_V4, SERVER_V4), proxy_v2(CLIENT_V4, SERVER_V4, tlvs),
                       proxy_v2(CLIENT_V6, SERVER_V6, tlvs), PROXY_V2_LOCAL):
            self.data_only(self.proxy.port, header + data, data)
        self.data_only(self.proxy.port, [proxy_v2(CLIENT_V6, SERVER_V6, tlvs)[:20],
                                         proxy_v2(CLIENT_V6, SERVER_V6, tlvs)[20:], data],
                       data, pause=0.02)
        self.assertEqual(counters(self.proxy, "pp", "proxy_headers", "proxy_header_errors"),
                         (5, 0))

    def test_source_balancing_uses_the_proxied_address(self):
        # Every connection comes from CLIENT_SOURCE: only the header's address can spread them.
        clients = [(f"203.0.113.{i}", 40000 + i) for i in range(1, 9)]
        clients += [(f"2001:db8::{i:x}", 40000 + i) for i in range(1, 9)]
        first = {}
        for round_ in range(3):
            for i, client in enumerate(clients):
                dst = SERVER_V6 if ":" in client[0] else SERVER_V4
                header = proxy_v1(client, dst) if i % 2 else proxy_v2(client, dst)
                name = self.data_only(self.proxy.values["SOURCE"], header + b"ping\n",
                                      b"ping\n", self.spread)
                if round_ == 0:
                    first[client] = name
                else:
                    self.assertEqual(name, first[client],
                                     f"round {round_}: {client} moved from {first[client]}")
        used = set(first.values())
        self.assertGreaterEqual(len(used), 2, f"16 proxied addresses all on one server: {first}")

    def test_malformed_header_closes_at_once(self):
        # inspect-timeout is 10s: only a refusal at the wrong byte closes within 5s.
        malformed = [b"PROXY TCP4 300.1.1.1 192.0.2.1 5555 80\r\nx",
                     b"GET / HTTP/1.0\r\n\r\n",
                     b"PROXY TCP4 203.0.113.7 192.0.2.1 5555\r\nx",
                     V2_SIGNATURE + b"\x31\x11\x00\x0c" + bytes(12) + b"x",  # version 3
                     b"\r\n\r\n\x00\r\nQUIX\n\x21\x11\x00\x0c" + bytes(12)]
        for payload in malformed:
            s = self.client(self.proxy.port)
            s.sendall(payload)
            outcome, elapsed, _ = wait_closed(s, ARRIVAL_TIMEOUT)
            self.assertIn(outcome, ("eof", "reset"), f"{payload!r} not refused within "
                                                     f"{ARRIVAL_TIMEOUT}s")
            s.close()
        self.assertEqual(counters(self.proxy, "pp", "proxy_header_errors", "proxy_headers",
                                  "inspect_timeouts"), (len(malformed), 0, 0))
        self.assertEqual(self.recorders["one"].accepted, 0)

    def test_missing_header_closes_after_inspect_timeout(self):
        silent = self.client(self.proxy.values["SHORT"])
        partial = self.client(self.proxy.values["SHORT"])
        partial.sendall(b"PROXY TCP4 203.0.113.7 ")
        for s in (silent, partial):
            outcome, _, _ = wait_closed(s, ARRIVAL_TIMEOUT)
            self.assertIn(outcome, ("eof", "reset"), "not closed at inspect-timeout (300ms)")
        self.assertEqual(counters(self.proxy, "ppshort", "inspect_timeouts",
                                  "proxy_header_errors", "proxy_headers"), (2, 2, 0))
        self.assertEqual(self.recorders["one"].accepted, 0)


# --------------------------------------------------------------------------------------------
# F: proxy-protocol toward the servers
# --------------------------------------------------------------------------------------------

SEND_CONFIG = """
backend v1    { proxy-protocol v1
                server s 127.0.0.1:@V1@ }
backend v2    { proxy-protocol v2
                server s 127.0.0.1:@V2@ }
backend mixed { proxy-protocol v1
                server s 127.0.0.1:@MIXED@ proxy-protocol v2 }

listener l1 { bind 127.0.0.1:@PORT@
              backend v1 }
listener l2 { bind 127.0.0.1:@L2@
              backend v2 }
listener l3 { bind 127.0.0.1:@L3@
              backend mixed }
listener a1 { bind 127.0.0.1:@A1@
              accept-proxy
              backend v1 }
listener a2 { bind 127.0.0.1:@A2@
              accept-proxy
              backend v2 }
"""


def header_then(size):
    """done() for deliver(): a whole PROXY header and `size` bytes after it."""

    def done(data):
        split = split_proxy_header(data)
        return split is not None and len(split[1]) >= size

    return done


class SendProxy(RecordingTestCase):

    def setUp(self):
        self.recorders = self.start_recorders("v1", "v2", "mixed")
        self.proxy = self.start_proxy_config(
            SEND_CONFIG, values={n.upper(): s.port for n, s in self.recorders.items()})

    def header_and_data(self, port, chunks, data):
        """deliver() chunks; returns (recorder name, the header's fields, the client's
        (address, port)) after checking `data` followed the header byte-exact."""
        name, got, s = self.deliver(port, chunks, self.recorders, header_then(len(data)),
                                    self.proxy)
        fields, rest = split_proxy_header(got)
        self.assertEqual(rest, data, f"{name}: the bytes after the header differ")
        client = s.getsockname()[:2]
        s.close()
        return name, fields, client

    def test_v1_header_carries_client_and_listener_addresses(self):
        data = os.urandom(200_000)
        name, fields, client = self.header_and_data(self.proxy.port, data, data)
        self.assertEqual(name, "v1")
        self.assertEqual(fields, tcp_header(1, client, ("127.0.0.1", self.proxy.port)))

    def test_v2_header_carries_client_and_listener_addresses(self):
        data = os.urandom(200_000)
        port = self.proxy.values["L2"]
        name, fields, client = self.header_and_data(port, data, data)
        self.assertEqual(name, "v2")
        self.assertEqual(fields, tcp_header(2, client, ("127.0.0.1", port)))

    def test_server_option_overrides_the_backend_version(self):
        port = self.proxy.values["L3"]
        name, fields, client = self.header_and_data(port, b"abc", b"abc")
        self.assertEqual(name, "mixed")
        self.assertEqual(fields, tcp_header(2, client, ("127.0.0.1", port)))

    def test_header_sent_before_a_silent_client_server_speaks_first(self):
        greeting = b"220 server speaks first\r\n"
        self.recorders["v1"].close()
        server = self.start_recorder(port=self.proxy.values["V1"], greeting=greeting)
        s = self.client(self.proxy.port)
        self.assertEqual(harness.recv_exact(s, len(greeting)), greeting)
        self.assertTrue(wait_until(lambda: server.records and
                                   split_proxy_header(server.records[0].data) is not None,
                                   ARRIVAL_TIMEOUT, 0.01),
                        "no PROXY header reached the server while the client was silent")
        s.sendall(b"EHLO client\r\n")
        self.assertTrue(wait_until(lambda: split_proxy_header(server.records[0].data)[1]
                                   == b"EHLO client\r\n", ARRIVAL_TIMEOUT, 0.01),
                        f"server got {server.records[0].data!r}")
        fields, _ = split_proxy_header(server.records[0].data)
        self.assertEqual(fields, tcp_header(1, s.getsockname()[:2],
                                            ("127.0.0.1", self.proxy.port)))

    def test_accepted_address_is_the_one_sent_onward(self):
        a1, a2 = self.proxy.values["A1"], self.proxy.values["A2"]
        cases = [(a1, proxy_v1(CLIENT_V4, SERVER_V4), tcp_header(1, CLIENT_V4, SERVER_V4)),
                 (a2, proxy_v1(CLIENT_V4, SERVER_V4), tcp_header(2, CLIENT_V4, SERVER_V4)),
                 (a1, proxy_v2(CLIENT_V6, SERVER_V6, tlv(4, b"zz")),
                  tcp_header(1, CLIENT_V6, SERVER_V6)),
                 (a2, proxy_v2(CLIENT_V6, SERVER_V6), tcp_header(2, CLIENT_V6, SERVER_V6))]
        data = b"payload\n" * 1000
        for port, header, want in cases:
            _, fields, _ = self.header_and_data(port, header + data, data)
            self.assertEqual(fields, want, f"incoming {header!r}")
        # v2 LOCAL (a health check of the balancer in front): the socket's own addresses.
        _, fields, client = self.header_and_data(a1, PROXY_V2_LOCAL + data, data)
        self.assertEqual(fields, tcp_header(1, client, ("127.0.0.1", a1)))
        # The exact v1 line for the brief's example.
        name, got, s = self.deliver(a1, proxy_v1(CLIENT_V4, SERVER_V4) + b"z", self.recorders,
                                    header_then(1), self.proxy)
        self.assertEqual(got, b"PROXY TCP4 203.0.113.7 192.0.2.1 5555 80\r\nz")


    def test_ipv6_client_sent_as_tcp6(self):
        if not harness.ipv6_available():
            self.skipTest("::1 cannot be bound")
        for version in (1, 2):
            server = self.start_recorder()
            proxy = self.start_proxy_config(
                "backend b { proxy-protocol v%d\n server s 127.0.0.1:%d }\n"
                "listener six { bind [::1]:@PORT@\n backend b }\n" % (version, server.port))
            name, got, s = self.deliver(proxy.port, b"six", {"s": server}, header_then(3), proxy,
                                        source=None, host="::1")
            client = s.getsockname()[:2]
            self.assertEqual(client[0], "::1")
            self.assertEqual(split_proxy_header(got),
                             (tcp_header(version, client, ("::1", proxy.port)), b"six"))

    def test_command_line_accept_proxy_and_proxy_protocol(self):
        server = self.start_recorder()
        proxy = self.start_proxy(server.port, extra=["--accept-proxy", "--proxy-protocol", "v2",
                                                     "--inspect-timeout", "2s"])
        data = os.urandom(30_000)
        name, got, s = self.deliver(proxy.port, proxy_v1(CLIENT_V4, SERVER_V4) + data,
                                    {"s": server}, header_then(len(data)), proxy)
        fields, rest = split_proxy_header(got)
        self.assertEqual(fields, tcp_header(2, CLIENT_V4, SERVER_V4),
                         f"the server's first bytes: {got[:60]!r}")
        self.assertEqual(rest, data)


# --------------------------------------------------------------------------------------------
# G: HAProxy on either side
# --------------------------------------------------------------------------------------------

HAPROXY_CONFIG = """global
    maxconn 100
defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend to_edge_v2
    bind 127.0.0.1:{H_V2}
    default_backend edge_v2
backend edge_v2
    server edge 127.0.0.1:{EDGE_IN} send-proxy-v2
frontend to_edge_v1
    bind 127.0.0.1:{H_V1}
    default_backend edge_v1
backend edge_v1
    server edge 127.0.0.1:{EDGE_IN} send-proxy
frontend from_edge
    bind 127.0.0.1:{H_ACC} accept-proxy
    default_backend recorder
backend recorder
    server rec 127.0.0.1:{REC_H} send-proxy
"""

EDGE_FOR_HAPROXY_CONFIG = """
backend recorder   { proxy-protocol v1
                     server rec 127.0.0.1:@REC_E@ }
backend haproxy_v2 { proxy-protocol v2
                     server h 127.0.0.1:@H_ACC@ }
backend haproxy_v1 { proxy-protocol v1
                     server h 127.0.0.1:@H_ACC@ }
listener from_haproxy { bind 127.0.0.1:@EDGE_IN@
                        accept-proxy
                        inspect-timeout 5s
                        backend recorder }
listener to_haproxy_v2 { bind 127.0.0.1:@EDGE_V2@
                         backend haproxy_v2 }
listener to_haproxy_v1 { bind 127.0.0.1:@EDGE_V1@
                         backend haproxy_v1 }
"""


@unittest.skipUnless(os.access(HAPROXY, os.X_OK), f"{HAPROXY} is not installed")
class HaproxyInterop(RecordingTestCase):
    """One HAProxy for the class (its ports fixed here); an edgeproxy and the recorders per
    test, on the same ports."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ports = {}
        for name in ("H_V2", "H_V1", "H_ACC", "EDGE_IN", "EDGE_V2", "EDGE_V1", "REC_E", "REC_H"):
            for _ in range(20):
                port = free_port()
                if port not in cls.ports.values():
                    cls.ports[name] = port
                    break
        cls.dir = tempfile.mkdtemp(prefix="edgeproxy-haproxy-")
        cls.addClassCleanup(shutil.rmtree, cls.dir, True)
        path = os.path.join(cls.dir, "haproxy.cfg")
        with open(path, "w") as f:
            f.write(HAPROXY_CONFIG.format(**cls.ports))
        cls.log = open(os.path.join(cls.dir, "haproxy.log"), "w+b")
        cls.addClassCleanup(cls.log.close)
        cls.haproxy = subprocess.Popen([HAPROXY, "-db", "-f", path], stdin=subprocess.DEVNULL,
                                       stdout=cls.log, stderr=subprocess.STDOUT)
        cls.addClassCleanup(cls.stop_haproxy)

        def listening():
            if cls.haproxy.poll() is not None:
                return True
            return all(not harness.refuses(cls.ports[n]) for n in ("H_V2", "H_V1", "H_ACC"))

        wait_until(listening, 10.0)
        if cls.haproxy.poll() is not None or not listening():
            cls.log.seek(0)
            raise AssertionError(f"haproxy did not start (exit {cls.haproxy.poll()}): "
                                 f"{cls.log.read().decode(errors='replace')}")

    @classmethod
    def stop_haproxy(cls):
        if cls.haproxy.poll() is None:
            os.kill(cls.haproxy.pid, 15)
            try:
                cls.haproxy.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(cls.haproxy.pid, 9)
                cls.haproxy.wait(timeout=5)

    def setUp(self):
        self.rec_e = self.start_recorder(port=self.ports["REC_E"])
        self.rec_h = self.start_recorder(port=self.ports["REC_H"])
        self.proxy = self.start_proxy_config(EDGE_FOR_HAPROXY_CONFIG, values=dict(self.ports))

    def haproxy_log(self):
        self.log.flush()
        with open(self.log.name, "rb") as f:
            return f.read().decode(errors="replace")[-2000:]

    def through(self, port, recorder, data):
        """Connect from CLIENT_SOURCE to `port`, send data; `recorder` must get one PROXY v1
        header and the data. Returns (header fields, the client's (address, port))."""
        name, got, s = self.deliver(port, data, {"rec": recorder}, header_then(len(data)),
                                    self.proxy)
        fields, rest = split_proxy_header(got)
        self.assertEqual(rest, data, "the data after the header differs")
        client = s.getsockname()[:2]
        s.close()
        return fields, client

    def test_haproxy_send_proxy_v2_into_edgeproxy_accept_proxy(self):
        data = os.urandom(50_000)
        fields, client = self.through(self.ports["H_V2"], self.rec_e, data)
        self.assertEqual(client[0], CLIENT_SOURCE)
        self.assertEqual(fields, tcp_header(1, client, ("127.0.0.1", self.ports["H_V2"])),
                         f"haproxy log:\n{self.haproxy_log()}")
        self.assertEqual(counters(self.proxy, "from_haproxy", "proxy_headers"), (1,))

    def test_haproxy_send_proxy_v1_into_edgeproxy_accept_proxy(self):
        data = os.urandom(50_000)
        fields, client = self.through(self.ports["H_V1"], self.rec_e, data)
        self.assertEqual(fields, tcp_header(1, client, ("127.0.0.1", self.ports["H_V1"])),
                         f"haproxy log:\n{self.haproxy_log()}")

    def test_edgeproxy_v2_into_haproxy_accept_proxy(self):
        data = os.urandom(50_000)
        fields, client = self.through(self.ports["EDGE_V2"], self.rec_h, data)
        self.assertEqual(fields, tcp_header(1, client, ("127.0.0.1", self.ports["EDGE_V2"])),
                         f"haproxy log:\n{self.haproxy_log()}")

    def test_edgeproxy_v1_into_haproxy_accept_proxy(self):
        data = os.urandom(50_000)
        fields, client = self.through(self.ports["EDGE_V1"], self.rec_h, data)
        self.assertEqual(fields, tcp_header(1, client, ("127.0.0.1", self.ports["EDGE_V1"])),
                         f"haproxy log:\n{self.haproxy_log()}")


if __name__ == "__main__":
    unittest.main()

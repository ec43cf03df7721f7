"""Content-aware routing (issue 11, docs/routing.md): ProxyMachine's git example with a map file,
a buffer that does not match yet waiting for more, every action (backend, server, hash, send,
wait, reply, close, close "text", reject), one byte per read, on-timeout (a server that speaks
first), on-full, a client ending or resetting while routing, a retry after routing, HTTP host,
path and method, the route counters, a reload of a map file and of a rule, and -t on bad rules.

Backends are recording servers: each accepted connection's bytes are kept, so a test checks the
exact bytes a backend received (the replay) and that a backend received nothing. Where a client
must know where it landed, the server first sends its name and a newline."""

import os
import random
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ProxyTestCase, recv_exact  # noqa: E402

WAIT = 5.0  # seconds any single expected event may take (bounded waits, never sleeps)


# --------------------------------------------------------------------------------------------
# Recording servers and byte helpers
# --------------------------------------------------------------------------------------------

class Record:
    """One connection a recording server accepted: the bytes it received and how it ended."""

    def __init__(self):
        self.data = bytearray()
        self.end = None  # "eof", "reset", "timeout", or an error's repr

    def received(self):
        return bytes(self.data)


def make_recording_handler(records, greeting=None):
    """Record each connection in `records` (in the order their handlers start: the accept
    order for connections made one after another): send `greeting` first if any, then read to
    EOF keeping every byte; on EOF, end the write side too."""

    def handler(conn, server):
        rec = Record()
        records.append(rec)
        try:
            if greeting:
                conn.sendall(greeting)
            for _ in range(1 << 30):
                data = conn.recv(65536)
                if not data:
                    rec.end = "eof"
                    break
                rec.data += data
        except ConnectionResetError:
            rec.end = "reset"
        except (socket.timeout, TimeoutError):
            rec.end = "timeout"
        except OSError as e:
            rec.end = repr(e)
        if rec.end == "eof":
            try:
                conn.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        return rec

    return handler


def pkt_line(payload):
    """A git pkt-line: four hex digits giving the whole length (themselves included), then
    the payload."""
    return b"%04x" % (len(payload) + 4) + payload


def upload_pack(user, repo="x.git", host="h"):
    return pkt_line(b"git-upload-pack /%s/%s\0host=%s\0" % (user.encode(), repo.encode(),
                                                             host.encode()))


def read_line(sock, limit=256):
    """Bytes up to and including the first newline (or up to EOF)."""
    line = b""
    for _ in range(limit):
        data = sock.recv(1)
        if not data:
            break
        line += data
        if data == b"\n":
            break
    return line


def peek_state(sock):
    """'open' (no byte and no EOF waiting), 'data', 'eof' or 'reset', without blocking."""
    old = sock.gettimeout()
    sock.setblocking(False)
    try:
        data = sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return "open"
    except ConnectionResetError:
        return "reset"
    finally:
        sock.settimeout(old)
    return "data" if data else "eof"


class RoutingTestCase(ProxyTestCase):

    def recorder(self, name, greet=False, greeting=None):
        """A recording server; with greet=True it first sends its name and a newline."""
        records = []
        if greet:
            greeting = name.encode() + b"\n"
        server = self.start_server(make_recording_handler(records, greeting))
        server.records = records
        server.name = name
        return server

    def recorders(self, *names, greet=False):
        return {n: self.recorder(n, greet=greet) for n in names}

    def start_routing(self, text, servers=()):
        """start_proxy_config with @NAME@ of each server in `servers` ({name: server}) set to
        its port; other placeholders get free ports (nothing listens there)."""
        values = {n.upper(): s.port for n, s in dict(servers).items()}
        return self.start_proxy_config(text, values=values)

    def wait_received(self, server, expected, index=0, end=None, what=""):
        """Wait until connection `index` of `server` (see make_recording_handler) received
        len(expected) bytes (and, with `end`, ended), then check they are exactly `expected`
        (and that it ended so)."""

        def ready():
            if len(server.records) <= index:
                return False
            rec = server.records[index]
            return len(rec.data) >= len(expected) and (end is None or rec.end is not None)

        harness.wait_until(ready, WAIT, interval=0.01)
        self.assertGreater(len(server.records), index,
                           f"{server.name}: connection {index} did not arrive {what}")
        rec = server.records[index]
        got = rec.received()
        self.assertEqual(len(got), len(expected), f"{server.name}: {len(got)} bytes received, "
                                                  f"want {len(expected)} {what}")
        if got != expected:
            at = next(i for i in range(len(got)) if got[i] != expected[i])
            where = expected.find(got[at:at + 64])
            self.fail(f"{server.name}: other bytes than sent {what}: they differ from byte {at} "
                      f"on, where the bytes sent from offset {where} came")
        if end is not None:
            self.assertEqual(rec.end, end, f"{server.name}: how the connection ended {what}")
        return rec

    def wait_reads(self, proxy, count):
        """Wait until the proxy has done `count` client reads (reads_client, which counts reads
        that brought bytes or EOF): then it has run its rules over what they brought."""
        stats = proxy.wait_stats(lambda st: st["reads_client"] >= count, timeout=WAIT)
        self.assertGreaterEqual(stats["reads_client"], count, "the proxy did not read the bytes")
        return stats

    def assertNothingConnected(self, servers, stats, backends):
        for s in servers:
            self.assertEqual(s.accepted, 0, f"{s.name} got a connection")
        for b in backends:
            self.assertEqual(stats[f"backend.{b}.connections"], 0, f"backend {b} was chosen")

    def assertEof(self, sock, want=b""):
        data, outcome = harness.recv_until_close(sock, limit=1 << 20)
        self.assertEqual((data, outcome), (want, "eof"))


# --------------------------------------------------------------------------------------------
# 1, 2: ProxyMachine's git example
# --------------------------------------------------------------------------------------------

GIT_RULE = r'regex "^[0-9a-f]{4}git-(upload|receive)-pack /([a-z0-9_-]+)/" map users $2'

GIT = """
map users users.map
map users2 users2.map
backend fs1 { server fs1 127.0.0.1:@FS1@ }
backend fs2 { server fs2 127.0.0.1:@FS2@ }
listener git {
    bind 127.0.0.1:@PORT@
    route {
        %s
    }
}
listener git2 {
    bind 127.0.0.1:@PORT2@
    route {
        %s
    }
}
""" % (GIT_RULE, GIT_RULE.replace("map users", "map users2"))


class GitExample(RoutingTestCase):

    def start_git(self):
        fs = self.recorders("fs1", "fs2")
        self.write_config("alice fs1\nbob   fs2   # a comment\n", name="users.map")
        self.write_config("# with a default\nalice fs1\ndefault fs2\n", name="users2.map")
        return self.start_routing(GIT, fs), fs

    def test_users_route_by_map_and_the_pkt_line_is_replayed_exactly(self):
        proxy, fs = self.start_git()
        alice, bob = upload_pack("alice"), upload_pack("bob", "grit.git", "github.com")
        self.assertEqual(alice[:4], b"0028")  # 4 + len("git-upload-pack /alice/x.git\0host=h\0")
        for user, line, server in (("alice", alice, fs["fs1"]), ("bob", bob, fs["fs2"])):
            s = self.connect(proxy.port)
            s.sendall(line)
            self.wait_received(server, line, what=f"for {user}'s pkt-line")
            more = b"0000" + bytes(range(256)) + b"\0tail"
            s.sendall(more)
            self.wait_received(server, line + more, what=f"after {user}'s further bytes")
            s.shutdown(socket.SHUT_WR)
            self.assertEof(s)
            self.assertEqual(server.records[-1].end, "eof")
        self.assertEqual((fs["fs1"].accepted, fs["fs2"].accepted), (1, 1))
        st = harness.full_stats(proxy)
        self.assertEqual(st["listener.git.routed"], 2)
        self.assertEqual(st["listener.git.rule1.matches"], 2)

    def test_a_map_miss_closes_and_a_default_routes(self):
        proxy, fs = self.start_git()
        carol = upload_pack("carol")
        s = self.connect(proxy.port)
        s.sendall(carol)
        self.assertEof(s)  # no default in users.map: closed with a FIN
        s2 = self.connect(proxy.values["PORT2"])
        s2.sendall(carol)
        self.wait_received(fs["fs2"], carol, what="(users2.map's default)")
        self.assertEqual(fs["fs1"].accepted, 0)
        st = harness.full_stats(proxy)
        self.assertEqual(st["listener.git.map_misses"], 1)
        self.assertEqual(st["listener.git.routed"], 0)
        self.assertEqual(st["listener.git2.map_misses"], 0)
        self.assertEqual(st["listener.git2.routed"], 1)

    def test_half_a_pkt_line_waits_then_routes_when_the_rest_comes(self):
        proxy, fs = self.start_git()
        line = upload_pack("bob")
        half, rest = line[:20], line[20:]
        self.assertNotIn(b"/bob/", half)
        base = proxy.stats()["reads_client"]
        s = self.connect(proxy.port, nodelay=True)
        s.sendall(half)
        self.wait_reads(proxy, base + 1)
        st = harness.full_stats(proxy)
        self.assertNothingConnected(fs.values(), st, ["fs1", "fs2"])
        for counter in ("routed", "defaulted", "no_match", "map_misses", "inspect_timeouts"):
            self.assertEqual(st[f"listener.git.{counter}"], 0, counter)
        self.assertEqual(st["listener.git.current"], 1)
        self.assertEqual(peek_state(s), "open", "the waiting connection was closed")
        s.sendall(rest)
        self.wait_received(fs["fs2"], line, what="once the pkt-line was whole")
        self.assertEqual(fs["fs1"].accepted, 0)


# --------------------------------------------------------------------------------------------
# 3, 10: every action, and the counters
# --------------------------------------------------------------------------------------------

ACTIONS = """
backend b { server b 127.0.0.1:@B@ }
backend d { server d 127.0.0.1:@D@ }
backend pool {
    server p1 127.0.0.1:@P1@
    server p2 127.0.0.1:@P2@
    server p3 127.0.0.1:@P3@
}
listener act {
    bind 127.0.0.1:@PORT@
    route {
        prefix "B:" backend b
        prefix "S:" server 127.0.0.1:@S@
        prefix "K:" regex "^K:([a-z0-9]+)\\n" hash pool $1
        prefix "N:" backend b send "NEW\\x00\\r\\n"
        prefix "W:" wait
        prefix "HELLO\\n" reply "WELCOME\\n"
        prefix "Q:" close
        prefix "T:" close "goodbye\\n"
        prefix "X:" reject
    }
    backend d
}
listener bare {
    bind 127.0.0.1:@PORT2@
    route {
        prefix "B:" backend b
    }
}
"""


class Actions(RoutingTestCase):

    def test_backend_and_server(self):
        servers = self.recorders("b", "s", "d")
        proxy = self.start_routing(ACTIONS, servers)
        for payload, name in ((b"B:one\n", "b"), (b"S:two\n", "s"), (b"?:three\n", "d")):
            s = self.connect(proxy.port)
            s.sendall(payload)
            self.wait_received(servers[name], payload, what=f"for {payload!r}")
            s.sendall(b"then more")
            self.wait_received(servers[name], payload + b"then more", what=f"after {payload!r}")
        self.assertEqual([s.accepted for s in servers.values()], [1, 1, 1])
        st = harness.full_stats(proxy)
        self.assertEqual(st[f"backend.server:127.0.0.1:{servers['s'].port}.connections"], 1)

    def test_hash_keeps_a_key_on_one_server_and_spreads_keys(self):
        pool = {n: self.recorder(n, greet=True) for n in ("p1", "p2", "p3")}
        proxy = self.start_routing(ACTIONS, pool)

        def landed(key):
            s = self.connect(proxy.port)
            s.sendall(b"K:%s\n" % key)
            name = read_line(s).decode().strip()
            s.close()
            return name

        same = {landed(b"repo42") for _ in range(12)}
        self.assertEqual(len(same), 1, f"one key went to several servers: {same}")
        self.assertTrue(same <= set(pool), same)
        spread = {landed(b"key%d" % i) for i in range(12)}
        self.assertGreaterEqual(len(spread), 2, f"12 keys all hashed to {spread}")
        self.assertTrue(spread <= set(pool), spread)

    def test_send_replaces_the_bytes_read(self):
        servers = self.recorders("b")
        proxy = self.start_routing(ACTIONS, servers)
        s = self.connect(proxy.port)
        s.sendall(b"N:these bytes are replaced")
        self.wait_received(servers["b"], b"NEW\0\r\n", what="(the send text)")
        s.sendall(b"after")
        self.wait_received(servers["b"], b"NEW\0\r\nafter", what="(send text, then the rest)")

    def test_wait_holds_until_the_bytes_are_final(self):
        servers = self.recorders("b", "d")
        proxy = self.start_routing(ACTIONS, servers)
        base = proxy.stats()["reads_client"]
        s = self.connect(proxy.port, nodelay=True)
        s.sendall(b"W:1")
        self.wait_reads(proxy, base + 1)
        s.sendall(b"W:2")
        self.wait_reads(proxy, base + 2)
        st = harness.full_stats(proxy)
        self.assertNothingConnected(servers.values(), st, ["b", "d"])
        self.assertEqual(peek_state(s), "open")
        s.shutdown(socket.SHUT_WR)  # final bytes: the waiting rule decides nothing
        self.wait_received(servers["d"], b"W:1W:2", end="eof", what="(the listener's backend)")
        self.assertEof(s)
        st = harness.full_stats(proxy)
        self.assertEqual(st["listener.act.defaulted"], 1)
        self.assertGreaterEqual(st["listener.act.rule5.matches"], 2)

    def test_reply_answers_and_the_next_bytes_route(self):
        servers = self.recorders("b")
        proxy = self.start_routing(ACTIONS, servers)
        s = self.connect(proxy.port)
        s.sendall(b"HELLO\n")
        self.assertEqual(recv_exact(s, 8), b"WELCOME\n")
        self.assertEqual(servers["b"].accepted, 0)
        s.sendall(b"B:after the reply")
        self.wait_received(servers["b"], b"B:after the reply",
                           what="(the bytes before the reply must not be replayed)")
        self.assertEqual(harness.full_stats(proxy)["listener.act.replies"], 1)

    def test_close_ends_with_a_fin(self):
        proxy = self.start_routing(ACTIONS)
        s = self.connect(proxy.port)
        s.sendall(b"Q:")
        self.assertEof(s)

    def test_close_with_text_sends_it_then_a_fin(self):
        proxy = self.start_routing(ACTIONS)
        s = self.connect(proxy.port)
        s.sendall(b"T:")
        self.assertEof(s, b"goodbye\n")

    def test_reject_resets(self):
        proxy = self.start_routing(ACTIONS)
        s = self.connect(proxy.port)
        s.sendall(b"X:")
        with self.assertRaises(ConnectionResetError):
            for _ in range(16):
                if not s.recv(64):
                    self.fail("a rejected client got a FIN, want a reset")


class Counters(RoutingTestCase):

    def test_listener_and_rule_counters_count_what_happened(self):
        servers = self.recorders("b", "s", "d", "p1", "p2", "p3")
        proxy = self.start_routing(ACTIONS, servers)
        port, bare = proxy.port, proxy.values["PORT2"]

        def routed(payload, name, want=None):
            index = len(servers[name].records)
            s = self.connect(port)
            s.sendall(payload)
            self.wait_received(servers[name], want or payload, index, what=f"for {payload!r}")
            return s

        routed(b"B:1", "b")
        routed(b"S:1", "s")
        s = self.connect(port)
        s.sendall(b"K:abc\n")
        harness.wait_until(lambda: sum(servers[p].accepted for p in ("p1", "p2", "p3")), WAIT)
        routed(b"N:x", "b", want=b"NEW\0\r\n")
        s = self.connect(port)
        s.sendall(b"HELLO\n")
        self.assertEqual(recv_exact(s, 8), b"WELCOME\n")
        s.sendall(b"B:2")
        self.wait_received(servers["b"], b"B:2", 2)
        for payload, want in ((b"Q:", "eof"), (b"T:", "eof"), (b"X:", "reset")):
            s = self.connect(port)
            s.sendall(payload)
            self.assertEqual(harness.recv_until_close(s)[1], want, payload)
        routed(b"Z", "d")
        s = self.connect(bare)
        s.sendall(b"Z")
        self.assertEof(s)
        st = harness.full_stats(proxy)
        want = {"inspected": 9, "routed": 5, "defaulted": 1, "no_match": 0, "replies": 1,
                "closes": 2, "rejects": 1, "map_misses": 0, "inspect_timeouts": 0,
                "inspect_overflows": 0}
        self.assertEqual({k: st[f"listener.act.{k}"] for k in want}, want)
        rules = {f"rule{i}": n for i, n in enumerate((2, 1, 1, 1, 0, 1, 1, 1, 1), start=1)}
        self.assertEqual({k: st[f"listener.act.{k}.matches"] for k in rules}, rules)
        want_bare = {"inspected": 1, "routed": 0, "defaulted": 0, "no_match": 1, "closes": 0}
        self.assertEqual({k: st[f"listener.bare.{k}"] for k in want_bare}, want_bare)
        self.assertEqual(st["listener.bare.rule1.matches"], 0)


# --------------------------------------------------------------------------------------------
# 4: one byte per read
# --------------------------------------------------------------------------------------------

MAGIC = b"EDGEPROXY-ROUTE-ME!!"  # 20 bytes: only the last one decides



def one_rule(rule):
    """Listener l with one rule (which names backend b) and backend d when it does not decide."""
    return """
backend b { server b 127.0.0.1:@B@ }
backend d { server d 127.0.0.1:@D@ }
listener l {
    bind 127.0.0.1:@PORT@
    route {
        %s
    }
    backend d
}
""" % rule


BYTES = one_rule(f'prefix "{MAGIC.decode()}" backend b')


class ByteByByte(RoutingTestCase):

    def test_a_prefix_delivered_one_byte_per_read_decides_on_its_last_byte(self):
        servers = self.recorders("b", "d")
        proxy = self.start_routing(BYTES, servers)
        self.assertEqual(len(MAGIC), 20)
        base = proxy.stats()["reads_client"]
        s = self.connect(proxy.port, nodelay=True)
        for i in range(len(MAGIC) - 1):
            s.sendall(MAGIC[i:i + 1])
            self.wait_reads(proxy, base + i + 1)  # each byte read on its own
        self.assertEqual((servers["b"].accepted, servers["d"].accepted), (0, 0),
                         "routed before the last byte of the prefix")
        s.sendall(MAGIC[-1:])
        self.wait_received(servers["b"], MAGIC, what="(the 20 bytes, read one at a time)")
        s.sendall(b"+rest")
        self.wait_received(servers["b"], MAGIC + b"+rest")
        st = harness.full_stats(proxy)
        self.assertGreaterEqual(st["reads_client"], base + len(MAGIC))
        self.assertEqual(st["listener.l.rule1.matches"], 1)
        self.assertEqual(servers["d"].accepted, 0)


# --------------------------------------------------------------------------------------------
# 5: a client that sends nothing (on-timeout)
# --------------------------------------------------------------------------------------------

TIMEOUT = """
backend b { server b 127.0.0.1:@B@ }
backend smtp { server smtp 127.0.0.1:@SMTP@ }
listener speaks-first {
    bind 127.0.0.1:@PORT@
    inspect-timeout 300ms
    on-timeout backend smtp
    route {
        prefix "B:" backend b
    }
}
listener plain {
    bind 127.0.0.1:@PORT2@
    inspect-timeout 300ms
    route {
        prefix "B:" backend b
    }
    backend b
}
"""


class OnTimeout(RoutingTestCase):

    def test_a_silent_client_goes_to_the_on_timeout_backend_which_speaks_first(self):
        smtp = self.recorder("smtp", greeting=b"220 smtp.example ESMTP\r\n")
        b = self.recorder("b")
        proxy = self.start_routing(TIMEOUT, {"smtp": smtp, "b": b})
        s = self.connect(proxy.port)
        self.assertEqual(read_line(s), b"220 smtp.example ESMTP\r\n")
        s.sendall(b"EHLO client\r\n")
        self.wait_received(smtp, b"EHLO client\r\n")
        self.assertEqual(b.accepted, 0)
        st = harness.full_stats(proxy)
        self.assertEqual(st["listener.speaks-first.inspect_timeouts"], 1)
        self.assertEqual(st["listener.speaks-first.routed"], 1)

    def test_by_default_a_silent_client_is_closed(self):
        b = self.recorder("b")
        proxy = self.start_routing(TIMEOUT, {"b": b})
        s = self.connect(proxy.values["PORT2"])
        self.assertEof(s)
        self.assertEqual(b.accepted, 0, "on-timeout close went to the listener's backend")
        st = harness.full_stats(proxy)
        self.assertEqual(st["listener.plain.inspect_timeouts"], 1)
        self.assertEqual(st["listener.plain.defaulted"], 0)


# --------------------------------------------------------------------------------------------
# 6: inspect-bytes held without a decision (on-full)
# --------------------------------------------------------------------------------------------

FULL = """
backend x { server x 127.0.0.1:@X@ }
backend b { server b 127.0.0.1:@B@ }
listener closing-regex {
    bind 127.0.0.1:@PORT@
    route {
        regex "^never[.]\\n" backend b
    }
}
listener closing-wait {
    bind 127.0.0.1:@PORT2@
    route {
        prefix "x" wait
    }
}
listener by-regex {
    bind 127.0.0.1:@PORT3@
    inspect-bytes 1k
    on-full backend x
    route {
        regex "^never[.]\\n" backend b
    }
}
listener by-wait {
    bind 127.0.0.1:@PORT4@
    inspect-bytes 1k
    on-full backend x
    route {
        prefix "x" wait
    }
}
"""


class OnFull(RoutingTestCase):
    """inspect-bytes held and no rule decided: a regex that does not match yet (it waits), or
    a rule whose action is `wait`."""

    def test_by_default_a_full_buffer_closes(self):
        b = self.recorder("b")
        proxy = self.start_routing(FULL, {"b": b})
        for listener, port in (("closing-wait", proxy.values["PORT2"]),
                               ("closing-regex", proxy.port)):
            with self.subTest(listener=listener):
                # Exactly inspect-bytes (8k): all of it is read, so the close is a clean FIN.
                s = self.connect(port)
                s.sendall(b"x" * 8192)
                self.assertEof(s)
                st = harness.full_stats(proxy)
                counts = {k: st[f"listener.{listener}.{k}"]
                          for k in ("inspect_overflows", "no_match", "defaulted")}
                self.assertEqual(counts, {"inspect_overflows": 1, "no_match": 0, "defaulted": 0},
                                 "8k held without a decision: on-full (close) applies")
        self.assertEqual(b.accepted, 0)

    def test_on_full_backend_replays_every_byte_beyond_inspect_bytes(self):
        x, b = self.recorder("x"), self.recorder("b")
        proxy = self.start_routing(FULL, {"x": x, "b": b})
        # Starts with the wait rule's prefix (so never with "never."); no repeats inside.
        payload = b"x" + random.Random(11).randbytes(20 * 1024 - 1)
        for listener, port in (("by-wait", proxy.values["PORT4"]),
                               ("by-regex", proxy.values["PORT3"])):
            with self.subTest(listener=listener):
                index = len(x.records)
                s = self.connect(port)
                try:
                    s.sendall(payload)
                except OSError as e:
                    self.fail(f"{listener}: closed while 20 KiB were sent ({e!r}); "
                              f"{self.route_counts(proxy, listener)}")
                try:
                    self.wait_received(x, payload, index=index,
                                       what=f"({listener}: 20 KiB through inspect-bytes 1k)")
                except AssertionError as e:
                    raise self.failureException(
                        f"{e}; {self.route_counts(proxy, listener)}") from None
                s.shutdown(socket.SHUT_WR)
                self.assertEof(s)
                self.assertEqual(x.records[index].end, "eof")
                st = harness.full_stats(proxy)
                self.assertEqual(st[f"listener.{listener}.inspect_overflows"], 1)
        self.assertEqual(b.accepted, 0)

    def route_counts(self, proxy, listener):
        st = harness.full_stats(proxy)
        return {k: st[f"listener.{listener}.{k}"]
                for k in ("inspect_overflows", "no_match", "defaulted", "routed")}


# --------------------------------------------------------------------------------------------
# 7: the client ends or resets while routing
# --------------------------------------------------------------------------------------------

ENDING = one_rule(r'regex "^GO ([a-z]+)\n" backend b')


class ClientEnds(RoutingTestCase):

    def test_a_fin_makes_the_bytes_final_and_a_miss_goes_to_the_default(self):
        servers = self.recorders("b", "d")
        proxy = self.start_routing(ENDING, servers)
        s = self.connect(proxy.port)
        s.sendall(b"GO abc")  # the regex would wait for its newline
        s.shutdown(socket.SHUT_WR)
        self.wait_received(servers["d"], b"GO abc", end="eof")
        self.assertEof(s)
        self.assertEqual(servers["b"].accepted, 0)
        st = harness.full_stats(proxy)
        self.assertEqual(st["listener.l.defaulted"], 1)
        self.assertEqual(st["listener.l.rule1.matches"], 0)

    def test_a_fin_right_behind_a_deciding_request_is_passed_on_after_the_replay(self):
        # The common `printf 'request' | nc` client: the rule decides on the bytes, and the FIN
        # arrives while the server is being connected. The server must get the bytes, then EOF.
        servers = self.recorders("b", "d")
        proxy = self.start_routing(ENDING, servers)
        s = self.connect(proxy.port)
        s.sendall(b"GO abc\nrequest")
        s.shutdown(socket.SHUT_WR)
        self.wait_received(servers["b"], b"GO abc\nrequest", end="eof")
        self.assertEof(s)
        self.assertEqual(harness.full_stats(proxy)["listener.l.routed"], 1)

    def test_a_reset_while_routing_connects_nothing_and_the_proxy_goes_on(self):
        servers = self.recorders("b", "d")
        proxy = self.start_routing(ENDING, servers)
        base = proxy.stats()["reads_client"]
        s = self.connect(proxy.port)
        s.sendall(b"GO ab")
        self.wait_reads(proxy, base + 1)
        harness.reset_close(s)
        st = harness.wait_full_stats(proxy, lambda st: st["listener.l.current"] == 0)
        self.assertEqual(st["listener.l.current"], 0, "the reset connection is still open")
        self.assertNothingConnected(servers.values(), st, ["b", "d"])
        self.assertEqual(st["listener.l.defaulted"] + st["listener.l.routed"], 0)
        s2 = self.connect(proxy.port)
        s2.sendall(b"GO abc\nmore")
        self.wait_received(servers["b"], b"GO abc\nmore", what="(a connection after the reset)")
        self.assertEqual(servers["d"].accepted, 0)


# --------------------------------------------------------------------------------------------
# 8: the routed backend's first server refuses
# --------------------------------------------------------------------------------------------

RETRY = """
backend app {
    balance first
    retries 2
    server dead 127.0.0.1:@DEAD@
    server live 127.0.0.1:@LIVE@
}
listener l {
    bind 127.0.0.1:@PORT@
    route {
        prefix "GO " backend app
    }
}
"""


class RetryAfterRouting(RoutingTestCase):

    def test_a_refused_connect_retries_and_the_replay_arrives_intact(self):
        live = self.recorder("live")
        proxy = self.start_routing(RETRY, {"live": live})  # @DEAD@: a free port, refused
        for i in range(3):
            payload = b"GO " + bytes((i + j) & 0xff for j in range(3000))
            s = self.connect(proxy.port)
            s.sendall(payload)
            self.wait_received(live, payload, index=i, what=f"(connection {i})")
            s.sendall(b"after")
            self.wait_received(live, payload + b"after", index=i)
        st = harness.full_stats(proxy)
        self.assertGreaterEqual(st["server.app/dead.connect_failures"], 1,
                                "no connect was tried on the refusing server")
        self.assertEqual(st["backend.app.retries"], st["server.app/dead.connect_failures"])
        self.assertEqual(st["server.app/live.connections"], 3)


# --------------------------------------------------------------------------------------------
# 9: HTTP host, path and method
# --------------------------------------------------------------------------------------------

HTTP = """
backend api { server api 127.0.0.1:@API@ }
backend static { server static 127.0.0.1:@STATIC@ }
backend post { server post 127.0.0.1:@POST@ }
backend other { server other 127.0.0.1:@OTHER@ }
listener web {
    bind 127.0.0.1:@PORT@
    route {
        http-host api.example.com backend api
        http-path /static/ backend static
        http-method POST backend post
    }
    backend other
}
"""


def request(method, target, host, extra=b""):
    return b"%s %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (method, target, host, extra)


class HttpRouting(RoutingTestCase):

    def test_host_path_and_method_route(self):
        servers = self.recorders("api", "static", "post", "other", greet=True)
        proxy = self.start_routing(HTTP, servers)
        cases = [
            ("Host", request(b"GET", b"/", b"api.example.com"), "api"),
            ("Host with a port, upper case", request(b"GET", b"/v1", b"API.EXAMPLE.COM:8080"),
             "api"),
            ("another host", request(b"GET", b"/", b"www.example.com"), "other"),
            ("a suffix is not the name", request(b"GET", b"/", b"www.api.example.com"),
             "other"),
            ("path prefix", request(b"GET", b"/static/app.css", b"www.example.com"), "static"),
            ("path is case-sensitive", request(b"GET", b"/Static/app.css", b"www.example.com"),
             "other"),
            ("method", request(b"POST", b"/form", b"www.example.com", b"Content-Length: 0\r\n"),
             "post"),
            ("absolute-form host wins over Host",
             request(b"GET", b"http://api.example.com/x", b"www.example.com"), "api"),
            ("absolute-form host wins over Host, path from the target",
             request(b"GET", b"http://www.example.com/static/x", b"api.example.com"), "static"),
            ("not HTTP", b"SSH-2.0-OpenSSH_9.6\r\n", "other"),
        ]
        for what, payload, want in cases:
            with self.subTest(what):
                index = len(servers[want].records)
                s = self.connect(proxy.port)
                s.sendall(payload)
                self.assertEqual(read_line(s), want.encode() + b"\n", what)
                self.wait_received(servers[want], payload, index, what=f"({what})")
                s.close()
        st = harness.full_stats(proxy)
        self.assertEqual([st[f"listener.web.rule{i}.matches"] for i in (1, 2, 3)], [3, 2, 1])
        self.assertEqual(st["listener.web.defaulted"], 4)


# --------------------------------------------------------------------------------------------
# 11: reload
# --------------------------------------------------------------------------------------------

RELOAD = """
map users users.map
backend one { server one 127.0.0.1:@ONE@ }
backend two { server two 127.0.0.1:@TWO@ }
listener l {
    bind 127.0.0.1:@PORT@
    route {
        %s
    }
}
"""
RULE_BY_MAP = r'regex "^U ([a-z]+)\n" map users $1'
RULE_FIXED = r'prefix "U " backend one'


class Reload(RoutingTestCase):

    def test_new_connections_follow_a_reloaded_map_and_rule_old_ones_keep_relaying(self):
        servers = self.recorders("one", "two")
        self.write_config("alice one\n", name="users.map")
        proxy = self.start_routing(RELOAD % RULE_BY_MAP, servers)
        old = self.connect(proxy.port)
        old.sendall(b"U alice\n")
        self.wait_received(servers["one"], b"U alice\n")

        self.write_config("alice two\n", name="users.map")  # the map only: the file is re-read
        self.reload(proxy)
        s = self.connect(proxy.port)
        s.sendall(b"U alice\n")
        self.wait_received(servers["two"], b"U alice\n", what="(after the map changed)")
        old.sendall(b"still here")
        self.wait_received(servers["one"], b"U alice\nstill here", index=0,
                           what="(a connection routed before the reload)")
        st = harness.full_stats(proxy)
        self.assertEqual(st["listener.l.rule1.matches"], 2, "the same rule keeps its counter")

        self.rewrite_config(proxy, RELOAD % RULE_FIXED)
        self.reload(proxy)
        s = self.connect(proxy.port)
        s.sendall(b"U alice\n")
        self.wait_received(servers["one"], b"U alice\n", 1, what="(after the rule changed)")
        self.assertEqual(len(servers["one"].records), 2)
        self.assertEqual(len(servers["two"].records), 1)
        old.sendall(b" twice")
        self.wait_received(servers["one"], b"U alice\nstill here twice", index=0)


# --------------------------------------------------------------------------------------------
# 12: -t on bad rules
# --------------------------------------------------------------------------------------------

CHECKED = """map users users.map
backend b { server b 127.0.0.1:9 }
listener l {
    bind 127.0.0.1:@PORT@
    route {
        %s
    }
}
"""
RULE_LINE = 6


class CheckBadRules(RoutingTestCase):

    def assertCheckFails(self, text, line_no, needle):
        rc, out, err, path = self.run_config(text, args=["-t"])
        self.assertEqual(rc, 1, f"stdout {out!r} stderr {err!r}")
        self.assertEqual(out, "", "a failed test prints nothing on stdout")
        lines = [line for line in err.splitlines() if line.strip()]
        self.assertEqual(len(lines), 1, f"want one stderr line, got {err!r}")
        self.assertRegex(lines[0], rf"{os.path.basename(path)}:{line_no}:\d+",
                         f"the line does not name line {line_no}")
        self.assertIn(needle, lines[0])

    def test_bad_rules_fail_naming_their_place(self):
        self.write_config("alice b\n", name="users.map")
        self.assertEqual(CHECKED.splitlines()[RULE_LINE - 1].strip(), "%s")
        rc, out, err, _ = self.run_config(CHECKED % 'prefix "x" backend b', args=["-t"])
        self.assertEqual(rc, 0, f"the valid base fails: {err!r}")
        cases = [
            ('frobnicate "x" backend b', "frobnicate"),
            ('regex "a(" backend b', "invalid regex"),
            ('regex "^(a)b" map users $2', "$2"),
            ('prefix "x" backend nope', "nope"),
        ]
        for rule, needle in cases:
            with self.subTest(rule=rule):
                self.assertCheckFails(CHECKED % rule, RULE_LINE, needle)
        with self.subTest("missing map file"):
            text = (CHECKED % 'prefix "x" backend b').replace("users.map", "absent.map")
            self.assertCheckFails(text, 1, "absent.map")


if __name__ == "__main__":
    unittest.main()

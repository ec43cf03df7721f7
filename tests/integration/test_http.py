"""The HTTP reverse proxy (`mode http`, issue 15, decision 0013), black box.

The servers are http_backend.HttpBackend origins: each names itself (X-Server), says which of
its TCP connections carried a request (X-Conn) and keeps every request it received (connection,
method, target, header fields in order, body length and SHA-256), so a test checks what the
server saw, not only what the client got back. Clients are raw sockets (http_backend.Client).

Covered:

  * pooling: 1000 requests from 200 short-lived HTTP/1.0 clients reach 2 servers over at most
    pool-size x servers x workers connections, every request exactly once; a kept-alive client
    balanced per request (roundrobin alternates on one client connection); a client's
    `Connection: close` not passed on to the pooled server connection;
  * the pending queue: max-pending (503, `pending_full`), arrival order, pending-timeout (503,
    `pending_timeouts`);
  * a server stopped mid-run (requests that had not started all served by the other one) and
    restarted (used again);
  * the keep-alive race: a server closing idle connections, and one closing a reused connection
    when the next request arrives (retried once, `retried`); a POST whose body streamed past the
    region is never delivered twice;
  * 1 GiB (64 MiB under ASan) upload echoed concurrently and download, SHA-256 at both ends,
    proxy RSS bounded;
  * framing: chunked both ways with trailers, HEAD, 204, 304, 100-continue, close-delimited;
  * a WebSocket echo (101, frames both ways), the server connection leaving the pool;
  * routing on Host and path (prefix, exact, glob, regex, `close`), per request on one client
    connection; `rewrite`; request and response header rules with variables; X-Forwarded-For,
    X-Forwarded-Proto and Via by default and switched off;
  * the proxy's answers: 400, 408, 413, 431, 502, 503, 504, each with Connection: close and
    its counter, nothing reaching a server when it should not;
  * the smuggling corpus (harness.smuggling_corpus, issue 12's): 400, nothing reaching a server;
  * `balance rtt` preferring a fast server, `most-idle`, and every algorithm with every pooled
    connection busy: each request answered (200 or 503), none left hanging.
"""

import concurrent.futures
import hashlib
import os
import random
import signal
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import http_backend as hb  # noqa: E402
from harness import MiB, ProxyTestCase, wait_closed, wait_until  # noqa: E402

WAIT = 10.0  # seconds any single expected event may take
LISTENER = "web"

HTTP_COUNTERS = (
    "requests", "reused", "queued", "retried", "upgrades", "bad_requests", "request_timeouts",
    "bodies_too_large", "heads_too_large", "bad_gateway", "pending_full", "pending_timeouts",
    "no_server", "gateway_timeouts", "bad_responses",
)
POOL_STATS = ("pool_opens", "pool_closes", "pool_idle", "pool_active", "pending")


def http_config(servers, backend=(), listener=(), others=None, top=""):
    """A file with backend `app` (`servers`: [(name, port)] then the `backend` lines), the
    backends of `others` ({backend: [(name, port)]}), and listener `web` on 127.0.0.1:@PORT@ in
    mode http with backend app (then the `listener` lines)."""
    lines = [top, "backend app {"]
    lines += [f"    server {n} 127.0.0.1:{p}" for n, p in servers]
    lines += [f"    {x}" for x in backend]
    lines.append("}")
    for name, members in (others or {}).items():
        lines.append(f"backend {name} {{")
        lines += [f"    server {n} 127.0.0.1:{p}" for n, p in members]
        lines.append("}")
    lines += ["listener web {", "    bind 127.0.0.1:@PORT@", "    mode http", "    backend app"]
    lines += [f"    {x}" for x in listener]
    lines += ["}", ""]
    return "\n".join(lines)


def _lookup(stats, prefixes, name):
    for prefix in prefixes:
        if prefix + name in stats:
            return stats[prefix + name]
    return None


def exchange(port, data, head_request=False, timeout=WAIT):
    """Connect, send `data`, read one final response, then wait for the connection to end:
    (Response or 'eof'/'reset'/'timeout' before a response, how it ended afterwards)."""
    s = hb.connect(port, timeout=timeout)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the answer may already be there
        reader = hb.Reader(s)
        try:
            resp = hb.read_response(reader, head_request)
        except EOFError:
            return "eof", "eof"
        except ConnectionResetError:
            return "reset", "reset"
        except (socket.timeout, TimeoutError):
            return "timeout", "timeout"
        if reader.buf:
            return resp, "data:" + repr(bytes(reader.buf[:80]))
        outcome, _, extra = wait_closed(s, timeout)
        return resp, outcome if not extra else f"{outcome} after {extra} more bytes"
    finally:
        s.close()


def who_http10(port, target):
    """One HTTP/1.0 client: connect, one request, read the response, close."""
    s = hb.connect(port, timeout=WAIT)
    try:
        s.sendall(hb.request("GET", target, version="1.0"))
        return hb.read_response(hb.Reader(s))
    finally:
        s.close()


class HttpTestCase(ProxyTestCase):

    counter_wait = 3.0

    def backend(self, name, **kw):
        server = hb.HttpBackend(name, **kw)
        self.addCleanup(server.close)
        return self._own(server)

    def start_http(self, servers, backend=(), listener=(), others=None, workers=None,
                   values=None):
        """A proxy on http_config(); `servers` are HttpBackends (their names are the server
        names); `others` maps backend names to lists of HttpBackends."""
        extra = ["--workers", str(workers)] if workers else []
        other = {b: [(s.name, s.port) for s in members] for b, members in (others or {}).items()}
        return self.start_proxy_config(
            http_config([(s.name, s.port) for s in servers], backend, listener, other),
            extra=extra, values=values)

    def client(self, port, timeout=WAIT):
        c = hb.Client(port, timeout=timeout)
        self.addCleanup(c.close)
        self._own(c.sock)
        return c

    # -- statistics -----------------------------------------------------------------------

    def stats(self, proxy):
        return harness.full_stats(proxy, WAIT)

    def counters(self, proxy, listener=LISTENER, stats=None):
        """The listener's HTTP counters (listener.NAME.http.X; listener.NAME.X also accepted)."""
        prefixes = (f"listener.{listener}.http.", f"listener.{listener}.")
        stats = stats if stats is not None else self.stats(proxy)
        out = {n: _lookup(stats, prefixes, n) for n in HTTP_COUNTERS}
        missing = [n for n, v in out.items() if v is None]
        if missing:
            names = sorted(k for k in stats if k.startswith(f"listener.{listener}."))
            self.fail(f"HTTP counters {missing} not in the statistics; the listener has "
                      f"{names}; stderr:\n{proxy.stderr_text()[-2000:]}")
        return out

    def pool(self, proxy, backend="app", stats=None):
        """The backend's pool statistics (backend.NAME.pool.X; backend.NAME.X also accepted)."""
        prefixes = (f"backend.{backend}.pool.", f"backend.{backend}.")
        stats = stats if stats is not None else self.stats(proxy)
        out = {n: _lookup(stats, prefixes, n) for n in POOL_STATS}
        missing = [n for n, v in out.items() if v is None]
        if missing:
            names = sorted(k for k in stats if k.startswith(f"backend.{backend}."))
            self.fail(f"pool statistics {missing} not in the statistics; the backend has "
                      f"{names}; stderr:\n{proxy.stderr_text()[-2000:]}")
        return out

    def wait_pool(self, proxy, predicate, backend="app", timeout=WAIT):
        def check():
            p = self.pool(proxy, backend)
            return p if predicate(p) else None
        return wait_until(check, timeout, interval=0.05) or self.pool(proxy, backend)

    # -- assertions -----------------------------------------------------------------------

    def assertAnswer(self, result, status, what=""):
        """exchange()'s result is the proxy's own answer `status`: a short body, Connection:
        close, and then the connection ended."""
        resp, ending = result
        self.assertIsInstance(resp, hb.Response, f"{what}: no response ({resp})")
        self.assertEqual(resp.status, status, f"{what}: {resp!r}")
        self.assertEqual((resp.value("Connection") or "").lower(), "close", f"{what}: {resp!r}")
        self.assertTrue(resp.body, f"{what}: the proxy's answers have a short body: {resp!r}")
        self.assertIn(ending, ("eof", "reset"), f"{what}: after the answer: {ending}")
        return resp

    def assertNothingReached(self, *servers, what=""):
        for s in servers:
            self.assertEqual(s.snapshot(), [], f"{what}: server {s.name} got requests")

    def assertServed(self, resp, server=None, what=""):
        self.assertIsInstance(resp, hb.Response, f"{what}: no response ({resp})")
        self.assertEqual(resp.status, 200, f"{what}: {resp!r}")
        if server is not None:
            self.assertEqual(resp.value("X-Server"), server, f"{what}: {resp!r}")


# --------------------------------------------------------------------------------------------
# Pooling and per-request balancing
# --------------------------------------------------------------------------------------------

class PoolTests(HttpTestCase):

    def test_http10_churn_uses_at_most_the_pool(self):
        """1000 requests from 200 HTTP/1.0 clients (each: connect, one request, close; 20 at a
        time), over 2 servers with pool-size 4: the servers see at most 4 x 2 x workers
        connections, and every request exactly once, answered by the server it reached."""
        a, b = self.backend("a"), self.backend("b")
        proxy = self.start_http([a, b], ["balance roundrobin", "pool-size 4"])
        workers = harness.worker_count()
        before = self.counters(proxy)
        clients, per_client = 200, 5
        errors = []

        def one_client(c):
            for i in range(per_client):
                target = f"/who?c={c}&i={i}"
                try:
                    resp = who_http10(proxy.port, target)
                except (OSError, EOFError, ValueError) as e:
                    errors.append(f"{target}: {e!r}")
                    return
                server = resp.value("X-Server")
                if resp.status != 200 or server not in ("a", "b") or \
                        resp.body != server.encode() or resp.value("X-Conn") is None:
                    errors.append(f"{target}: {resp!r}")
                    return

        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            list(pool.map(one_client, range(clients), timeout=240))
        self.assertEqual(errors, [], f"{len(errors)} client errors, first ones: {errors[:5]}")
        seen = a.snapshot() + b.snapshot()
        targets = sorted(r.target for r in seen)
        want = sorted(f"/who?c={c}&i={i}" for c in range(clients) for i in range(per_client))
        self.assertEqual(len(targets), len(want), "requests lost or duplicated")
        self.assertEqual(targets, want)
        bound = 4 * 2 * workers
        conns = a.conn_count() + b.conn_count()
        self.assertLessEqual(conns, bound, f"{conns} server connections (a {a.conn_count()}, "
                                           f"b {b.conn_count()}), want at most {bound}")
        self.assertLessEqual(a.conn_count(), 4 * workers)
        self.assertLessEqual(b.conn_count(), 4 * workers)
        now = self.assertMoved(proxy, before, exact=False, requests=1000)
        self.assertEqual(now["requests"] - before["requests"], 1000)
        self.assertGreaterEqual(now["reused"] - before["reused"], 1000 - bound)

    def test_keepalive_client_balanced_per_request(self):
        """One client connection, 20 requests: roundrobin alternates the servers per request."""
        a, b = self.backend("a"), self.backend("b")
        proxy = self.start_http([a, b], ["balance roundrobin", "pool-size 2"], workers=1)
        c = self.client(proxy.port)
        names = []
        for i in range(20):
            resp = c.get(f"/who?i={i}")
            self.assertServed(resp, what=f"request {i}")
            self.assertNotEqual((resp.value("Connection") or "").lower(), "close")
            names.append(resp.value("X-Server"))
        self.assertEqual(names.count("a"), 10, names)
        self.assertTrue(all(x != y for x, y in zip(names, names[1:])),
                        f"roundrobin must alternate per request on one client connection: "
                        f"{names}")
        self.assertEqual(len(a.conn_ids()) + len(b.conn_ids()), 2,
                         "one pooled connection per server is enough for one client")

    def test_client_close_not_passed_to_the_pooled_connection(self):
        """Client and server keep-alive are independent: clients that send `Connection: close`
        (and HTTP/1.0 ones) all reuse one server connection, which never sees a close."""
        a = self.backend("a")
        proxy = self.start_http([a], ["pool-size 1"], workers=1)
        for i in range(5):
            resp, ending = exchange(proxy.port, hb.request("GET", f"/who?i={i}",
                                                           headers=["Connection: close"]))
            self.assertServed(resp, "a", f"request {i}")
            self.assertIn(ending, ("eof", "reset"), "the client asked to close")
        for i in range(5):
            self.assertServed(who_http10(proxy.port, f"/who?v10={i}"), "a")
        seen = a.snapshot()
        self.assertEqual(len(seen), 10)
        self.assertEqual(a.conn_count(), 1, [(r.conn, r.target) for r in seen])
        for r in seen:
            self.assertNotIn("close", hb.tokens(r.headers, "Connection"), r.headers)


    def test_http10_keepalive_client_kept_alive(self):
        """An HTTP/1.0 client that sends `Connection: keep-alive` is answered `Connection:
        keep-alive` and keeps its connection for the next request; one that does not is
        answered `Connection: close` and its connection ends."""
        a = self.backend("a")
        proxy = self.start_http([a], ["pool-size 1"], workers=1)
        c = self.client(proxy.port)
        for i in range(3):
            resp = c.get(f"/who?ka={i}", headers=["Connection: keep-alive"], version="1.0")
            self.assertServed(resp, "a", f"request {i}")
            self.assertEqual((resp.value("Connection") or "").lower(), "keep-alive", repr(resp))
            self.assertIsNotNone(resp.value("Content-Length"), repr(resp))
        self.assertEqual([r.target for r in a.snapshot()], [f"/who?ka={i}" for i in range(3)])
        resp, ending = exchange(proxy.port, hb.request("GET", "/who?plain", version="1.0"))
        self.assertServed(resp, "a")
        self.assertEqual((resp.value("Connection") or "").lower(), "close", repr(resp))
        self.assertIn(ending, ("eof", "reset"))


# --------------------------------------------------------------------------------------------
# The pending queue
# --------------------------------------------------------------------------------------------

class PendingTests(HttpTestCase):

    def send_request(self, port, target):
        c = self.client(port)
        c.send(hb.request("GET", target))
        return c

    def test_pending_queue_full_and_order(self):
        """pool-size 1, max-pending 2: one request holds the connection, two wait, the next two
        get 503 at once (`pending_full`); the waiting two are then served in arrival order."""
        a = self.backend("a")
        proxy = self.start_http([a], ["pool-size 1", "max-pending 2", "pending-timeout 20000"],
                                workers=1)
        before = self.counters(proxy)
        c1 = self.send_request(proxy.port, "/hold/one?c=1")
        a.wait_requests(1)
        self.assertEqual([r.target for r in a.snapshot()], ["/hold/one?c=1"])
        waiting = []
        for i, want in ((2, 1), (3, 2)):
            waiting.append(self.send_request(proxy.port, f"/who?c={i}"))
            p = self.wait_pool(proxy, lambda p, w=want: p["pending"] >= w)
            self.assertEqual(p["pending"], want, f"pool {p}")
        for i in (4, 5):
            c = self.send_request(proxy.port, f"/who?c={i}")
            resp = c.read()
            self.assertEqual(resp.status, 503, f"client {i}: {resp!r}")
            self.assertEqual((resp.value("Connection") or "").lower(), "close")
        self.assertMoved(proxy, before, exact=False, pending_full=2)
        a.release("one")
        self.assertServed(c1.read(), "a", "the holder")
        for c, i in zip(waiting, (2, 3)):
            self.assertServed(c.read(), "a", f"waiting client {i}")
        self.assertEqual([r.target for r in a.snapshot()],
                         ["/hold/one?c=1", "/who?c=2", "/who?c=3"], "served in arrival order")
        now = self.assertMoved(proxy, before, exact=False, queued=2)
        self.assertEqual(now["pending_full"] - before["pending_full"], 2)
        self.assertEqual(a.conn_count(), 1)
        self.assertEqual(self.wait_pool(proxy, lambda p: p["pending"] == 0)["pending"], 0)

    def test_pending_timeout(self):
        """pool-size 1, pending-timeout 500: a request waiting while the only connection is held
        gets 503 (`pending_timeouts`) and never reaches the server; the holder is served."""
        a = self.backend("a")
        proxy = self.start_http([a], ["pool-size 1", "max-pending 10", "pending-timeout 500"],
                                workers=1)
        before = self.counters(proxy)
        c1 = self.send_request(proxy.port, "/hold/one")
        a.wait_requests(1)
        resp = self.send_request(proxy.port, "/who?second").read()
        self.assertEqual(resp.status, 503, repr(resp))
        self.assertEqual((resp.value("Connection") or "").lower(), "close")
        self.assertMoved(proxy, before, pending_timeouts=1, pending_full=0)
        a.release("one")
        self.assertServed(c1.read(), "a")
        self.assertEqual([r.target for r in a.snapshot()], ["/hold/one"])
        # Afterwards the connection serves again.
        self.assertServed(hb.fetch(proxy.port, hb.request("GET", "/who")), "a")


# --------------------------------------------------------------------------------------------
# Servers going away: restart, the keep-alive race
# --------------------------------------------------------------------------------------------

class ServerLossTests(HttpTestCase):

    def test_server_restarted_mid_run(self):
        """Sequential requests over a and b; a is stopped (listener and connections closed)
        between two requests: every later request is served (by b) with no client error; a
        restarted on its port is used again."""
        a, b = self.backend("a"), self.backend("b")
        proxy = self.start_http([a, b], ["balance roundrobin", "pool-size 2", "retries 2"])
        c = self.client(proxy.port)

        def ask(i, client=None):
            target = f"/who?i={i}"
            if client is not None:
                return client.get(target)
            return hb.fetch(proxy.port, hb.request("GET", target))

        first = [ask(i, c if i % 2 else None) for i in range(10)]
        for i, resp in enumerate(first):
            self.assertServed(resp, what=f"before the stop, request {i}")
        self.assertEqual({r.value("X-Server") for r in first}, {"a", "b"})
        a.stop()
        self.assertTrue(harness.refuses(a.port))
        after = []
        for i in range(10, 40):
            try:
                resp = ask(i, c if i % 2 else None)
            except (OSError, EOFError, ValueError) as e:
                self.fail(f"request {i} after a stopped: client error {e!r}")
            self.assertServed(resp, "b", f"request {i} after a stopped")
            after.append(resp)
        a.restart()
        back = None
        deadline = time.monotonic() + 20
        for i in range(40, 1000):
            resp = ask(i)
            self.assertServed(resp, what=f"request {i} after a restarted")
            if resp.value("X-Server") == "a":
                back = i
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertIsNotNone(back, "a restarted was not used again within 20 s")

    def test_keepalive_race_idle_close(self):
        """The server closes connections idle for 100 ms; requests 300 ms apart all succeed
        (the proxy saw the closes: `retried` or `pool_closes` moved); a 64 KiB POST on such a
        connection is delivered at most once."""
        a = self.backend("a", idle_close_ms=100)
        proxy = self.start_http([a], ["pool-size 1"], workers=1)
        before, pool_before = self.counters(proxy), self.pool(proxy)
        c = self.client(proxy.port)
        for i in range(8):
            if i:
                time.sleep(0.3)  # pacing only: the server closes the idle connection meanwhile
            self.assertServed(c.get(f"/who?i={i}"), "a", f"request {i}")
        self.assertGreater(a.conn_count(), 1, "the server closed its idle connections")
        now, pool_now = self.counters(proxy), self.pool(proxy)
        self.assertTrue(now["retried"] > before["retried"]
                        or pool_now["pool_closes"] > pool_before["pool_closes"],
                        f"neither retried nor pool_closes moved: {now} {pool_now}")
        time.sleep(0.3)
        body = os.urandom(64 * 1024)
        resp = c.get("/sha", method="POST", body=body)
        self.assertIn(resp.status, (200, 502), repr(resp))
        posts = [r for r in a.snapshot() if r.path == "/sha"]
        self.assertLessEqual(sum(1 for r in posts if r.complete), 1, posts)
        if resp.status == 200:
            self.assertEqual(resp.value("X-Sha256"), hashlib.sha256(body).hexdigest())

    def test_a_free_connection_the_server_closed_is_not_lent(self):
        """HTTP/1.0 clients leave their server connection free in the pool; the server closes
        it after 300 ms idle. A 64 KiB POST (streamed past the region: never retried) from the
        next client is served on a new connection, never sent on the closed one: the proxy
        knew the free socket was closed (epoll: its registration reported the server's FIN,
        decision 0020; io_uring: a look at it)."""
        a = self.backend("a", idle_close_ms=300)
        proxy = self.start_http([a], ["pool-size 1"], workers=1)
        start = self.pool(proxy)
        for i in range(3):
            got = who_http10(proxy.port, f"/who?i={i}")
            self.assertServed(got, "a", f"round {i}: the GET")
            before = self.counters(proxy)
            time.sleep(0.6)  # pacing only: the server closes the free connection meanwhile
            body = os.urandom(64 * 1024)
            c = self.client(proxy.port)
            c.send(hb.request("POST", "/sha", body=body, headers=["Connection: close"]))
            resp = c.read()
            c.close()
            self.assertServed(resp, "a", f"round {i}: the POST")
            self.assertEqual(resp.value("X-Sha256"), hashlib.sha256(body).hexdigest())
            self.assertNotEqual(resp.value("X-Conn"), got.value("X-Conn"),
                                f"round {i}: the POST went out on the closed connection")
            self.assertMoved(proxy, before, bad_gateway=0, retried=0)
        # Each round's closed connection was dropped (when taken, or by the sweep before).
        self.assertGreaterEqual(self.pool(proxy)["pool_closes"] - start["pool_closes"], 3)

    def test_keepalive_race_retried_once(self):
        """The server closes a reused connection when the next request arrives, without an
        answer: each such GET is resent once on a new connection (`retried`) and served, and
        the server answered each target exactly once."""
        a = self.backend("a", drop_after=1)
        proxy = self.start_http([a], ["pool-size 1"], workers=1)
        before = self.counters(proxy)
        c = self.client(proxy.port)
        for i in range(6):
            self.assertServed(c.get(f"/who?i={i}"), "a", f"request {i}")
        # The server marks a request answered after its last send: the client may read the
        # answer first.
        wait_until(lambda: sum(r.answered for r in a.snapshot()) >= 6, WAIT, interval=0.02)
        seen = a.snapshot()
        dropped = [r for r in seen if r.dropped]
        self.assertTrue(dropped, "the server never dropped a request: no race was made")
        for i in range(6):
            answered = [r for r in seen if r.target == f"/who?i={i}" and r.answered]
            self.assertEqual(len(answered), 1, f"/who?i={i}: {seen}")
        self.assertMoved(proxy, before, exact=False, retried=1)
        now = self.counters(proxy)
        self.assertEqual(now["retried"] - before["retried"], len(dropped),
                         f"one retry per dropped request: {seen}")

    def test_keepalive_race_retry_stays_on_the_server_its_head_names(self):
        """With a request rule holding $server, a retried request goes to the same server
        again, so the field names the server that answers it."""
        a = self.backend("a", drop_after=1)
        b = self.backend("b", drop_after=1)
        proxy = self.start_http([a, b], ["balance roundrobin", "pool-size 1"],
                                ['request-header set X-To "$server"'], workers=1)
        before = self.counters(proxy)
        c = self.client(proxy.port)
        for i in range(8):
            self.assertServed(c.get(f"/who?i={i}"), what=f"request {i}")
        self.assertMoved(proxy, before, exact=False, retried=1)
        for server in (a, b):
            seen = server.snapshot()
            self.assertTrue(seen)
            for r in seen:
                self.assertEqual(r.value("X-To"), server.name, f"{server.name} got {r!r}")

    def test_keepalive_race_large_post_not_retried(self):
        """A POST whose 64 KiB body streamed past the region, on a reused connection the server
        closes at its arrival: not resent (502), never delivered twice."""
        a = self.backend("a", drop_after=1)
        proxy = self.start_http([a], ["pool-size 1"], workers=1)
        c = self.client(proxy.port)
        self.assertServed(c.get("/who"), "a")
        before = self.counters(proxy)
        body = os.urandom(64 * 1024)
        try:
            c.send(hb.request("POST", "/sha", body=body))
            resp = c.read()
        except (BrokenPipeError, ConnectionResetError, EOFError) as e:
            resp = repr(e)
        posts = [r for r in a.snapshot() if r.path == "/sha"]
        self.assertEqual(len(posts), 1, f"the POST reached the server {len(posts)} times: "
                                        f"{posts}")
        self.assertTrue(posts[0].dropped, posts)
        self.assertIsInstance(resp, hb.Response, f"no answer to the POST: {resp}")
        self.assertEqual(resp.status, 502, repr(resp))
        self.assertMoved(proxy, before, bad_gateway=1, retried=0)

    def test_a_request_pipelined_behind_a_closing_response_takes_another_connection(self):
        """A request pipelined behind a response with `Connection: close` goes out on another
        server connection, not on the one the server is closing: a POST is served (it was
        answered 502, never retried), a GET is not resent (`retried` stays), and each reaches
        the server once."""
        a = self.backend("a")
        proxy = self.start_http([a], ["pool-size 1"], workers=1)
        before = self.counters(proxy)
        for i in range(4):
            c = self.client(proxy.port)
            body = os.urandom(1000 + i)
            c.send(hb.request("GET", f"/connclose?i={i}")
                   + hb.request("POST", f"/sha?i={i}", body=body)
                   + hb.request("GET", f"/connclose?j={i}") + hb.request("GET", f"/who?i={i}"))
            closing = c.read()
            self.assertServed(closing, "a", f"round {i}: the closing response")
            post = c.read()
            self.assertServed(post, "a", f"round {i}: the POST behind it")
            self.assertEqual(post.value("X-Sha256"), hashlib.sha256(body).hexdigest())
            self.assertNotEqual(post.value("X-Conn"), closing.value("X-Conn"), f"round {i}")
            closing = c.read()
            self.assertServed(closing, "a", f"round {i}: the second closing response")
            get = c.read()
            self.assertServed(get, "a", f"round {i}: the GET behind it")
            self.assertNotEqual(get.value("X-Conn"), closing.value("X-Conn"), f"round {i}")
            c.close()
        self.assertMoved(proxy, before, requests=16, bad_gateway=0, retried=0)
        for i in range(4):
            for target in (f"/sha?i={i}", f"/who?i={i}"):
                got = [r for r in a.snapshot() if r.target == target]
                self.assertEqual(len(got), 1, f"{target} reached the server {len(got)} times")

    def test_a_closing_connection_left_for_another_server_is_not_pooled(self):
        """Round robin over a and b: a request pipelined behind one server's `Connection: close`
        goes to the other, and the closing connection must not go back to the pool, where the
        next request for its server (a POST, not retried) would take it."""
        a, b = self.backend("a"), self.backend("b")
        proxy = self.start_http([a, b], ["balance roundrobin", "pool-size 1"], workers=1)
        before = self.counters(proxy)
        for i in range(4):
            c = self.client(proxy.port)
            body = os.urandom(1000 + i)
            c.send(hb.request("GET", f"/connclose?i={i}") + hb.request("GET", f"/who?i={i}")
                   + hb.request("POST", f"/sha?i={i}", body=body))
            served = [c.read() for _ in range(3)]
            for resp, what in zip(served, ("closing", "GET", "POST")):
                self.assertServed(resp, what=f"round {i}: the {what} response")
            names = [r.value("X-Server") for r in served]  # round robin: x, y, x
            self.assertEqual(names[0], names[2], f"round {i}: {names}")
            self.assertNotEqual(names[0], names[1], f"round {i}: {names}")
            self.assertEqual(served[2].value("X-Sha256"), hashlib.sha256(body).hexdigest())
            self.assertNotEqual(served[2].value("X-Conn"), served[0].value("X-Conn"), f"round {i}")
            c.close()
        self.assertMoved(proxy, before, requests=12, bad_gateway=0, retried=0)


# --------------------------------------------------------------------------------------------
# Bodies: large transfers, framing
# --------------------------------------------------------------------------------------------

def big_size():
    return 64 * MiB if harness.binary_is_sanitized() else 1024 * MiB


class RssWatch:
    """Samples the proxy's VmRSS every 0.1 s in a thread; .peak in KiB."""

    def __init__(self, proxy):
        self.proxy = proxy
        self.start = proxy.rss_kib()
        self.peak = self.start
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        for _ in range(36000):
            if self._stop.wait(0.1):
                return
            try:
                self.peak = max(self.peak, self.proxy.rss_kib())
            except OSError:
                return

    def stop(self):
        self._stop.set()
        self._t.join(5)
        return (self.peak - self.start) * 1024


class BodyTests(HttpTestCase):

    RSS_BOUND = 64 * MiB

    def test_large_upload_echoed(self):
        """POST /echo with a Content-Length of 1 GiB (64 MiB under ASan), sent from a generator
        while the echo is read at the same time: SHA-256 equal at the client, at the server and
        in the echo; the proxy's RSS stays well under 100 MiB above its start."""
        n = big_size()
        a = self.backend("a", conn_timeout=120)
        proxy = self.start_http([a], ["pool-size 2"], workers=1)
        want = hb.pattern_sha256(n)
        c = self.client(proxy.port, timeout=60)
        watch = RssWatch(proxy)
        sent = {}

        def sender():
            c.send(hb.request("POST", "/echo", headers=[f"Content-Length: {n}"]))
            for piece in hb.pattern_pieces(n):
                c.sock.sendall(piece)
            sent["done"] = True

        t, box = self.start_thread(sender)
        resp = c.read(keep_body=False)
        t.join(60)
        grown = watch.stop()
        self.assertNotIn("error", box, f"sending failed: {box.get('error')!r}")
        self.assertTrue(sent.get("done"))
        self.assertEqual(resp.status, 200, repr(resp))
        self.assertEqual(resp.length, n)
        self.assertEqual(resp.sha256, want, "the echo differs from what was sent")
        # The server sends the echo's last bytes before it records the body's hash.
        rec = wait_until(lambda: [r for r in a.snapshot() if r.path == "/echo" and r.complete],
                         WAIT) or [r for r in a.snapshot() if r.path == "/echo"]
        self.assertEqual(len(rec), 1)
        self.assertEqual((rec[0].body_length, rec[0].body_sha256), (n, want))
        self.assertLess(grown, self.RSS_BOUND, f"proxy RSS grew by {grown // MiB} MiB")

    def test_large_download(self):
        """GET /bytes/1073741824 (64 MiB under ASan): SHA-256 equal, RSS bounded."""
        n = big_size()
        a = self.backend("a", conn_timeout=120)
        proxy = self.start_http([a], ["pool-size 2"], workers=1)
        c = self.client(proxy.port, timeout=60)
        watch = RssWatch(proxy)
        c.send(hb.request("GET", f"/bytes/{n}"))
        resp = c.read(keep_body=False)
        grown = watch.stop()
        self.assertEqual(resp.status, 200, repr(resp))
        self.assertEqual(resp.length, n)
        self.assertEqual(resp.sha256, hb.pattern_sha256(n))
        self.assertLess(grown, self.RSS_BOUND, f"proxy RSS grew by {grown // MiB} MiB")
        # The connection is still usable afterwards.
        self.assertServed(c.get("/who"), "a")
        # The body went through a pipe (decision 0015), all but what --splice auto reads
        # through the block first.
        spliced = self.stats(proxy)["splice_bytes"]
        self.assertGreater(spliced, n // 2, "the body was not spliced")
        self.assertLessEqual(spliced, n, "more spliced than the body")

    def test_spliced_bodies_keep_both_connections_framed(self):
        """Bodies of known length spliced (decision 0015), then small responses, chunked ones
        and two pipelined requests on one client connection and one server connection: every
        response whole, nothing after the last one, and the pipe used."""
        a = self.backend("a")
        proxy = self.start_http([a], ["pool-size 1"], workers=1)
        c = self.client(proxy.port, timeout=60)
        for n in (3 * MiB + 1, 100, 2 * MiB + 7, 1, 4 * MiB):
            c.send(hb.request("GET", f"/bytes/{n}"))
            resp = c.read(keep_body=False)
            self.assertEqual((resp.status, resp.length, resp.sha256),
                             (200, n, hb.pattern_sha256(n)), f"/bytes/{n}: {resp!r}")
            self.assertServed(c.get("/who"), "a", f"after /bytes/{n}")
        n = 5 * MiB + 3
        c.send(hb.request("GET", f"/chunked/{n}"))
        resp = c.read(keep_body=False)
        self.assertEqual((resp.status, resp.length, resp.sha256), (200, n, hb.pattern_sha256(n)))
        self.assertEqual(resp.trailer("X-Sha256"), hb.pattern_sha256(n), f"{resp.trailers}")
        c.send(hb.request("GET", f"/bytes/{2 * MiB}") + hb.request("GET", "/bytes/5"))
        first = c.read(keep_body=False)
        second = c.read()
        self.assertEqual((first.length, first.sha256), (2 * MiB, hb.pattern_sha256(2 * MiB)))
        self.assertEqual(second.body, hb.pattern(5), "the pipelined request's response")
        self.assertEqual(c.reader.buf, bytearray(), "bytes after the last response")
        self.assertEqual(a.conn_count(), 1, "one server connection served them all")
        self.assertGreater(self.stats(proxy)["splice_bytes"], 8 * MiB)

    def test_bytes_after_a_spliced_body_never_reach_the_client(self):
        """A server that sends more than its Content-Length says, in the same write as the
        body: the allowance ends the splice at the body's end, so the extra bytes are read
        through the block and refused (bad_responses), never relayed."""
        n = 4 * MiB
        body = bytes(hb.pattern(n))
        port, t, box = self.raw_server(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n + body +
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEXTRA")
        proxy = self.start_proxy_config(http_config([("raw", port)], ["pool-size 1"]),
                                        extra=["--workers", "1"])
        before = self.counters(proxy)
        sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=WAIT)
        self._own(sock)
        sock.sendall(hb.request("GET", "/x"))
        got = bytearray()
        for _ in range(100000):
            try:
                piece = sock.recv(1 << 20)
            except ConnectionResetError:
                break
            if not piece:
                break
            got += piece
        self.assertMoved(proxy, before, bad_responses=1)
        t.join(WAIT)
        self.assertNotIn("error", box, f"the server failed: {box.get('error')!r}")
        end = got.find(b"\r\n\r\n")
        self.assertGreater(end, 0, f"no head reached the client: {bytes(got[:200])!r}")
        relayed = bytes(got[end + 4:])
        self.assertLessEqual(len(relayed), n, "bytes past the body reached the client")
        self.assertEqual(relayed, body[:len(relayed)], "the body reached the client altered")
        self.assertNotIn(b"EXTRA", got)

    def raw_server(self, answer, close_after=False):
        """A one-connection server on a port of its own: it reads one request head, writes
        `answer` in one call, then closes (close_after) or waits for the proxy to let go.
        Returns (port, thread, box) as start_thread() does."""
        listener = socket.create_server(("127.0.0.1", 0))
        self._own(listener)
        listener.settimeout(WAIT)

        def serve():
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(WAIT)
                got = b""
                for _ in range(1000):
                    if b"\r\n\r\n" in got:
                        break
                    piece = conn.recv(4096)
                    if not piece:
                        return
                    got += piece
                conn.sendall(answer)
                for _ in range(0 if close_after else 100):  # until the proxy lets go
                    try:
                        if not conn.recv(4096):
                            return
                    except OSError:
                        return

        t, box = self.start_thread(serve)
        return listener.getsockname()[1], t, box

    def slow_download(self, port, n):
        """A socket with a 32 KiB receive buffer that asked `port` for /bytes/n."""
        s = socket.socket()
        self.addCleanup(harness.safe_close, s)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        s.settimeout(WAIT)
        s.connect(("127.0.0.1", port))
        s.sendall(hb.request("GET", f"/bytes/{n}"))
        return s

    def assertWholeDownload(self, got, outcome, n, what):
        self.assertEqual(outcome, "eof", f"{what}: the download's end")
        head_end = got.find(b"\r\n\r\n")
        self.assertGreater(head_end, 0, f"{what}: no response head")
        body = bytes(got[head_end + 4:])
        self.assertEqual(len(body), n, f"{what}: the body was cut short")
        want = hashlib.sha256(b"".join(hb.pattern_pieces(n))).hexdigest()
        self.assertEqual(hashlib.sha256(body).hexdigest(), want, what)

    def test_a_client_that_half_closes_gets_the_whole_response(self):
        """A client sends its request and then its FIN (shutdown(SHUT_WR)), and reads the 8 MiB
        response through a small receive buffer, fast then slowly: every byte arrives before
        the proxy's FIN. The client's end once cut the response's tail still in the proxy's
        block or pipe."""
        a = self.backend("a")
        proxy = self.start_http([a], ["pool-size 2"], workers=1)
        for pace in (0.0, 0.001):
            s = self.slow_download(proxy.port, 8 * MiB)
            s.shutdown(socket.SHUT_WR)
            # pause: pacing only, the reader stays behind the proxy.
            got, outcome = harness.recv_until_close(s, chunk=64 * 1024, pause=pace)
            self.assertWholeDownload(got, outcome, 8 * MiB, f"pause {pace}")

    def test_a_graceful_stop_ends_idle_clients_and_finishes_responses(self):
        """SIGTERM: a keep-alive client between requests gets a FIN at once; a slow reader in
        the middle of an 8 MiB response gets all of it, then a FIN; the proxy exits 0."""
        a = self.backend("a")
        proxy = self.start_proxy_config(
            http_config([(a.name, a.port)], ["pool-size 2"],
                        top="global {\n    shutdown-timeout 15s\n}"), extra=["--workers", "1"])
        idle = self.client(proxy.port)
        self.assertServed(idle.get("/who"), "a")
        s = self.slow_download(proxy.port, 8 * MiB)
        first = harness.recv_exact(s, 256 * 1024)
        proxy.send_signal(signal.SIGTERM)
        self.assertEqual(wait_closed(idle.sock, WAIT)[0], "eof", "the idle client's end")
        # pause: pacing only, the reader stays behind the proxy.
        rest, outcome = harness.recv_until_close(s, chunk=64 * 1024, pause=0.001)
        self.assertWholeDownload(first + rest, outcome, 8 * MiB, "during the stop")
        s.close()
        idle.close()
        self.assertEqual(proxy.wait_exit(WAIT), 0)

    def test_a_response_cut_short_with_a_pipelined_request_behind_it(self):
        """The server closes half-way through a body while the client's next request waits
        behind it: the client gets the bytes sent and then the server's end, the waiting
        request is dropped, and the connection ends once the client closes too (it used to
        stay open, the client's close unread behind the held request)."""
        n = 3 * MiB
        port, t, box = self.raw_server(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n + bytes(hb.pattern(n // 2)),
            close_after=True)
        proxy = self.start_proxy_config(http_config([("raw", port)], ["pool-size 1"]),
                                        extra=["--workers", "1"])
        before = self.counters(proxy)
        sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=WAIT)
        self._own(sock)
        sock.sendall(hb.request("GET", "/first") + hb.request("GET", "/second"))
        got = bytearray()
        for _ in range(100000):
            piece = sock.recv(1 << 20)
            if not piece:
                break
            got += piece
        t.join(WAIT)
        self.assertNotIn("error", box, f"the server failed: {box.get('error')!r}")
        end = got.find(b"\r\n\r\n")
        self.assertGreater(end, 0, f"no head reached the client: {bytes(got[:200])!r}")
        self.assertEqual(bytes(got[end + 4:]), bytes(hb.pattern(n // 2)),
                         "the bytes the server sent, then its end")
        sock.close()
        self.assertMoved(proxy, before, bad_responses=1)
        stats = proxy.wait_stats(lambda st: st["active"] == 0)
        self.assertEqual(stats["active"], 0, "the connection stayed open after both ends")

    def test_spliced_bodies_under_aborts_pipelining_and_server_drops(self):
        """Bounded mixed load (6 s, 12 clients): bodies of every size, Content-Length and
        chunked, some pipelined, some clients gone mid-body, servers that drop their connection
        after a few requests or when idle. Every response that arrives is whole and equal (a
        502 is allowed: a request on a dropped connection is retried once, not twice); the
        proxy survives, and once the clients are gone no connection and no pipe is left."""
        a = self.backend("a", max_requests=5)
        b = self.backend("b", idle_close_ms=30)
        proxy = self.start_http([a, b], ["pool-size 3", "max-pending 1000"], workers=2)
        sizes = (0, 1, 100, 70000, 300000, 2 * MiB + 3, 5 * MiB)
        stop = time.monotonic() + 6.0
        results = {"whole": 0, "502": 0, "aborted": 0}
        wrong = []
        lock = threading.Lock()

        def one_client(seed):
            rng = random.Random(seed)
            for _ in range(10000):
                if time.monotonic() > stop:
                    return
                c = hb.Client(proxy.port, timeout=30)
                try:
                    for _ in range(rng.randint(1, 5)):
                        n = rng.choice(sizes)
                        path = f"/{rng.choice(('bytes', 'chunked'))}/{n}"
                        if n > 100000 and rng.random() < 0.1:
                            c.send(hb.request("GET", path))
                            c.sock.recv(rng.randint(1, 100000))
                            with lock:
                                results["aborted"] += 1
                            break
                        pipelined = rng.random() < 0.2
                        c.send(hb.request("GET", path) +
                               (hb.request("GET", "/bytes/5") if pipelined else b""))
                        resp = c.read(keep_body=False)
                        got = (resp.status, resp.length, resp.sha256)
                        with lock:
                            if resp.status == 502:
                                results["502"] += 1
                                break
                            if got != (200, n, hb.pattern_sha256(n)):
                                wrong.append((path, got[:2]))
                                break
                            results["whole"] += 1
                        if pipelined:
                            second = c.read()
                            with lock:
                                if second.status == 502:
                                    results["502"] += 1
                                    break
                                if (second.status, second.body) != (200, hb.pattern(5)):
                                    wrong.append(("pipelined /bytes/5", second.status))
                                    break
                except (OSError, EOFError, ValueError) as e:  # a response cut short
                    with lock:
                        wrong.append(("exception", repr(e)))
                finally:
                    c.close()

        threads = [threading.Thread(target=one_client, args=(i,), daemon=True) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertFalse(any(t.is_alive() for t in threads), "a client hung")
        self.assertEqual(wrong, [], "responses that arrived altered or cut short")
        self.assertGreater(results["whole"], 50, f"{results}")
        self.assertGreater(self.stats(proxy)["splice_bytes"], 0)
        stats = proxy.wait_stats(lambda st: st["active"] == 0 and st["splice_pipes_in_use"] == 0)
        self.assertEqual((stats["active"], stats["splice_pipes_in_use"]), (0, 0), f"{results}")
        self.assertServed(hb.fetch(proxy.port, hb.request("GET", "/who")), what="afterwards")

    def test_splice_never_reads_bodies_through_the_block(self):
        """--splice never: the same bytes, none through a pipe."""
        a = self.backend("a")
        n = 6 * MiB + 5
        proxy = self.start_proxy_config(http_config([(a.name, a.port)], ["pool-size 1"]),
                                        extra=["--workers", "1", "--splice", "never"])
        c = self.client(proxy.port, timeout=60)
        for path in (f"/bytes/{n}", f"/chunked/{n}"):
            c.send(hb.request("GET", path))
            resp = c.read(keep_body=False)
            self.assertEqual((resp.status, resp.length, resp.sha256),
                             (200, n, hb.pattern_sha256(n)), f"{path}: {resp!r}")
        self.assertEqual(self.stats(proxy)["splice_bytes"], 0)

    def test_chunked_request_body_echoed_with_trailer(self):
        """A chunked request body (odd chunk sizes, a trailer) reaches the server intact; the
        chunked echo and its trailer reach the client intact."""
        a = self.backend("a")
        proxy = self.start_http([a], ["pool-size 1"], workers=1)
        c = self.client(proxy.port)
        body = os.urandom(300 * 1024 + 17)
        c.send(hb.request("POST", "/echo", headers=["Transfer-Encoding: chunked"],
                          body=hb.chunked(body, 7777, ["X-Client-Trailer: yes"])))
        resp = c.read()
        self.assertEqual(resp.status, 200, repr(resp))
        self.assertEqual(resp.body, body)
        self.assertEqual(resp.trailer("X-Sha256"), hashlib.sha256(body).hexdigest(),
                         f"trailers {resp.trailers}")
        rec = a.snapshot()[-1]
        self.assertEqual((rec.body_length, rec.body_sha256),
                         (len(body), hashlib.sha256(body).hexdigest()))
        self.assertServed(c.get("/who"), "a", "the next request on the connection")

    def test_chunked_response_trailer_intact(self):
        a = self.backend("a")
        proxy = self.start_http([a], ["pool-size 1"], workers=1)
        c = self.client(proxy.port)
        for n in (0, 1, 65536, 1000003):
            resp = c.get(f"/chunked/{n}")
            self.assertEqual(resp.status, 200, repr(resp))
            self.assertEqual((resp.length, resp.sha256), (n, hb.pattern_sha256(n)))
            self.assertEqual(resp.trailer("X-Sha256"), hb.pattern_sha256(n),
                             f"/chunked/{n}: trailers {resp.trailers}")
        self.assertEqual(a.conn_count(), 1)

    def test_head_204_304_on_one_connection(self):
        """HEAD (the length, no body), 204 and 304 (no body) keep the framing of one client
        connection and of the pooled server connection."""
        a = self.backend("a")
        proxy = self.start_http([a], ["pool-size 1"], workers=1)
        c = self.client(proxy.port)
        resp = c.get("/bytes/5000", method="HEAD")
        self.assertEqual((resp.status, resp.value("Content-Length"), resp.length),
                         (200, "5000", 0), repr(resp))
        resp = c.get("/chunked/5000", method="HEAD")
        self.assertEqual((resp.status, resp.length), (200, 0), repr(resp))
        resp = c.get("/status/204")
        self.assertEqual(resp.status, 204, repr(resp))
        resp = c.get("/status/304", headers=['If-None-Match: "x"'])
        self.assertEqual(resp.status, 304, repr(resp))
        resp = c.get("/bytes/100")
        self.assertEqual((resp.status, resp.body), (200, hb.pattern(100)), repr(resp))
        self.assertEqual(c.reader.buf, bytearray(), "bytes after the last response")
        self.assertEqual(len(a.conn_ids()), 1)
        self.assertEqual([r.method for r in a.snapshot()], ["HEAD", "HEAD", "GET", "GET", "GET"])

    def test_100_continue(self):
        """A client sending Expect: 100-continue gets `100 Continue` before it sends the body,
        then the final answer (the body reached the server whole)."""
        a = self.backend("a")
        proxy = self.start_http([a], ["pool-size 1"], workers=1)
        c = self.client(proxy.port)
        body = os.urandom(5000)
        c.send(hb.request("POST", "/sha", headers=["Expect: 100-continue",
                                                   f"Content-Length: {len(body)}"]))
        first, _, _ = c.reader.head()
        self.assertTrue(first.startswith("HTTP/1.1 100"), first)
        c.send(body)
        resp = c.read()
        self.assertEqual(resp.status, 200, repr(resp))
        self.assertEqual(resp.value("X-Sha256"), hashlib.sha256(body).hexdigest())
        self.assertServed(c.get("/who"), "a")

    def test_close_delimited_response(self):
        """/close/N: the server's body ends with its close; the client gets all N bytes and then
        its connection is closed; that server connection left the pool."""
        a = self.backend("a")
        proxy = self.start_http([a], ["pool-size 1"], workers=1)
        pool_before = self.pool(proxy)
        n = 3 * MiB + 5
        c = self.client(proxy.port)
        c.send(hb.request("GET", f"/close/{n}"))
        resp = c.read(keep_body=False)
        self.assertEqual(resp.status, 200, repr(resp))
        self.assertEqual((resp.length, resp.sha256), (n, hb.pattern_sha256(n)))
        outcome, _, extra = wait_closed(c.sock, WAIT)
        self.assertEqual((outcome, extra), ("eof", 0), "the client connection must end")
        self.wait_pool(proxy, lambda p: p["pool_closes"] > pool_before["pool_closes"])
        self.assertGreater(self.pool(proxy)["pool_closes"], pool_before["pool_closes"])
        resp = hb.fetch(proxy.port, hb.request("GET", "/who"))
        self.assertServed(resp, "a", "after the close-delimited response")
        self.assertEqual(a.conn_count(), 2)


# --------------------------------------------------------------------------------------------
# WebSocket
# --------------------------------------------------------------------------------------------

class ClientEndTests(HttpTestCase):
    """Decision 0018: a client whose request asked to close, and sent nothing past it, is
    closed once its response is out, without waiting for its FIN; every other end lingers,
    reading until the client's FIN."""

    def open_after_response(self, proxy, data, what):
        """Sends `data`, reads one response and the end that follows, and keeps the socket
        open: (response, ending, socket)."""
        s = hb.connect(proxy.port, timeout=WAIT)
        self.addCleanup(s.close)
        s.sendall(data)
        reader = hb.Reader(s)
        resp = hb.read_response(reader)
        self.assertServed(resp, "a", what)
        outcome, _, extra = wait_closed(s, WAIT)
        return resp, (outcome if not extra else f"{outcome} after {extra} more bytes"), s

    def test_a_client_that_asked_to_close_is_closed_without_its_fin(self):
        """`Connection: close` and HTTP/1.0: the response, then the proxy's FIN (no reset), and
        the proxy lets the connection go while the client still holds its socket."""
        a = self.backend("a")
        proxy = self.start_http([a], ["pool-size 1"], workers=1)
        requests = {
            "Connection: close": hb.request("GET", "/who?c", headers=["Connection: close"]),
            "HTTP/1.0": hb.request("GET", "/who?v10", version="1.0"),
        }
        for what, data in requests.items():
            resp, ending, s = self.open_after_response(proxy, data, what)
            self.assertEqual((resp.value("Connection") or "").lower(), "close", what)
            self.assertEqual(ending, "eof", what)
            stats = proxy.wait_stats(lambda st: st["active"] == 0)
            self.assertEqual(stats["active"], 0, f"{what}: the proxy waited for the client's FIN")
            s.close()
        self.assertEqual(a.conn_count(), 1, "the server connection stays pooled")

    def lingers(self, proxy, s, what):
        """The proxy keeps the connection until the client's end, then lets it go."""
        time.sleep(0.3)  # a close would have followed the response at once
        self.assertEqual(proxy.wait_stats(lambda st: True)["active"], 1,
                         f"{what}: closed before the client's FIN")
        s.close()
        stats = proxy.wait_stats(lambda st: st["active"] == 0)
        self.assertEqual(stats["active"], 0, f"{what}: not released after the client's FIN")

    def pipelined_behind_a_close(self):
        """A request that asks to close with another behind it, in one write: its response and
        the proxy's FIN read, the socket kept open. (backend, proxy, socket)."""
        a = self.backend("a")
        proxy = self.start_http([a], ["pool-size 1"], workers=1)
        data = (hb.request("GET", "/who?first", headers=["Connection: close"])
                + hb.request("GET", "/who?second"))
        _, ending, s = self.open_after_response(proxy, data, "pipelined")
        self.assertEqual(ending, "eof")
        return a, proxy, s

    def test_a_request_pipelined_behind_a_close_keeps_the_lingering_close(self):
        """Bytes past a request that asked to close: the response and a FIN, then the proxy
        reads to the client's end, so those bytes cannot turn its close into a reset."""
        a, proxy, s = self.pipelined_behind_a_close()
        self.lingers(proxy, s, "pipelined")
        self.assertEqual([r.target for r in a.snapshot()], ["/who?first"])

    def test_bytes_and_a_fin_while_lingering_end_the_connection(self):
        """During a lingering close the client sends a few bytes and its FIN together: the
        bytes are dropped and the connection ends (it once waited for the idle timeout)."""
        a, proxy, s = self.pipelined_behind_a_close()
        s.sendall(b"junk" * 10)
        s.shutdown(socket.SHUT_WR)
        stats = proxy.wait_stats(lambda st: st["active"] == 0)
        self.assertEqual(stats["active"], 0, "the client's end was not seen")
        self.assertEqual([r.target for r in a.snapshot()], ["/who?first"])

    def test_a_silent_client_in_a_lingering_close_is_let_go(self):
        """The lingering close waits for the client's end, or for a few seconds of silence once
        the client has everything: a client that never closes does not keep its slot for the
        idle timeout (an hour by default). The end is clean: a FIN was sent, no reset."""
        a, proxy, s = self.pipelined_behind_a_close()
        stats = proxy.wait_stats(lambda st: st["active"] == 0, timeout=30)
        self.assertEqual(stats["active"], 0, "a silent client kept its slot")
        self.assertEqual(stats["resets_sent"], 0, "the lingering close ended with a reset")
        s.close()

    def test_an_answer_before_the_body_ended_does_not_pool_the_connection(self):
        """The server answers an upload before its body ended (a 401) and the client asked to
        close: the body's rest never goes to that server, which still expects it, so the
        connection is not pooled (the next request once reached it as body bytes)."""
        a = self.backend("a")
        proxy = self.start_http([a], ["pool-size 1"], workers=1)
        s = hb.connect(proxy.port, timeout=WAIT)
        self.addCleanup(s.close)
        s.sendall(b"POST /early HTTP/1.1\r\nHost: app\r\nConnection: close\r\n"
                  b"Content-Length: 200000\r\n\r\n" + b"x" * 1000)
        resp = hb.read_response(hb.Reader(s))
        self.assertEqual(resp.status, 401, repr(resp))
        s.close()
        resp = hb.fetch(proxy.port, hb.request("GET", "/who?next"))
        self.assertServed(resp, "a", "the next request")
        self.assertEqual(a.conn_count(), 2, "the first server connection was reused")

    def test_a_close_delimited_response_leaves_a_lingering_close(self):
        """A response whose body ends with the server's close ends a keep-alive client's
        connection too, which the client did not ask for and may have sent more on: the proxy
        sends its FIN, then waits for the client's."""
        a = self.backend("a")
        proxy = self.start_http([a], ["pool-size 1"], workers=1)
        s = hb.connect(proxy.port, timeout=WAIT)
        self.addCleanup(s.close)
        s.sendall(hb.request("GET", "/close/100"))
        resp = hb.read_response(hb.Reader(s))
        self.assertEqual(resp.status, 200, repr(resp))
        outcome, _, extra = wait_closed(s, WAIT)
        self.assertEqual((outcome, extra), ("eof", 0))
        self.lingers(proxy, s, "close-delimited")


class UpgradeTests(HttpTestCase):

    def test_websocket_echo(self):
        """An Upgrade: websocket request answered 101 (Sec-WebSocket-Accept per RFC 6455)
        becomes a tunnel: masked frames echoed unmasked; the server connection leaves the pool
        (a later request uses another one)."""
        a = self.backend("a")
        proxy = self.start_http([a], ["pool-size 2"], workers=1)
        self.assertServed(hb.fetch(proxy.port, hb.request("GET", "/who")), "a")
        before, pool_before = self.counters(proxy), self.pool(proxy)
        key = "dGhlIHNhbXBsZSBub25jZQ=="
        c = self.client(proxy.port)
        c.send(hb.request("GET", "/upgrade", headers=[
            "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13"]))
        resp = c.read()
        self.assertEqual(resp.status, 101, repr(resp))
        self.assertEqual(resp.value("Sec-WebSocket-Accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        self.assertIn("websocket", hb.tokens(resp.headers, "Upgrade"))
        self.assertIn("upgrade", hb.tokens(resp.headers, "Connection"))
        ws_conn = resp.value("X-Conn")
        for payload in (b"hello", b"x" * 300, os.urandom(70000), "h\u00e9".encode()):
            c.send(hb.ws_frame(1, payload, mask=os.urandom(4)))
            fin, opcode, masked, got = hb.ws_read_frame(c.reader)
            self.assertEqual((fin, opcode, masked), (True, 1, False))
            self.assertEqual(got, payload)
        c.send(hb.ws_frame(8, b"\x03\xe8", mask=os.urandom(4)))
        self.assertEqual(hb.ws_read_frame(c.reader)[1], 8)
        self.assertIn(wait_closed(c.sock, WAIT)[0], ("eof", "reset"))
        now = self.assertMoved(proxy, before, upgrades=1)
        self.assertEqual(now["requests"] - before["requests"], 1)
        upgraded = [r for r in a.snapshot() if r.path == "/upgrade"][0]
        self.assertEqual(upgraded.value("Sec-WebSocket-Key"), key)
        self.assertIn("websocket", hb.tokens(upgraded.headers, "Upgrade"))
        # That connection is not pooled any more: later requests use another one.
        for i in range(3):
            resp = hb.fetch(proxy.port, hb.request("GET", f"/who?after={i}"))
            self.assertServed(resp, "a")
            self.assertNotEqual(resp.value("X-Conn"), ws_conn)
        pool_now = self.pool(proxy)
        self.assertTrue(pool_now["pool_closes"] > pool_before["pool_closes"]
                        or now["upgrades"] > before["upgrades"], pool_now)


# --------------------------------------------------------------------------------------------
# Routing, rewriting, header rules
# --------------------------------------------------------------------------------------------

class RuleTests(HttpTestCase):

    ROUTES = [
        "route {",
        "    http-host api.example.com backend api",
        "    http-path /static/ backend static",
        "    http-path-exact /exact backend other",
        '    http-path-glob "/img/*.png" backend other',
        '    http-path-regex "^/v[0-9]+/" backend other',
        "    http-path /forbidden close",
        "}",
    ]

    def test_routing_per_request(self):
        """Each matcher kind, in file order, per request on one kept-alive client connection;
        anything else to the default backend."""
        a, api, st, ot = (self.backend(n) for n in ("a", "api1", "st1", "ot1"))
        proxy = self.start_http([a], ["pool-size 2"], self.ROUTES,
                                others={"api": [api], "static": [st], "other": [ot]})
        cases = [
            ("api.example.com", "/x", "api1"),
            ("API.example.com:8080", "/y", "api1"),
            ("app", "/static/site.css", "st1"),
            ("app", "/staticx", "a"),
            ("app", "/exact", "ot1"),
            ("app", "/exact/more", "a"),
            ("app", "/img/logo.png", "ot1"),
            ("app", "/img/logo.jpg", "a"),
            ("app", "/v2/items", "ot1"),
            ("app", "/vx/items", "a"),
            ("www.example.com", "/", "a"),
            ("api.example.com", "/static/site.css", "api1"),  # the first rule that matches
        ]
        c = self.client(proxy.port)
        for host, path, want in cases:
            resp = c.get(path, host=host)
            self.assertServed(resp, want, f"Host {host} {path}")
        for server, names in ((api, {"/x", "/y", "/static/site.css"}),
                              (st, {"/static/site.css"})):
            self.assertEqual({r.path for r in server.snapshot()}, names)

    def test_route_close(self):
        """`http-path /forbidden close`: no answer from any server, the client connection ends,
        nothing reaches a server."""
        a, api, st, ot = (self.backend(n) for n in ("a", "api1", "st1", "ot1"))
        proxy = self.start_http([a], ["pool-size 2"], self.ROUTES,
                                others={"api": [api], "static": [st], "other": [ot]})
        resp, ending = exchange(proxy.port, hb.request("GET", "/forbidden/x"))
        if isinstance(resp, hb.Response):
            self.assertNotEqual(resp.status // 100, 2, repr(resp))
        self.assertIn(ending, ("eof", "reset"))
        self.assertNothingReached(a, api, st, ot, what="close")
        self.assertServed(hb.fetch(proxy.port, hb.request("GET", "/ok")), "a")

    HEADER_RULES = [
        "rewrite /old/ /new/",
        'request-header add X-Req "$request_id"',
        'request-header set X-Client "$client_addr:$client_port"',
        "request-header del X-Secret",
        'response-header add X-Served-By "$server"',
    ]

    def test_rewrite_and_header_rules(self):
        a = self.backend("a")
        proxy = self.start_http([a], ["pool-size 1"], self.HEADER_RULES, workers=1)
        c = self.client(proxy.port)
        port = c.sock.getsockname()[1]
        resp = c.get("/old/page?q=1", headers=["X-Secret: s3cret", "X-Client: forged",
                                               "X-Forwarded-For: 10.0.0.1"])
        self.assertServed(resp, "a")
        self.assertEqual(resp.values("X-Served-By"), ["a"], repr(resp))
        self.assertTrue(any("edgeproxy" in v for v in resp.values("Via")), repr(resp))
        resp2 = c.get("/older")
        self.assertServed(resp2, "a")
        r1, r2 = a.snapshot()
        self.assertEqual(r1.target, "/new/page?q=1")
        self.assertEqual(r2.target, "/older", "a prefix that does not match is left alone")
        self.assertEqual(r1.values("X-Secret"), [])
        self.assertEqual(r1.values("X-Client"), [f"127.0.0.1:{port}"])
        self.assertEqual(len(r1.values("X-Req")), 1, r1.headers)
        self.assertTrue(r1.value("X-Req"))
        self.assertNotEqual(r1.value("X-Req"), r2.value("X-Req"), "a request id per request")
        self.assertEqual(r1.values("X-Forwarded-For"), ["10.0.0.1, 127.0.0.1"], r1.headers)
        self.assertEqual(r2.values("X-Forwarded-For"), ["127.0.0.1"], r2.headers)
        self.assertEqual(r1.values("X-Forwarded-Proto"), ["http"])
        self.assertTrue(any("edgeproxy" in v for v in r1.values("Via")), r1.headers)

    def test_forwarded_for_on_a_pooled_connection(self):
        """Requests from new client connections that take a free pooled connection carry their
        client's address too (the first version sent an empty X-Forwarded-For there)."""
        a = self.backend("a")
        proxy = self.start_http([a], ["pool-size 1"], workers=1)
        for i in range(4):
            self.assertServed(hb.fetch(proxy.port, hb.request("GET", f"/who?i={i}")), "a")
        seen = a.snapshot()
        self.assertEqual(a.conn_count(), 1, "the requests did not share the pooled connection")
        for r in seen:
            self.assertEqual(r.values("X-Forwarded-For"), ["127.0.0.1"], r.headers)

    def test_forwarded_headers_switched_off(self):
        a = self.backend("a")
        proxy = self.start_http([a], ["pool-size 1"], ["forwarded-for off",
                                                       "forwarded-proto off", "via off"],
                                workers=1)
        resp = hb.fetch(proxy.port, hb.request("GET", "/who"))
        self.assertServed(resp, "a")
        self.assertEqual(resp.values("Via"), [], repr(resp))
        r = a.snapshot()[0]
        for name in ("X-Forwarded-For", "X-Forwarded-Proto", "Via"):
            self.assertEqual(r.values(name), [], f"{name} sent: {r.headers}")


# --------------------------------------------------------------------------------------------
# The proxy's own answers
# --------------------------------------------------------------------------------------------

class AnswerTests(HttpTestCase):

    def test_400_garbage(self):
        a = self.backend("a")
        proxy = self.start_http([a])
        before = self.counters(proxy)
        for what, data in (("not HTTP", b"THIS IS NOT HTTP\r\n\r\n"),
                           ("no Host in HTTP/1.1", hb.request("GET", "/", host=None)),
                           ("binary", bytes(range(1, 32)) + b"\r\n\r\n")):
            self.assertAnswer(exchange(proxy.port, data), 400, what)
        self.assertMoved(proxy, before, bad_requests=3, requests=0)
        self.assertNothingReached(a)
        self.assertEqual(a.conn_count(), 0)

    def test_431_head_too_large(self):
        a = self.backend("a")
        proxy = self.start_http([a])
        before = self.counters(proxy)
        big = hb.request("GET", "/big", headers=["X-Big: " + "a" * (9 * 1024)])
        self.assertAnswer(exchange(proxy.port, big), 431, "9 KiB head")
        self.assertMoved(proxy, before, heads_too_large=1, requests=0)
        self.assertNothingReached(a)

    def test_413_body_over_max_body(self):
        a = self.backend("a")
        proxy = self.start_http([a], listener=["max-body 1m"])
        before = self.counters(proxy)
        head = hb.request("POST", "/sha", headers=[f"Content-Length: {2 * MiB}"])
        self.assertAnswer(exchange(proxy.port, head), 413, "Content-Length over max-body")
        self.assertMoved(proxy, before, bodies_too_large=1)
        self.assertNothingReached(a)
        # Exactly max-body is fine.
        body = os.urandom(MiB)
        resp = hb.fetch(proxy.port, hb.request("POST", "/sha", body=body))
        self.assertServed(resp, "a")
        self.assertEqual(resp.value("X-Sha256"), hashlib.sha256(body).hexdigest())
        # A chunked body growing past max-body never reaches the server whole.
        s = self.connect(proxy.port, timeout=WAIT)
        s.sendall(hb.request("POST", "/sha", headers=["Transfer-Encoding: chunked"]))
        try:
            for _ in range(40):
                s.sendall(b"10000\r\n" + b"z" * 0x10000 + b"\r\n")  # 64 KiB chunks, 2.5 MiB
            s.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        wait_closed(s, WAIT)
        big = [r for r in a.snapshot() if r.body_length > MiB and r.complete]
        self.assertEqual(big, [], "a chunked body over max-body reached the server whole")

    def test_413_is_read_by_a_client_that_sends_its_whole_body_first(self):
        # A lingering close after the proxy's own answer: the refused body is read and dropped,
        # so a client that reads only after sending (as many do) gets its 413, not a reset.
        a = self.backend("a")
        proxy = self.start_http([a], listener=["max-body 64k"], workers=1)
        before = self.counters(proxy)
        body = os.urandom(16 * MiB)
        s = self.connect(proxy.port, timeout=WAIT)
        s.sendall(hb.request("POST", "/sha", headers=[f"Content-Length: {len(body)}"]))
        s.sendall(body)  # far past the socket buffers: a closed proxy would reset it
        resp = hb.read_response(hb.Reader(s))
        self.assertEqual(resp.status, 413, repr(resp))
        self.assertEqual((resp.value("Connection") or "").lower(), "close")
        self.assertEqual(wait_closed(s, WAIT)[0], "eof")
        s.close()
        self.assertMoved(proxy, before, bodies_too_large=1, requests=0)
        proxy.wait_stats(lambda st: st["active"] == 0)
        self.assertNothingReached(a)

    def test_a_silent_client_after_an_answer_does_not_keep_its_slot(self):
        # The lingering close waits for the client's end, or for a few seconds of silence: a
        # client that neither sends nor closes after its 413 is let go long before the idle
        # timeout (an hour here).
        a = self.backend("a")
        proxy = self.start_http([a], listener=["max-body 64k", "idle-timeout 1h"], workers=1)
        s = self.connect(proxy.port, timeout=WAIT)
        s.sendall(hb.request("POST", "/sha", headers=[f"Content-Length: {MiB}"]))
        resp = hb.read_response(hb.Reader(s))
        self.assertEqual(resp.status, 413, repr(resp))
        self.assertEqual(wait_closed(s, WAIT)[0], "eof")  # the FIN: the client keeps its end
        stats = proxy.wait_stats(lambda st: st["active"] == 0, timeout=30)
        self.assertEqual(stats["active"], 0, "a silent client kept its slot after the answer")
        s.close()

    def test_408_slowloris(self):
        a = self.backend("a")
        proxy = self.start_http([a], listener=["request-timeout 300"])
        before = self.counters(proxy)
        s = self.connect(proxy.port, timeout=WAIT)
        s.sendall(b"GET /slow HTTP/1.1\r\nHost: app\r\nX-A: 1\r\n")
        resp = hb.read_response(hb.Reader(s))
        self.assertEqual(resp.status, 408, repr(resp))
        self.assertEqual((resp.value("Connection") or "").lower(), "close")
        self.assertIn(wait_closed(s, WAIT)[0], ("eof", "reset"))
        self.assertMoved(proxy, before, request_timeouts=1, requests=0)
        self.assertNothingReached(a)

    def test_502_connection_refused(self):
        """No server answers (both refuse), retries exhausted: 502."""
        proxy = self.start_proxy_config(http_config(
            [("x", "@CLOSED1@"), ("y", "@CLOSED2@")], ["retries 1", "pool-size 1"]))
        self.assertTrue(harness.refuses(proxy.values["CLOSED1"]))
        before = self.counters(proxy)
        resp, ending = exchange(proxy.port, hb.request("GET", "/"))
        self.assertAnswer((resp, ending), 502, "refused")
        self.assertMoved(proxy, before, bad_gateway=1)

    def test_504_connect_timeout(self):
        hole = self.start_blackhole()
        proxy = self.start_proxy_config(http_config(
            [("h", hole.port)], ["retries 0", "connect-timeout 300ms", "pool-size 1"]))
        before = self.counters(proxy)
        self.assertAnswer(exchange(proxy.port, hb.request("GET", "/")), 504, "blackhole")
        self.assertMoved(proxy, before, gateway_timeouts=1, bad_gateway=0)


class SmugglingTests(HttpTestCase):

    def test_smuggling_corpus_refused(self):
        """Issue 12's corpus in origin-form: each answered 400 with Connection: close, nothing
        at all reaches the server (not even a connection); a good request afterwards is the
        only one it ever receives."""
        a = self.backend("a")
        proxy = self.start_http([a], ["pool-size 1"])
        before = self.counters(proxy)
        cases = harness.smuggling_corpus("/s", "app")
        for what, data, _ in cases:
            with self.subTest(what):
                self.assertAnswer(exchange(proxy.port, data), 400, what)
        self.assertMoved(proxy, before, bad_requests=len(cases), requests=0)
        self.assertEqual(a.conn_count(), 0, [r for r in a.snapshot()])
        self.assertServed(hb.fetch(proxy.port, hb.request("GET", "/after-the-corpus")), "a")
        self.assertEqual([r.target for r in a.snapshot()], ["/after-the-corpus"])


# --------------------------------------------------------------------------------------------
# HTTP-aware balancing
# --------------------------------------------------------------------------------------------

class BalanceTests(HttpTestCase):

    def test_rtt_prefers_the_fast_server(self):
        fast, slow = self.backend("fast"), self.backend("slow", delay_ms=150)
        proxy = self.start_http([fast, slow], ["balance rtt", "pool-size 2"], workers=1)
        c = self.client(proxy.port)
        names = [c.get(f"/who?i={i}").value("X-Server") for i in range(40)]
        self.assertTrue(set(names) <= {"fast", "slow"}, names)
        self.assertGreaterEqual(names.count("fast"), 30, f"rtt: {names}")

    def test_most_idle_serves(self):
        a, b = self.backend("a"), self.backend("b")
        proxy = self.start_http([a, b], ["balance most-idle", "pool-size 2"], workers=1)
        c = self.client(proxy.port)
        for i in range(20):
            self.assertServed(c.get(f"/who?i={i}"), what=f"request {i}")
        self.assertLessEqual(a.conn_count() + b.conn_count(), 4)

    def test_every_connection_busy(self):
        """pool-size 1 over 2 servers, 8 concurrent slow requests, for every algorithm: each
        client gets 200 or 503 (none left hanging: bounded reads), no crash, and the proxy
        serves afterwards (RProxy's most-idle crashed here and its random left requests
        pending forever)."""
        for balance in ("rtt", "most-idle", "random", "roundrobin", "leastconn", "first",
                        "source"):
            with self.subTest(balance):
                a, b = self.backend("a"), self.backend("b")
                proxy = self.start_http([a, b], [f"balance {balance}", "pool-size 1",
                                                 "max-pending 100", "pending-timeout 8000"],
                                        workers=1)

                def one(i):
                    return hb.fetch(proxy.port, hb.request("GET", f"/sleep/300?i={i}"),
                                    timeout=15)

                with concurrent.futures.ThreadPoolExecutor(8) as ex:
                    results = list(ex.map(one, range(8), timeout=60))
                statuses = [r.status if isinstance(r, hb.Response) else r for r in results]
                self.assertTrue(all(s in (200, 503) for s in statuses),
                                f"{balance}: {statuses}")
                self.assertGreaterEqual(statuses.count(200), 2, f"{balance}: {statuses}")
                self.assertTrue(proxy.alive(), f"{balance}: the proxy died")
                self.assertServed(hb.fetch(proxy.port, hb.request("GET", "/who")),
                                  what=f"{balance}: afterwards")
                self.assertLessEqual(a.conn_count() + b.conn_count(), 2)
                rc = proxy.stop()
                self.assertCleanExit(rc, proxy)


if __name__ == "__main__":
    unittest.main()

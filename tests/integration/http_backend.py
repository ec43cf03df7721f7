"""An HTTP/1.1 origin server for the HTTP mode tests (issue 15), and the client side of the wire.

HttpBackend is a threaded loopback server with a name. It keeps, per request, the id of the TCP
connection that carried it (a counter per accepted connection), the method, target, version,
header fields (pairs, in order), and the body's length and SHA-256 (hashed while read: a body is
never held whole). What it answers is chosen by the path:

    /who            200, body = the server's name
    /echo           the request body echoed as it arrives (Content-Length when the request had
                    one, else chunked with a trailer X-Sha256); the request body's SHA-256 is in
                    the record either way
    /sha            reads the body, answers 200 with X-Sha256 and X-Length (and the hex as body)
    /bytes/N        N bytes of pattern(), streamed with Content-Length
    /chunked/N      the same bytes chunked, with a trailer X-Sha256
    /close/N        the same bytes close-delimited (no length), then the connection closed
    /status/N       status N (204 and 304 without a body)
    /sleep/MS       waits MS milliseconds (at most 30 s, cut short by stop()), then 200
    /hold/KEY       waits until release(KEY) (at most 30 s, or stop()), then 200 "held KEY"
    /upgrade        WebSocket handshake (101, Sec-WebSocket-Accept per RFC 6455), then echoes
                    frames (client frames masked, server frames not) until a close frame
    /connclose      200 with Connection: close, then the connection closed
    anything else   200, body "NAME METHOD TARGET"

Every response carries X-Server: NAME, X-Conn: the connection id and X-Seq: the request's
number at this server (1, 2, ...). HEAD is answered with the head a GET would get (its length)
and no body. `Expect: 100-continue` with a body gets `100 Continue` before the body is read.

Options: `delay_ms` before every answer; `idle_close_ms` closes a kept-alive connection idle that
long between requests; `max_requests` closes a connection (silently, no Connection: close) after
that many answers; `drop_after` closes a connection when request number drop_after + 1 arrives
on it, without answering (the keep-alive race, deterministic). stop() closes the listener and
every connection; restart() listens again on the same port.

The client side: request() builds a request's bytes, Reader reads responses (or requests) from a
socket with bounded loops, streaming bodies to a callback when asked, keeping trailers.
Python 3.11 standard library only; loopback only; every loop bounded, every socket timed out.
"""

import base64
import hashlib
import socket
import struct
import threading
import time

import harness

SOCKET_TIMEOUT = 20.0
MAX_HEAD = 64 * 1024
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# --------------------------------------------------------------------------------------------
# The deterministic byte pattern of /bytes, /chunked and /close
# --------------------------------------------------------------------------------------------

_PERIOD = 65521  # a prime: a piece that is lost, repeated or moved changes the hash


def _make_block():
    out = bytearray()
    h = b"edgeproxy http pattern"
    for _ in range(_PERIOD // 32 + 1):
        h = hashlib.sha256(h).digest()
        out += h
    return bytes(out[:_PERIOD])


_BLOCK = _make_block()
_BIG = _BLOCK * 17  # any piece of up to 16 periods starts at offset % period
_PIECE = 16 * _PERIOD


def pattern_pieces(n, offset=0):
    """memoryviews covering bytes [offset, offset + n) of the pattern, ~1 MiB each."""
    view = memoryview(_BIG)
    end = offset + n
    for _ in range(n // _PIECE + 2):
        if offset >= end:
            return
        k = min(_PIECE, end - offset)
        start = offset % _PERIOD
        yield view[start:start + k]
        offset += k


def pattern(n):
    """The first n bytes of the pattern (small n only: this holds them)."""
    return b"".join(bytes(p) for p in pattern_pieces(n))


_SHA_CACHE = {}


def pattern_sha256(n):
    if n not in _SHA_CACHE:
        h = hashlib.sha256()
        for p in pattern_pieces(n):
            h.update(p)
        _SHA_CACHE[n] = h.hexdigest()
    return _SHA_CACHE[n]


# --------------------------------------------------------------------------------------------
# Wire: reading heads and bodies (both sides)
# --------------------------------------------------------------------------------------------

class Reader:
    """Buffered reads from a socket. Raises EOFError when the peer closed where bytes were
    needed; socket errors (timeouts, resets) pass through."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def fill(self, n=256 * 1024):
        data = self.sock.recv(n)
        if not data:
            raise EOFError("connection closed")
        self.buf += data
        return len(data)

    def line(self, limit=MAX_HEAD):
        for _ in range(limit + 1):
            at = self.buf.find(b"\r\n")
            if at >= 0:
                out = bytes(self.buf[:at])
                del self.buf[:at + 2]
                return out
            if len(self.buf) > limit:
                raise ValueError("line too long")
            self.fill()
        raise ValueError("line too long")

    def exact(self, n):
        for _ in range(n + 1):
            if len(self.buf) >= n:
                break
            self.fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def some(self, limit=256 * 1024):
        """Up to `limit` bytes: the buffered ones, else one recv (EOFError at EOF)."""
        if not self.buf:
            self.fill(limit)
        out = bytes(self.buf[:limit])
        del self.buf[:limit]
        return out

    def head(self, limit=MAX_HEAD):
        """(first line, [(name, value)], raw head bytes). EOFError if the peer closed before a
        whole head (also mid-head: self.buf then holds the part)."""
        for _ in range(limit + 1):
            at = self.buf.find(b"\r\n\r\n")
            if at >= 0:
                break
            if len(self.buf) > limit:
                raise ValueError("head too long")
            self.fill()
        raw = bytes(self.buf[:at + 4])
        del self.buf[:at + 4]
        lines = raw[:-4].decode("latin-1").split("\r\n")
        headers = []
        for text in lines[1:]:
            name, _, value = text.partition(":")
            headers.append((name, value.strip(" \t")))
        return lines[0], headers, raw

    def body(self, framing, on_data, limit=1 << 41):
        """Read a body framed as `framing` ('none', ('length', n), 'chunked' or 'close'),
        passing each piece to on_data. Returns the trailer fields [(name, value)] (chunked) or
        []. EOFError when the peer closed inside a framed body."""
        if framing == "none":
            return []
        if framing == "chunked":
            for _ in range(1 << 30):
                size_line = self.line()
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    trailers = []
                    for _ in range(1000):
                        text = self.line()
                        if not text:
                            return trailers
                        name, _, value = text.decode("latin-1").partition(":")
                        trailers.append((name, value.strip(" \t")))
                    raise ValueError("too many trailer fields")
                left = size
                for _ in range(size + 1):
                    if left == 0:
                        break
                    piece = self.some(min(left, 256 * 1024))
                    left -= len(piece)
                    on_data(piece)
                if self.exact(2) != b"\r\n":
                    raise ValueError("chunk not followed by CRLF")
            raise ValueError("too many chunks")
        if framing == "close":
            for _ in range(limit):
                try:
                    piece = self.some()
                except EOFError:
                    return []
                on_data(piece)
            return []
        _, left = framing
        for _ in range(left + 1):
            if left == 0:
                break
            piece = self.some(min(left, 256 * 1024))
            left -= len(piece)
            on_data(piece)
        return []


def values(headers, name):
    return [v for n, v in headers if n.lower() == name.lower()]


def value(headers, name):
    v = values(headers, name)
    return v[0] if v else None


def tokens(headers, name):
    """The comma-separated tokens of every `name` field, lower case."""
    return [t.strip().lower() for v in values(headers, name) for t in v.split(",") if t.strip()]


def request_framing(headers):
    if "chunked" in tokens(headers, "Transfer-Encoding"):
        return "chunked"
    cl = values(headers, "Content-Length")
    if cl:
        return ("length", int(cl[0]))
    return "none"


def response_framing(status, headers, head_request=False):
    if head_request or status // 100 == 1 or status in (204, 304):
        return "none"
    if "chunked" in tokens(headers, "Transfer-Encoding"):
        return "chunked"
    cl = values(headers, "Content-Length")
    if cl:
        return ("length", int(cl[0]))
    return "close"


# --------------------------------------------------------------------------------------------
# Client side
# --------------------------------------------------------------------------------------------

def request(method, target, host="app", headers=(), body=b"", version="1.1"):
    """A request's bytes: request line, Host (unless None), `headers` ("Name: value" strings, as
    given), a Content-Length when `body` is non-empty and no framing header was given, then
    `body`."""
    lines = [f"{method} {target} HTTP/{version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += list(headers)
    named = [h.split(":", 1)[0].strip().lower() for h in headers]
    if body and "content-length" not in named and "transfer-encoding" not in named:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(body, size=1000, trailers=()):
    """`body` in chunked coding, pieces of `size`, then the trailer fields given."""
    out = [b"%x\r\n" % len(body[i:i + size]) + body[i:i + size] + b"\r\n"
           for i in range(0, len(body), size)]
    out.append(b"0\r\n" + b"".join(t.encode("latin-1") + b"\r\n" for t in trailers) + b"\r\n")
    return b"".join(out)


class Response:
    def __init__(self, first, headers, raw_head):
        self.first = first
        self.headers = headers
        self.raw_head = raw_head
        parts = first.split(" ", 2)
        self.version = parts[0]
        self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        self.body = b""
        self.trailers = []
        self.framing = None
        self.length = 0
        self.sha256 = None
        self.interim = []

    def value(self, name):
        return value(self.headers, name)

    def values(self, name):
        return values(self.headers, name)

    def trailer(self, name):
        return value(self.trailers, name)

    def __repr__(self):
        body = self.body[:200] if self.body else b""
        return (f"<{self.first!r} {self.headers!r} body {self.length} bytes {body!r}"
                f"{' trailers ' + repr(self.trailers) if self.trailers else ''}>")


def read_response(reader, head_request=False, keep_body=True, on_data=None):
    """The next final response (1xx ones before it in .interim). The body is hashed (.sha256,
    .length), kept in .body when keep_body, and passed to on_data when given."""
    interim = []
    for _ in range(100):
        first, headers, raw = reader.head()
        resp = Response(first, headers, raw)
        if resp.status is None:
            raise ValueError(f"not a status line: {first!r}")
        if resp.status // 100 == 1 and resp.status != 101:
            interim.append(resp)
            continue
        resp.interim = interim
        resp.framing = response_framing(resp.status, headers, head_request)
        if resp.status == 101:
            resp.framing = "none"
        h = hashlib.sha256()
        parts = []

        def take(piece):
            h.update(piece)
            resp.length += len(piece)
            if keep_body:
                parts.append(piece)
            if on_data is not None:
                on_data(piece)

        resp.trailers = reader.body(resp.framing, take)
        resp.body = b"".join(parts)
        resp.sha256 = h.hexdigest()
        return resp
    raise ValueError("more than 100 interim responses")


def connect(port, host="127.0.0.1", timeout=SOCKET_TIMEOUT):
    s = socket.create_connection((host, port), timeout=timeout)
    s.settimeout(timeout)
    return s


def fetch(port, data, head_request=False, timeout=SOCKET_TIMEOUT, keep_body=True):
    """One connection, `data` sent, one final response read; the socket is closed. Returns the
    Response, or the string 'eof'/'reset'/'timeout' when no whole response came."""
    s = connect(port, timeout=timeout)
    try:
        s.sendall(data)
        try:
            return read_response(Reader(s), head_request, keep_body=keep_body)
        except EOFError:
            return "eof"
        except ConnectionResetError:
            return "reset"
        except (socket.timeout, TimeoutError):
            return "timeout"
    finally:
        s.close()


class Client:
    """One kept-alive client connection: get()/send() then read()."""

    def __init__(self, port, timeout=SOCKET_TIMEOUT):
        self.sock = connect(port, timeout=timeout)
        self.reader = Reader(self.sock)

    def send(self, data):
        self.sock.sendall(data)

    def read(self, head_request=False, keep_body=True, on_data=None):
        return read_response(self.reader, head_request, keep_body, on_data)

    def get(self, target, headers=(), method="GET", body=b"", host="app", version="1.1"):
        self.send(request(method, target, host, headers, body, version))
        return self.read(head_request=(method == "HEAD"))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# --------------------------------------------------------------------------------------------
# WebSocket framing (RFC 6455), minimal: whole frames, payloads below 2**63
# --------------------------------------------------------------------------------------------

def ws_accept(key):
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def ws_frame(opcode, payload, mask=None):
    """A final frame; `mask` (4 bytes) masks it (client frames must be masked)."""
    head = bytearray([0x80 | opcode])
    bit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head.append(bit | n)
    elif n < 65536:
        head.append(bit | 126)
        head += struct.pack("!H", n)
    else:
        head.append(bit | 127)
        head += struct.pack("!Q", n)
    if mask:
        head += mask
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes(head) + payload


def ws_read_frame(reader):
    """(fin, opcode, masked, payload unmasked)."""
    b0, b1 = reader.exact(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", reader.exact(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", reader.exact(8))[0]
    mask = reader.exact(4) if b1 & 0x80 else None
    payload = reader.exact(n)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bool(b0 & 0x80), b0 & 0x0F, mask is not None, payload


# --------------------------------------------------------------------------------------------
# The origin server
# --------------------------------------------------------------------------------------------

class RequestRecord:
    """One request as the server received it."""

    def __init__(self, conn, seq, method, target, version, headers):
        self.conn = conn
        self.seq = seq
        self.method = method
        self.target = target
        self.path = target.split("?", 1)[0]
        self.version = version
        self.headers = headers
        self.body_length = 0
        self.body_sha256 = hashlib.sha256(b"").hexdigest()
        self.complete = False  # the whole body was received
        self.answered = False  # a whole response was sent
        self.dropped = False  # closed on its arrival (drop_after)
        self.error = None

    def value(self, name):
        return value(self.headers, name)

    def values(self, name):
        return values(self.headers, name)

    def __repr__(self):
        return (f"<conn {self.conn} #{self.seq} {self.method} {self.target} HTTP/{self.version} "
                f"body {self.body_length} complete={self.complete} answered={self.answered}"
                f"{' dropped' if self.dropped else ''}{' ' + self.error if self.error else ''}>")


class ConnRecord:
    def __init__(self, conn_id, peer):
        self.id = conn_id
        self.peer = peer
        self.requests = 0
        self.end = None  # 'client-eof', 'eof-mid-request', 'idle-close', 'max-requests', ...


class HttpBackend:
    """See the module docstring."""

    def __init__(self, name, host="127.0.0.1", port=0, delay_ms=0, idle_close_ms=None,
                 max_requests=None, drop_after=None, conn_timeout=30.0, backlog=1024):
        self.name = name
        self.host = host
        self.delay_ms = delay_ms
        self.idle_close_ms = idle_close_ms
        self.max_requests = max_requests
        self.drop_after = drop_after
        self.conn_timeout = conn_timeout
        self.backlog = backlog
        self.requests = []
        self.conns = []
        self._lock = threading.Condition()
        self._open = set()
        self._threads = set()
        self._seq = 0
        self._gates = {}
        self._stop = threading.Event()
        self._closed = False
        self.sock = None
        self.port = port
        self._listen()

    # -- life cycle ---------------------------------------------------------------------------

    def _listen(self):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for attempt in range(50):  # the port may be in TIME_WAIT-ish states for a moment
            try:
                sock.bind((self.host, self.port))
                break
            except OSError:
                if attempt == 49:
                    sock.close()
                    raise
                time.sleep(0.1)
        sock.listen(self.backlog)
        sock.settimeout(0.1)
        self.sock = sock
        self.port = sock.getsockname()[1]
        self._stop = threading.Event()
        t = threading.Thread(target=self._accept_loop, args=(sock, self._stop), daemon=True)
        self._accept_thread = t
        t.start()

    def stop(self):
        """Stop listening (connects refused) and close every open connection."""
        self._stop.set()
        self.release()
        harness.safe_close(self.sock)
        self._accept_thread.join(timeout=2)
        with self._lock:
            conns = list(self._open)
            threads = list(self._threads)
        harness.shut_down_and_join(conns, threads)

    def gate(self, key):
        with self._lock:
            return self._gates.setdefault(key, threading.Event())

    def release(self, key=None):
        """Let /hold/KEY requests (every one when key is None) answer."""
        if key is None:
            with self._lock:
                gates = list(self._gates.values())
            for g in gates:
                g.set()
        else:
            self.gate(key).set()

    def restart(self):
        """Listen again on the same port."""
        self._listen()

    def close(self):
        if not self._closed:
            self._closed = True
            self.stop()

    @property
    def stopping(self):
        return self._stop.is_set()

    # -- what it saw ----------------------------------------------------------------------------

    def snapshot(self):
        with self._lock:
            return list(self.requests)

    def conn_count(self):
        with self._lock:
            return len(self.conns)

    def conn_ids(self):
        """Ids of the connections that carried at least one request."""
        with self._lock:
            return {r.conn for r in self.requests}

    def wait_requests(self, n, timeout=10.0):
        """Wait until at least n requests arrived (their heads); returns the records."""
        deadline = time.monotonic() + timeout
        with self._lock:
            for _ in range(100000):
                if len(self.requests) >= n:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._lock.wait(min(remaining, 0.1))
            return list(self.requests)

    def open_connections(self):
        with self._lock:
            return len(self._open)

    # -- serving --------------------------------------------------------------------------------

    def _accept_loop(self, sock, stop):
        for _ in range(1 << 40):
            if stop.is_set():
                return
            try:
                conn, peer = sock.accept()
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                if stop.is_set():
                    return
                time.sleep(0.05)
                continue
            conn.settimeout(self.conn_timeout)
            with self._lock:
                rec = ConnRecord(len(self.conns) + 1, peer)
                self.conns.append(rec)
                self._open.add(conn)
                t = threading.Thread(target=self._serve, args=(conn, rec), daemon=True)
                self._threads.add(t)
            t.start()

    def _serve(self, conn, rec):
        try:
            rec.end = self._serve_requests(conn, rec)
        except (ConnectionResetError, BrokenPipeError):
            rec.end = "reset"
        except (socket.timeout, TimeoutError):
            rec.end = "timeout"
        except EOFError:
            rec.end = "eof-mid-request"
        except (OSError, ValueError) as e:
            rec.end = repr(e)
        finally:
            try:
                conn.close()
            except OSError:
                pass
            with self._lock:
                self._open.discard(conn)
                self._threads.discard(threading.current_thread())
                self._lock.notify_all()

    def _serve_requests(self, conn, rec):
        reader = Reader(conn)
        for _ in range(1 << 30):
            if self.stopping:
                return "stopped"
            if not reader.buf:
                if self.idle_close_ms is not None and rec.requests:
                    conn.settimeout(self.idle_close_ms / 1000)
                try:
                    reader.fill()
                except EOFError:
                    return "client-eof"
                except (socket.timeout, TimeoutError):
                    return "idle-close"
                finally:
                    conn.settimeout(self.conn_timeout)
            try:
                first, headers, _ = reader.head()
            except EOFError:
                return "eof-mid-head"
            parts = first.split(" ")
            if len(parts) != 3 or not parts[2].startswith("HTTP/"):
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
                return "bad-request"
            method, target, version = parts[0], parts[1], parts[2][5:]
            with self._lock:
                self._seq += 1
                req = RequestRecord(rec.id, self._seq, method, target, version, headers)
                self.requests.append(req)
                self._lock.notify_all()
            rec.requests += 1
            if self.drop_after is not None and rec.requests > self.drop_after:
                req.dropped = True
                return "dropped"
            keep = self._answer(conn, reader, req, rec)
            if not keep:
                return "closed-by-server"
            if self.max_requests is not None and rec.requests >= self.max_requests:
                return "max-requests"
        return "too-many-requests"

    def _head(self, status, reason, req, rec, fields=()):
        lines = [f"HTTP/1.1 {status} {reason}", f"X-Server: {self.name}",
                 f"X-Conn: {rec.id}", f"X-Seq: {req.seq}"]
        lines += list(fields)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _sleep(self, ms):
        self._stop.wait(min(ms, 30000) / 1000)

    def _answer(self, conn, reader, req, rec):
        """Serve one request; returns whether the connection stays open."""
        framing = request_framing(req.headers)
        has_body = framing == "chunked" or (framing != "none" and framing[1] > 0)
        if has_body and "100-continue" in tokens(req.headers, "Expect"):
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        h = hashlib.sha256()

        def hashed(piece):
            h.update(piece)
            req.body_length += len(piece)

        conn_tokens = tokens(req.headers, "Connection")
        close = "close" in conn_tokens or (req.version == "1.0" and "keep-alive" not in conn_tokens)
        head_only = req.method == "HEAD"
        path = req.path
        segs = path.strip("/").split("/")
        arg = int(segs[1]) if len(segs) > 1 and segs[1].isdigit() else None

        if path == "/echo" and not head_only:
            if framing == "chunked":
                conn.sendall(self._head(200, "OK", req, rec, ["Transfer-Encoding: chunked"]))

                def send_chunk(piece):
                    hashed(piece)
                    conn.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")

                reader.body(framing, send_chunk)
                req.body_sha256 = h.hexdigest()
                req.complete = True
                conn.sendall(f"0\r\nX-Sha256: {req.body_sha256}\r\nX-Length: "
                             f"{req.body_length}\r\n\r\n".encode())
            else:
                n = framing[1] if framing != "none" else 0
                fields = [f"Content-Length: {n}"] + (["Connection: close"] if close else [])
                conn.sendall(self._head(200, "OK", req, rec, fields))

                def send_piece(piece):
                    hashed(piece)
                    conn.sendall(piece)

                reader.body(framing, send_piece)
                req.body_sha256 = h.hexdigest()
                req.complete = True
            req.answered = True
            return not close

        if path == "/early" and not head_only:
            # A 401 to an upload before its body was read, as servers answer an unauthorized
            # one; the body is then read (and dropped) and the connection stays open.
            body = b"early"
            conn.sendall(self._head(401, "Unauthorized", req, rec,
                                    [f"Content-Length: {len(body)}"]) + body)
            req.answered = True
            reader.body(framing, hashed)
            req.body_sha256 = h.hexdigest()
            req.complete = True
            return True

        reader.body(framing, hashed)
        req.body_sha256 = h.hexdigest()
        req.complete = True
        if self.delay_ms:
            self._sleep(self.delay_ms)
        extra = ["Connection: close"] if close else []

        def simple(status, reason, body, fields=()):
            fields = [f"Content-Length: {len(body)}"] + list(fields) + extra
            conn.sendall(self._head(status, reason, req, rec, fields)
                         + (b"" if head_only else body))

        if path == "/who":
            simple(200, "OK", self.name.encode())
        elif path == "/sha":
            simple(200, "OK", req.body_sha256.encode(),
                   [f"X-Sha256: {req.body_sha256}", f"X-Length: {req.body_length}"])
        elif segs[0] == "bytes" and arg is not None:
            conn.sendall(self._head(200, "OK", req, rec, [f"Content-Length: {arg}"] + extra))
            if not head_only:
                for piece in pattern_pieces(arg):
                    conn.sendall(piece)
        elif segs[0] == "chunked" and arg is not None:
            conn.sendall(self._head(200, "OK", req, rec, ["Transfer-Encoding: chunked",
                                                          "Trailer: X-Sha256"] + extra))
            if not head_only:
                for piece in pattern_pieces(arg):
                    for at in range(0, len(piece), 65536):
                        sub = piece[at:at + 65536]
                        conn.sendall(b"%x\r\n" % len(sub) + bytes(sub) + b"\r\n")
                conn.sendall(f"0\r\nX-Sha256: {pattern_sha256(arg)}\r\n\r\n".encode())
        elif segs[0] == "close" and arg is not None:
            conn.sendall(self._head(200, "OK", req, rec))
            if not head_only:
                for piece in pattern_pieces(arg):
                    conn.sendall(piece)
            req.answered = True
            conn.shutdown(socket.SHUT_WR)
            return False
        elif segs[0] == "status" and arg is not None:
            if arg in (204, 304):
                conn.sendall(self._head(arg, "No Content" if arg == 204 else "Not Modified",
                                        req, rec, ['ETag: "x"'] if arg == 304 else []))
            else:
                simple(arg, "Status", f"status {arg}\n".encode())
        elif segs[0] == "sleep" and arg is not None:
            self._sleep(arg)
            simple(200, "OK", f"slept {arg}".encode())
        elif segs[0] == "hold" and len(segs) > 1:
            gate = self.gate(segs[1])
            for _ in range(300):
                if gate.is_set() or self.stopping:
                    break
                gate.wait(0.1)
            simple(200, "OK", f"held {segs[1]}".encode())
        elif path == "/upgrade" and "websocket" in tokens(req.headers, "Upgrade"):
            key = req.value("Sec-WebSocket-Key") or ""
            conn.sendall(self._head(101, "Switching Protocols", req, rec, [
                "Upgrade: websocket", "Connection: Upgrade",
                f"Sec-WebSocket-Accept: {ws_accept(key)}"]))
            req.answered = True
            self._ws_echo(conn, reader, req)
            return False
        elif path == "/connclose":
            body = b"bye"
            conn.sendall(self._head(200, "OK", req, rec, [f"Content-Length: {len(body)}",
                                                          "Connection: close"])
                         + (b"" if head_only else body))
            req.answered = True
            conn.shutdown(socket.SHUT_WR)
            return False
        else:
            simple(200, "OK", f"{self.name} {req.method} {req.target}".encode())
        req.answered = True
        return not close

    def _ws_echo(self, conn, reader, req):
        req.ws_frames = []
        for _ in range(100000):
            fin, opcode, masked, payload = ws_read_frame(reader)
            req.ws_frames.append((opcode, masked, payload))
            if opcode == 8:  # close: answer it and end
                conn.sendall(ws_frame(8, payload[:2]))
                conn.shutdown(socket.SHUT_WR)
                return
            if opcode == 9:  # ping
                conn.sendall(ws_frame(10, payload))
                continue
            conn.sendall(ws_frame(opcode, payload))

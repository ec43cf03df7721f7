#!/usr/bin/env python3
"""Writes the committed seed corpora (tests/fuzz/corpus/<target>/seed-*) and dictionaries
(tests/fuzz/dict/<target>.dict) from the project's own data: the options table, the example
configurations, the unit tests' real ClientHellos, and hand-written protocol messages. Deterministic:
run it again after changing a target's input format. Findings (regression inputs) live beside the
seeds as crash-* files and are never rewritten here."""
import os
import re
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FUZZ = os.path.join(ROOT, "tests", "fuzz")


def write(target, name, data):
    d = os.path.join(FUZZ, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def write_dict(target, words):
    d = os.path.join(FUZZ, "dict")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, target + ".dict"), "w") as f:
        f.write("# " + target + ": made by tests/fuzz/make_seeds.py\n")
        for w in sorted(set(w.encode() if isinstance(w, str) else w for w in words)):
            f.write('"' + "".join(chr(b) if 0x20 <= b < 0x7f and b not in (0x22, 0x5c)
                                  else "\\x%02x" % b for b in w) + '"\n')


def read(*parts):
    with open(os.path.join(ROOT, *parts), "rb") as f:
        return f.read()


def options():
    text = read("src", "options.cc").decode()
    names = re.findall(r'\.name = "([a-z0-9-]+)"', text)
    examples = re.findall(r'\.example = "([^"]*)"', text)
    return names, examples


def hellos():
    text = read("tests", "unit", "data", "client_hellos.h").decode()
    out = {}
    for name, body in re.findall(r"inline constexpr uint8_t (k\w+)\[\] = \{(.*?)\};", text, re.S):
        out[name] = bytes(int(x, 16) for x in re.findall(r"0x([0-9a-f]{2})", body))
    return out


REQUESTS = [
    b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    b"GET /api/v1/items?x=1 HTTP/1.1\r\nHost: api.example.com:8080\r\nUser-Agent: curl/8.5.0\r\n"
    b"Accept: */*\r\n\r\n",
    b"GET http://example.com:8080/a/b?c HTTP/1.1\r\nHost: other.example\r\nConnection: keep-alive, "
    b"X-Hop\r\nX-Hop: 1\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic "
    b"YWxpY2U6c2VjcmV0\r\nTE: trailers\r\n\r\n",
    b"POST /upload HTTP/1.1\r\nHost: www.example.com\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /chunks HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n",
    b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /chat HTTP/1.1\r\nHost: ws.example.org\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n",
    b"GET http://example.com HTTP/1.0\r\nConnection: close\r\n\r\n",
    b"HEAD /x HTTP/1.0\r\n\r\n",
    b"GET /[::1] HTTP/1.1\r\nHost: [::1]:80\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n",
]
RESPONSES = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
    b"HTTP/1.0 200 \r\nConnection: keep-alive\r\n\r\nuntil close",
    b"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n",
    b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\n"
    b"Content-Length: 0\r\n\r\n",
]
CHUNKED = [
    b"5\r\nhello\r\n0\r\n\r\n",
    b"A;name=value;q=\"a\\\"b\"\r\n0123456789\r\n000\r\nX-Trailer: 1\r\nY: 2\r\n\r\n",
    b"1\r\na\r\n1\r\nb\r\n0\r\n\r\nNEXT",
    b"7fffffffffffffff\r\n",
    b"0\r\n\r\n",
]
PROXY = [
    b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET /",
    b"PROXY TCP6 2001:db8::1 ::1 4000 80\r\n",
    b"PROXY UNKNOWN\r\n",
    b"PROXY UNKNOWN ffff:f...f:ffff 443\r\n",
]
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(cmd, fam, block):
    return V2_SIG + bytes([0x20 | cmd, fam]) + struct.pack(">H", len(block)) + block


PROXY += [
    v2(1, 0x11, bytes([127, 0, 0, 1, 10, 0, 0, 1]) + struct.pack(">HH", 1234, 80)),
    v2(1, 0x11, bytes([127, 0, 0, 1, 10, 0, 0, 1]) + struct.pack(">HH", 1234, 80) +
       b"\x04\x00\x03abc" + b"\x02\x00\x0bexample.com"),
    v2(1, 0x21, bytes(15) + b"\x01" + bytes(15) + b"\x02" + struct.pack(">HH", 5, 6)),
    v2(0, 0x00, b""),
    v2(1, 0x31, bytes(216)),
    v2(1, 0x11, bytes([1, 2, 3, 4, 5, 6, 7, 8]) + struct.pack(">HH", 1, 2) +
       b"\x03\x00\x04\x00\x00\x00\x00"),
]
ADMIN = ["help", "show info", "show stats", "show stats json", "show listeners", "show backends",
         "show servers", "show servers app", "show conns", "show conns 10",
         "disable server app s1", "enable server app s1", "set weight app s1 128",
         "kill conn 0.12.3", "reload", "shutdown", "shutdown fast", "  show\tinfo  \r"]
FORMATS = ["%t %ci:%cp %f %bs %Tc %Tt %U %B %e", "%ci:%cp/%e", "%%literal %w %b %s",
           "[%t] %f -> %b/%s up=%U down=%B", ""]


def main():
    names, examples = options()
    # cli: argv split on NUL.
    write("cli", "flags", b"\0".join([b"-l", b"127.0.0.1", b"-p", b"8080", b"-b", b"127.0.0.1",
                                      b"-P", b"9000", b"--workers", b"2"]))
    write("cli", "config", b"-c\0edgeproxy.conf\0-t\0-v")
    write("cli", "help", b"--help")
    write("cli", "equals", b"--idle-timeout=30s\0--no-no-delay\0--splice\0auto\0-p9001")
    for i, (n, e) in enumerate(zip(names, examples)):
        arg = ("--" + n).encode()
        write("cli", "opt-%02d" % i, arg + (b"\0" + e.encode() if e else b""))
    write_dict("cli", ["--" + n for n in names] + examples + ["--no-", "=", "-"])

    # config: the examples and a few more.
    for name in ["full.conf", "minimal.conf", "git-routing.conf", "sidecar-unix.conf"]:
        write("config", name.replace(".conf", ""), read("examples", name))
    write("config", "admin", read("examples", "conf.d", "admin.conf"))
    write("config", "includes", "include inc.conf\ninclude *.conf\n"
          "listener l { bind 127.0.0.1:0\n backend inc }\n")
    write("config", "cycle", "include self.conf\n")
    write("config", "forward", "listener fwd {\n bind 127.0.0.1:3128\n mode forward\n"
          " auth basic proxy-users realm \"edge\"\n}\n")
    write("config", "map", "map users users.map\nbackend shards { server s 127.0.0.1:1 }\n"
          "backend app { server s 127.0.0.1:2 }\nlistener g {\n bind 127.0.0.1:9418\n route {\n"
          "  regex \"^....git-upload-pack /([a-z]+)/\" map users $1 send \"x\\x00\"\n"
          "  any reject\n }\n on-timeout backend app\n}\n")
    write_dict("config", names + ["{", "}", "\"", "#", "\\x", "include", "listener", "backend",
                                  "server", "global", "route", "map", "bind", "sni", "alpn",
                                  "prefix", "regex", "http-host", "http-path", "http-method",
                                  "protocol", "any", "reply", "close", "reject", "wait", "hash",
                                  "send", "check", "weight", "unix:/", "127.0.0.1:80", "[::1]:80",
                                  "on", "off", "auth", "basic", "realm", "forward", "tcp",
                                  "on-timeout", "on-full", "inc.conf", "self.conf", "users.map",
                                  "proxy-users", "missing"])

    hs = hellos()
    # route: control byte (listener, final), cuts, bytes.
    samples = list(hs.values()) + REQUESTS[:5] + PROXY[:2] + [
        b"0032git-upload-pack /mojombo/grit.git\0host=github.com\0", b"SSH-2.0-OpenSSH_9.6\r\n",
        b"PING\r\n", b"\x00\x01\x02"]
    for i, s in enumerate(samples):
        for listener in range(3):
            write("route", "%02d-%d" % (i, listener), bytes([listener | (0x80 if i % 2 else 0), 0]) + s)
    write_dict("route", ["example.com", "api.example.com", ".example.com", "h2", "http/1.1",
                         "Host: ", "GET ", "POST ", "CONNECT ", "/upload", "/api/", "SSH-",
                         "PROXY ", "PING", "git-upload-pack /", "\x16\x03\x01", "\r\n"])

    for name, h in hs.items():
        write("client_hello", name, b"\0" + h)
        write("client_hello", name + "-split", b"\x02\x05\x00\x40\x00" + h)
        # The same hello in two records.
        body = h[5:]
        half = len(body) // 2
        two = (h[:3] + struct.pack(">H", half) + body[:half] + h[:3] +
               struct.pack(">H", len(body) - half) + body[half:])
        write("client_hello", name + "-records", b"\0" + two)

    for i, p in enumerate(PROXY):
        write("proxy_header", "%02d" % i, b"\0" + p)
        write("proxy_header", "%02d-split" % i, b"\x01\x07\x00" + p)
    write_dict("proxy_header", ["PROXY ", "TCP4 ", "TCP6 ", "UNKNOWN", "\r\n", V2_SIG,
                                "\x21\x11", "\x21\x21", "\x20\x00", "\x21\x31", "\x03\x00\x04"])

    http_words = ["HTTP/1.1", "HTTP/1.0", "\r\n", "\r\n\r\n", "Host: ", "Content-Length: ",
                  "Transfer-Encoding: chunked", "Connection: ", "close", "keep-alive", "upgrade",
                  "Upgrade: websocket", "Proxy-Connection: ", "Proxy-Authorization: ", "TE: ",
                  "Trailer: ", "Keep-Alive: ", "http://", "https://", "CONNECT ", "OPTIONS * ",
                  "GET ", "HEAD ", "POST ", "[::1]", ":8080", "100 Continue", "101 ", "204 ",
                  "304 ", "200 OK", "chunked", "gzip, "]
    for i, r in enumerate(REQUESTS):
        write("http_head", "req-%02d" % i, b"\0\0" + r)
        write("http_head", "req-%02d-split" % i, b"\0\x03\x01\x00\x10\x00\x20\x00" + r)
        write("http_framing", "req-%02d" % i, b"\0\x02\x30\x00\x50\x00" + r)
        write("http_rewrite", "req-%02d" % i, bytes([i % 4]) + r)
    for i, r in enumerate(RESPONSES):
        write("http_head", "resp-%02d" % i, b"\x01\0" + r)
        for m in range(4):
            write("http_framing", "resp-%02d-%d" % (i, m), bytes([1 | m << 1, 1, 0x28, 0]) + r)
    # http_rules: control byte (bit 0 response, bit 6 with bit 0 a template; 0x02 forwarded-for,
    # 0x04 forwarded-proto, 0x08 via, 0x10 upgrade / close / set, 0x80 an IPv6 client), rule mask.
    for i, r in enumerate(REQUESTS):
        write("http_rules", "req-%02d" % i, bytes([0x0e | (i % 2) << 4, 0xff if i % 3 else 0x05]) + r)
    for i, r in enumerate(RESPONSES):
        write("http_rules", "resp-%02d" % i, bytes([0x09 | (i % 2) << 4, 0x3f if i % 2 else 0x13]) + r)
    for i, t in enumerate(["$client_addr:$client_port", "$server-a $$ $listener", "id=$request_id",
                           "plain value", "$nope", "a\tb", ""]):
        write("http_rules", "template-%02d" % i, bytes([0x41 | (i % 2) << 4, 0]) + t.encode())
    for t in ["http_head", "http_framing", "http_rewrite", "http_rules"]:
        write_dict(t, http_words + (["$client_addr", "$client_port", "$listener", "$server",
                                     "$request_id", "$$", "X-Forwarded-For: ", "Via: ",
                                     "Accept: ", "User-Agent: ", "Server: ", "/api/"]
                                    if t == "http_rules" else []))

    for i, c in enumerate(CHUNKED):
        write("chunked", "%02d" % i, b"\0\0\0\0\0" + c)
        write("chunked", "%02d-split-skip" % i, b"\xff\xff\xff\xff\x04\x02\x00\x05\x00\x09\x00\x0c\x00" + c)
    write_dict("chunked", ["\r\n", ";", "=", "\"", "\\", "0\r\n\r\n", "ffffffff", "Trailer: "])

    for i, t in enumerate(["", "YQ==", "YWI=", "YWJj", "YWxpY2U6c2VjcmV0", "////", "+/+/"]):
        write("base64", "%02d" % i, t)
    write("basic_auth", "header", b"\x01\x40Basic YWxpY2U6c2VjcmV0")
    write("basic_auth", "header-colon", b"\x01\x40basic   Ym9iOnA6YTpzcw==")
    write("basic_auth", "header-small", b"\x01\x04Basic YWxpY2U6c2VjcmV0")
    write("basic_auth", "file", b"\x00" + read("examples", "proxy-users"))
    write("basic_auth", "file-crlf", b"\x00# users\r\n\r\nbob:$5$rounds=1000$saltsalt$"
          b"XaI4lWyc/zf/nGLoQ7zpQS7mSSc8/BpGOBHD0kf8bf4\r\n")
    write_dict("basic_auth", ["Basic ", "$5$", "rounds=", ":", "#", "\r\n"])

    for i, a in enumerate(ADMIN):
        write("admin_command", "%02d" % i, a)
    write_dict("admin_command", ["show ", "info", "stats", "json", "listeners", "backends",
                                 "servers", "conns", "disable ", "enable ", "server ", "set ",
                                 "weight ", "kill ", "conn ", "reload", "shutdown", "fast", "help"])

    for i, fm in enumerate(FORMATS):
        write("access_log_format", "%02d" % i, struct.pack("<H", 2047 if i else 40) + fm.encode())
    write_dict("access_log_format", ["%t", "%ci", "%cp", "%f", "%b", "%s", "%bs", "%Tc", "%Tt",
                                     "%U", "%B", "%e", "%w", "%%"])

    # relay: setup byte, then steps (see relay_fuzz.cc): upstream connects, the client sends,
    # pumps with full and partial answers, the client ends, the server answers and ends.
    connect = [1, 0x02, 1]              # upstream event writable, connect succeeds
    client_rw = [0, 0x03]               # client readable + writable
    up_rw = [1, 0x03]
    pump_full = [2, 2, 1]               # pump: read full, write full
    flows = {
        "echo": [0x10] + connect + client_rw + pump_full + [0, 0x04] + [2, 3, 0] + up_rw + [2, 1, 0x10, 0, 1, 0, 3, 0],
        "splice": [0x01] + connect + client_rw + [2, 1, 0, 0x40, 1, 0, 2] + [0, 0x04, 2, 2],
        "accel": [0x03] + connect + up_rw + [2, 2, 2, 2, 2, 2, 2, 2, 0, 0x02, 2, 1, 1],
        "reset": [0x00] + connect + client_rw + [0, 0x08, 2, 1, 0x20, 0, 1, 10, 10],
        "gate": [0x00] + connect + client_rw + [9, 10, 2, 2, 1, 9, 0x30, 2, 1],
        "pressure": [0x00, 6, 6, 6, 6, 6, 6] + connect + client_rw + [2, 2, 7, 6 | 0x10, 7, 2, 2, 1],
    }
    for name, steps in flows.items():
        write("relay", name, bytes(steps))


if __name__ == "__main__":
    sys.exit(main())

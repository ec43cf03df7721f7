#!/usr/bin/env python3
"""Prints the real ClientHellos of tests/unit/data/client_hellos.h as C++ byte arrays.

Run once by hand (python3 tests/unit/data/make_client_hellos.py > hellos.txt) and paste the
arrays into that header (tests/unit/client_hello_test.cc and bench/route_bench.cc use them); the
hellos carry fresh random bytes and key shares on every run, so the test checks names and
structure, never exact bytes. Needs python3's ssl module and the openssl
command line tool; it opens one loopback listener and nothing else.
"""
import socket
import ssl
import subprocess
import sys
import threading


def python_hello(server_hostname, alpn):
    """The first flight of python's ssl module (MemoryBIO, no socket): the ClientHello records."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = server_hostname is not None
    if alpn:
        ctx.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def read_records(conn):
    """Reads TLS records until the handshake message in them is complete."""
    data = b""
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
        handshake, pos = b"", 0
        while pos + 5 <= len(data):
            length = int.from_bytes(data[pos + 3:pos + 5], "big")
            handshake += data[pos + 5:pos + 5 + length]
            pos += 5 + length
        if len(handshake) >= 4 and len(handshake) >= 4 + int.from_bytes(handshake[1:4], "big"):
            return data[:pos]


def openssl_hello(args):
    """What `openssl s_client -connect` sends to a loopback listener that only captures."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    captured = {}

    def capture():
        conn, _ = listener.accept()
        with conn:
            captured["hello"] = read_records(conn)

    thread = threading.Thread(target=capture)
    thread.start()
    port = listener.getsockname()[1]
    subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}"] + args,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=10, check=False)
    thread.join()
    listener.close()
    return captured["hello"]


def emit(name, comment, data):
    print(f"// {comment}: {len(data)} bytes.")
    print(f"inline constexpr uint8_t {name}[] = {{")
    for i in range(0, len(data), 16):
        print("    " + " ".join(f"0x{b:02x}," for b in data[i:i + 16]))
    print("};")


def main():
    emit("kPythonSniAlpn", "python3 ssl, server_hostname=example.com, ALPN h2 and http/1.1",
         python_hello("example.com", ["h2", "http/1.1"]))
    emit("kPythonNoSni", "python3 ssl, server_hostname=None, ALPN h2 and http/1.1",
         python_hello(None, ["h2", "http/1.1"]))
    emit("kPythonIpLiteral", "python3 ssl, server_hostname=192.0.2.7 (no SNI for an IP), no ALPN",
         python_hello("192.0.2.7", None))
    emit("kOpensslSniAlpn", "openssl s_client -servername backend.example -alpn h2,http/1.1",
         openssl_hello(["-servername", "backend.example", "-alpn", "h2,http/1.1"]))
    emit("kOpensslTls12", "openssl s_client -tls1_2 -servername Mixed-Case.Example. -alpn h2",
         openssl_hello(["-tls1_2", "-servername", "Mixed-Case.Example.", "-alpn", "h2"]))
    print(f"// {ssl.OPENSSL_VERSION}", file=sys.stderr)


if __name__ == "__main__":
    main()

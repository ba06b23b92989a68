"""Conformance and bad-input checks of examples/http_server with real
clients: curl (the command) and Python's http.client (pipelining through a
raw socket, responses parsed by http.client.HTTPResponse). Loopback only.
Usage: python3 check_http_server.py <http_server binary>   (prints "ok: ...")"""
import http.client
import os
import resource
import socket
import subprocess
import sys
import time

BIN = sys.argv[1]
checks = []


def start(*args):
    p = subprocess.Popen([BIN, "--port", "0", *args], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line.startswith("serving on 127.0.0.1:"), line
    return p, int(line.rsplit(":", 1)[1])


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class SharedFile:
    """A socket stand-in whose makefile() is one shared buffered reader, so
    that successive HTTPResponse objects read successive pipelined responses
    (and their close() does not close it)."""

    def __init__(self, sock):
        self.f = sock.makefile("rb")

    def makefile(self, *a, **k):
        return self

    def __getattr__(self, name):
        return getattr(self.f, name)

    def close(self):
        pass


def responses(sock, n, method="GET"):
    fs = SharedFile(sock)
    out = []
    for _ in range(n):
        r = http.client.HTTPResponse(fs, method=method)
        r.begin()
        out.append((r.status, r.read(), r.getheader("Connection")))
    return out


def raw(port, data, timeout=5):
    """Send data, read until the server closes; return (bytes, seconds)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(timeout)
    t0 = time.monotonic()
    s.sendall(data)
    got = b""
    try:
        while chunk := s.recv(65536):
            got += chunk
    except ConnectionResetError:
        pass
    s.close()
    return got, time.monotonic() - t0


def curl(*args):
    return subprocess.run(["curl", "-s", *args], capture_output=True, timeout=20, check=True).stdout


srv, port = start("--header-timeout", "1", "--send-timeout", "5")
base = f"http://127.0.0.1:{port}"
try:
    # --- curl: GET, keep-alive reuse, HEAD, 404, POST bodies, a large stream.
    out = subprocess.run(["curl", "-sv", f"{base}/hello", f"{base}/hello"], capture_output=True,
                         text=True, timeout=20, check=True)
    assert out.stdout == "hello\nhello\n", out.stdout
    assert "Re-using existing connection" in out.stderr, out.stderr
    assert curl("-I", f"{base}/hello").startswith(b"HTTP/1.1 200 OK\r\n")
    assert curl("-o", "/dev/null", "-w", "%{http_code}", f"{base}/nope") == b"404"
    body = os.urandom(300_000)
    p = subprocess.run(["curl", "-s", "--data-binary", "@-", f"{base}/echo"], input=body,
                       capture_output=True, timeout=20, check=True)
    assert p.stdout == body, "Content-Length body (with Expect: 100-continue)"
    p = subprocess.run(["curl", "-s", "-H", "Transfer-Encoding: chunked", "--data-binary", "@-",
                        f"{base}/echo"], input=body, capture_output=True, timeout=20, check=True)
    assert p.stdout == body, "chunked body"
    assert len(curl(f"{base}/stream?bytes=20000000")) == 20_000_000
    checks.append("curl")

    # --- http.client: a normal keep-alive exchange.
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    for _ in range(3):
        c.request("POST", "/echo", body=b"x" * 1000)
        r = c.getresponse()
        assert (r.status, r.read()) == (200, b"x" * 1000)
    c.close()

    # --- pipelining: 100 requests in one send, responses in order.
    s = socket.create_connection(("127.0.0.1", port))
    reqs = b"".join(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(str(i)), str(i).encode())
        if i % 2 else b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n" for i in range(100))
    s.sendall(reqs)
    rs = responses(s, 100)
    for i, (st, b, _) in enumerate(rs):
        assert st == 200 and b == (str(i).encode() if i % 2 else b"hello\n"), (i, st, b)
    # Chunked request in a pipeline, then Connection: close ends it.
    s.sendall(b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
              b"GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n")
    rs = responses(s, 2)
    assert rs[0][:2] == (200, b"abcde") and rs[1][:2] == (200, b"hello\n") and rs[1][2] == "close", rs
    assert s.recv(1) == b""  # closed after Connection: close
    s.close()
    checks.append("pipelining")

    # --- bad input: status, then the connection is closed.
    got, _ = raw(port, b"GARBAGE / FOO\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 400 "), got
    got, _ = raw(port, b"GET /hello HTTP/1.1\r\nX-Big: " + b"a" * 10000 + b"\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 431 "), got
    got, _ = raw(port, b"GET /hello HTTP/1.1\r\n" + b"X-A: b\r\n" * 2000 + b"\r\n")
    assert got.startswith(b"HTTP/1.1 431 "), got
    got, _ = raw(port, b"GET /" + b"u" * 2000 + b" HTTP/1.1\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 414 "), got
    got, _ = raw(port, b"CONNECT a:1 HTTP/1.1\r\n\r\nxyz")  # answered, then closed
    assert got.startswith(b"HTTP/1.1 404 ") and b"Connection: close" in got, got
    got, _ = raw(port, b"GET /hello HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                       b"GET /hello HTTP/1.1\r\n\r\n")
    assert got.count(b"HTTP/1.1 200 ") == 1 and b"Connection: close" in got, got
    got, _ = raw(port, b"POST /echo HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 413 "), got
    chunk = b"%x\r\n%s\r\n" % (100000, b"z" * 100000)
    got, _ = raw(port, b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 12)
    assert got.startswith(b"HTTP/1.1 413 "), got
    got, _ = raw(port, b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n")
    assert got.startswith(b"HTTP/1.1 400 "), got
    checks.append("400/413/414/431, upgrade/CONNECT closed")

    # --- 300 mutated requests (fixed seed): any answer or a close, never a crash.
    import random
    rnd = random.Random(11)
    seed = (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\n\r\nGET /hello HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
    for _ in range(300):
        m = bytearray(seed)
        for _ in range(rnd.randint(1, 8)):
            i = rnd.randrange(len(m))
            op = rnd.randrange(3)
            if op == 0:
                m[i] = rnd.randrange(256)
            elif op == 1:
                del m[i]
            else:
                m[i:i] = bytes([rnd.randrange(256)]) * rnd.randint(1, 40)
        s = socket.create_connection(("127.0.0.1", port))
        s.settimeout(3)
        s.sendall(bytes(m))
        s.shutdown(socket.SHUT_WR)
        try:
            while s.recv(65536):
                pass
        except (ConnectionResetError, socket.timeout):
            pass
        s.close()
    assert srv.poll() is None, "the server died"
    assert curl(f"{base}/hello") == b"hello\n"
    checks.append("300 mutated requests")

    # --- slowloris: a header byte every 0.2 s; --header-timeout 1 closes it.
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(5)
    t0 = time.monotonic()
    s.sendall(b"GET /hello HTTP/1.1\r\n")
    got = b""
    try:
        for ch in b"X-Slow: " + b"s" * 100:
            s.sendall(bytes([ch]))
            s.settimeout(0.2)
            try:
                d = s.recv(4096)
                got += d
                if not d:
                    break
            except socket.timeout:
                pass
    except (BrokenPipeError, ConnectionResetError):
        pass
    took = time.monotonic() - t0
    s.close()
    assert got.startswith(b"HTTP/1.1 408 "), got
    assert 0.9 <= took < 3, took
    # An idle keep-alive connection is closed silently after the same time.
    got, took = raw(port, b"GET /hello HTTP/1.1\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 200 ") and got.endswith(b"hello\n") and 0.9 <= took < 3, (got, took)
    checks.append("slowloris")

    # --- 1,000 pipelined requests from a client that never reads: memory stays bounded
    # and other clients are served meanwhile.
    base_rss = rss_kb(srv.pid)
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setblocking(False)
    req = b"GET /stream?bytes=1000000 HTTP/1.1\r\nHost: x\r\n\r\n"
    pending = req * 1000
    t_end = time.monotonic() + 2
    while pending and time.monotonic() < t_end:
        try:
            pending = pending[s.send(pending):]
        except BlockingIOError:
            time.sleep(0.01)
    time.sleep(0.5)
    grown = rss_kb(srv.pid) - base_rss
    assert curl(f"{base}/hello") == b"hello\n"  # still serving others
    s.close()
    assert grown < 8 * 1024, f"server RSS grew by {grown} KiB"  # 1000 x 1 MB asked for
    checks.append(f"1000 pipelined without reading (RSS +{grown} KiB)")

    # --- 1,000 keep-alive connections open at once, two requests each.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(1000)]
    for rnd in range(2):
        for c in conns:
            c.request("GET", "/hello")
            r = c.getresponse()
            assert (r.status, r.read()) == (200, b"hello\n")
            assert r.getheader("Connection") is None  # kept alive
    for c in conns:
        c.close()
    checks.append("1000 keep-alive connections")
finally:
    srv.kill()
    srv.wait()
print("ok: http_server:", ", ".join(checks))

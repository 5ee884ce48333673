"""Hostile HTTP clients (issue 6 and 11) against the real stalk binary: path traversal on static assets,
oversized headers and bodies, malformed request lines, header injection through redirects, slow and
idle clients that must not hold the server up. Every case gets a clean HTTP error (or a closed
connection) and the server keeps answering everyone else.
"""
import socket
import threading

import pytest


def raw(stalk, data, read=65536, timeout=10):
    with socket.create_connection(("127.0.0.1", stalk.port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while True:
                chunk = sock.recv(read)
                if not chunk:
                    break
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and b"Content-Length: 0" in b"".join(chunks):
                    break
        except socket.timeout:
            pass
        return b"".join(chunks)


def status_of(response):
    line = response.split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


@pytest.mark.parametrize("path", [
    "/static/../../../../etc/passwd", "/static/..%2f..%2f..%2fetc%2fpasswd", "/static/%2e%2e/%2e%2e/etc/passwd",
    "/static/app.css/../../secret", "/static/....//....//etc/passwd", "/static/%00", "/static//etc/passwd"])
def test_static_path_traversal(stalk, path):
    resp = raw(stalk, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    assert status_of(resp) in (400, 404), resp[:200]
    assert b"root:" not in resp


def test_oversized_headers_get_431(stalk):
    big = "X-Filler: " + "a" * 70000
    resp = raw(stalk, f"GET /api/workers HTTP/1.1\r\nHost: x\r\n{big}\r\nConnection: close\r\n\r\n".encode())
    assert status_of(resp) == 431, resp[:200]


def test_oversized_body_gets_413(stalk):
    body_len = 8 << 20
    head = (f"POST /api/task/revoke/x HTTP/1.1\r\nHost: x\r\nContent-Length: {body_len}\r\n"
            "Connection: close\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", stalk.port), timeout=10) as sock:
        sock.sendall(head)
        try:
            sock.sendall(b"a" * (2 << 20))  # the server may answer and close before taking it all
        except (BrokenPipeError, ConnectionResetError):
            pass
        resp = b""
        try:
            while chunk := sock.recv(65536):
                resp += chunk
        except (socket.timeout, ConnectionResetError):
            pass
    assert status_of(resp) == 413, resp[:200]


@pytest.mark.parametrize("request_bytes", [
    b"GARBAGE\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"])
def test_malformed_requests_get_400_or_close(stalk, request_bytes):
    resp = raw(stalk, request_bytes)
    assert resp == b"" or status_of(resp) in (400, 404, 505), resp[:200]
    assert stalk.request("/healthcheck").status == 200


def test_header_injection_in_queries_is_not_reflected(stalk):
    resp = raw(stalk, b"GET /api/tasks?limit=1%0d%0aSet-Cookie:%20pwned=1 HTTP/1.1\r\nHost: x\r\n"
                      b"Connection: close\r\n\r\n")
    head = resp.split(b"\r\n\r\n", 1)[0]
    assert b"pwned" not in head


def test_slow_and_idle_clients_do_not_block_others(stalk):
    # Many connections that send half a request line and stall (slowloris), plus idle ones.
    socks = []
    try:
        for i in range(64):
            s = socket.create_connection(("127.0.0.1", stalk.port), timeout=10)
            if i % 2:
                s.sendall(b"GET /api/workers HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            socks.append(s)
        results = []

        def fetch():
            results.append(stalk.request("/api/workers", timeout=10).status)
        threads = [threading.Thread(target=fetch) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert results == [200] * 8
    finally:
        for s in socks:
            s.close()
    stalk.check_alive()

"""Safe deployment (issue 6), against the real stalk binary: the refusal to listen on a non-loopback
address with no authentication (and its explicit override), HTTPS with a self-signed certificate made
at test time (--certfile/--keyfile), and --unix_socket for a local reverse proxy.
"""
import http.client
import json
import socket
import ssl
import subprocess

import pytest

from harness import Proc, Stalk, free_port, tail, wait_for

# TEST-NET-1 (RFC 5737): never assigned to an interface here, so nothing is ever exposed; a bind to it
# fails, which tells "refused by the auth check" apart from "passed it and tried to listen".
UNREACHABLE_ADDRESS = "192.0.2.1"


def run_serve(stalk_bin, tmp, *args, timeout=20):
    out = subprocess.run([str(stalk_bin), "serve", "--broker", "redis://127.0.0.1:1/0", "--db", "none", *args],
                         capture_output=True, text=True, timeout=timeout, cwd=tmp,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp)})
    return out.returncode, out.stdout + out.stderr


def test_non_loopback_without_auth_is_refused(stalk_bin, module_tmp):
    code, out = run_serve(stalk_bin, module_tmp, "--address", UNREACHABLE_ADDRESS, "--port", str(free_port()))
    assert code != 0
    assert "refusing to listen on 192.0.2.1 with no authentication" in out, out
    assert "--insecure-no-auth" in out


@pytest.mark.parametrize("flag", ["--insecure-no-auth", "--insecure_no_auth"])
def test_insecure_no_auth_overrides_the_refusal(stalk_bin, module_tmp, flag):
    code, out = run_serve(stalk_bin, module_tmp, "--address", UNREACHABLE_ADDRESS, "--port", str(free_port()), flag)
    assert code != 0  # the bind itself fails: that address is on no interface
    assert "refusing" not in out, out
    assert "NO AUTHENTICATION" in out and "cannot listen on 192.0.2.1" in out, out


def test_non_loopback_with_auth_passes_the_check(stalk_bin, module_tmp):
    code, out = run_serve(stalk_bin, module_tmp, "--address", UNREACHABLE_ADDRESS, "--port", str(free_port()),
                          "--basic_auth", "ops:stalk_dev_your_password_here")
    assert "refusing" not in out and "cannot listen on 192.0.2.1" in out, out
    assert "stalk_dev_your_password_here" not in out, "the password must never be logged"


@pytest.fixture(scope="module")
def certificate(module_tmp):
    cert, key = module_tmp / "cert.pem", module_tmp / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture(scope="module")
def tls_stalk(stalk_bin, redis_server, module_tmp, certificate):
    cert, key = certificate
    s = Stalk(stalk_bin, redis_server.url, module_tmp / "tls",
              extra_args=["--certfile", str(cert), "--keyfile", str(key), "--db", "none"]).start()
    yield s
    s.stop()


def https_get(port, cert, path):
    ctx = ssl.create_default_context(cafile=str(cert))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_https_serves_the_api(tls_stalk, certificate):
    cert, _ = certificate

    def up():
        tls_stalk.check_alive()
        try:
            return https_get(tls_stalk.port, cert, "/healthcheck")[0] == 200
        except OSError:
            return False
    wait_for(up, 20, "stalk to answer HTTPS on /healthcheck")
    status, body = https_get(tls_stalk.port, cert, "/api/workers")
    assert status == 200 and isinstance(json.loads(body), dict)
    assert "serving https://127.0.0.1" in tail(tls_stalk.proc.log)


def test_plain_http_and_garbage_on_the_tls_port_are_dropped(tls_stalk, certificate):
    cert, _ = certificate
    wait_for(lambda: https_get(tls_stalk.port, cert, "/healthcheck")[0] == 200, 20, "HTTPS up")
    for payload in (b"GET /healthcheck HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01\x00\x05hello" + b"\0" * 64):
        with socket.create_connection(("127.0.0.1", tls_stalk.port), timeout=10) as sock:
            sock.sendall(payload)
            data = sock.recv(4096)
            assert b"HTTP/1.1 200" not in data  # no plaintext answer on a TLS port
    # An unverified client (wrong CA) fails its handshake; the server does not care and keeps serving.
    with pytest.raises(ssl.SSLError):
        conn = http.client.HTTPSConnection("127.0.0.1", tls_stalk.port, context=ssl.create_default_context(), timeout=10)
        conn.request("GET", "/healthcheck")
    assert https_get(tls_stalk.port, cert, "/healthcheck")[0] == 200
    tls_stalk.check_alive()


def test_mismatched_tls_options_are_refused(stalk_bin, module_tmp, certificate):
    cert, _ = certificate
    code, out = run_serve(stalk_bin, module_tmp, "--port", str(free_port()), "--certfile", str(cert))
    assert code != 0 and "--certfile and --keyfile go together" in out, out
    code, out = run_serve(stalk_bin, module_tmp, "--port", str(free_port()), "--certfile", str(cert),
                          "--keyfile", str(module_tmp / "missing.pem"))
    assert code != 0 and "--keyfile" in out, out


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=10)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self.unix_path)


def unix_get(path, url):
    conn = UnixHTTPConnection(str(path))
    try:
        conn.request("GET", url)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_unix_socket(stalk_bin, redis_server, module_tmp):
    work = module_tmp / "unix"
    work.mkdir()
    sock_path = work / "stalk.sock"
    sock_path.write_text("not a socket")
    code, out = run_serve(stalk_bin, work, "--unix_socket", str(sock_path))
    assert code != 0 and "exists and is not a socket" in out, out
    sock_path.unlink()

    proc = Proc("stalk", [str(stalk_bin), "serve", "--broker", redis_server.url, "--db", "none", "--unix_socket",
                          str(sock_path)], work / "stalk.log", cwd=work)
    proc.start()
    try:
        def up():
            assert proc.alive(), tail(work / "stalk.log")
            try:
                return unix_get(sock_path, "/healthcheck")[0] == 200
            except OSError:
                return False
        wait_for(up, 20, "stalk to answer on its Unix socket")
        status, body = unix_get(sock_path, "/api/workers")
        assert status == 200 and isinstance(json.loads(body), dict)
    finally:
        proc.stop()
    assert not sock_path.exists(), "the socket file is removed on shutdown"

"""OIDC login (issue 6) against a local OpenID Connect provider (oidc_provider.py) on 127.0.0.1: the
authorization-code flow end to end, the e-mail regex (Flower's --auth), state and nonce checks,
expired / forged / wrong-audience id_tokens, forged session cookies, the role of OIDC users, logout,
and that no secret reaches the log.
"""
import base64
import http.client
import urllib.parse
import uuid

import pytest

from harness import Stalk, wait_for
from oidc_provider import OidcProvider

CLIENT_ID = "stalk-test"
CLIENT_SECRET = "stalk_test_client_secret_" + uuid.uuid4().hex
COOKIE_SECRET = "stalk_test_cookie_secret_" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def provider():
    p = OidcProvider(CLIENT_ID, CLIENT_SECRET).start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def stalk_oidc(stalk_bin, redis_server, module_tmp, provider):
    port = None
    s = Stalk(stalk_bin, redis_server.url, module_tmp / "oidc", extra_args=[
        "--db", "none", "--auth_provider", "oidc", "--oidc_issuer", provider.issuer, "--oauth2_key", CLIENT_ID,
        "--auth", r".*@example\.com", "--oidc_role", "operator"])
    port = s.port
    s.proc.cmd += ["--oauth2_redirect_uri", f"http://127.0.0.1:{port}/login"]
    s.proc.env["STALK_OAUTH2_SECRET"] = CLIENT_SECRET
    s.proc.env["STALK_COOKIE_SECRET"] = COOKIE_SECRET
    s.start()
    try:
        wait_for(lambda: s.check_alive() or get(s, "/healthcheck")[0] == 200, 20, "stalk up")
        yield s
        s.check_alive()
    finally:
        s.stop()


def get(stalk, path, cookies=None, headers=None, method="GET"):
    conn = http.client.HTTPConnection("127.0.0.1", stalk.port, timeout=10)
    try:
        h = dict(headers or {})
        if cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        conn.request(method, path, headers=h)
        resp = conn.getresponse()
        return resp.status, resp.getheaders(), resp.read()
    finally:
        conn.close()


def header(headers, name):
    return next((v for k, v in headers if k.lower() == name.lower()), None)


def set_cookie(headers):
    value = header(headers, "Set-Cookie")
    assert value, headers
    name, rest = value.split("=", 1)
    return name, rest.split(";", 1)[0], value


def provider_get(url):
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", parts.path + "?" + parts.query)
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.getheader("Location")
    finally:
        conn.close()


def login(stalk, email, next_path="/tasks", tamper_state=False):
    """Runs the browser's part of the flow; returns (status, headers, body) of Stalk's callback answer."""
    status, headers, _ = get(stalk, "/login?next=" + urllib.parse.quote(next_path))
    assert status == 302, status
    authorize = header(headers, "Location")
    name, state_cookie, raw = set_cookie(headers)
    assert name == "stalk_oidc" and "HttpOnly" in raw and "SameSite=Lax" in raw
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(authorize).query))
    assert query["client_id"] == CLIENT_ID and query["state"] and query["nonce"]
    assert "openid" in query["scope"] or "user:email" in query["scope"]
    status, callback = provider_get(authorize + "&" + urllib.parse.urlencode({"login_hint": email}))
    assert status == 302
    cb = urllib.parse.urlsplit(callback)
    path = cb.path + "?" + cb.query
    if tamper_state:
        path = cb.path + "?" + urllib.parse.urlencode({**dict(urllib.parse.parse_qsl(cb.query)), "state": "forged"})
    return get(stalk, path, cookies={"stalk_oidc": state_cookie})


def test_browser_without_session_is_sent_to_login(stalk_oidc):
    status, headers, _ = get(stalk_oidc, "/workers", headers={"Accept": "text/html"})
    assert status == 302 and header(headers, "Location") == "/login?next=%2Fworkers"
    assert get(stalk_oidc, "/api/workers")[0] == 401  # scripts get 401, not a redirect
    assert get(stalk_oidc, "/healthcheck")[0] == 200


def test_login_grants_a_session_with_the_configured_role(stalk_oidc):
    status, headers, body = login(stalk_oidc, "alice@example.com", next_path="/tasks")
    assert status == 302, body
    assert header(headers, "Location") == "/tasks"
    name, session, raw = set_cookie(headers)
    assert name == "stalk_session" and "HttpOnly" in raw and "SameSite=Lax" in raw
    cookies = {"stalk_session": session}
    assert get(stalk_oidc, "/api/workers", cookies=cookies)[0] == 200
    # operator: may control (the route answers, not the guard), same-origin only, and it is audited
    task = str(uuid.uuid4())
    origin = {"Origin": f"http://127.0.0.1:{stalk_oidc.port}"}
    status, _, body = get(stalk_oidc, f"/api/task/revoke/{task}", cookies=cookies, headers=origin, method="POST")
    assert status not in (401, 403, 429), (status, body)
    status, _, _ = get(stalk_oidc, f"/api/task/revoke/{task}", cookies=cookies,
                       headers={"Origin": "http://evil.example"}, method="POST")
    assert status == 403
    assert get(stalk_oidc, "/api/admin/audit", cookies=cookies)[0] == 403  # operator, not admin
    log = stalk_oidc.proc.log.read_text(errors="replace")
    assert "user=alice@example.com role=operator" in log and "OIDC login: alice@example.com" in log


def test_email_outside_the_regex_is_refused(stalk_oidc):
    status, headers, body = login(stalk_oidc, "mallory@evil.example")
    assert status == 403 and b"not allowed by --auth" in body
    assert header(headers, "Set-Cookie") is None


@pytest.mark.parametrize("mode,reason", [
    ("expired", b"expired"), ("forged", b"signature is invalid"), ("wrong_nonce", b"nonce"),
    ("wrong_aud", b"not for this client"), ("unverified", b"not verified")])
def test_bad_id_tokens_are_refused(stalk_oidc, provider, mode, reason):
    provider.mode = mode
    try:
        status, headers, body = login(stalk_oidc, "alice@example.com")
    finally:
        provider.mode = None
    assert status == 403 and reason in body, (mode, status, body)
    assert header(headers, "Set-Cookie") is None


def test_state_must_match(stalk_oidc):
    status, _, body = login(stalk_oidc, "alice@example.com", tamper_state=True)
    assert status == 403 and b"state" in body
    # a callback without the state cookie at all
    status, _, body = get(stalk_oidc, "/login?code=abc&state=def")
    assert status == 403 and b"state cookie" in body


def test_forged_and_tampered_session_cookies_are_refused(stalk_oidc):
    status, headers, _ = login(stalk_oidc, "alice@example.com")
    _, session, _ = set_cookie(headers)
    payload, expiry, mac = session.split(".")
    as_admin = base64.urlsafe_b64encode(b"alice@example.com\nadmin").rstrip(b"=").decode()
    for forged in (f"{as_admin}.{expiry}.{mac}",                     # role raised, old MAC
                   f"{payload}.{int(expiry) + 86400}.{mac}",         # lifetime extended
                   f"{payload}.{expiry}.{'A' * len(mac)}",           # MAC made up
                   "garbage", ""):
        assert get(stalk_oidc, "/api/workers", cookies={"stalk_session": forged})[0] == 401, forged
    stalk_oidc.check_alive()


def test_logout_clears_the_session(stalk_oidc):
    status, headers, _ = get(stalk_oidc, "/logout")
    assert status == 200
    name, value, raw = set_cookie(headers)
    assert name == "stalk_session" and value == "" and "Max-Age=0" in raw


def test_secrets_never_logged(stalk_oidc):
    log = stalk_oidc.proc.log.read_text(errors="replace")
    assert CLIENT_SECRET not in log and COOKIE_SECRET not in log


def test_github_login_takes_the_primary_verified_address(stalk_bin, redis_server, module_tmp, provider):
    s = Stalk(stalk_bin, redis_server.url, module_tmp / "github", extra_args=[
        "--db", "none", "--auth_provider", "flower.views.auth.GithubLoginHandler", "--oidc_issuer", provider.issuer,
        "--oauth2_key", CLIENT_ID, "--auth", r".*@example\.com"])
    s.proc.cmd += ["--oauth2_redirect_uri", f"http://127.0.0.1:{s.port}/login"]
    s.proc.env["STALK_OAUTH2_SECRET"] = CLIENT_SECRET
    s.proc.env["STALK_COOKIE_SECRET"] = COOKIE_SECRET
    s.start()
    try:
        wait_for(lambda: s.check_alive() or get(s, "/healthcheck")[0] == 200, 20, "stalk up")
        status, headers, _ = get(s, "/login")
        assert status == 302 and header(headers, "Location").startswith(provider.issuer + "/login/oauth/authorize?")
        status, headers, body = login(s, "carol@example.com", next_path="/workers")
        assert status == 302 and header(headers, "Location") == "/workers", body
        _, session, _ = set_cookie(headers)
        assert get(s, "/api/workers", cookies={"stalk_session": session})[0] == 200
        # an account whose only verified address is outside --auth, or with none verified at all
        provider.github_emails = [{"email": "dave@elsewhere.example", "primary": True, "verified": True}]
        status, _, body = login(s, "dave@elsewhere.example")
        assert status == 403 and b"not allowed by --auth" in body
        provider.github_emails = [{"email": "erin@example.com", "primary": True, "verified": False}]
        status, _, body = login(s, "erin@example.com")
        assert status == 403 and b"no verified e-mail" in body
        assert "OIDC login: carol@example.com" in s.proc.log.read_text(errors="replace")
    finally:
        provider.github_emails = None
        s.stop()


def test_unknown_provider_is_refused_clearly(stalk_bin, module_tmp):
    import subprocess
    out = subprocess.run([str(stalk_bin), "serve", "--broker", "redis://127.0.0.1:1/0", "--db", "none",
                          "--auth_provider", "myspace", "--oauth2_key", "x", "--port", "0"],
                         capture_output=True, text=True, timeout=20, cwd=module_tmp,
                         env={"PATH": "/usr/bin:/bin", "STALK_OAUTH2_SECRET": "stalk_dev_your_secret_here"})
    assert out.returncode != 0 and "--auth_provider myspace is unknown" in out.stdout + out.stderr


@pytest.mark.parametrize("next_path", ["//evil.example/x", "https://evil.example/", "/x\r\nSet-Cookie: a=b", "\\\\evil"])
def test_no_open_redirect_or_header_injection_after_login(stalk_oidc, next_path):
    status, headers, body = login(stalk_oidc, "alice@example.com", next_path=next_path)
    assert status == 302, body
    assert header(headers, "Location") == "/"

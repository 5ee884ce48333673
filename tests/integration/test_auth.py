"""Authentication and authorization (issue 6), against the real stalk binary: Basic auth (Flower's
--basic_auth, from STALK_BASIC_AUTH and from FLOWER_BASIC_AUTH; --basic_auth_file with a bcrypt hash
from `stalk hash-password`), bearer tokens from `stalk token create`, roles, the failed-login lockout
(429), public /healthcheck, security headers, CSRF on POST, and that no password reaches the log.
"""
import base64
import json
import subprocess
import urllib.error
import urllib.request
import uuid

import pytest

from harness import Stalk

ADMIN_PASSWORD = "Adm1n-" + uuid.uuid4().hex[:12]
VIEWER_PASSWORD = "V1ew-" + uuid.uuid4().hex[:12]


def run(stalk_bin, *args, stdin=""):
    out = subprocess.run([str(stalk_bin), *args], input=stdin, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, f"stalk {' '.join(args)} failed: {out.stderr}"
    return out.stdout


def make_token(stalk_bin, role, label):
    lines = dict(l.split(": ", 1) for l in run(stalk_bin, "token", "create", "--role", role, "--label", label).splitlines())
    token, file_line = lines["token"], lines["line for --api_tokens_file"]
    assert token not in file_line, "the file line must hold the hash, not the token"
    return token, file_line


def call(stalk, path, method="GET", user=None, password=None, token=None, headers=None):
    req = urllib.request.Request(stalk.url(path), method=method, data=b"" if method == "POST" else None)
    if user is not None:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    if token is not None:
        req.add_header("Authorization", "Bearer " + token)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers or {}), err.read() or b""


@pytest.fixture(scope="module")
def creds(stalk_bin, module_tmp):
    viewer_token, viewer_line = make_token(stalk_bin, "viewer", "prometheus")
    operator_token, operator_line = make_token(stalk_bin, "operator", "ops-script")
    tokens_file = module_tmp / "tokens.txt"
    tokens_file.write_text(f"# stalk API tokens\n{viewer_line}\n{operator_line}\n")
    viewer_hash = run(stalk_bin, "hash-password", "--cost", "4", stdin=VIEWER_PASSWORD + "\n").strip()
    assert viewer_hash.startswith("$2b$04$") and VIEWER_PASSWORD not in viewer_hash
    users_file = module_tmp / "users.txt"
    users_file.write_text(f"watcher:{viewer_hash}:viewer\n")
    return {"viewer_token": viewer_token, "operator_token": operator_token,
            "tokens_file": tokens_file, "users_file": users_file}


@pytest.fixture(scope="module")
def secured(stalk_bin, redis_server, module_tmp, creds):
    # The password goes through the environment: the harness writes the command line into the log.
    s = Stalk(stalk_bin, redis_server.url, module_tmp / "secured", extra_args=[
        "--basic_auth_file", creds["users_file"], "--api_tokens_file", creds["tokens_file"], "--logging", "debug"])
    s.proc.env["STALK_BASIC_AUTH"] = f"admin:{ADMIN_PASSWORD}"
    s.start()
    try:
        s.wait_ready(redis_server)
        yield s
        s.check_alive()
    finally:
        s.stop()


def test_without_credentials_401_with_challenge(secured):
    for path in ("/api/tasks", "/api/workers", "/metrics", "/no/such/route"):
        status, headers, body = call(secured, path)
        assert status == 401, (path, status, body)
        assert headers.get("WWW-Authenticate", "").startswith('Basic realm="stalk"'), headers


def test_healthcheck_is_public_and_headers_present(secured):
    status, headers, _ = call(secured, "/healthcheck")
    assert status == 200
    csp = headers.get("Content-Security-Policy", "")
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert headers.get("X-Frame-Options") == "DENY"
    assert headers.get("X-Content-Type-Options") == "nosniff"
    assert headers.get("Referrer-Policy") == "no-referrer"
    status, headers, _ = call(secured, "/api/tasks")  # also on a 401
    assert status == 401 and "Content-Security-Policy" in headers


def test_basic_auth_users(secured):
    status, headers, body = call(secured, "/api/tasks", user="admin", password=ADMIN_PASSWORD)
    assert status == 200, body
    assert "Content-Security-Policy" in headers
    status, _, _ = call(secured, "/api/workers", user="watcher", password=VIEWER_PASSWORD)
    assert status == 200
    status, _, body = call(secured, "/api/tasks", user="admin", password="wrong-" + ADMIN_PASSWORD)
    assert status == 401
    assert ADMIN_PASSWORD.encode() not in body


def test_bearer_viewer_reads_but_cannot_control(secured, creds):
    token = creds["viewer_token"]
    assert call(secured, "/api/tasks", token=token)[0] == 200
    status, _, body = call(secured, "/metrics", token=token)
    assert status == 200 and b"# TYPE" in body
    status, _, body = call(secured, f"/api/task/revoke/{uuid.uuid4()}", method="POST", token=token)
    assert status == 403, body
    assert call(secured, "/api/tasks", token=token + "x")[0] == 401


def test_operator_and_csrf(secured, creds):
    task = uuid.uuid4()
    origin = {"Origin": secured.url("").rstrip("/")}
    # An operator token passes the guard (the route's own answer, not 401/403).
    status, _, body = call(secured, f"/api/task/revoke/{task}", method="POST", token=creds["operator_token"])
    assert status not in (401, 403, 429), (status, body)
    # Basic auth (what a browser sends by itself) needs a same-origin Origin on POST.
    status, _, body = call(secured, f"/api/task/revoke/{task}", method="POST", user="admin", password=ADMIN_PASSWORD)
    assert status == 403, body
    status, _, body = call(secured, f"/api/task/revoke/{task}", method="POST", user="admin",
                           password=ADMIN_PASSWORD, headers={"Origin": "http://evil.example"})
    assert status == 403, body
    status, _, body = call(secured, f"/api/task/revoke/{task}", method="POST", user="admin",
                           password=ADMIN_PASSWORD, headers=origin)
    assert status not in (401, 403, 429), (status, body)
    # A viewer user is refused whatever the origin.
    status, _, _ = call(secured, f"/api/task/revoke/{task}", method="POST", user="watcher",
                        password=VIEWER_PASSWORD, headers=origin)
    assert status == 403
    log = secured.proc.log.read_text(errors="replace")
    assert f"path=/api/task/revoke/{task}" in log and "user=admin" in log and "user=token:ops-script" in log, \
        "operator actions must be in the audit log"


GET_ROUTES = ["/", "/workers", "/tasks", "/audit", "/worker/w@x", "/task/abc", "/static/app.css", "/metrics",
              "/api/workers", "/api/tasks", "/api/task/types", "/api/queues/length", "/api/stalk/stats",
              "/api/stalk/summary", "/api/task/info/abc", "/api/task/result/abc", "/api/stalk/inspect/stats"]
POST_ROUTES = ["/api/task/abort/abc", "/api/task/apply/t.x?timeout=0.5", "/api/task/async-apply/t.x", "/api/task/send-task/t.x",
               "/api/task/rate-limit/t.x", "/api/task/revoke/abc", "/api/task/timeout/t.x",
               "/api/worker/pool/autoscale/nobody@x", "/api/worker/pool/grow/nobody@x",
               "/api/worker/pool/restart/nobody@x", "/api/worker/pool/shrink/nobody@x",
               "/api/worker/queue/add-consumer/nobody@x", "/api/worker/queue/cancel-consumer/nobody@x",
               "/api/worker/shutdown/nobody@x"]


def test_every_route_needs_credentials_and_the_right_role(secured, creds):
    for path in GET_ROUTES + ["/api/admin/audit", "/api/events/stream"]:
        assert call(secured, path)[0] == 401, path
    for path in POST_ROUTES:
        assert call(secured, path, method="POST")[0] == 401, path
    for path in GET_ROUTES:
        status, _, body = call(secured, path, token=creds["viewer_token"])
        assert status not in (401, 403), (path, status, body)
    for path in POST_ROUTES:
        assert call(secured, path, method="POST", token=creds["viewer_token"])[0] == 403, path
        status, _, body = call(secured, path, method="POST", token=creds["operator_token"])
        assert status not in (401, 403, 429), (path, status, body)
    assert call(secured, "/api/admin/audit", token=creds["operator_token"])[0] == 403
    assert call(secured, "/healthcheck")[0] == 200


def test_audit_log_records_who_did_what(secured, creds):
    task = str(uuid.uuid4())
    status, _, body = call(secured, f"/api/task/revoke/{task}", method="POST", token=creds["operator_token"])
    assert status not in (401, 403, 429), (status, body)
    # Admin only: operators act, admins read the record.
    assert call(secured, "/api/admin/audit", token=creds["operator_token"])[0] == 403
    assert call(secured, "/api/admin/audit", token=creds["viewer_token"])[0] == 403
    status, _, body = call(secured, "/api/admin/audit?limit=50", user="admin", password=ADMIN_PASSWORD)
    assert status == 200, body
    audit = json.loads(body)
    mine = [e for e in audit["entries"] if e["target"] == task]
    assert len(mine) == 1, audit
    entry = mine[0]
    assert entry["action"] == "revoke" and entry["actor"] == "token:ops-script" and entry["role"] == "operator"
    assert entry["remote"] == "127.0.0.1" and entry["result"] and entry["at"] > 0
    assert call(secured, "/api/admin/audit?limit=x", user="admin", password=ADMIN_PASSWORD)[0] == 400


def test_auth_metrics_count_refusals(secured, creds):
    def denied(reason):
        status, _, body = call(secured, "/metrics", token=creds["viewer_token"])
        assert status == 200
        for line in body.decode().splitlines():
            if line.startswith(f'stalk_auth_denied_total{{reason="{reason}"}}'):
                return float(line.split()[-1])
        raise AssertionError(f"no stalk_auth_denied_total for {reason}")
    before = denied("invalid_credentials"), denied("forbidden"), denied("unauthenticated")
    assert call(secured, "/api/tasks", token="nope")[0] == 401
    assert call(secured, f"/api/task/revoke/{uuid.uuid4()}", method="POST", token=creds["viewer_token"])[0] == 403
    assert call(secured, "/api/tasks")[0] == 401
    after = denied("invalid_credentials"), denied("forbidden"), denied("unauthenticated")
    assert after == (before[0] + 1, before[1] + 1, before[2] + 1), (before, after)
    _, _, body = call(secured, "/metrics", token=creds["viewer_token"])
    assert b"stalk_auth_enabled 1" in body and b"stalk_audit_entries_total" in body


def test_lockout_after_ten_failures_and_secrets_not_logged(stalk_bin, redis_server, module_tmp, creds):
    # Its own stalk: the lockout is per client address, and every test client is 127.0.0.1.
    s = Stalk(stalk_bin, redis_server.url, module_tmp / "lockout", extra_args=["--logging", "debug"])
    s.proc.env["FLOWER_BASIC_AUTH"] = f"admin:{ADMIN_PASSWORD}"
    s.start()
    try:
        s.wait_ready(redis_server)
        assert call(s, "/api/tasks", user="admin", password=ADMIN_PASSWORD)[0] == 200
        for i in range(10):
            status, _, _ = call(s, "/api/tasks", user="admin", password=f"guess-{i}-{ADMIN_PASSWORD}")
            assert status == 401, f"attempt {i}: {status}"
        status, headers, _ = call(s, "/api/tasks", user="admin", password=ADMIN_PASSWORD)
        assert status == 429, "locked out even with the right password"
        assert int(headers.get("Retry-After", "0")) > 0
        assert call(s, "/healthcheck")[0] == 200
        s.check_alive()
    finally:
        s.stop()
    for log_path in (s.proc.log, module_tmp / "secured" / "stalk.log"):
        log = log_path.read_text(errors="replace")
        assert ADMIN_PASSWORD not in log and VIEWER_PASSWORD not in log, f"a password leaked into {log_path}"
        assert creds["viewer_token"] not in log and creds["operator_token"] not in log
    assert "failed login" in s.proc.log.read_text(errors="replace")


def test_open_mode_still_serves(stalk):
    # No auth configured: Flower's behaviour (open, on loopback here), security headers still on.
    status, headers, _ = call(stalk, "/api/tasks")
    assert status == 200 and headers.get("X-Frame-Options") == "DENY"
    status, _, _ = call(stalk, f"/api/task/revoke/{uuid.uuid4()}", method="POST",
                        headers={"Origin": "http://evil.example"})
    assert status == 403, "a cross-site POST is refused even without auth"

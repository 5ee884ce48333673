"""A small OpenID Connect provider for the tests, on 127.0.0.1: discovery, an authorization endpoint
that logs in whoever `login_hint` names (no password page), a token endpoint that checks the client's
credentials and the code, and a JWKS. id_tokens are RS256-signed with python3-cryptography.

It also plays GitHub (whose login is OAuth2 without OpenID Connect): /login/oauth/authorize,
/login/oauth/access_token (JSON with Accept: application/json) and the API's /api/v3/user/emails, as
GitHub Enterprise serves them; `github_emails` is what the API lists.

`provider.mode` makes the next token bad on purpose: "expired", "forged" (signed with another key),
"wrong_nonce", "wrong_aud", "unverified" (email_verified false). Every request is recorded.
"""
import base64
import json
import secrets
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def int_b64url(n):
    return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


class OidcProvider:
    def __init__(self, client_id, client_secret):
        self.client_id = client_id
        self.client_secret = client_secret
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "test-key-1"
        self.codes = {}  # code -> (email, nonce, redirect_uri)
        self.mode = None
        self.requests = []
        self.tokens = {}  # GitHub access token -> login_hint
        self.github_emails = None  # None: the hinted address, primary and verified
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self.server.server_address[1]
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def id_token(self, email, nonce):
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": email, "aud": self.client_id, "email": email,
                  "email_verified": self.mode != "unverified", "iat": now, "exp": now + 300, "nonce": nonce}
        if self.mode == "expired":
            claims["iat"], claims["exp"] = now - 7200, now - 3600
        if self.mode == "wrong_nonce":
            claims["nonce"] = "not-the-nonce"
        if self.mode == "wrong_aud":
            claims["aud"] = "some-other-client"
        header = {"alg": "RS256", "typ": "JWT", "kid": self.kid}
        signing_input = (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())).encode()
        key = self.other_key if self.mode == "forged" else self.key
        signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return signing_input.decode() + "." + b64url(signature)

    def _handler(self):
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status, body=b"", headers=None, content_type="application/json"):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                provider.requests.append(("GET", url.path, query))
                if url.path == "/.well-known/openid-configuration":
                    doc = {"issuer": provider.issuer, "authorization_endpoint": provider.issuer + "/authorize",
                           "token_endpoint": provider.issuer + "/token", "jwks_uri": provider.issuer + "/jwks",
                           "response_types_supported": ["code"], "id_token_signing_alg_values_supported": ["RS256"]}
                    self.reply(200, json.dumps(doc).encode())
                elif url.path == "/jwks":
                    pub = provider.key.public_key().public_numbers()
                    jwk = {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": provider.kid,
                           "n": int_b64url(pub.n), "e": int_b64url(pub.e)}
                    self.reply(200, json.dumps({"keys": [jwk]}).encode())
                elif url.path == "/api/v3/user/emails":
                    email = provider.tokens.get(self.headers.get("Authorization", "").removeprefix("Bearer "))
                    if email is None:
                        self.reply(401, b'{"message":"Bad credentials"}')
                        return
                    emails = provider.github_emails if provider.github_emails is not None else [
                        {"email": "old@elsewhere.example", "primary": False, "verified": True},
                        {"email": email, "primary": True, "verified": True}]
                    self.reply(200, json.dumps(emails).encode())
                elif url.path in ("/authorize", "/login/oauth/authorize"):
                    if query.get("client_id") != provider.client_id or query.get("response_type") != "code":
                        self.reply(400, b'{"error":"invalid_request"}')
                        return
                    code = secrets.token_urlsafe(16)
                    provider.codes[code] = (query.get("login_hint", "alice@example.com"), query.get("nonce", ""),
                                            query["redirect_uri"])
                    target = query["redirect_uri"] + "?" + urllib.parse.urlencode({"code": code, "state": query["state"]})
                    self.reply(302, headers={"Location": target}, content_type="text/plain")
                else:
                    self.reply(404, b"{}")

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                provider.requests.append(("POST", self.path, form))
                if self.path not in ("/token", "/login/oauth/access_token"):
                    self.reply(404, b"{}")
                    return
                auth = self.headers.get("Authorization", "")
                expected = "Basic " + base64.b64encode(
                    f"{provider.client_id}:{provider.client_secret}".encode()).decode()
                if auth != expected:
                    self.reply(401, b'{"error":"invalid_client"}')
                    return
                entry = provider.codes.pop(form.get("code", ""), None)
                if entry is None or form.get("grant_type") != "authorization_code" or form.get("redirect_uri") != entry[2]:
                    self.reply(400, b'{"error":"invalid_grant"}')
                    return
                email, nonce, _ = entry
                if self.path == "/login/oauth/access_token":
                    if self.headers.get("Accept") != "application/json":
                        self.reply(200, b"access_token=x&token_type=bearer", content_type="application/x-www-form-urlencoded")
                        return
                    token = secrets.token_urlsafe(16)
                    provider.tokens[token] = email
                    self.reply(200, json.dumps({"access_token": token, "token_type": "bearer",
                                                "scope": "read:user,user:email"}).encode())
                    return
                body = {"access_token": secrets.token_urlsafe(16), "token_type": "Bearer", "expires_in": 300,
                        "id_token": provider.id_token(email, nonce)}
                self.reply(200, json.dumps(body).encode())

        return Handler

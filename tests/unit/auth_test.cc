// Stalk — Celery monitoring server.
// Unit tests of src/auth: password hashes (bcrypt test vectors), token hashing, roles, the login
// lockout on an injected clock, the guard's decisions (401/403/429, CSRF rule) and the Router's
// security headers.
#include <gtest/gtest.h>

#include "auth/auth_guard.h"
#include "auth/credential_store.h"
#include "auth/jwt.h"
#include "auth/login_limiter.h"
#include "auth/roles.h"
#include "auth/secrets.h"
#include "auth/signed_cookie.h"
#include "common/base64.h"
#include "http/router.h"

namespace stalk {
namespace {

// OpenBSD/John the Ripper bcrypt vectors.
TEST(Secrets, VerifiesBcryptTestVectors) {
  EXPECT_TRUE(VerifyPasswordHash("U*U", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"));
  EXPECT_TRUE(VerifyPasswordHash("U*U*", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.VGOzA784oUp/Z0DY336zx7pLYAy0lwK"));
  EXPECT_TRUE(VerifyPasswordHash("", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.7uG0VCzI2bS7j6ymqJi9CdcdxiRTWNy"));
  EXPECT_FALSE(VerifyPasswordHash("U*V", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"));
  // $2b$ and $2y$ compute the same hash for these inputs.
  EXPECT_TRUE(VerifyPasswordHash("U*U", "$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"));
  EXPECT_TRUE(VerifyPasswordHash("U*U", "$2y$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"));
}

TEST(Secrets, RefusesWeakOrMalformedHashes) {
  EXPECT_FALSE(IsSupportedPasswordHash("abJnggxhB/yWI"));               // DES
  EXPECT_FALSE(IsSupportedPasswordHash("$1$saltsalt$abcdefghijklmn"));  // MD5-crypt
  EXPECT_FALSE(VerifyPasswordHash("x", "$2b$05$tooshort"));
  EXPECT_FALSE(
      VerifyPasswordHash(std::string("U*U\0x", 5), "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"));
}

TEST(Secrets, HashPasswordRoundTrips) {
  auto h = HashPassword("correct horse", 4);
  ASSERT_TRUE(h) << h.error();
  EXPECT_TRUE(h->starts_with("$2b$04$"));
  EXPECT_TRUE(VerifyPasswordHash("correct horse", *h));
  EXPECT_FALSE(VerifyPasswordHash("correct horsf", *h));
  auto h2 = HashPassword("correct horse", 4);
  ASSERT_TRUE(h2);
  EXPECT_NE(*h, *h2);  // random salt
  EXPECT_FALSE(HashPassword(""));
}

TEST(Secrets, Sha256AndConstantTimeEquals) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_TRUE(ConstantTimeEquals("secret", "secret"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secreT"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secret2"));
  EXPECT_FALSE(ConstantTimeEquals("", "x"));
  auto t1 = NewApiToken();
  auto t2 = NewApiToken();
  ASSERT_TRUE(t1 && t2);
  EXPECT_EQ(t1->size(), 6u + 64u);
  EXPECT_NE(*t1, *t2);
}

TEST(Roles, Order) {
  EXPECT_EQ(ParseRole("operator"), Role::kOperator);
  EXPECT_FALSE(ParseRole("root"));
  EXPECT_TRUE(RoleAllows(Role::kAdmin, Role::kOperator));
  EXPECT_TRUE(RoleAllows(Role::kOperator, Role::kViewer));
  EXPECT_FALSE(RoleAllows(Role::kViewer, Role::kOperator));
  EXPECT_FALSE(RoleAllows(Role::kOperator, Role::kAdmin));
  EXPECT_EQ(Router::RequiredRole("GET", "/api/tasks"), "viewer");
  EXPECT_EQ(Router::RequiredRole("HEAD", "/metrics"), "viewer");
  EXPECT_EQ(Router::RequiredRole("POST", "/api/task/revoke/x"), "operator");
  EXPECT_EQ(Router::RequiredRole("DELETE", "/api/x"), "operator");
  EXPECT_EQ(Router::RequiredRole("GET", "/api/admin/tokens"), "admin");
  EXPECT_EQ(Router::RequiredRole("GET", "/api/administrator"), "viewer");
}

TEST(CredentialStore, BasicAuthListAndFile) {
  CredentialStore s;
  ASSERT_TRUE(s.AddBasicAuthList("alice:pa:ss, bob:pw2"));
  ASSERT_TRUE(s.AddBasicAuthFileText(
      "# comment\n\nview:$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW:viewer\n", "f"));
  auto a = s.CheckBasic("alice", "pa:ss");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->role, Role::kAdmin);
  EXPECT_FALSE(s.CheckBasic("alice", "pa"));
  EXPECT_FALSE(s.CheckBasic("bob", "pa:ss"));
  auto v = s.CheckBasic("view", "U*U");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->role, Role::kViewer);
  EXPECT_TRUE(s.CheckBasic("view", "U*U"));  // from the verified cache
  EXPECT_FALSE(s.CheckBasic("view", "U*V"));
  EXPECT_FALSE(s.CheckBasic("nobody", "U*U"));

  CredentialStore bad;
  auto r = bad.AddBasicAuthList("nopassword");
  ASSERT_FALSE(r);
  auto r2 = bad.AddBasicAuthFileText("carol:plaintextsecret\n", "users.txt");
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.error().find("plaintextsecret"), std::string::npos) << "errors must not echo secrets";
  EXPECT_NE(r2.error().find("users.txt:1"), std::string::npos);
  EXPECT_FALSE(
      bad.AddBasicAuthFileText("dave:$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW:root\n", "f"));
}

TEST(CredentialStore, TokensAreStoredHashed) {
  const std::string token = "stalk_0123456789abcdef";
  const std::string line = CredentialStore::TokenFileLine(token, Role::kViewer, "prometheus");
  EXPECT_EQ(line, Sha256Hex(token) + ":viewer:prometheus");
  EXPECT_EQ(line.find(token), std::string::npos);
  CredentialStore s;
  ASSERT_TRUE(s.AddTokensFileText(line + "\n", "tokens"));
  auto p = s.CheckToken(token);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->role, Role::kViewer);
  EXPECT_EQ(p->name, "token:prometheus");
  EXPECT_FALSE(s.CheckToken("stalk_0123456789abcdeF"));
  EXPECT_FALSE(s.CheckToken(Sha256Hex(token)));  // the stored hash is not itself a token
  EXPECT_FALSE(s.AddTokensFileText("nothex:viewer:x\n", "tokens"));
  EXPECT_FALSE(s.AddTokensFileText(Sha256Hex("t") + ":superuser:x\n", "tokens"));
}

TEST(LoginLimiter, LocksAfterTenFailuresInFiveMinutes) {
  double now = 1000;
  LoginLimiter lim({}, [&] { return now; });
  for (int i = 0; i < 9; ++i) {
    lim.RecordFailure("ip:1.2.3.4");
    now += 1;
  }
  EXPECT_EQ(lim.LockedFor("ip:1.2.3.4"), 0);
  lim.RecordFailure("ip:1.2.3.4");
  EXPECT_GT(lim.LockedFor("ip:1.2.3.4"), 299);
  EXPECT_EQ(lim.LockedFor("ip:5.6.7.8"), 0);  // other keys unaffected
  now += 299;
  EXPECT_GT(lim.LockedFor("ip:1.2.3.4"), 0);
  now += 2;
  EXPECT_EQ(lim.LockedFor("ip:1.2.3.4"), 0);
  EXPECT_EQ(lim.lockouts(), 1u);
  EXPECT_EQ(lim.failures(), 10u);
  EXPECT_EQ(lim.rejected(), 2u);
}

TEST(LoginLimiter, OldFailuresExpire) {
  double now = 0;
  LoginLimiter lim({}, [&] { return now; });
  for (int i = 0; i < 20; ++i) {
    lim.RecordFailure("user:a");
    now += 40;  // 9 per 5 minutes at most: never 10 inside the window
  }
  EXPECT_EQ(lim.LockedFor("user:a"), 0);
  EXPECT_EQ(lim.lockouts(), 0u);
}

TEST(LoginLimiter, MemoryIsBounded) {
  LoginLimiter::Options o;
  o.max_keys = 100;
  double now = 0;
  LoginLimiter lim(o, [&] { return now; });
  for (int i = 0; i < 1000; ++i) {
    lim.RecordFailure("ip:" + std::to_string(i));
  }
  EXPECT_LE(lim.tracked_keys(), 100u);
}

HttpRequest Req(std::string method, std::string path, std::map<std::string, std::string> headers = {}) {
  HttpRequest r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.headers = std::move(headers);
  r.remote_addr = "10.0.0.7";
  return r;
}

std::string Basic(const std::string& user_pass) { return "Basic " + Base64Encode(user_pass); }

struct GuardFixture : ::testing::Test {
  double now = 0;
  std::string token = "stalk_viewer_token";
  std::string op_token = "stalk_operator_token";
  std::unique_ptr<AuthGuard> guard;

  void SetUp() override {
    CredentialStore s;
    EXPECT_TRUE(s.AddBasicAuthList("admin:s3cret"));
    EXPECT_TRUE(s.AddTokensFileText(CredentialStore::TokenFileLine(token, Role::kViewer, "prom") + "\n" +
                                        CredentialStore::TokenFileLine(op_token, Role::kOperator, "ops") + "\n",
                                    "t"));
    guard = std::make_unique<AuthGuard>(std::move(s), AuthOptions{}, [this] { return now; });
  }
};

TEST_F(GuardFixture, NoCredentials401WithChallenge) {
  auto r = guard->Check(Req("GET", "/api/tasks"), "viewer");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(r->headers["WWW-Authenticate"].rfind("Basic realm=\"stalk\"", 0), 0u);
  EXPECT_FALSE(guard->Check(Req("GET", "/healthcheck"), "viewer"));
  auto m = guard->Check(Req("GET", "/metrics"), "viewer");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 401);
}

TEST_F(GuardFixture, BasicAndBearer) {
  EXPECT_FALSE(guard->Check(Req("GET", "/api/tasks", {{"authorization", Basic("admin:s3cret")}}), "viewer"));
  auto wrong = guard->Check(Req("GET", "/api/tasks", {{"authorization", Basic("admin:nope")}}), "viewer");
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  EXPECT_EQ(wrong->body.find("nope"), std::string::npos);
  EXPECT_FALSE(guard->Check(Req("GET", "/metrics", {{"authorization", "Bearer " + token}}), "viewer"));
  auto post = guard->Check(Req("POST", "/api/task/revoke/x", {{"authorization", "Bearer " + token}}), "operator");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 403);
  EXPECT_FALSE(guard->Check(Req("POST", "/api/task/revoke/x", {{"authorization", "Bearer " + op_token}}), "operator"));
  auto admin = guard->Check(Req("GET", "/api/admin/x", {{"authorization", "Bearer " + op_token}}), "admin");
  ASSERT_TRUE(admin);
  EXPECT_EQ(admin->status, 403);
  auto bad_token = guard->Check(Req("GET", "/api/tasks", {{"authorization", "Bearer nope"}}), "viewer");
  ASSERT_TRUE(bad_token);
  EXPECT_EQ(bad_token->status, 401);
}

TEST_F(GuardFixture, LockoutPerIpThenExpires) {
  for (int i = 0; i < 10; ++i) {
    auto r = guard->Check(Req("GET", "/api/tasks", {{"authorization", Basic("admin:wrong")}}), "viewer");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 401);
  }
  // Locked: even the right password gets 429 until the lockout ends.
  auto locked = guard->Check(Req("GET", "/api/tasks", {{"authorization", Basic("admin:s3cret")}}), "viewer");
  ASSERT_TRUE(locked);
  EXPECT_EQ(locked->status, 429);
  EXPECT_FALSE(locked->headers["Retry-After"].empty());
  now += 301;
  EXPECT_FALSE(guard->Check(Req("GET", "/api/tasks", {{"authorization", Basic("admin:s3cret")}}), "viewer"));
}

TEST_F(GuardFixture, LockoutPerUserAcrossAddresses) {
  for (int i = 0; i < 10; ++i) {
    HttpRequest r = Req("GET", "/api/tasks", {{"authorization", Basic("admin:wrong")}});
    r.remote_addr = "10.1.0." + std::to_string(i);
    guard->Check(r, "viewer");
  }
  HttpRequest fresh = Req("GET", "/api/tasks", {{"authorization", Basic("admin:s3cret")}});
  fresh.remote_addr = "10.2.0.1";
  auto r = guard->Check(fresh, "viewer");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 429);
  EXPECT_EQ(guard->limiter().lockouts(), 1u);
}

TEST_F(GuardFixture, CsrfRule) {
  const auto auth = Basic("admin:s3cret");
  // Basic auth + same-origin POST works.
  EXPECT_FALSE(guard->Check(Req("POST", "/api/task/revoke/x",
                                {{"authorization", auth}, {"host", "stalk:5555"}, {"origin", "http://stalk:5555"}}),
                            "operator"));
  EXPECT_FALSE(guard->Check(Req("POST", "/api/task/revoke/x",
                                {{"authorization", auth}, {"host", "stalk"}, {"referer", "https://stalk:443/tasks"}}),
                            "operator"));
  // Cross-site or no Origin/Referer with cookie-like (Basic) credentials: 403.
  auto cross = guard->Check(
      Req("POST", "/api/task/revoke/x", {{"authorization", auth}, {"host", "stalk:5555"}, {"origin", "http://evil"}}),
      "operator");
  ASSERT_TRUE(cross);
  EXPECT_EQ(cross->status, 403);
  auto absent =
      guard->Check(Req("POST", "/api/task/revoke/x", {{"authorization", auth}, {"host", "stalk:5555"}}), "operator");
  ASSERT_TRUE(absent);
  EXPECT_EQ(absent->status, 403);
  // A bearer token is not sent by browsers on their own: no Origin needed.
  EXPECT_FALSE(guard->Check(Req("POST", "/api/task/revoke/x", {{"authorization", "Bearer " + op_token}}), "operator"));
}

TEST(CheckOrigin, Rules) {
  EXPECT_EQ(CheckOrigin(Req("POST", "/", {{"host", "a:1"}, {"origin", "http://A:1"}}), false),
            OriginCheck::kSameOrigin);
  EXPECT_EQ(CheckOrigin(Req("POST", "/", {{"host", "a:1"}, {"origin", "http://a:2"}}), false),
            OriginCheck::kCrossOrigin);
  EXPECT_EQ(CheckOrigin(Req("POST", "/", {{"host", "a:1"}, {"origin", "null"}}), false), OriginCheck::kCrossOrigin);
  EXPECT_EQ(CheckOrigin(Req("POST", "/", {{"host", "a:1"}}), false), OriginCheck::kAbsent);
  EXPECT_EQ(CheckOrigin(Req("POST", "/", {{"host", "a:1"}, {"origin", "javascript:x"}}), false),
            OriginCheck::kCrossOrigin);
  // Behind a proxy: X-Forwarded-Host only with --xheaders.
  auto proxied = Req(
      "POST", "/", {{"host", "127.0.0.1:5555"}, {"x-forwarded-host", "ui.example"}, {"origin", "https://ui.example"}});
  EXPECT_EQ(CheckOrigin(proxied, true), OriginCheck::kSameOrigin);
  EXPECT_EQ(CheckOrigin(proxied, false), OriginCheck::kCrossOrigin);
}

TEST(ClientAddress, XHeadersOnlyWhenEnabled) {
  auto r = Req("GET", "/", {{"x-forwarded-for", "6.6.6.6, 1.2.3.4"}});
  EXPECT_EQ(ClientAddress(r, false), "10.0.0.7");
  EXPECT_EQ(ClientAddress(r, true), "1.2.3.4");
  r.headers["x-real-ip"] = "9.9.9.9";
  EXPECT_EQ(ClientAddress(r, true), "9.9.9.9");
}

TEST(OpenMode, AllowsButRefusesCrossSitePosts) {
  AuthGuard open(CredentialStore{}, AuthOptions{});
  EXPECT_FALSE(open.Enabled());
  EXPECT_FALSE(open.Check(Req("GET", "/api/tasks"), "viewer"));
  EXPECT_FALSE(open.Check(Req("POST", "/api/task/revoke/x"), "operator"));  // curl-like: no Origin
  auto cross = open.Check(Req("POST", "/api/task/revoke/x", {{"host", "127.0.0.1:5555"}, {"origin", "http://evil"}}),
                          "operator");
  ASSERT_TRUE(cross);
  EXPECT_EQ(cross->status, 403);
}

TEST(MetricsPublic, OnlyMetricsAndOnlyReads) {
  CredentialStore s;
  ASSERT_TRUE(s.AddBasicAuthList("a:b"));
  AuthOptions o;
  o.metrics_public = true;
  AuthGuard g(std::move(s), o);
  EXPECT_FALSE(g.Check(Req("GET", "/metrics"), "viewer"));
  ASSERT_TRUE(g.Check(Req("GET", "/api/tasks"), "viewer"));
  ASSERT_TRUE(g.Check(Req("POST", "/metrics"), "operator"));
}

TEST(Router, GuardRunsFirstAndSecurityHeadersOnEveryResponse) {
  Router router;
  int handled = 0;
  router.Get("/api/tasks", [&](const HttpRequest&, const std::string&) {
    ++handled;
    return HttpResponse::Json("{}");
  });
  std::string seen_role;
  router.SetGuard([&](const HttpRequest& req, std::string_view role) -> std::optional<HttpResponse> {
    seen_role = std::string(role);
    if (req.Header("authorization").empty()) {
      return HttpResponse::Error(401, "authentication required");
    }
    return std::nullopt;
  });
  HttpResponse denied = router.Dispatch(Req("GET", "/api/tasks"));
  EXPECT_EQ(denied.status, 401);
  EXPECT_EQ(handled, 0);
  EXPECT_EQ(seen_role, "viewer");
  HttpResponse ok = router.Dispatch(Req("GET", "/api/tasks", {{"authorization", "x"}}));
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(handled, 1);
  HttpResponse missing = router.Dispatch(Req("POST", "/nope", {{"authorization", "x"}}));
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(seen_role, "operator");
  for (const HttpResponse* r : {&denied, &ok, &missing}) {
    const std::string csp = r->headers.at("Content-Security-Policy");
    EXPECT_NE(csp.find("default-src 'self'"), std::string::npos);
    EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos);
    EXPECT_EQ(csp.find("unsafe-inline"), std::string::npos);
    EXPECT_EQ(r->headers.at("X-Frame-Options"), "DENY");
    EXPECT_EQ(r->headers.at("Referrer-Policy"), "no-referrer");
    EXPECT_EQ(r->headers.at("X-Content-Type-Options"), "nosniff");
  }
}

}  // namespace

TEST(Jwt, Base64UrlRoundTripsAndRejectsOtherAlphabets) {
  for (const std::string& s :
       std::vector<std::string>{"", "f", "fo", "foo", "foob", "fooba", "foobar", std::string("\xff\xfe\x00\x01", 4)}) {
    std::string back;
    ASSERT_TRUE(Base64UrlDecode(Base64UrlEncode(s), back));
    EXPECT_EQ(back, s);
  }
  EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");
  std::string out;
  EXPECT_FALSE(Base64UrlDecode("ab+/", out));
  EXPECT_FALSE(Base64UrlDecode("a", out));
}

TEST(Jwt, RefusesNoneAndHmacAndMalformedTokens) {
  const std::vector<Jwk> keys = {Jwk{"k", "AQAB", "AQAB"}};
  const std::string none = Base64UrlEncode(R"({"alg":"none"})") + "." + Base64UrlEncode(R"({"sub":"x"})") + ".";
  EXPECT_FALSE(VerifyRs256Jwt(none, keys));
  const std::string hs = Base64UrlEncode(R"({"alg":"HS256"})") + "." + Base64UrlEncode("{}") + ".AAAA";
  EXPECT_FALSE(VerifyRs256Jwt(hs, keys));
  EXPECT_FALSE(VerifyRs256Jwt("a.b", keys));
  EXPECT_FALSE(VerifyRs256Jwt("a.b.c.d", keys));
  EXPECT_FALSE(ParseJwks(R"({"keys":[{"kty":"oct","k":"x"}]})"));
  EXPECT_FALSE(ParseJwks("not json"));
}

TEST(SignedCookie, VerifiesIntactUnexpiredValuesOnly) {
  SignedCookie signer("0123456789abcdef0123456789abcdef");
  const std::string v = signer.Sign("alice@example.com\noperator", 2000);
  EXPECT_EQ(signer.Verify(v, 1000).value_or(""), "alice@example.com\noperator");
  EXPECT_FALSE(signer.Verify(v, 2001));  // expired
  EXPECT_FALSE(SignedCookie("another key, another key, another").Verify(v, 1000));
  std::string tampered = v;
  tampered[3] = tampered[3] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(signer.Verify(tampered, 1000));
  EXPECT_FALSE(signer.Verify("", 1000));
  EXPECT_EQ(CookieValue("a=1; stalk_session=xyz; b=2", "stalk_session"), "xyz");
  EXPECT_EQ(CookieValue("stalk_session_x=1", "stalk_session"), "");
}

}  // namespace stalk

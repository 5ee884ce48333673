// Stalk — Celery monitoring server.
#include "auth/jwt.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <array>
#include <memory>

namespace stalk {
namespace {

constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int Value(char c) {
  const size_t pos = kAlphabet.find(c);
  return pos == std::string_view::npos ? -1 : static_cast<int>(pos);
}

template <class T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using BignumPtr = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX, EVP_MD_CTX_free>>;
using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, Deleter<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free>>;
using ParamPtr = std::unique_ptr<OSSL_PARAM, Deleter<OSSL_PARAM, OSSL_PARAM_free>>;

BignumPtr DecodeBignum(std::string_view b64) {
  std::string bytes;
  if (!Base64UrlDecode(b64, bytes) || bytes.empty()) {
    return nullptr;
  }
  return BignumPtr(
      BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()), nullptr));
}

Result<PkeyPtr> RsaPublicKey(const Jwk& jwk) {
  BignumPtr n = DecodeBignum(jwk.n);
  BignumPtr e = DecodeBignum(jwk.e);
  if (!n || !e) {
    return Error{"JWKS key has an invalid modulus or exponent"};
  }
  if (BN_num_bits(n.get()) < 2048) {
    return Error{"JWKS key is shorter than 2048 bits"};
  }
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bld || !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get())) {
    return Error{"cannot build an RSA key"};
  }
  ParamPtr params(OSSL_PARAM_BLD_to_param(bld.get()));
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) <= 0 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) <= 0) {
    return Error{"cannot build an RSA key"};
  }
  return PkeyPtr(raw);
}

}  // namespace

std::string Base64UrlEncode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v =
        (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8) | static_cast<uint8_t>(in[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i + 1 == in.size()) {
    const uint32_t v = static_cast<uint8_t>(in[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
  } else if (i + 2 == in.size()) {
    const uint32_t v = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
  }
  return out;
}

bool Base64UrlDecode(std::string_view in, std::string& out) {
  while (!in.empty() && in.back() == '=') {
    in.remove_suffix(1);
  }
  if (in.size() % 4 == 1) {
    return false;
  }
  out.clear();
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const int v = Value(c);
    if (v < 0) {
      return false;
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return true;
}

Result<std::vector<Jwk>> ParseJwks(std::string_view json) {
  auto doc = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object() || !doc.contains("keys") || !doc["keys"].is_array()) {
    return Error{"JWKS document has no \"keys\" array"};
  }
  std::vector<Jwk> keys;
  for (const auto& k : doc["keys"]) {
    if (!k.is_object() || k.value("kty", "") != "RSA" || !k.contains("n") || !k.contains("e") || !k["n"].is_string() ||
        !k["e"].is_string()) {
      continue;
    }
    if (k.contains("use") && k["use"] != "sig") {
      continue;
    }
    keys.push_back(Jwk{k.value("kid", ""), k["n"].get<std::string>(), k["e"].get<std::string>()});
  }
  if (keys.empty()) {
    return Error{"JWKS document has no RSA signing key"};
  }
  return keys;
}

Result<nlohmann::json> VerifyRs256Jwt(std::string_view token, const std::vector<Jwk>& keys) {
  const size_t dot1 = token.find('.');
  const size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return Error{"malformed token"};
  }
  std::string header_text, payload_text, signature;
  if (!Base64UrlDecode(token.substr(0, dot1), header_text) ||
      !Base64UrlDecode(token.substr(dot1 + 1, dot2 - dot1 - 1), payload_text) ||
      !Base64UrlDecode(token.substr(dot2 + 1), signature)) {
    return Error{"malformed token"};
  }
  auto header = nlohmann::json::parse(header_text, nullptr, false);
  if (!header.is_object() || header.value("alg", "") != "RS256") {
    return Error{"token is not signed with RS256"};
  }
  const std::string kid = header.contains("kid") && header["kid"].is_string() ? header["kid"].get<std::string>() : "";
  const Jwk* key = nullptr;
  for (const Jwk& k : keys) {
    if (k.kid == kid || (kid.empty() && keys.size() == 1)) {
      key = &k;
      break;
    }
  }
  if (key == nullptr) {
    return Error{"token signed with an unknown key" + (kid.empty() ? std::string() : " (kid " + kid + ")")};
  }
  auto pkey = RsaPublicKey(*key);
  if (!pkey) {
    return Error{pkey.error()};
  }
  MdCtxPtr md(EVP_MD_CTX_new());
  const std::string_view signed_part = token.substr(0, dot2);
  if (!md || EVP_DigestVerifyInit(md.get(), nullptr, EVP_sha256(), nullptr, pkey->get()) != 1 ||
      EVP_DigestVerify(md.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                       reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size()) != 1) {
    return Error{"token signature is invalid"};
  }
  auto payload = nlohmann::json::parse(payload_text, nullptr, false);
  if (!payload.is_object()) {
    return Error{"token payload is not a JSON object"};
  }
  return payload;
}

}  // namespace stalk

#include "replayrail/core/fingerprint.h"

#include <openssl/evp.h>

#include <stdexcept>

#include "replayrail/core/json_text.h"

namespace replayrail {

namespace json = boost::json;

namespace {

// OpenSSL 3 looks an algorithm up on every implicit use (EVP_sha256() in EVP_Digest); fetching
// it once takes that cost off the publish path.
const EVP_MD* sha256_md() {
  static EVP_MD* md = [] {
    EVP_MD* m = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (!m) throw std::runtime_error("OpenSSL has no SHA256");
    return m;
  }();
  return md;
}

void append_member(std::string& out, std::string_view key, const json::value& v) {
  out += key;
  append_json(out, v, KeyOrder::sorted);
}

}  // namespace

Fingerprint compute_fingerprint(std::string_view channel, std::string_view type,
                                const json::value& payload, const json::value& actor,
                                const json::value& metadata,
                                std::optional<std::string_view> client_created_at) {
  // The canonical form of {actor, channel, created_at, metadata, payload, type}, keys already in
  // sorted order, written directly rather than by copying the values into a new document.
  std::string canonical;
  canonical.reserve(256);
  append_member(canonical, R"({"actor":)", actor);
  canonical += R"(,"channel":)";
  append_json_string(canonical, channel);
  canonical += R"(,"created_at":)";
  if (client_created_at) {
    append_json_string(canonical, *client_created_at);
  } else {
    canonical += "null";
  }
  append_member(canonical, R"(,"metadata":)", metadata);
  append_member(canonical, R"(,"payload":)", payload);
  canonical += R"(,"type":)";
  append_json_string(canonical, type);
  canonical += '}';

  return sha256({canonical});
}

Fingerprint sha256(std::initializer_list<std::string_view> parts) {
  Fingerprint f;
  unsigned int size = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = ctx && EVP_DigestInit_ex(ctx, sha256_md(), nullptr) == 1;
  for (auto part : parts) ok = ok && EVP_DigestUpdate(ctx, part.data(), part.size()) == 1;
  ok = ok && EVP_DigestFinal_ex(ctx, f.data(), &size) == 1 && size == f.size();
  EVP_MD_CTX_free(ctx);
  if (!ok) throw std::runtime_error("OpenSSL SHA-256 failed");
  return f;
}

std::string to_hex(const Fingerprint& f) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(f.size() * 2);
  for (auto b : f) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xf]);
  }
  return out;
}

}  // namespace replayrail

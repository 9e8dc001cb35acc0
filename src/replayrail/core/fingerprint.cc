#include "replayrail/core/fingerprint.h"

#include <openssl/evp.h>

#include <algorithm>
#include <boost/json/serializer.hpp>
#include <stdexcept>
#include <vector>

namespace replayrail {

namespace json = boost::json;

namespace {

// Serialises a scalar straight into `out`, reusing one serializer per thread instead of building
// a temporary std::string per value.
void append_scalar(std::string& out, const json::value& v) {
  thread_local json::serializer sr;
  char buf[256];
  sr.reset(&v);
  while (!sr.done()) out += sr.read(buf, sizeof buf);
}

void append_key(std::string& out, json::string_view key) {
  thread_local json::serializer sr;
  char buf[256];
  sr.reset(key);
  while (!sr.done()) out += sr.read(buf, sizeof buf);
}

}  // namespace

void append_canonical_json(std::string& out, const json::value& v) {
  switch (v.kind()) {
    case json::kind::object: {
      const auto& obj = v.get_object();
      std::vector<const json::key_value_pair*> members;
      members.reserve(obj.size());
      for (const auto& kv : obj) members.push_back(&kv);
      std::sort(members.begin(), members.end(),
                [](auto* a, auto* b) { return a->key() < b->key(); });
      out.push_back('{');
      for (std::size_t i = 0; i < members.size(); ++i) {
        if (i) out.push_back(',');
        append_key(out, members[i]->key());
        out.push_back(':');
        append_canonical_json(out, members[i]->value());
      }
      out.push_back('}');
      return;
    }
    case json::kind::array: {
      out.push_back('[');
      bool first = true;
      for (const auto& item : v.get_array()) {
        if (!first) out.push_back(',');
        first = false;
        append_canonical_json(out, item);
      }
      out.push_back(']');
      return;
    }
    default:
      append_scalar(out, v);
  }
}

namespace {

// OpenSSL 3 looks an algorithm up on every implicit use (EVP_sha256() in EVP_Digest); fetching
// it once takes that cost off the publish path.
const EVP_MD* sha256() {
  static EVP_MD* md = [] {
    EVP_MD* m = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (!m) throw std::runtime_error("OpenSSL has no SHA256");
    return m;
  }();
  return md;
}

void append_member(std::string& out, std::string_view key, const json::value& v) {
  out += key;
  append_canonical_json(out, v);
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
  append_key(canonical, json::string_view(channel.data(), channel.size()));
  canonical += R"(,"created_at":)";
  if (client_created_at) {
    append_key(canonical, json::string_view(client_created_at->data(), client_created_at->size()));
  } else {
    canonical += "null";
  }
  append_member(canonical, R"(,"metadata":)", metadata);
  append_member(canonical, R"(,"payload":)", payload);
  canonical += R"(,"type":)";
  append_key(canonical, json::string_view(type.data(), type.size()));
  canonical += '}';

  Fingerprint f;
  unsigned int size = 0;
  if (EVP_Digest(canonical.data(), canonical.size(), f.data(), &size, sha256(), nullptr) != 1 ||
      size != f.size()) {
    throw std::runtime_error("OpenSSL SHA-256 failed");
  }
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

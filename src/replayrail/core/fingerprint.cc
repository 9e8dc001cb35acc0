#include "replayrail/core/fingerprint.h"

#include <openssl/evp.h>

#include <algorithm>
#include <boost/json/serialize.hpp>
#include <stdexcept>
#include <vector>

namespace replayrail {

namespace json = boost::json;

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
        out += json::serialize(members[i]->key());
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
      out += json::serialize(v);
  }
}

Fingerprint compute_fingerprint(std::string_view channel, std::string_view type,
                                const json::value& payload, const json::value& actor,
                                const json::value& metadata,
                                std::optional<std::string_view> client_created_at) {
  json::object doc;
  doc["channel"] = channel;
  doc["type"] = type;
  doc["payload"] = payload;
  doc["actor"] = actor;
  doc["metadata"] = metadata;
  doc["created_at"] = client_created_at ? json::value(*client_created_at) : json::value(nullptr);
  std::string canonical;
  canonical.reserve(256);
  append_canonical_json(canonical, doc);

  Fingerprint f;
  unsigned int size = 0;
  if (EVP_Digest(canonical.data(), canonical.size(), f.data(), &size, EVP_sha256(), nullptr) != 1 ||
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

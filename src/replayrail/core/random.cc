#include "replayrail/core/random.h"

#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <stdexcept>

namespace replayrail {

namespace {

// OpenSSL's CSPRNG: thread-safe and unpredictable, so generated event ids never collide across
// processes or restarts (a seeded std::mt19937 gives no such guarantee).
// Each RAND_bytes call costs about a microsecond of locking, so every thread draws a few KiB at a
// time and hands them out.
template <std::size_t N>
std::array<std::uint8_t, N> random_bytes() {
  thread_local std::array<std::uint8_t, 4096> pool;
  thread_local std::size_t used = pool.size();
  if (used + N > pool.size()) {
    if (RAND_bytes(pool.data(), static_cast<int>(pool.size())) != 1) {
      throw std::runtime_error("OpenSSL RAND_bytes failed");
    }
    used = 0;
  }
  std::array<std::uint8_t, N> bytes;
  std::copy_n(pool.begin() + static_cast<std::ptrdiff_t>(used), N, bytes.begin());
  used += N;
  return bytes;
}

constexpr char kHex[] = "0123456789abcdef";

void append_hex(std::string& out, std::uint8_t b) {
  out.push_back(kHex[b >> 4]);
  out.push_back(kHex[b & 0xf]);
}

}  // namespace

std::string make_uuid_v4() {
  auto b = random_bytes<16>();
  b[6] = (b[6] & 0x0f) | 0x40;  // version 4
  b[8] = (b[8] & 0x3f) | 0x80;  // RFC 4122 variant
  std::string out;
  out.reserve(36);
  for (std::size_t i = 0; i < b.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    append_hex(out, b[i]);
  }
  return out;
}

std::string make_epoch() {
  std::string out;
  out.reserve(16);
  for (auto b : random_bytes<8>()) append_hex(out, b);
  return out;
}

}  // namespace replayrail

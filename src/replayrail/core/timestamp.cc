#include "replayrail/core/timestamp.h"

namespace replayrail {

std::string format_timestamp(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  auto ms = floor<milliseconds>(t);
  auto days = floor<std::chrono::days>(ms);
  year_month_day ymd{days};
  hh_mm_ss hms{ms - days};
  // Fixed-width digits by hand: snprintf's format parsing cost more than the rest of a publish.
  std::string out = "0000-00-00T00:00:00.000Z";
  auto put = [&out](std::size_t pos, std::size_t width, long long v) {
    for (std::size_t i = 0; i < width; ++i, v /= 10) out[pos + width - 1 - i] = char('0' + v % 10);
  };
  put(0, 4, int(ymd.year()));
  put(5, 2, unsigned(ymd.month()));
  put(8, 2, unsigned(ymd.day()));
  put(11, 2, hms.hours().count());
  put(14, 2, hms.minutes().count());
  put(17, 2, hms.seconds().count());
  put(20, 3, hms.subseconds().count());
  return out;
}

std::string now_timestamp() { return format_timestamp(std::chrono::system_clock::now()); }

namespace {

bool digits(std::string_view s, std::size_t pos, std::size_t n, int& out) noexcept {
  if (pos + n > s.size()) return false;
  out = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

}  // namespace

bool is_valid_timestamp(std::string_view s) noexcept {
  // YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z
  int y, mo, d, h, mi, sec;
  if (s.size() < 20 || !digits(s, 0, 4, y) || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
      !digits(s, 8, 2, d) || s[10] != 'T' || !digits(s, 11, 2, h) || s[13] != ':' ||
      !digits(s, 14, 2, mi) || s[16] != ':' || !digits(s, 17, 2, sec)) {
    return false;
  }
  std::size_t pos = 19;
  if (s[pos] == '.') {
    std::size_t start = ++pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
    if (pos == start || pos - start > 9) return false;
  }
  if (pos + 1 != s.size() || s[pos] != 'Z') return false;
  using namespace std::chrono;
  year_month_day ymd{year{y}, month{unsigned(mo)}, day{unsigned(d)}};
  return ymd.ok() && h < 24 && mi < 60 && sec < 60;
}

}  // namespace replayrail

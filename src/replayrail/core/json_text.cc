#include "replayrail/core/json_text.h"

#include <algorithm>
#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value_stack.hpp>
#include <charconv>
#include <cmath>
#include <vector>

namespace replayrail {

namespace json = boost::json;

namespace {

// The handler of Boost.JSON's own parser (boost/json/detail/handler.hpp), building the value on a
// value_stack the same way, except that doubles are read again from their text.
class ExactHandler {
 public:
  static constexpr std::size_t max_object_size = json::object::max_size();
  static constexpr std::size_t max_array_size = json::array::max_size();
  static constexpr std::size_t max_key_size = json::string::max_size();
  static constexpr std::size_t max_string_size = json::string::max_size();

  json::value_stack st;
  std::string out_of_range;  // the first number beyond a double's range, when there was one

  // Before each document: what the last one left (it may have failed inside a number) is gone.
  void reset(json::storage_ptr storage) {
    st.reset(std::move(storage));
    out_of_range.clear();
    number_.clear();
  }

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_object_begin(json::error_code&) { return true; }
  bool on_object_end(std::size_t n, json::error_code&) {
    st.push_object(n);
    return true;
  }
  bool on_array_begin(json::error_code&) { return true; }
  bool on_array_end(std::size_t n, json::error_code&) {
    st.push_array(n);
    return true;
  }
  bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
    st.push_chars(s);
    return true;
  }
  bool on_key(json::string_view s, std::size_t, json::error_code&) {
    st.push_key(s);
    return true;
  }
  bool on_string_part(json::string_view s, std::size_t, json::error_code&) {
    st.push_chars(s);
    return true;
  }
  bool on_string(json::string_view s, std::size_t, json::error_code&) {
    st.push_string(s);
    return true;
  }
  // A number arrives in parts only when the input does; parse_json() passes all of it at once,
  // but the parts are kept in case.
  bool on_number_part(json::string_view s, json::error_code&) {
    number_.append(s.data(), s.size());
    return true;
  }
  bool on_int64(std::int64_t i, json::string_view, json::error_code&) {
    number_.clear();
    st.push_int64(i);
    return true;
  }
  bool on_uint64(std::uint64_t u, json::string_view, json::error_code&) {
    number_.clear();
    st.push_uint64(u);
    return true;
  }
  bool on_double(double d, json::string_view s, json::error_code& ec) {
    std::string_view text(s.data(), s.size());
    if (!number_.empty()) text = number_.append(s.data(), s.size());
    double exact = 0;
    auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), exact);
    if (err == std::errc::result_out_of_range && !std::isinf(d)) {
      exact = d;  // too small for a double: zero, as every reader takes it
    } else if (err != std::errc{} || end != text.data() + text.size()) {
      out_of_range.assign(text);
      ec = json::error::exponent_overflow;
      return false;
    }
    number_.clear();
    st.push_double(exact);
    return true;
  }
  bool on_bool(bool b, json::error_code&) {
    st.push_bool(b);
    return true;
  }
  bool on_null(json::error_code&) {
    st.push_null();
    return true;
  }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

 private:
  std::string number_;  // the parts of a number split across inputs
};

using ExactParser = json::basic_parser<ExactHandler>;

void append_double(std::string& out, double d) {
  if (!std::isfinite(d)) {
    out += "null";
    return;
  }
  char buffer[32];  // the longest shortest form is 24 characters (-2.2250738585072014e-308)
  auto end = std::to_chars(buffer, buffer + sizeof buffer, d).ptr;
  std::string_view text(buffer, end - buffer);
  out += text;
  if (text.find_first_of(".e") == std::string_view::npos) out += ".0";
}

template <class Int>
void append_integer(std::string& out, Int i) {
  char buffer[24];
  out.append(buffer, std::to_chars(buffer, buffer + sizeof buffer, i).ptr);
}

void append_member(std::string& out, const json::key_value_pair& kv, KeyOrder order) {
  append_json_string(out, std::string_view(kv.key().data(), kv.key().size()));
  out.push_back(':');
  append_json(out, kv.value(), order);
}

}  // namespace

result<json::value> parse_json(std::string_view text, json::storage_ptr storage) {
  // One parser per thread keeps its internal stacks allocated from one document to the next.
  thread_local ExactParser parser{json::parse_options{}};
  parser.reset();
  parser.handler().reset(std::move(storage));
  json::error_code ec;
  std::size_t used = parser.write_some(false, text.data(), text.size(), ec);
  if (!ec && used < text.size()) ec = json::error::extra_data;
  if (ec) {
    std::string why =
        parser.handler().out_of_range.empty()
            ? "is not valid JSON: " + ec.message()
            : "has a number beyond the range of a double: " + parser.handler().out_of_range;
    parser.reset();
    parser.handler().reset({});  // lets go of the caller's storage
    return make_error(errc::invalid_json, std::move(why));
  }
  json::value v = parser.handler().st.release();
  parser.handler().reset({});
  return v;
}

void append_json(std::string& out, const json::value& v, KeyOrder order) {
  switch (v.kind()) {
    case json::kind::null:
      out += "null";
      return;
    case json::kind::bool_:
      out += v.get_bool() ? "true" : "false";
      return;
    case json::kind::int64:
      append_integer(out, v.get_int64());
      return;
    case json::kind::uint64:
      append_integer(out, v.get_uint64());
      return;
    case json::kind::double_:
      append_double(out, v.get_double());
      return;
    case json::kind::string:
      append_json_string(out, std::string_view(v.get_string().data(), v.get_string().size()));
      return;
    case json::kind::array: {
      out.push_back('[');
      bool first = true;
      for (const auto& item : v.get_array()) {
        if (!first) out.push_back(',');
        first = false;
        append_json(out, item, order);
      }
      out.push_back(']');
      return;
    }
    case json::kind::object: {
      const json::object& object = v.get_object();
      out.push_back('{');
      if (order == KeyOrder::sorted) {
        std::vector<const json::key_value_pair*> members;
        members.reserve(object.size());
        for (const auto& kv : object) members.push_back(&kv);
        std::sort(members.begin(), members.end(),
                  [](auto* a, auto* b) { return a->key() < b->key(); });
        for (std::size_t i = 0; i < members.size(); ++i) {
          if (i) out.push_back(',');
          append_member(out, *members[i], order);
        }
      } else {
        bool first = true;
        for (const auto& kv : object) {
          if (!first) out.push_back(',');
          first = false;
          append_member(out, kv, order);
        }
      }
      out.push_back('}');
      return;
    }
  }
}

std::string to_json(const json::value& v) {
  std::string out;
  append_json(out, v);
  return out;
}

void append_json_string(std::string& out, std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) {
      out += json::serialize(json::string_view(s.data(), s.size()));
      return;
    }
  }
  out.push_back('"');
  out.append(s);
  out.push_back('"');
}

}  // namespace replayrail

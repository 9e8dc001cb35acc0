#include "replayrail/resp/codec.h"

#include <hiredis/hiredis.h>

#include <charconv>
#include <cstdlib>
#include <stdexcept>

namespace replayrail::resp {

namespace {

Reply convert(const redisReply* r) {
  Reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = Reply::Type::string;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::status;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = Reply::Type::error;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::integer;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::array;
      out.elements.reserve(r->elements);
      for (std::size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
      break;
    default:
      out.type = Reply::Type::nil;
  }
  return out;
}

}  // namespace

// Written here rather than with hiredis' redisFormatSdsCommandArgv: that builds each command in
// an sds string of its own (grown a step at a time, each length formatted by sdscatfmt) and
// needs argv/length arrays, then the bytes are copied into `out`. A profile of appends at a
// stream's MAXLEN put it at a quarter of the client's instructions; this is one reserve and one
// pass. The format is RESP's array of bulk strings: "*<n>\r\n" then "$<len>\r\n<bytes>\r\n" each.
void encode_command(std::string& out, std::span<const std::string_view> args) {
  constexpr std::size_t kHeader = 24;  // "$" or "*", a 20-digit length, "\r\n", spare
  std::size_t size = kHeader;
  for (auto a : args) size += kHeader + a.size() + 2;
  out.reserve(out.size() + size);
  auto header = [&out](char kind, std::size_t n) {
    char buf[kHeader];
    buf[0] = kind;
    char* end = std::to_chars(buf + 1, buf + sizeof buf, n).ptr;
    *end++ = '\r';
    *end++ = '\n';
    out.append(buf, end);
  };
  header('*', args.size());
  for (auto a : args) {
    header('$', a.size());
    out.append(a);
    out.append("\r\n", 2);
  }
}

Encoded Encoded::subset(std::span<const std::size_t> indices, bool asking) const {
  Encoded out;
  for (std::size_t i : indices) {
    if (asking) out.add_args("ASKING");
    const std::size_t end = i + 1 < commands ? starts[i + 1] : bytes.size();
    out.starts.push_back(out.bytes.size());
    out.bytes.append(bytes, starts[i], end - starts[i]);
    ++out.commands;
  }
  return out;
}

Decoder::Decoder() : reader_(redisReaderCreate()) {
  if (!reader_) throw std::bad_alloc();
}

Decoder::~Decoder() { redisReaderFree(reader_); }

void Decoder::reset() {
  redisReader* fresh = redisReaderCreate();
  if (!fresh) throw std::bad_alloc();
  redisReaderFree(reader_);
  reader_ = fresh;
}

void Decoder::feed(std::string_view bytes) { redisReaderFeed(reader_, bytes.data(), bytes.size()); }

result<std::optional<Reply>> Decoder::next() {
  void* raw = nullptr;
  if (redisReaderGetReply(reader_, &raw) != REDIS_OK) {
    return make_error(errc::store_unavailable,
                      std::string("malformed reply from Redis: ") + reader_->errstr);
  }
  if (!raw) return std::optional<Reply>();
  auto* reply = static_cast<redisReply*>(raw);
  Reply out = convert(reply);
  freeReplyObject(reply);
  return std::optional<Reply>(std::move(out));
}

}  // namespace replayrail::resp

#include "replayrail/resp/codec.h"

#include <hiredis/hiredis.h>

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

void encode_command(std::string& out, std::span<const std::string_view> args) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (auto a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  // The sds variant formats lengths with hiredis' own sdscatfmt; redisFormatCommandArgv calls
  // sprintf per argument, which cost more than the rest of an append.
  sds cmd = nullptr;
  int n = redisFormatSdsCommandArgv(&cmd, static_cast<int>(args.size()), argv.data(), lens.data());
  if (n < 0) throw std::bad_alloc();
  out.append(cmd, static_cast<std::size_t>(n));
  redisFreeSdsCommand(cmd);
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

#include "replayrail/resp/codec.h"

#include <gtest/gtest.h>

namespace replayrail::resp {
namespace {

std::vector<Reply> decode_all(Decoder& d) {
  std::vector<Reply> out;
  for (;;) {
    auto r = d.next();
    EXPECT_TRUE(r) << r.error().message;
    if (!r || !*r) return out;
    out.push_back(std::move(**r));
  }
}

TEST(RespCodec, EncodesCommandsAsBulkArrays) {
  std::string out;
  std::vector<std::string_view> args{"XADD", "rr:s", "*", "payload", std::string_view("a\0b", 3)};
  encode_command(out, args);
  static constexpr char kWire[] =
      "*5\r\n$4\r\nXADD\r\n$4\r\nrr:s\r\n$1\r\n*\r\n$7\r\npayload\r\n$3\r\na\0b\r\n";
  EXPECT_EQ(out, std::string(kWire, sizeof kWire - 1));
}

// Lengths of several digits, an empty argument, and commands appended after one another.
TEST(RespCodec, EncodesLongAndEmptyArgumentsBackToBack) {
  const std::string big(12345, 'x');
  std::vector<std::string_view> args{"SET", "k", big};
  std::vector<std::string_view> empty{"GET", ""};
  std::string out = "prefix";
  encode_command(out, args);
  encode_command(out, empty);
  EXPECT_EQ(out, "prefix*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$12345\r\n" + big +
                     "\r\n*2\r\n$3\r\nGET\r\n$0\r\n\r\n");
  // What a Redis decodes from it: the same arguments (hiredis' reader takes a request as an
  // array of bulk strings, the same format).
  Decoder d;
  d.feed(std::string_view(out).substr(6));
  auto replies = decode_all(d);
  ASSERT_EQ(replies.size(), 2u);
  ASSERT_EQ(replies[0].elements.size(), 3u);
  EXPECT_EQ(replies[0].elements[2].str, big);
  ASSERT_EQ(replies[1].elements.size(), 2u);
  EXPECT_EQ(replies[1].elements[1].str, "");
}

// Every reply type, fed one byte at a time, decodes to the same replies as fed at once.
TEST(RespCodec, DecodesEveryTypeFedOneByteAtATime) {
  const std::string wire =
      "+OK\r\n-NOGROUP No such key\r\n:-42\r\n$5\r\nhello\r\n$-1\r\n$0\r\n\r\n"
      "*3\r\n$2\r\nid\r\n*2\r\n:1\r\n$-1\r\n*0\r\n*-1\r\n";
  Decoder d;
  std::vector<Reply> replies;
  for (char c : wire) {
    d.feed({&c, 1});
    for (auto& r : decode_all(d)) replies.push_back(std::move(r));
  }
  ASSERT_EQ(replies.size(), 8u);
  EXPECT_EQ(replies[0].type, Reply::Type::status);
  EXPECT_EQ(replies[0].str, "OK");
  EXPECT_TRUE(replies[1].error_is("NOGROUP"));
  EXPECT_FALSE(replies[1].error_is("NOGRO"));
  EXPECT_EQ(replies[2].integer, -42);
  EXPECT_EQ(replies[3].str, "hello");
  EXPECT_TRUE(replies[4].is_nil());
  EXPECT_EQ(replies[5].type, Reply::Type::string);
  EXPECT_EQ(replies[5].str, "");
  ASSERT_EQ(replies[6].elements.size(), 3u);
  EXPECT_EQ(replies[6].elements[1].elements[0].integer, 1);
  EXPECT_TRUE(replies[6].elements[1].elements[1].is_nil());
  EXPECT_TRUE(replies[6].elements[2].elements.empty());
  EXPECT_TRUE(replies[7].is_nil());

  Decoder whole;
  whole.feed(wire);
  EXPECT_EQ(decode_all(whole).size(), 8u);
}

TEST(RespCodec, MalformedRepliesAreErrorsNotCrashes) {
  for (std::string bad : {"?what\r\n", "$abc\r\n", ":12x\r\n", "*1\r\n!\r\n"}) {
    Decoder d;
    d.feed(bad);
    auto r = d.next();
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, errc::store_unavailable);
    EXPECT_NE(r.error().message.find("malformed"), std::string::npos);
  }
}

TEST(RespCodec, ResetStartsAFreshStream) {
  Decoder d;
  d.feed("$5\r\nhel");
  EXPECT_FALSE(*d.next());
  d.reset();
  d.feed(":7\r\n");
  auto r = d.next();
  ASSERT_TRUE(r && *r);
  EXPECT_EQ((*r)->integer, 7);
}

// A cluster redirection sends some commands of a pipeline again, in order, each after an
// ASKING when the node is importing the slot.
TEST(RespCodec, ASubsetOfAPipelineIsTheSameBytes) {
  Encoded all;
  all.add_args("XADD", "rr:{s}", "*", "a", "1");
  all.add_args("XLEN", "rr:{s}");
  all.add_args("XADD", "rr:{s}", "*", "b", "2");
  std::string first, second, third, asking;
  encode_command(first, std::vector<std::string_view>{"XADD", "rr:{s}", "*", "a", "1"});
  encode_command(second, std::vector<std::string_view>{"XLEN", "rr:{s}"});
  encode_command(third, std::vector<std::string_view>{"XADD", "rr:{s}", "*", "b", "2"});
  encode_command(asking, std::vector<std::string_view>{"ASKING"});
  ASSERT_EQ(all.bytes, first + second + third);

  std::vector<std::size_t> last_two{1, 2};
  auto again = all.subset(last_two, false);
  EXPECT_EQ(again.bytes, second + third);
  EXPECT_EQ(again.commands, 2u);
  std::vector<std::size_t> ends{0, 2};
  auto asked = all.subset(ends, true);
  EXPECT_EQ(asked.bytes, asking + first + asking + third);
  EXPECT_EQ(asked.commands, 4u);
  // A subset can be cut again.
  std::vector<std::size_t> second_of_asked{3};
  EXPECT_EQ(asked.subset(second_of_asked, false).bytes, third);
}

}  // namespace
}  // namespace replayrail::resp

#include "protocol/line_splitter.hpp"

#include <gtest/gtest.h>

using mssgate::protocol::LineSplitter;

namespace {

std::vector<std::string> split_byte_by_byte(std::string_view input, size_t cap, bool& too_long) {
  LineSplitter splitter(cap);
  std::vector<std::string> lines;
  too_long = false;
  for (char c : input) {
    auto r = splitter.feed(std::string_view(&c, 1));
    EXPECT_EQ(r.consumed, 1u);
    if (r.status == LineSplitter::Status::kLine) lines.push_back(splitter.line());
    if (r.status == LineSplitter::Status::kTooLong) {
      too_long = true;
      break;
    }
  }
  return lines;
}

}  // namespace

TEST(LineSplitter, SplitsCrlfAndBareLfLinesFedOneByteAtATime) {
  bool too_long;
  auto lines = split_byte_by_byte("* OK ready\r\nA1 OK done\nlast\r\n", 100, too_long);
  EXPECT_FALSE(too_long);
  EXPECT_EQ(lines, (std::vector<std::string>{"* OK ready", "A1 OK done", "last"}));
}

TEST(LineSplitter, SplitsSeveralLinesFromOneChunk) {
  LineSplitter splitter(100);
  std::string_view input = "one\r\ntwo\r\nthr";
  auto r = splitter.feed(input);
  ASSERT_EQ(r.status, LineSplitter::Status::kLine);
  EXPECT_EQ(splitter.line(), "one");
  input.remove_prefix(r.consumed);
  r = splitter.feed(input);
  ASSERT_EQ(r.status, LineSplitter::Status::kLine);
  EXPECT_EQ(splitter.line(), "two");
  input.remove_prefix(r.consumed);
  r = splitter.feed(input);
  EXPECT_EQ(r.status, LineSplitter::Status::kNeedMore);
}

TEST(LineSplitter, AcceptsALineOfExactlyTheCapAndRefusesOneMore) {
  bool too_long;
  auto lines = split_byte_by_byte(std::string(10, 'x') + "\r\n", 10, too_long);
  EXPECT_FALSE(too_long);
  ASSERT_EQ(lines.size(), 1u);
  split_byte_by_byte(std::string(11, 'x') + "\r\n", 10, too_long);
  EXPECT_TRUE(too_long);
}

// Found by the smtp fuzz target (tests/fuzz/regressions/smtp/6d8fd589...): a line one byte over
// the cap ended by a bare LF was taken whole and refused in pieces.
TEST(LineSplitter, ALineOneByteOverTheCapEndedByABareLfIsRefusedWholeOrInPieces) {
  std::string line = std::string(11, 'x') + "\n";
  LineSplitter whole(10);
  EXPECT_EQ(whole.feed(line).status, LineSplitter::Status::kTooLong);
  bool too_long;
  split_byte_by_byte(line, 10, too_long);
  EXPECT_TRUE(too_long);
  // With its CR, the byte past the cap is the CR: the line fits, whole or in pieces.
  LineSplitter crlf(10);
  auto r = crlf.feed(std::string(10, 'x') + "\r\n");
  EXPECT_EQ(r.status, LineSplitter::Status::kLine);
  EXPECT_EQ(crlf.line(), std::string(10, 'x'));
  EXPECT_EQ(split_byte_by_byte(std::string(10, 'x') + "\n", 10, too_long).size(), 1u);
  EXPECT_FALSE(too_long);
}

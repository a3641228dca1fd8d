#include "protocol/base64.hpp"

#include <gtest/gtest.h>

using mssgate::protocol::base64_decode;
using mssgate::protocol::base64_encode;

TEST(Base64, RoundTripsEveryLengthAndByte) {
  std::string bytes;
  for (int i = 0; i < 300; ++i) {
    bytes.push_back(static_cast<char>(i * 7));
    auto decoded = base64_decode(base64_encode(bytes));
    ASSERT_TRUE(decoded.has_value()) << i;
    EXPECT_EQ(*decoded, bytes);
  }
}

TEST(Base64, EncodesKnownVectors) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
}

TEST(Base64, RefusesMalformedInput) {
  for (const char* bad :
       {"Zg", "Zg=", "Z===", "Zm9v!", "Zm 9v", "Zg==Zg==", "=Zg=", "Zh==", "Zm9=", "Zm8=\r\n"}) {
    EXPECT_FALSE(base64_decode(bad).has_value()) << bad;
  }
}

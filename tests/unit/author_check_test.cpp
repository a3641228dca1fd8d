// The author fields of a submitted message (daemon/core/author_check): From, Sender and the
// resent blocks, each header section fed to its reader one byte at a time.
#include "daemon/core/author_check.hpp"

#include <gtest/gtest.h>

#include <string>

#include "protocol/mailbox_address.hpp"

namespace mssgate::core {
namespace {

// As the submission core compares: the directory's form of the address.
const AddressAllowed kAllowed = [](std::string_view address) {
  auto normalized = protocol::normalize_mailbox_address(address);
  return normalized && (*normalized == "me@mine.fr" || *normalized == "desk@mine.fr");
};

// "ok" or "field detail".
std::string verdict(const std::string& fields, bool utf8 = false) {
  protocol::HeaderSectionReader reader(8192);
  std::string section = fields + "Subject: x\r\n\r\nbody\r\n";
  for (char c : section) {
    if (reader.feed(std::string_view(&c, 1)).status ==
        protocol::HeaderSectionReader::Status::kComplete)
      break;
  }
  auto refusal = check_authors(reader, kAllowed, utf8);
  if (!refusal) return "ok";
  return std::string(refusal->field) + " " + std::string(refusal->detail);
}

TEST(AuthorCheck, AcceptsTheMailboxAndItsAllowedSenders) {
  EXPECT_EQ(verdict("From: me@mine.fr\r\n"), "ok");
  EXPECT_EQ(verdict("from: App <me@MINE.FR>\r\n"), "ok");
  EXPECT_EQ(verdict("From: \"me@mine.fr\" <me@mine.fr>\r\n"), "ok");
  EXPECT_EQ(verdict("From: \"Desk (desk@mine.fr)\" <me@mine.fr> (me@mine.fr)\r\n"), "ok");
  EXPECT_EQ(verdict("From: App\r\n <me@mine.fr>\r\n"), "ok");
  EXPECT_EQ(verdict("From: me@mine.fr, desk@mine.fr\r\nSender: me@mine.fr\r\n"), "ok");
  EXPECT_EQ(verdict("From: desk@mine.fr\r\nSender: App <me@mine.fr>\r\n"), "ok");
  EXPECT_EQ(verdict("From: me@mine.fr\r\nResent-Date: x\r\nResent-From: me@mine.fr\r\n"
                    "Resent-Sender: desk@mine.fr\r\n"),
            "ok");
  EXPECT_EQ(verdict("From: =?utf-8?q?H=C3=B4pital?= <me@mine.fr>\r\n"), "ok");
  EXPECT_EQ(verdict("From: Hôpital <me@mine.fr>\r\n", true), "ok");
}

TEST(AuthorCheck, TheFromField) {
  EXPECT_EQ(verdict(""), "from missing");
  EXPECT_EQ(verdict("From: me@mine.fr\r\nFROM: me@mine.fr\r\n"), "from several_fields");
  EXPECT_EQ(verdict("From:\r\n"), "from empty");
  EXPECT_EQ(verdict("From: other@mine.fr\r\n"), "from not_allowed");
  EXPECT_EQ(verdict("From: me@mine.fr, other@mine.fr\r\nSender: me@mine.fr\r\n"),
            "from not_allowed");
  EXPECT_EQ(verdict("From: <victim@other.fr> <me@mine.fr>\r\n"), "from text_after_address");
  EXPECT_EQ(verdict("From: victim@other.fr <me@mine.fr>\r\n"), "from text_after_address");
  EXPECT_EQ(verdict("From: victim@other.fr: me@mine.fr;\r\n"), "from text_after_address");
  EXPECT_EQ(verdict("From: Team: me@mine.fr;\r\n"), "from group");
  EXPECT_EQ(verdict("From: undisclosed:;\r\n"), "from group");
  EXPECT_EQ(verdict("From: me@[127.0.0.1]\r\n"), "from not_allowed");
  EXPECT_EQ(verdict("From: \"me me\"@mine.fr\r\n"), "from not_allowed");
  EXPECT_EQ(verdict("From: Hôpital <me@mine.fr>\r\n"), "from eight_bit");
  EXPECT_EQ(verdict("From: <@relay.fr:me@mine.fr>\r\n"), "from obsolete_route");
}

TEST(AuthorCheck, WhatTheReaderShows) {
  EXPECT_EQ(verdict("From: \"victim@other.fr\" <me@mine.fr>\r\n"), "from display_name_address");
  EXPECT_EQ(verdict("From: =?utf-8?q?victim=40other=2Efr?= <me@mine.fr>\r\n"),
            "from display_name_address");
  EXPECT_EQ(verdict("From: =?utf-8?q?me=EF=BC=A0mine=2Efr?= <me@mine.fr>\r\n"),
            "from display_name_address");
  EXPECT_EQ(verdict("From: =?utf-8?q?App=E2=80=AE?= <me@mine.fr>\r\n"), "from invisible_character");
  EXPECT_EQ(verdict("From: =?utf-8?q?App=01?= <me@mine.fr>\r\n"), "from control_character");
  EXPECT_EQ(verdict("From: App\xe2\x80\x8b <me@mine.fr>\r\n", true), "from invisible_character");
  EXPECT_EQ(verdict("From: me@mine.fr (victim@other.fr)\r\n"), "from comment_address");
  EXPECT_EQ(verdict("From: me@mine.fr (=?utf-8?q?victim=40other=2Efr?=)\r\n"),
            "from comment_address");
  EXPECT_EQ(verdict("From: me(victim@other.fr)@mine.fr\r\n"), "from comment_address");
  EXPECT_EQ(verdict("From: me@mine.fr (=?utf-8?q?=E2=80=AE?=)\r\n"), "from invisible_character");
}

TEST(AuthorCheck, TheSenderField) {
  EXPECT_EQ(verdict("From: me@mine.fr, desk@mine.fr\r\n"), "sender missing");
  EXPECT_EQ(verdict("From: me@mine.fr\r\nSender: other@mine.fr\r\n"), "sender not_allowed");
  EXPECT_EQ(verdict("From: me@mine.fr\r\nSender: me@mine.fr, desk@mine.fr\r\n"),
            "sender several_mailboxes");
  EXPECT_EQ(verdict("From: me@mine.fr\r\nSender: me@mine.fr\r\nsender: me@mine.fr\r\n"),
            "sender several_fields");
  EXPECT_EQ(verdict("From: me@mine.fr\r\nSender: G: me@mine.fr;\r\n"), "sender group");
  EXPECT_EQ(verdict("From: me@mine.fr\r\nSender: \"x@y.fr\" <me@mine.fr>\r\n"),
            "sender display_name_address");
}

TEST(AuthorCheck, EveryResentBlock) {
  const std::string from = "From: me@mine.fr\r\n";
  EXPECT_EQ(verdict(from + "Resent-From: victim@other.fr\r\n"), "resent_from not_allowed");
  EXPECT_EQ(verdict(from + "Resent-From: me@mine.fr\r\nResent-Sender: v@o.fr\r\n"),
            "resent_sender not_allowed");
  EXPECT_EQ(verdict(from + "Resent-Sender: me@mine.fr\r\n"), "resent_from missing");
  EXPECT_EQ(verdict(from + "Resent-From: me@mine.fr, desk@mine.fr\r\n"), "resent_sender missing");
  EXPECT_EQ(verdict(from + "Resent-From: me@mine.fr\r\nResent-From: me@mine.fr\r\n"),
            "resent_from several_fields");
  // An older block is checked as well; blocks are runs of adjacent Resent-* fields.
  EXPECT_EQ(verdict(from + "Resent-From: me@mine.fr\r\nX: y\r\nResent-From: v@o.fr\r\n"),
            "resent_from not_allowed");
  EXPECT_EQ(verdict(from + "Resent-From: me@mine.fr\r\nX: y\r\nResent-From: desk@mine.fr\r\n"),
            "ok");
  EXPECT_EQ(verdict(from + "Resent-From: v@o.fr <me@mine.fr>\r\n"),
            "resent_from text_after_address");
  // The message's own From is checked first.
  EXPECT_EQ(verdict("Resent-From: me@mine.fr\r\n"), "from missing");
}

TEST(AuthorCheck, TheHeaderSectionMustReadTheSameForEveryReader) {
  EXPECT_EQ(verdict("X: a\rFrom: v@o.fr\r\nFrom: me@mine.fr\r\n"), "header bare_cr");
  EXPECT_EQ(verdict("Junk\r\nFrom: me@mine.fr\r\n"), "header not_a_field");
  EXPECT_EQ(verdict(" From: v@o.fr\r\nFrom: me@mine.fr\r\n"), "header continuation_first");
  EXPECT_EQ(verdict("From : me@mine.fr\r\n"), "header spaced_field_name");
  EXPECT_EQ(verdict(std::string("X: \0\r\nFrom: me@mine.fr\r\n", 24)), "header nul");
}

}  // namespace
}  // namespace mssgate::core

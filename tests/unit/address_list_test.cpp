// RFC 5322 address lists as mail readers show them: protocol/address_list and
// protocol/display_text. A header value is read whole; the folds it may have are tried at every
// place a fold can go.
#include "protocol/address_list.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "protocol/display_text.hpp"
#include "protocol/message_header.hpp"

namespace mssgate::protocol {
namespace {

// "address|display name" of each mailbox, or "!problem".
std::vector<std::string> reading(std::string_view value, bool utf8 = false) {
  auto list = read_address_list(value, {utf8});
  if (!list.readable()) return {"!" + std::string(list.problem)};
  std::vector<std::string> out;
  for (const auto& m : list.mailboxes)
    out.push_back(m.address + "|" + m.display_name);
  return out;
}

using Lines = std::vector<std::string>;

TEST(AddressList, ReadsTheCurrentSyntax) {
  struct Case {
    const char* value;
    Lines expected;
  };
  const Case cases[] = {
      {"me@mine.fr", {"me@mine.fr|"}},
      {"  me@mine.fr  ", {"me@mine.fr|"}},
      {"<me@mine.fr>", {"me@mine.fr|"}},
      {"App Hopital <me@mine.fr>", {"me@mine.fr|App Hopital"}},
      {"App<me@mine.fr>", {"me@mine.fr|App"}},
      {"\"Hopital, service X\" <me@mine.fr>", {"me@mine.fr|Hopital, service X"}},
      {"\"A \\\"B\\\" \\\\ C\" <me@mine.fr>", {"me@mine.fr|A \"B\" \\ C"}},
      {"\"\" <me@mine.fr>", {"me@mine.fr|"}},
      {"App \"Q\" Hopital <me@mine.fr>", {"me@mine.fr|App Q Hopital"}},
      {"me@MINE.FR", {"me@MINE.FR|"}},
      {"first.last+tag@sub.mine.fr", {"first.last+tag@sub.mine.fr|"}},
      {"\"me\"@mine.fr", {"me@mine.fr|"}},
      {"\"m\\e\"@mine.fr", {"me@mine.fr|"}},
      {"\"me me\"@mine.fr", {"\"me me\"@mine.fr|"}},
      {"\"a@b.fr\"@mine.fr", {"\"a@b.fr\"@mine.fr|"}},
      {"me@[127.0.0.1]", {"me@[127.0.0.1]|"}},
      {"me @mine.fr", {"me@mine.fr|"}},
      {"me@ mine.fr", {"me@mine.fr|"}},
      {"me(x)@mine.fr(y)", {"me@mine.fr|"}},
      {"me@mine.fr (App)", {"me@mine.fr|"}},
      {"(App) me@mine.fr", {"me@mine.fr|"}},
      {"App (x) <me@mine.fr> (y)", {"me@mine.fr|App"}},
      {"a@b.fr, C <c@d.fr>,e@f.fr", {"a@b.fr|", "c@d.fr|C", "e@f.fr|"}},
      {"G: a@b.fr, c@d.fr;", {"a@b.fr|", "c@d.fr|"}},
      {"G: a@b.fr;, e@f.fr", {"a@b.fr|", "e@f.fr|"}},
      {"undisclosed:;", {}},
      {"=?utf-8?q?H=C3=B4pital?= <me@mine.fr>", {"me@mine.fr|Hôpital"}},
      {"=?UTF-8?B?SMO0cGl0YWw=?= <me@mine.fr>", {"me@mine.fr|Hôpital"}},
      {"=?iso-8859-1?q?H=F4pital?= <me@mine.fr>", {"me@mine.fr|Hôpital"}},
      {"=?iso-8859-15?q?=A4?= <me@mine.fr>", {"me@mine.fr|€"}},
      {"=?windows-1252?q?=80_=9C?= <me@mine.fr>", {"me@mine.fr|€ œ"}},
      {"=?utf-8*fr?q?App?= <me@mine.fr>", {"me@mine.fr|App"}},
      {"=?utf-8?q?A?= =?utf-8?q?B?= C <me@mine.fr>", {"me@mine.fr|AB C"}},
      {"=?utf-8?q?victim=40other=2Efr?= <me@mine.fr>", {"me@mine.fr|victim@other.fr"}},
  };
  for (const auto& c : cases)
    EXPECT_EQ(reading(c.value), c.expected) << c.value;
  EXPECT_EQ(read_address_list("undisclosed:;").groups, 1u);
  EXPECT_EQ(read_address_list("G: a@b.fr;, H:;").groups, 2u);
  EXPECT_EQ(read_address_list("a@b.fr").groups, 0u);
}

TEST(AddressList, NamesWhyAValueHasNoSingleReading) {
  struct Case {
    std::string value;
    const char* problem;
  };
  const Case cases[] = {
      // The three forms that passed for another author.
      {"<victim@other.fr> <me@mine.fr>", "text_after_address"},
      {"victim@other.fr <me@mine.fr>", "text_after_address"},
      {"victim@other.fr: me@mine.fr;", "text_after_address"},
      {"me@mine.fr <me@mine.fr>", "text_after_address"},
      {"App <me@mine.fr> victim@other.fr", "text_after_address"},
      {"me@mine.fr victim@other.fr", "text_after_address"},
      {"me@mine.fr;", "text_after_address"},
      {"me@mine.fr>", "text_after_address"},
      {"G: a@b.fr x;", "text_after_address"},
      {"'victim@other.fr' <me@mine.fr>", "text_after_address"},
      {"App <<me@mine.fr>>", "unreadable"},
      {"App <me@mine.fr <x@y.fr>>", "unreadable"},
      {"App me@mine.fr", "unreadable"},
      {"\"App\" me@mine.fr", "unreadable"},
      {">", "unreadable"},
      {"me@mine.fr]", "unreadable"},
      {"me\\@mine.fr", "unreadable"},
      {"me@\"mine\".fr", "unreadable"},
      {"me@[a[b]", "unreadable"},
      {"", "empty"},
      {"   ", "empty"},
      {"(only a comment)", "empty"},
      {"App <>", "empty_address"},
      {"me", "no_domain"},
      {"App Hopital", "no_domain"},
      {"<me>", "no_domain"},
      {"@mine.fr", "empty_local_part"},
      {"\"\"@mine.fr", "empty_local_part"},
      {"me@", "empty_domain"},
      {"me@,a@b.fr", "empty_domain"},
      {"me@mine.fr.", "bad_dot"},
      {"me@mine..fr", "bad_dot"},
      {"me@.mine.fr", "bad_dot"},
      {".me@mine.fr", "bad_dot"},
      {"me.@mine.fr", "bad_dot"},
      {"me..x@mine.fr", "bad_dot"},
      {"App <me@mine.fr", "unterminated_angle"},
      {"<me", "unterminated_angle"},
      {"\"App <me@mine.fr>", "unterminated_quote"},
      {"\"App\\", "unterminated_quote"},
      {"me@mine.fr (App", "unterminated_comment"},
      {"me@mine.fr ((App)", "unterminated_comment"},
      {"me@mine.fr)", "unbalanced_comment"},
      {"me@[127.0.0.1", "unterminated_literal"},
      {"G: a@b.fr", "unterminated_group"},
      {"G: a@b.fr,", "unterminated_group"},
      {"G: H: a@b.fr;;", "nested_group"},
      {": a@b.fr;", "unreadable"},
      {"<@relay.fr:me@mine.fr>", "obsolete_route"},
      {"<@a.fr,@b.fr:me@mine.fr>", "obsolete_route"},
      {"me . x@mine.fr", "obsolete_local_part"},
      {"me(c).x@mine.fr", "obsolete_local_part"},
      {"\"me\".x@mine.fr", "obsolete_local_part"},
      {"me@mine . fr", "obsolete_domain"},
      {"me@mine(c).fr", "obsolete_domain"},
      {"Dr. App <me@mine.fr>", "obsolete_phrase"},
      {"G.: a@b.fr;", "obsolete_phrase"},
      {",me@mine.fr", "obsolete_empty_element"},
      {"me@mine.fr,", "obsolete_empty_element"},
      {"me@mine.fr,,a@b.fr", "obsolete_empty_element"},
      {"G: a@b.fr,;", "obsolete_empty_element"},
      {"G: ,a@b.fr;", "obsolete_empty_element"},
      {"me@[a\\]b]", "obsolete_quoted_pair"},
      {"=?utf-8?q?App?=x <me@mine.fr>", "bad_encoded_word"},
      {"x=?utf-8?q?App?= <me@mine.fr>", "bad_encoded_word"},
      {"=?utf-8?q?App?=\"x\" <me@mine.fr>", "bad_encoded_word"},
      {"=?utf-8?b?!!!?= <me@mine.fr>", "bad_encoded_word"},
      {"=?utf-8?q?=FF?= <me@mine.fr>", "bad_encoded_word"},
      {"=?utf-8?q?=C3?= <me@mine.fr>", "bad_encoded_word"},
      {"=?us-ascii?q?=E9?= <me@mine.fr>", "bad_encoded_word"},
      {"=?windows-1252?q?=81?= <me@mine.fr>", "bad_encoded_word"},
      {"=?utf-8?x?abc?= <me@mine.fr>", "bad_encoded_word"},
      {"=?utf-8?q?a=4?= <me@mine.fr>", "bad_encoded_word"},
      {"=??q?abc?= <me@mine.fr>", "bad_encoded_word"},
      {"=?koi8-r?q?App?= <me@mine.fr>", "encoded_word_charset"},
      {"\"=?utf-8?q?victim@other.fr?=\" <me@mine.fr>", "encoded_word_in_quotes"},
      {"=?utf-8?q?me?=@mine.fr", "encoded_word_in_address"},
      {"=?utf-8?q?app.hopital?=@mine.fr", "encoded_word_in_address"},
      {"me@=?utf-8?q?mine?=.fr", "encoded_word_in_address"},
      {"\"=?x?q?y?=\"@mine.fr", "encoded_word_in_address"},
      {std::string("me@mine.fr\0victim@other.fr", 26), "control_character"},
      {"me@mine.fr\rFrom: victim@other.fr", "control_character"},
      {"me@mine.fr\r\nvictim@other.fr", "control_character"},
      {"me@mine.fr\x7f", "control_character"},
      {"App\x01 <me@mine.fr>", "control_character"},
      {"Hôpital <me@mine.fr>", "eight_bit"},
      {"me@mîne.fr", "eight_bit"},
  };
  for (const auto& c : cases)
    EXPECT_EQ(reading(c.value), Lines{"!" + std::string(c.problem)}) << c.value;
}

TEST(AddressList, Utf8IsReadOnlyWhenAnnounced) {
  EXPECT_EQ(reading("Hôpital Médecine <me@mine.fr>", true), Lines{"me@mine.fr|Hôpital Médecine"});
  EXPECT_EQ(reading("\"Hôpital, X\" <me@mine.fr> (Hôpital)", true), Lines{"me@mine.fr|Hôpital, X"});
  // A look-alike letter keeps the address apart from the real one.
  EXPECT_EQ(reading("me@m\xd0\xb0ine.fr", true), Lines{"me@m\xd0\xb0ine.fr|"});
  EXPECT_EQ(reading("H\xc3 <me@mine.fr>", true), Lines{"!bad_utf8"});
  EXPECT_EQ(reading("H\xc0\xa0 <me@mine.fr>", true), Lines{"!bad_utf8"});      // overlong
  EXPECT_EQ(reading("H\xed\xa0\x80 <me@mine.fr>", true), Lines{"!bad_utf8"});  // surrogate
  EXPECT_EQ(reading("Hôpital <me@mine.fr>", false), Lines{"!eight_bit"});
}

TEST(AddressList, KeepsCommentsForTheirCheck) {
  auto list = read_address_list(
      "me(a)@mine.fr (x (nested \\) y) z) (=?utf-8?q?victim=40other=2Efr?= =?bad?=)");
  ASSERT_TRUE(list.readable()) << list.problem;
  EXPECT_EQ(list.comments,
            (Lines{"a", "x (nested ) y) z", "=?utf-8?q?victim=40other=2Efr?= =?bad?="}));
  EXPECT_EQ(list.decoded_comments, (Lines{"a", "x (nested ) y) z", "victim@other.fr =?bad?="}));
}

// Every space of `value` folded in each of the ways a header may fold it.
std::vector<std::string> folded_variants(const std::string& value) {
  std::vector<std::string> out;
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] != ' ') continue;
    for (const char* fold : {"\r\n ", "\r\n\t", "\n ", "\r\n  \t", " \r\n "}) {
      out.push_back(value.substr(0, i) + fold + value.substr(i + 1));
    }
  }
  return out;
}

TEST(AddressList, FoldsReadAsWhiteSpace) {
  for (std::string value :
       {"App Hopital <me@mine.fr>", "a@b.fr , C (x y) <c@d.fr>", "G : a@b.fr , c@d.fr ;",
        "=?utf-8?q?A?= =?utf-8?q?B?= <me@mine.fr>", "<victim@other.fr> <me@mine.fr>",
        "victim@other.fr <me@mine.fr>", "me@mine.fr (App", "Dr. App <me@mine.fr>"}) {
    auto expected = reading(value);
    for (const auto& variant : folded_variants(value))
      EXPECT_EQ(reading(variant), expected) << testing::PrintToString(variant);
  }
  // Inside a quoted string the fold's white space stays.
  EXPECT_EQ(reading("\"App\r\n Hopital\" <me@mine.fr>"), Lines{"me@mine.fr|App Hopital"});
  // A line break that is not followed by white space is not a fold.
  EXPECT_EQ(reading("App\r\n<me@mine.fr>"), Lines{"!control_character"});
  EXPECT_EQ(reading("App\n<me@mine.fr>"), Lines{"!control_character"});
  EXPECT_EQ(reading("me@mine.fr\r\n"), Lines{"!control_character"});
}

TEST(DisplayText, DecodesEncodedWords) {
  std::string_view problem;
  EXPECT_EQ(decode_encoded_word("=?utf-8?q?a_b=3Dc?=", problem), "a b=c");
  EXPECT_EQ(decode_encoded_word("=?UTF-8?Q?=c3=a9?=", problem), "é");
  EXPECT_EQ(decode_encoded_word("=?utf-8?b?"
                                "?=",
                                problem),
            "");
  EXPECT_EQ(decode_encoded_word("=?us-ascii?q?abc?=", problem), "abc");
  EXPECT_FALSE(decode_encoded_word("=?utf-8?b?SMO0cGl0YWw?=", problem));  // no padding
  EXPECT_EQ(problem, "bad_encoded_word");
  EXPECT_FALSE(decode_encoded_word("=?big5?q?abc?=", problem));
  EXPECT_EQ(problem, "encoded_word_charset");
  EXPECT_FALSE(decode_encoded_word("=?utf-8?q?a b?=", problem));
  EXPECT_FALSE(decode_encoded_word("=?utf-8?q?abc?", problem));
  EXPECT_FALSE(decode_encoded_word("=?utf-8?q?a?b?=", problem));
  EXPECT_TRUE(encoded_word_outline("=?a?q?b?="));
  EXPECT_FALSE(encoded_word_outline("=?a?q?b?c?="));
  EXPECT_FALSE(encoded_word_outline("x=?a?q?b?="));
}

TEST(DisplayText, FindsTheAddressesAReaderShows) {
  auto addresses = [](std::string_view text) {
    auto shown = read_shown_text(text);
    EXPECT_EQ(shown.problem, "") << text;
    return shown.addresses;
  };
  EXPECT_EQ(addresses("App Hopital"), Lines{});
  EXPECT_EQ(addresses("Cabinet @ Lyon"), Lines{});
  EXPECT_EQ(addresses("victim@other.fr"), Lines{"victim@other.fr"});
  EXPECT_EQ(addresses("Me\" <Victim@Other.FR>"), Lines{"victim@other.fr"});
  EXPECT_EQ(addresses("'victim@other.fr'."), Lines{"victim@other.fr"});
  EXPECT_EQ(addresses("a@b.fr via c@d.fr"), (Lines{"a@b.fr", "c@d.fr"}));
  EXPECT_EQ(addresses("(a@b.fr)"), Lines{"a@b.fr"});
  // Look-alike at-signs and letters never give a real address.
  EXPECT_EQ(addresses("victim\xef\xbc\xa0other.fr"), Lines{"victim\xef\xbc\xa0other.fr"});
  EXPECT_EQ(addresses("victim\xef\xb9\xabother.fr"), Lines{"victim\xef\xb9\xabother.fr"});
  EXPECT_EQ(addresses("vi\xd1\x81tim@other.fr"), Lines{"vi\xd1\x81tim@other.fr"});
  EXPECT_EQ(addresses("a\xc2\xa0"
                      "b@c.fr"),
            Lines{"b@c.fr"});  // no-break space ends a run
}

TEST(DisplayText, RefusesControlsAndInvisibleCharacters) {
  for (std::string_view text : {"App\xe2\x80\xae",
                                "A\xe2\x80\x8b"
                                "B",
                                "A\xe2\x81\xa7"
                                "B",
                                "A\xef\xbb\xbf",
                                "A\xc2\xad"
                                "B",
                                "A\xd8\x9c", "A\xe2\x80\x8e",
                                "A\xf3\xa0\x81\x80"
                                "B"}) {
    EXPECT_EQ(read_shown_text(text).problem, "invisible_character") << testing::PrintToString(text);
  }
  for (std::string_view text : {"A\x01", "A\x7f", "A\xc2\x85", "A\xff"}) {
    EXPECT_EQ(read_shown_text(text).problem, "control_character") << testing::PrintToString(text);
  }
  EXPECT_EQ(read_shown_text("A\tB é €").problem, "");
}

std::string feed_one_byte_at_a_time(HeaderSectionReader& reader, std::string_view section) {
  for (char c : section) {
    if (reader.feed(std::string_view(&c, 1)).status == HeaderSectionReader::Status::kComplete)
      break;
  }
  return std::string(reader.structure_problem());
}

TEST(HeaderSection, KeepsTheRawValuesWithTheirFolds) {
  HeaderSectionReader reader(1024);
  EXPECT_EQ(feed_one_byte_at_a_time(
                reader, "From: App\r\n <me@mine.fr>\r\nTo: a@b.fr,\n c@d.fr\r\nX:\r\n\r\nbody"),
            "");
  auto fields = reader.fields();
  ASSERT_EQ(fields.size(), 3u);
  EXPECT_EQ(fields[0].raw, " App\r\n <me@mine.fr>");
  EXPECT_EQ(fields[0].value, "App <me@mine.fr>");
  EXPECT_EQ(fields[1].raw, " a@b.fr,\n c@d.fr");
  EXPECT_EQ(fields[2].raw, "");
}

TEST(HeaderSection, NamesWhatReadersMayReadOtherwise) {
  struct Case {
    std::string section;
    const char* problem;
  };
  const Case cases[] = {
      {"From: a@b.fr\r\nSubject: x\r\n\r\n", ""},
      {"From: a@b.fr\nSubject: x\n\n", ""},
      {"From: a@b.fr\r\n", ""},
      {std::string("X: a\0b\r\nFrom: a@b.fr\r\n\r\n", 24), "nul"},
      {"X: a\rFrom: v@o.fr\r\nFrom: a@b.fr\r\n\r\n", "bare_cr"},
      {"From: a@b.fr\r\r\n\r\n", "bare_cr"},
      {" From: v@o.fr\r\nFrom: a@b.fr\r\n\r\n", "continuation_first"},
      {"Junk\r\nFrom: a@b.fr\r\n\r\n", "not_a_field"},
      {": x\r\nFrom: a@b.fr\r\n\r\n", "not_a_field"},
      {"From v@o.fr Mon Jan 1 00:00:00 2024\r\nFrom: a@b.fr\r\n\r\n", "not_a_field"},
      {"X\xc3\xa9: y\r\nFrom: a@b.fr\r\n\r\n", "not_a_field"},
      {"From : a@b.fr\r\n\r\n", "spaced_field_name"},
      {"From\t: a@b.fr\r\n\r\n", "spaced_field_name"},
  };
  for (const auto& c : cases) {
    HeaderSectionReader reader(1024);
    EXPECT_EQ(feed_one_byte_at_a_time(reader, c.section), c.problem)
        << testing::PrintToString(c.section);
  }
}

}  // namespace
}  // namespace mssgate::protocol

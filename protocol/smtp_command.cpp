#include "protocol/smtp_command.hpp"

#include <cctype>

#include "protocol/ascii.hpp"
#include "protocol/ip_address.hpp"

namespace mssgate::protocol {
namespace {

bool valid_path_address(std::string_view address) {
  if (address.size() > 254) return false;
  for (char c : address) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '<' || c == '>') return false;
  }
  size_t at = address.rfind('@');
  return at != std::string_view::npos && at > 0 && at + 1 < address.size();
}

bool letter_or_digit(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool domain(std::string_view text) {
  if (text.empty() || text.size() > 255) return false;
  size_t label = 0;  // the length of the label so far
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '.') {
      if (label == 0 || text[i - 1] == '-') return false;
      label = 0;
    } else if (letter_or_digit(c) || (c == '-' && label > 0)) {
      if (++label > 63) return false;
    } else {
      return false;
    }
  }
  return label > 0 && text.back() != '-';
}

bool address_literal(std::string_view text) {
  if (text.size() < 3 || text.front() != '[' || text.back() != ']') return false;
  std::string_view inside = text.substr(1, text.size() - 2);
  if (ascii_istarts_with(inside, "IPv6:")) {
    std::string_view address = inside.substr(5);  // (an IPv4-mapped address is IPv6 syntax too)
    return address.find(':') != std::string_view::npos && parse_ip_address(address);
  }
  // IPv4: four decimal numbers (inet_pton takes nothing else for AF_INET).
  auto address = parse_ip_address(inside);
  return address && !address->v6 && inside.find(':') == std::string_view::npos;
}

}  // namespace

bool ehlo_domain_or_address_literal(std::string_view argument) {
  return domain(argument) || address_literal(argument);
}

SmtpCommand parse_smtp_command(std::string_view line) {
  size_t space = line.find(' ');
  SmtpCommand command;
  command.verb = ascii_upper(line.substr(0, space));
  if (space != std::string_view::npos) command.argument = std::string(line.substr(space + 1));
  return command;
}

std::optional<SmtpPathArgument> parse_path_argument(std::string_view argument,
                                                    std::string_view keyword) {
  if (argument.size() < keyword.size() + 1 ||
      !ascii_iequals(argument.substr(0, keyword.size()), keyword) ||
      argument[keyword.size()] != ':') {
    return std::nullopt;
  }
  std::string_view rest = argument.substr(keyword.size() + 1);
  while (!rest.empty() && rest.front() == ' ')
    rest.remove_prefix(1);  // "FROM: <a>" is common
  if (rest.empty() || rest.front() != '<') return std::nullopt;
  size_t close = rest.find('>');
  if (close == std::string_view::npos) return std::nullopt;
  SmtpPathArgument out;
  std::string_view address = rest.substr(1, close - 1);
  // A source route ("@a,@b:user@c") is obsolete; keep the mailbox (RFC 5321 §4.1.2, C.).
  if (!address.empty() && address.front() == '@') {
    size_t colon = address.find(':');
    if (colon == std::string_view::npos) return std::nullopt;
    address.remove_prefix(colon + 1);
  }
  if (!address.empty() && !valid_path_address(address)) return std::nullopt;
  out.address = std::string(address);
  rest.remove_prefix(close + 1);
  if (!rest.empty() && rest.front() != ' ') return std::nullopt;
  while (!rest.empty() && rest.front() == ' ')
    rest.remove_prefix(1);
  out.parameter_text = std::string(rest);
  while (!rest.empty()) {
    size_t space = rest.find(' ');
    std::string_view parameter = rest.substr(0, space);
    rest = space == std::string_view::npos ? std::string_view{} : rest.substr(space + 1);
    if (parameter.empty()) continue;
    size_t equals = parameter.find('=');
    std::string_view key = parameter.substr(0, equals);
    if (key.empty() || !std::isalnum(static_cast<unsigned char>(key.front()))) return std::nullopt;
    for (char c : key) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return std::nullopt;
    }
    std::string value;
    if (equals != std::string_view::npos) {
      value = std::string(parameter.substr(equals + 1));
      for (char c : value) {
        unsigned char u = static_cast<unsigned char>(c);
        if (u < 0x21 || u == 0x7f || c == '=') return std::nullopt;
      }
    }
    out.parameters.emplace_back(ascii_upper(key), std::move(value));
  }
  return out;
}

std::optional<std::string> xtext_decode(std::string_view value) {
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i < value.size(); ++i) {
    auto u = static_cast<unsigned char>(value[i]);
    if (u < 33 || u > 126 || value[i] == '=') return std::nullopt;
    if (value[i] != '+') {
      out += value[i];
      continue;
    }
    if (i + 2 >= value.size()) return std::nullopt;
    int high = digit(value[i + 1]), low = digit(value[i + 2]);
    if (high < 0 || low < 0) return std::nullopt;
    out += static_cast<char>(high * 16 + low);
    i += 2;
  }
  return out;
}

std::string xtext_encode(std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : value) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 33 || u > 126 || c == '+' || c == '=') {
      out += '+';
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace mssgate::protocol

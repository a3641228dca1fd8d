#include "protocol/ins_matricule.hpp"

#include <cstdint>

namespace mssgate::protocol {
namespace {

constexpr size_t kMatriculeLength = 13;
constexpr size_t kKeyLength = 2;
constexpr size_t kDepartment = 5;  // where the department's two characters start (0-based)
constexpr uint64_t kModulus = 97;

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

uint64_t digit_value(char c) {
  return static_cast<uint64_t>(c - '0');
}

}  // namespace

InsMatricule check_ins_matricule(std::string_view value) {
  if (value.size() != kMatriculeLength + kKeyLength) return InsMatricule::kWrongLength;
  // The number the key is computed from: Corsica's departments read as 19 (2A) and 18 (2B).
  uint64_t number = 0;
  for (size_t i = 0; i < kMatriculeLength; ++i) {
    char c = value[i];
    uint64_t digit = 0;
    if (is_digit(c)) {
      digit = digit_value(c);
    } else if (i == kDepartment + 1 && value[kDepartment] == '2' && (c == 'A' || c == 'B')) {
      // "2A" is read as 19 and "2B" as 18: the department's "2" becomes a "1".
      number -= 1;
      digit = c == 'A' ? 9 : 8;
    } else {
      return InsMatricule::kBadCharacter;
    }
    number = number * 10 + digit;
  }
  if (!is_digit(value[kMatriculeLength]) || !is_digit(value[kMatriculeLength + 1]))
    return InsMatricule::kBadCharacter;
  uint64_t key =
      digit_value(value[kMatriculeLength]) * 10 + digit_value(value[kMatriculeLength + 1]);
  if (key != kModulus - number % kModulus) return InsMatricule::kBadControlKey;
  return InsMatricule::kWellFormed;
}

std::string_view to_string(InsMatricule verdict) {
  switch (verdict) {
    case InsMatricule::kWellFormed:
      return "well_formed";
    case InsMatricule::kWrongLength:
      return "wrong_length";
    case InsMatricule::kBadCharacter:
      return "bad_character";
    case InsMatricule::kBadControlKey:
      return "bad_control_key";
  }
  return "unknown";
}

}  // namespace mssgate::protocol

#pragma once
// Whether an INS value is a well-formed matricule: the 13 characters of a NIR or NIA followed by
// its 2-digit control key (docs/indicators.md, "A well-formed INS"). Only a verdict comes out:
// never the value, nor any part of it.

#include <string_view>

namespace mssgate::protocol {

enum class InsMatricule {
  kWellFormed,
  kWrongLength,    // not 15 characters
  kBadCharacter,   // not digits, or a letter other than the department 2A or 2B
  kBadControlKey,  // the key is not 97 minus the 13 characters' number modulo 97
};

// The rule (INSEE's, for the NIR and the NIA): 15 characters; the first 13 are digits, except
// that characters 6 and 7 may be the Corsican departments "2A" and "2B"; the last two are the
// control key, 97 - (N mod 97), where N is the 13 characters read as a number with "2A" read as
// "19" and "2B" as "18".
InsMatricule check_ins_matricule(std::string_view value);

std::string_view to_string(InsMatricule verdict);

}  // namespace mssgate::protocol

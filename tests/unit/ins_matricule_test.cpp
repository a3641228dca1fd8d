#include "protocol/ins_matricule.hpp"

#include <gtest/gtest.h>

#include <string>

using mssgate::protocol::check_ins_matricule;
using mssgate::protocol::InsMatricule;

TEST(InsMatricule, WellFormedMatriculesAndTheirKeys) {
  // 13 characters and 97 - (N mod 97): 1000175101001 mod 97 = 46, key 51.
  EXPECT_EQ(check_ins_matricule("100017510100151"), InsMatricule::kWellFormed);
  EXPECT_EQ(check_ins_matricule("262087503203977"), InsMatricule::kWellFormed);
  // The test INS of ANS's CDA examples.
  EXPECT_EQ(check_ins_matricule("277076322082910"), InsMatricule::kWellFormed);
  // N a multiple of 97: the key is 97, never 00.
  EXPECT_EQ(check_ins_matricule("100000000004797"), InsMatricule::kWellFormed);
  EXPECT_EQ(check_ins_matricule("100000000004700"), InsMatricule::kBadControlKey);
}

TEST(InsMatricule, CorsicanDepartmentsAreReadAs19And18) {
  // 2840319004123 mod 97 gives key 23 (2A read as 19); 2840318004123 gives 50 (2B read as 18).
  EXPECT_EQ(check_ins_matricule("284032A00412323"), InsMatricule::kWellFormed);
  EXPECT_EQ(check_ins_matricule("284032B00412350"), InsMatricule::kWellFormed);
  // The same keys with the other department, or with the department read as 20, are wrong.
  EXPECT_EQ(check_ins_matricule("284032B00412323"), InsMatricule::kBadControlKey);
  EXPECT_EQ(check_ins_matricule("284032A00412350"), InsMatricule::kBadControlKey);
  // A letter anywhere else, another letter, a lower-case one, or A/B not after a 2.
  EXPECT_EQ(check_ins_matricule("284032C00412323"), InsMatricule::kBadCharacter);
  EXPECT_EQ(check_ins_matricule("284032a00412323"), InsMatricule::kBadCharacter);
  EXPECT_EQ(check_ins_matricule("284031A00412323"), InsMatricule::kBadCharacter);
  EXPECT_EQ(check_ins_matricule("28403A200412323"), InsMatricule::kBadCharacter);
  EXPECT_EQ(check_ins_matricule("2840322004A2323"), InsMatricule::kBadCharacter);
  EXPECT_EQ(check_ins_matricule("284032200412A23"), InsMatricule::kBadCharacter);
  EXPECT_EQ(check_ins_matricule("28403220041232A"), InsMatricule::kBadCharacter);
}

TEST(InsMatricule, WrongLengthsAndCharacters) {
  EXPECT_EQ(check_ins_matricule(""), InsMatricule::kWrongLength);
  EXPECT_EQ(check_ins_matricule("10001751010015"), InsMatricule::kWrongLength);
  EXPECT_EQ(check_ins_matricule("1000175101001510"), InsMatricule::kWrongLength);
  // The values the earlier fixtures carried: 16 characters, and a single digit.
  EXPECT_EQ(check_ins_matricule("248092A123456789"), InsMatricule::kWrongLength);
  EXPECT_EQ(check_ins_matricule("1"), InsMatricule::kWrongLength);
  EXPECT_EQ(check_ins_matricule("1 00017510100151"), InsMatricule::kWrongLength);
  EXPECT_EQ(check_ins_matricule("10001751010015 "), InsMatricule::kBadCharacter);
  EXPECT_EQ(check_ins_matricule(std::string("1000175\0"
                                            "1001051",
                                            15)),
            InsMatricule::kBadCharacter);
}

TEST(InsMatricule, EveryChangeOfOneDigitIsCaught) {
  const std::string good = "262087503203977";
  for (size_t i = 0; i < good.size(); ++i) {
    for (char digit = '0'; digit <= '9'; ++digit) {
      if (digit == good[i]) continue;
      std::string changed = good;
      changed[i] = digit;
      EXPECT_EQ(check_ins_matricule(changed), InsMatricule::kBadControlKey) << changed;
    }
  }
}

TEST(InsMatricule, VerdictsHaveWords) {
  EXPECT_EQ(to_string(InsMatricule::kWellFormed), "well_formed");
  EXPECT_EQ(to_string(InsMatricule::kBadControlKey), "bad_control_key");
}

#pragma once
// The variables scripts/postgres writes in postgres.env (PG_URL, PG_PASSWORD_FILE, PG_PORT...),
// for the tests and the benchmarks that use its server.

#include <fstream>
#include <map>
#include <string>

namespace mssgate::testing_postgres {

// The file's KEY=VALUE lines (a value's single quotes removed); empty when it cannot be read.
inline std::map<std::string, std::string> read_postgres_env(const std::string& path) {
  std::map<std::string, std::string> values;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    auto equals = line.find('=');
    if (equals == std::string::npos) continue;
    std::string value = line.substr(equals + 1);
    if (value.size() >= 2 && value.front() == '\'') value = value.substr(1, value.size() - 2);
    values[line.substr(0, equals)] = value;
  }
  return values;
}

inline std::string first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

}  // namespace mssgate::testing_postgres

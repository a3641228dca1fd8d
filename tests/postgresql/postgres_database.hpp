#pragma once
// The real PostgreSQL the ctest fixture starts (scripts/postgres; its postgres.env is named by
// MSSGATE_PG_ENV), and a test base that gives each test an empty database.

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "storage/postgresql.hpp"
#include "tests/postgresql/postgres_env.hpp"

namespace mssgate::testing_postgres {

// The fixture's postgres.env, named by MSSGATE_PG_ENV.
inline std::map<std::string, std::string> postgres_env() {
  const char* path = std::getenv("MSSGATE_PG_ENV");
  if (!path) return {};
  return read_postgres_env(path);
}

class EmptyDatabaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    using namespace std::chrono_literals;
    auto env = postgres_env();
    ASSERT_FALSE(env["PG_URL"].empty())
        << "MSSGATE_PG_ENV names no postgres.env (scripts/postgres)";
    settings_.conninfo = env["PG_URL"];
    settings_.password = first_line(env["PG_PASSWORD_FILE"]);
    settings_.connect_timeout = 5s;
    settings_.application_name = "mssgate-tests";
    // A new, empty database for each test: the public schema dropped with what it holds.
    storage::PostgresqlConnection db(settings_);
    db.exec_script("emptying the database", "DROP SCHEMA public CASCADE; CREATE SCHEMA public;");
    dir_ = std::filesystem::temp_directory_path() /
           ("mssgate-pg-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  storage::PostgresqlSettings settings_;
  std::filesystem::path dir_;  // files of this test (SQLite databases, logs)
};

}  // namespace mssgate::testing_postgres

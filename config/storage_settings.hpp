#pragma once
// What the stores are opened with, from [storage]: shared by the daemon and mssgatectl.

#include <string>

#include "config/config.hpp"
#include "storage/postgresql.hpp"

namespace mssgate::config {

inline storage::PostgresqlSettings postgresql_settings(const StorageConfig& storage,
                                                       std::string application_name) {
  return {storage.postgresql, storage.password, storage.connect_timeout,
          std::move(application_name), storage.statement_timeout};
}

}  // namespace mssgate::config

#pragma once

#include <atomic>
#include <boost/asio/ssl/context.hpp>
#include <cstdint>
#include <memory>

#include "config/config.hpp"
#include "storage/directory_store.hpp"

namespace mssgate::daemon {

// What the sessions share. Immutable once built: a reload builds a new one and swaps it.
struct GatewayEnvironment {
  config::Config config;
  std::shared_ptr<boost::asio::ssl::context> tls;
  std::shared_ptr<storage::DirectoryStore> directory;
};

struct GatewayCounters {
  std::atomic<uint64_t> open_sessions{0};
};

}  // namespace mssgate::daemon

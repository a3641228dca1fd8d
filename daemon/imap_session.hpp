#pragma once

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
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

enum class ImapListenerKind { kStartTls, kImplicitTls };

// Runs one client connection to its end on the socket's executor (single-threaded context).
void start_imap_session(boost::asio::ip::tcp::socket socket, ImapListenerKind kind,
                        std::shared_ptr<const GatewayEnvironment> environment,
                        std::shared_ptr<GatewayCounters> counters);

}  // namespace mssgate::daemon

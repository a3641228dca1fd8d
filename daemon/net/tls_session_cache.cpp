#include "daemon/net/tls_session_cache.hpp"

#include <ctime>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace mssgate::daemon {
namespace {

std::string id_of(const SSL_SESSION* session) {
  unsigned int length = 0;
  const unsigned char* id = SSL_SESSION_get_id(session, &length);
  return std::string(reinterpret_cast<const char*>(id), length);
}

bool expired(const SSL_SESSION* session) {
  return SSL_SESSION_get_time(session) + SSL_SESSION_get_timeout(session) <
         static_cast<long>(std::time(nullptr));
}

// Sessions by id, the oldest first in line to go. Each held session is one reference of ours.
class SessionCache {
 public:
  SessionCache(size_t capacity, ResumptionCheck accept)
      : capacity_(capacity), accept_(std::move(accept)) {}
  SessionCache(const SessionCache&) = delete;
  SessionCache& operator=(const SessionCache&) = delete;
  ~SessionCache() {
    for (auto& [id, entry] : by_id_)
      SSL_SESSION_free(entry.session);
  }

  void add(SSL_SESSION* session) {  // takes the caller's reference
    std::string id = id_of(session);
    SSL_SESSION* gone = nullptr;
    SSL_SESSION* oldest = nullptr;
    std::vector<SSL_SESSION*> expired_ones;
    {
      std::lock_guard lock(mutex_);
      auto found = by_id_.find(id);
      if (found != by_id_.end()) {
        gone = found->second.session;
        order_.erase(found->second.place);
        by_id_.erase(found);
      } else if (by_id_.size() >= capacity_ && !order_.empty()) {
        auto first = by_id_.find(order_.front());
        oldest = first->second.session;
        by_id_.erase(first);
        order_.pop_front();
      }
      drop_expired_front(expired_ones);
      order_.push_back(id);
      by_id_.emplace(std::move(id), Entry{session, std::prev(order_.end())});
    }
    if (gone) SSL_SESSION_free(gone);
    if (oldest) SSL_SESSION_free(oldest);
    for (SSL_SESSION* old : expired_ones)
      SSL_SESSION_free(old);
  }

  // A session to resume, with a reference for the caller; null: none (a full handshake).
  SSL_SESSION* find(SSL* ssl, const std::string& id) {
    SSL_SESSION* session = nullptr;
    {
      std::lock_guard lock(mutex_);
      auto found = by_id_.find(id);
      if (found == by_id_.end()) return nullptr;
      session = found->second.session;
      SSL_SESSION_up_ref(session);
    }
    if (expired(session) || (accept_ && !accept_(ssl, session))) {
      forget(session);
      SSL_SESSION_free(session);
      return nullptr;
    }
    return session;
  }

  void forget(SSL_SESSION* session) {
    std::string id = id_of(session);
    SSL_SESSION* gone = nullptr;
    {
      std::lock_guard lock(mutex_);
      auto found = by_id_.find(id);
      if (found == by_id_.end() || found->second.session != session) return;
      gone = found->second.session;
      order_.erase(found->second.place);
      by_id_.erase(found);
    }
    SSL_SESSION_free(gone);
  }

  size_t size() {
    std::lock_guard lock(mutex_);
    return by_id_.size();
  }

 private:
  // The oldest sessions whose lifetime has passed go (a few at each addition: the line is in
  // the order they came, so expired ones gather at its front).
  void drop_expired_front(std::vector<SSL_SESSION*>& out) {
    constexpr int kAtMost = 4;
    for (int i = 0; i < kAtMost && !order_.empty(); ++i) {
      auto first = by_id_.find(order_.front());
      if (!expired(first->second.session)) return;
      out.push_back(first->second.session);
      by_id_.erase(first);
      order_.pop_front();
    }
  }

  struct Entry {
    SSL_SESSION* session;
    std::list<std::string>::iterator place;
  };
  const size_t capacity_;
  const ResumptionCheck accept_;
  std::mutex mutex_;
  std::unordered_map<std::string, Entry> by_id_;
  std::list<std::string> order_;  // ids, oldest first
};

void free_cache(void* /*parent*/, void* cache, CRYPTO_EX_DATA* /*data*/, int /*index*/,
                long /*argl*/, void* /*argp*/) {
  delete static_cast<SessionCache*>(cache);
}

int cache_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, free_cache);
  return index;
}

SessionCache* cache_of(SSL_CTX* context) {
  return context ? static_cast<SessionCache*>(SSL_CTX_get_ex_data(context, cache_index()))
                 : nullptr;
}

// The intermediate certificates the client sent (a server's peer chain holds no leaf) are of
// no use once its chain is verified: a resumption verifies the leaf again against the CAs in
// force, without them. Freed, they leave each session about 4 KiB lighter, for its whole life
// and its time in the cache. Done here, before the session is in the cache, where another
// connection could read it.
void release_sent_intermediates(SSL* ssl, SSL_SESSION* session) {
  if (SSL_get_session(ssl) != session) return;
  STACK_OF(X509)* sent = SSL_get_peer_cert_chain(ssl);
  while (sent && sk_X509_num(sent) > 0)
    X509_free(sk_X509_pop(sent));
}

int on_new_session(SSL* ssl, SSL_SESSION* session) {
  SessionCache* cache = cache_of(SSL_get_SSL_CTX(ssl));
  if (!cache) return 0;  // OpenSSL keeps its reference
  release_sent_intermediates(ssl, session);
  cache->add(session);
  return 1;
}

SSL_SESSION* on_find_session(SSL* ssl, const unsigned char* id, int length, int* copy) {
  *copy = 0;  // the reference returned is already the caller's
  SessionCache* cache = cache_of(SSL_get_SSL_CTX(ssl));
  if (!cache || length <= 0) return nullptr;
  return cache->find(ssl, std::string(reinterpret_cast<const char*>(id), length));
}

void on_remove_session(SSL_CTX* context, SSL_SESSION* session) {
  if (SessionCache* cache = cache_of(context)) cache->forget(session);
}

}  // namespace

void install_session_cache(SSL_CTX* context, size_t capacity, std::chrono::seconds lifetime,
                           ResumptionCheck accept) {
  SSL_CTX_set_options(context, SSL_OP_NO_TICKET);
  if (capacity == 0) {
    SSL_CTX_set_session_cache_mode(context, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(context, 0);
    return;
  }
  auto* cache = new SessionCache(capacity, std::move(accept));
  if (SSL_CTX_set_ex_data(context, cache_index(), cache) != 1) {
    delete cache;
    SSL_CTX_set_session_cache_mode(context, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(context, 0);
    return;
  }
  SSL_CTX_set_num_tickets(context, 1);
  SSL_CTX_set_timeout(context, static_cast<long>(lifetime.count()));
  SSL_CTX_set_session_cache_mode(
      context, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL | SSL_SESS_CACHE_NO_AUTO_CLEAR);
  SSL_CTX_sess_set_new_cb(context, on_new_session);
  SSL_CTX_sess_set_get_cb(context, on_find_session);
  SSL_CTX_sess_set_remove_cb(context, on_remove_session);
}

size_t cached_sessions(SSL_CTX* context) {
  SessionCache* cache = cache_of(context);
  return cache ? cache->size() : 0;
}

}  // namespace mssgate::daemon

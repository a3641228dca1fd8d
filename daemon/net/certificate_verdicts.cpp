#include "daemon/net/certificate_verdicts.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <ctime>
#include <limits>

namespace mssgate::daemon {
int64_t unix_seconds_of(const ASN1_TIME* time) {
  if (!time) return 0;
  struct tm t {};
  if (ASN1_TIME_to_tm(time, &t) != 1) return 0;
  return static_cast<int64_t>(timegm(&t));
}

const CertificateVerdicts::Verdict* CertificateVerdicts::standing(std::string_view key,
                                                                  int64_t now) const {
  auto found = by_key_.find(std::string(key));
  if (found == by_key_.end() || now < found->second.checked || now >= found->second.good_until)
    return nullptr;
  return &found->second;
}

bool CertificateVerdicts::stands(std::string_view key, int64_t now) const {
  if (key.empty()) return false;
  std::lock_guard lock(mutex_);
  return standing(key, now) != nullptr;
}

CertificateVerdicts::X509Reference CertificateVerdicts::standing_decoding(std::string_view key,
                                                                          int64_t now) const {
  if (key.empty()) return nullptr;
  std::lock_guard lock(mutex_);
  const Verdict* verdict = standing(key, now);
  X509* decoding = verdict ? verdict->decoding.get() : nullptr;
  if (!decoding || X509_up_ref(decoding) != 1) return nullptr;
  return X509Reference(decoding);
}

void CertificateVerdicts::remember(std::string key, int64_t checked, int64_t good_until,
                                   X509* decoding) {
  if (key.empty() || capacity_ == 0 || good_until <= checked) return;
  X509Reference kept;
  if (decoding && X509_up_ref(decoding) == 1) kept.reset(decoding);
  std::lock_guard lock(mutex_);
  auto known = by_key_.find(key);
  if (known != by_key_.end()) {
    known->second.checked = checked;
    known->second.good_until = good_until;
    if (!known->second.decoding) known->second.decoding = std::move(kept);
    return;
  }
  if (by_key_.size() >= capacity_) {
    std::erase_if(by_key_, [&](const auto& entry) { return entry.second.good_until <= checked; });
    if (by_key_.size() >= capacity_) by_key_.clear();
  }
  by_key_.emplace(std::move(key), Verdict{checked, good_until, std::move(kept)});
}

size_t CertificateVerdicts::size() const {
  std::lock_guard lock(mutex_);
  return by_key_.size();
}

std::string verdict_key(X509* certificate) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (!certificate || X509_digest(certificate, EVP_sha256(), digest, &length) != 1) return {};
  return std::string(reinterpret_cast<const char*>(digest), length);
}

int64_t verdict_bound(STACK_OF(X509) * chain, X509_STORE* store) {
  if (!chain || sk_X509_num(chain) == 0 || !store) return 0;
  int64_t bound = std::numeric_limits<int64_t>::max();
  for (int i = 0; i < sk_X509_num(chain); ++i) {
    int64_t not_after = unix_seconds_of(X509_get0_notAfter(sk_X509_value(chain, i)));
    if (not_after == 0) return 0;
    bound = std::min(bound, not_after);
  }
  if (X509_STORE_lock(store) != 1) return 0;
  STACK_OF(X509_OBJECT)* objects = X509_STORE_get0_objects(store);
  for (int i = 0; i < sk_X509_OBJECT_num(objects); ++i) {
    X509_CRL* crl = X509_OBJECT_get0_X509_CRL(sk_X509_OBJECT_value(objects, i));
    if (!crl) continue;
    const ASN1_TIME* next_update = X509_CRL_get0_nextUpdate(crl);
    if (!next_update) continue;  // a CRL without a next update is never due
    int64_t due = unix_seconds_of(next_update);
    if (due == 0) {
      bound = 0;
      break;
    }
    bound = std::min(bound, due);
  }
  X509_STORE_unlock(store);
  return bound;
}

}  // namespace mssgate::daemon

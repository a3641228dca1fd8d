#pragma once

#include <openssl/x509.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace mssgate::daemon {

// What a resumption need not verify again. A TLS context's CAs and CRLs never change during its
// life (a reload or a new CRL builds a new context, with verdicts of its own), so a certificate
// that verified against them at `checked` verifies the same at any later instant before the
// first of its chain's certificates expires or the first of the context's CRLs is due (its next
// update): until then the verdict stands, and a resumption presenting the certificate skips the
// chain building and the signatures of the certificates and CRLs (a sixth of the CPU of a
// resumed session, measured).
//
// Certificates are known by the SHA-256 of their DER. A verdict keeps one decoding of its
// certificate (a reference), which the handshakes presenting that certificate share instead of
// each keeping its own for the life of its connection (about 5 KiB with the Montgomery context
// its RSA key caches when a client's signature is checked). Thread-safe. At most `capacity`
// verdicts: when full, those past their time go, then all if none did (a new verification costs
// no more than it did before there were verdicts).
class CertificateVerdicts {
 public:
  struct X509Release {
    void operator()(X509* certificate) const { X509_free(certificate); }
  };
  using X509Reference = std::unique_ptr<X509, X509Release>;

  explicit CertificateVerdicts(size_t capacity) : capacity_(capacity) {}
  CertificateVerdicts(const CertificateVerdicts&) = delete;
  CertificateVerdicts& operator=(const CertificateVerdicts&) = delete;

  // Whether a verification of the certificate `key` at `now` (Unix seconds) is known to succeed.
  bool stands(std::string_view key, int64_t now) const;
  // The verdict's decoding of the certificate `key` (a new reference) when the verdict stands at
  // `now` and kept one; else null.
  X509Reference standing_decoding(std::string_view key, int64_t now) const;
  // The certificate `key` verified at `checked`, and would until `good_until` (excluded);
  // `decoding` (a certificate whose key is `key`), when given, is kept to be shared, unless the
  // verdict already has one.
  void remember(std::string key, int64_t checked, int64_t good_until, X509* decoding = nullptr);
  size_t size() const;

 private:
  struct Verdict {
    int64_t checked;
    int64_t good_until;
    X509Reference decoding;
  };
  // The verdict on `key` if it stands at `now`, else null (the caller holds mutex_).
  const Verdict* standing(std::string_view key, int64_t now) const;
  const size_t capacity_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Verdict> by_key_;
};

// Unix seconds of an ASN.1 time (a certificate's validity, a CRL's updates); 0 when it cannot be
// read.
int64_t unix_seconds_of(const ASN1_TIME* time);

// The key of `certificate` in CertificateVerdicts; empty if it cannot be encoded.
std::string verdict_key(X509* certificate);

// The first instant (Unix seconds) at which a verification that succeeded with `chain` (the
// verified chain, leaf first) against `store` may stop succeeding: the earliest "not after" of
// the chain and "next update" of the store's CRLs. 0 when a time cannot be read (no verdict).
int64_t verdict_bound(STACK_OF(X509) * chain, X509_STORE* store);

}  // namespace mssgate::daemon

#pragma once

#include <openssl/x509.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "storage/directory_lookup.hpp"

namespace mssgate::daemon {

// What a client certificate is known by. Computed only from a certificate that the TLS layer
// verified, never from anything the client writes.
struct CertificateIdentity {
  std::string subject;       // RFC 2253
  std::string organisation;  // the subject's first O (organizationName), UTF-8; "" when none
  std::string issuer;        // RFC 2253
  std::string serial_hex;    // upper-case hex, no leading zeros
  std::string spki_sha256;   // lower-case hex SHA-256 of the DER SubjectPublicKeyInfo
  std::string sha256;        // lower-case hex SHA-256 of the whole DER certificate
  int64_t not_after = 0;     // the end of its validity (seconds since the epoch; 0: unknown)
  // The subject's attributes in order, as (OpenSSL short name, UTF-8 value): ("C", "FR"),
  // ("OU", "330000000"), ("CN", "LPS_TEST_HOPITAL").
  std::vector<std::pair<std::string, std::string>> subject_attributes;

  // Its organisation identity for these attribute names: "ISSUER|OU=330000000,CN=LPS_..."
  // (each value escaped as in RFC 4514); empty when the subject lacks one of the attributes,
  // has it more than once, or it holds a NUL.
  std::string organisation_selector(const std::vector<std::string>& attributes) const;
  // The keys bindings are looked up by; `organisation_attributes` empty: no organisation key.
  storage::CertificateKeys keys(
      const std::vector<std::string>& organisation_attributes = {}) const {
    return {spki_sha256, issuer + "|" + serial_hex, organisation_selector(organisation_attributes)};
  }
};

CertificateIdentity identify_certificate(X509* certificate);

// A verified certificate's identity, held by the sessions (and their registry entries) that
// presented it.
using SharedCertificateIdentity = std::shared_ptr<const CertificateIdentity>;

// The identity of a verified certificate as one object for every session that presents the
// same certificate (by its DER's SHA-256), while one of them holds it: an organisation's
// certificate opens many sessions, and each would otherwise keep a copy. Thread-safe.
SharedCertificateIdentity shared_identity_of(X509* certificate);
// The entries shared_identity_of keeps: the identities held, and at most as many released.
size_t shared_identity_entries();

// Reads the first certificate of a PEM file (for mssgatectl). Throws std::runtime_error.
CertificateIdentity identify_certificate_file(const std::string& path);

}  // namespace mssgate::daemon

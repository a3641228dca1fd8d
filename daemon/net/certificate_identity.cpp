#include "daemon/net/certificate_identity.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

#include "protocol/ascii.hpp"

namespace mssgate::daemon {
namespace {

std::string name_text(const X509_NAME* name) {
  BIO* bio = BIO_new(BIO_s_mem());
  // RFC 2253 order and escaping, UTF-8 kept as is.
  X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);
  std::string text(data, static_cast<size_t>(size));
  BIO_free(bio);
  return text;
}

std::string hex(const unsigned char* bytes, unsigned size) {
  return protocol::hex_lower({reinterpret_cast<const char*>(bytes), size});
}

// The end of the certificate's validity in seconds since the epoch; 0 when unreadable.
int64_t not_after_seconds(X509* certificate) {
  struct tm when {};
  const ASN1_TIME* not_after = X509_get0_notAfter(certificate);
  if (!not_after || ASN1_TIME_to_tm(not_after, &when) != 1) return 0;
  return static_cast<int64_t>(timegm(&when));
}

}  // namespace

namespace {

// The first value of `nid` in a name, as UTF-8; "" when it has none.
std::string name_entry(const X509_NAME* name, int nid) {
  int index = X509_NAME_get_index_by_NID(name, nid, -1);
  if (index < 0) return {};
  unsigned char* text = nullptr;
  int size = ASN1_STRING_to_UTF8(&text, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index)));
  if (size < 0) return {};
  std::string value(reinterpret_cast<char*>(text), static_cast<size_t>(size));
  OPENSSL_free(text);
  return value;
}

// Every entry of a name, in order, as (short name, UTF-8 value).
std::vector<std::pair<std::string, std::string>> name_entries(const X509_NAME* name) {
  std::vector<std::pair<std::string, std::string>> entries;
  for (int i = 0; i < X509_NAME_entry_count(name); ++i) {
    const X509_NAME_ENTRY* entry = X509_NAME_get_entry(name, i);
    int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(entry));
    const char* short_name = nid == NID_undef ? nullptr : OBJ_nid2sn(nid);
    unsigned char* text = nullptr;
    int size = ASN1_STRING_to_UTF8(&text, X509_NAME_ENTRY_get_data(entry));
    if (size < 0) continue;
    entries.emplace_back(short_name ? short_name : "",
                         std::string(reinterpret_cast<char*>(text), static_cast<size_t>(size)));
    OPENSSL_free(text);
  }
  return entries;
}

// An attribute value as RFC 4514 writes it in a DN string.
std::string escaped_value(std::string_view value) {
  std::string out;
  for (size_t i = 0; i < value.size(); ++i) {
    char c = value[i];
    bool special = c == '"' || c == '+' || c == ',' || c == ';' || c == '<' || c == '>' ||
                   c == '\\' || c == '=' || (i == 0 && (c == '#' || c == ' ')) ||
                   (i + 1 == value.size() && c == ' ');
    if (special) out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

std::string CertificateIdentity::organisation_selector(
    const std::vector<std::string>& attributes) const {
  if (attributes.empty() || issuer.empty()) return {};
  std::string selector = issuer + "|";
  for (size_t i = 0; i < attributes.size(); ++i) {
    const std::string* found = nullptr;
    for (const auto& [name, value] : subject_attributes) {
      if (name != attributes[i]) continue;
      if (found) return {};  // twice: which one would be meant?
      found = &value;
    }
    if (!found || found->empty() || found->find('\0') != std::string::npos) return {};
    if (i) selector += ',';
    selector += attributes[i] + "=" + escaped_value(*found);
  }
  return selector;
}

CertificateIdentity identify_certificate(X509* certificate) {
  CertificateIdentity id;
  id.subject = name_text(X509_get_subject_name(certificate));
  id.organisation = name_entry(X509_get_subject_name(certificate), NID_organizationName);
  id.issuer = name_text(X509_get_issuer_name(certificate));
  id.subject_attributes = name_entries(X509_get_subject_name(certificate));

  BIGNUM* serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(certificate), nullptr);
  if (serial) {
    char* text = BN_bn2hex(serial);
    id.serial_hex = text ? text : "";
    OPENSSL_free(text);
    BN_free(serial);
  }

  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned size = 0;
  // The DER SubjectPublicKeyInfo, as `openssl pkey -pubin -outform der | sha256sum` hashes it.
  unsigned char* spki = nullptr;
  int spki_size = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(certificate), &spki);
  if (spki_size > 0 &&
      EVP_Digest(spki, static_cast<size_t>(spki_size), digest, &size, EVP_sha256(), nullptr) == 1) {
    id.spki_sha256 = hex(digest, size);
  }
  OPENSSL_free(spki);
  if (X509_digest(certificate, EVP_sha256(), digest, &size) == 1) id.sha256 = hex(digest, size);
  id.not_after = not_after_seconds(certificate);
  return id;
}

namespace {

// The identities some session holds, by their certificate's DER SHA-256. An entry whose
// sessions have all ended is dropped once the map has doubled since the last sweep.
struct SharedIdentities {
  std::mutex mutex;
  std::unordered_map<std::string, std::weak_ptr<const CertificateIdentity>> by_digest;
  size_t sweep_at = 64;
};

SharedIdentities& shared_identities() {
  static SharedIdentities identities;
  return identities;
}

}  // namespace

SharedCertificateIdentity shared_identity_of(X509* certificate) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned size = 0;
  if (X509_digest(certificate, EVP_sha256(), digest, &size) != 1)
    return std::make_shared<const CertificateIdentity>(identify_certificate(certificate));
  std::string key(reinterpret_cast<const char*>(digest), size);
  SharedIdentities& shared = shared_identities();
  {
    std::lock_guard lock(shared.mutex);
    auto found = shared.by_digest.find(key);
    if (found != shared.by_digest.end()) {
      if (auto held = found->second.lock()) return held;
    }
  }
  // Made outside the lock: another thread may have made the same one meanwhile.
  auto made = std::make_shared<const CertificateIdentity>(identify_certificate(certificate));
  std::lock_guard lock(shared.mutex);
  auto& entry = shared.by_digest[key];
  if (auto held = entry.lock()) return held;
  entry = made;
  if (shared.by_digest.size() >= shared.sweep_at) {
    std::erase_if(shared.by_digest, [](const auto& item) { return item.second.expired(); });
    shared.sweep_at = std::max<size_t>(64, shared.by_digest.size() * 2);
  }
  return made;
}

size_t shared_identity_entries() {
  SharedIdentities& shared = shared_identities();
  std::lock_guard lock(shared.mutex);
  return shared.by_digest.size();
}

CertificateIdentity identify_certificate_file(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) throw std::runtime_error("cannot read " + path + ": " + std::strerror(errno));
  X509* certificate = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  if (!certificate) throw std::runtime_error("no PEM certificate in " + path);
  CertificateIdentity id = identify_certificate(certificate);
  X509_free(certificate);
  return id;
}

}  // namespace mssgate::daemon

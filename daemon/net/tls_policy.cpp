#include "daemon/net/tls_policy.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <vector>

#include "daemon/net/certificate_verdicts.hpp"
#include "daemon/net/client_certificate_policy.hpp"
#include "protocol/ascii.hpp"

namespace mssgate::daemon {
namespace {

int protocol_version(const std::string& name) {
  return name == "TLSv1.3" ? TLS1_3_VERSION : TLS1_2_VERSION;
}

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what + ": " + last_openssl_error());
}

struct CrlFree {
  void operator()(X509_CRL* crl) const { X509_CRL_free(crl); }
};
using CrlPtr = std::unique_ptr<X509_CRL, CrlFree>;

void read_crls(const std::string& path, std::vector<CrlPtr>& out) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) throw std::runtime_error("cannot open CRL file " + path);
  size_t before = out.size();
  while (X509_CRL* crl = PEM_read_X509_CRL(f, nullptr, nullptr, nullptr))
    out.emplace_back(crl);
  std::fclose(f);
  ERR_clear_error();  // the read loop ends on "no start line"
  if (out.size() == before) throw std::runtime_error("no CRL found in " + path);
}

// One CRL per issuer goes to the store: the most recent (a downloaded CRL replaces the one of a
// file once it is newer, and the other way round).
void add_newest_crls(X509_STORE* store, std::vector<CrlPtr> crls) {
  std::vector<X509_CRL*> newest;
  for (auto& crl : crls) {
    auto same_issuer = std::find_if(newest.begin(), newest.end(), [&](X509_CRL* kept) {
      return X509_NAME_cmp(X509_CRL_get_issuer(kept), X509_CRL_get_issuer(crl.get())) == 0;
    });
    if (same_issuer == newest.end()) {
      newest.push_back(crl.get());
    } else if (ASN1_TIME_compare(X509_CRL_get0_lastUpdate(crl.get()),
                                 X509_CRL_get0_lastUpdate(*same_issuer)) > 0) {
      *same_issuer = crl.get();
    }
  }
  for (X509_CRL* crl : newest)
    X509_STORE_add_crl(store, crl);  // takes its own reference
}

}  // namespace

std::string crl_cache_file(const std::string& cache_dir, const std::string& url) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(url.data()), url.size(), digest);
  std::string name = protocol::hex_lower(std::string_view(reinterpret_cast<char*>(digest), 8));
  return (std::filesystem::path(cache_dir) / ("crl-" + name + ".pem")).string();
}

DownloadedCrl check_downloaded_crl(std::string_view bytes, const std::string& client_ca,
                                   int64_t now) {
  DownloadedCrl result;
  CrlPtr crl;
  {
    std::unique_ptr<BIO, decltype(&BIO_free)> in(
        BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())), &BIO_free);
    if (bytes.find("-----BEGIN X509 CRL-----") != std::string_view::npos) {
      crl.reset(PEM_read_bio_X509_CRL(in.get(), nullptr, nullptr, nullptr));
    } else {
      crl.reset(d2i_X509_CRL_bio(in.get(), nullptr));
    }
  }
  ERR_clear_error();
  if (!crl) {
    result.refusal = "not_a_crl";
    return result;
  }
  char issuer[512];
  X509_NAME_oneline(X509_CRL_get_issuer(crl.get()), issuer, sizeof issuer);
  result.issuer = issuer;
  result.last_update = unix_seconds_of(X509_CRL_get0_lastUpdate(crl.get()));
  result.next_update = unix_seconds_of(X509_CRL_get0_nextUpdate(crl.get()));

  // The issuer must be one of the client CAs, and its signature must verify.
  FILE* f = std::fopen(client_ca.c_str(), "r");
  if (!f) {
    result.refusal = "client_ca_unreadable";
    return result;
  }
  bool signed_by_ca = false;
  bool issuer_known = false;
  while (X509* ca = PEM_read_X509(f, nullptr, nullptr, nullptr)) {
    if (X509_NAME_cmp(X509_get_subject_name(ca), X509_CRL_get_issuer(crl.get())) == 0) {
      issuer_known = true;
      if (X509_CRL_verify(crl.get(), X509_get0_pubkey(ca)) == 1) signed_by_ca = true;
    }
    X509_free(ca);
  }
  std::fclose(f);
  ERR_clear_error();
  if (!issuer_known) {
    result.refusal = "unknown_issuer";
  } else if (!signed_by_ca) {
    result.refusal = "bad_signature";
  } else if (result.next_update != 0 && result.next_update < now) {
    result.refusal = "expired";
  } else if (result.last_update > now + 300) {
    result.refusal = "not_yet_valid";
  } else {
    std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new(BIO_s_mem()), &BIO_free);
    PEM_write_bio_X509_CRL(out.get(), crl.get());
    char* data = nullptr;
    long size = BIO_get_mem_data(out.get(), &data);
    result.pem.assign(data, static_cast<size_t>(size));
  }
  return result;
}

int64_t crl_file_last_update(const std::string& path) {
  std::vector<CrlPtr> crls;
  try {
    read_crls(path, crls);
  } catch (const std::exception&) {
    return 0;
  }
  return unix_seconds_of(X509_CRL_get0_lastUpdate(crls.front().get()));
}

std::string last_openssl_error() {
  unsigned long code = ERR_get_error();
  std::string text;
  while (code != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    text = buf;  // keep the innermost reason
    code = ERR_get_error();
  }
  return text.empty() ? "unknown TLS error" : text;
}

SslCtxPtr build_server_tls_context(const config::TlsConfig& tls) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) fail("cannot create TLS context");
  SSL_CTX* c = ctx.get();

  SSL_CTX_set_min_proto_version(c, protocol_version(tls.min_version));
  SSL_CTX_set_max_proto_version(c, protocol_version(tls.max_version));
  // A client that closes its connection without TLS's closing alert (most IMAP and SMTP clients
  // do) has closed it, as IMAP and SMTP frame their own data; OpenSSL 3.0 would otherwise take it
  // for a fatal error and forget the session, which the client could not resume.
  SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                             SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_SINGLE_ECDH_USE |
                             SSL_OP_IGNORE_UNEXPECTED_EOF);
  // Idle sessions keep no TLS record buffers.
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_set_cipher_list(c, tls.ciphers.c_str()) != 1)
    fail("tls.ciphers \"" + tls.ciphers + "\"");
  if (SSL_CTX_set_ciphersuites(c, tls.ciphersuites.c_str()) != 1) {
    fail("tls.ciphersuites \"" + tls.ciphersuites + "\"");
  }
  if (SSL_CTX_set1_groups_list(c, "X25519:P-256:P-384") != 1) fail("cannot set ECDHE groups");

  if (SSL_CTX_use_certificate_chain_file(c, tls.certificate_chain.c_str()) != 1) {
    fail("cannot load tls.certificate_chain " + tls.certificate_chain);
  }
  if (SSL_CTX_use_PrivateKey_file(c, tls.private_key.c_str(), SSL_FILETYPE_PEM) != 1) {
    fail("cannot load tls.private_key " + tls.private_key);
  }
  if (SSL_CTX_check_private_key(c) != 1)
    fail("tls.private_key does not match tls.certificate_chain");

  // Session resumption across connections that verified a client certificate needs an id.
  static constexpr unsigned char kSessionContext[] = "mssgate";
  SSL_CTX_set_session_id_context(c, kSessionContext, sizeof kSessionContext - 1);

  if (tls.client_ca.empty()) {
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
    return ctx;
  }
  if (SSL_CTX_load_verify_locations(c, tls.client_ca.c_str(), nullptr) != 1) {
    fail("cannot load tls.client_ca " + tls.client_ca);
  }
  STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(tls.client_ca.c_str());
  if (!names) fail("no CA certificate in tls.client_ca " + tls.client_ca);
  SSL_CTX_set_client_CA_list(c, names);
  X509_STORE* store = SSL_CTX_get_cert_store(c);
  if (tls.crl_check) {
    std::vector<CrlPtr> crls;
    for (const auto& path : tls.crl_files)
      read_crls(path, crls);
    // Downloaded CRLs: the last good ones; a URL not downloaded yet has no file.
    for (const auto& url : tls.crl_urls) {
      std::string cached = crl_cache_file(tls.crl_cache_dir, url);
      if (std::filesystem::exists(cached)) read_crls(cached, crls);
    }
    add_newest_crls(store, std::move(crls));
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
  }
  apply_client_certificate_policy(c, tls);
  return ctx;
}

}  // namespace mssgate::daemon

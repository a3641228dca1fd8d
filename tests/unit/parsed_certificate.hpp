#pragma once
// A certificate as a peer's bytes give it to OpenSSL, for the unit tests: encoded, then parsed
// again into an object of its own (its public key decoded as a handshake would decode it).

#include <openssl/x509.h>

#include <memory>

namespace mssgate::test_certificates {

struct X509Free {
  void operator()(X509* certificate) const { X509_free(certificate); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

inline X509Ptr parsed_again(X509* original) {
  unsigned char* der = nullptr;
  int size = i2d_X509(original, &der);
  const unsigned char* cursor = der;
  X509Ptr copy(d2i_X509(nullptr, &cursor, size));
  OPENSSL_free(der);
  return copy;
}

}  // namespace mssgate::test_certificates

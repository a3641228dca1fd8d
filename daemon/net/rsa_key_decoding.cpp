// The ENGINE API is deprecated in OpenSSL 3.0, but it is the one switch that sends the decoding
// of a certificate's RSA key to OpenSSL's RSA code instead of the providers' decoders.
#define OPENSSL_SUPPRESS_DEPRECATED
#include "daemon/net/rsa_key_decoding.hpp"

#include <openssl/evp.h>
#include <openssl/opensslconf.h>
#ifndef OPENSSL_NO_ENGINE
#include <openssl/engine.h>
#endif

namespace mssgate::daemon {
namespace {

#ifndef OPENSSL_NO_ENGINE
constexpr int kRsaOnly[] = {EVP_PKEY_RSA};

// OpenSSL asks for the key types the engine has methods for (`method` null), then for the
// method of one: OpenSSL's own for RSA keys, none for any other type.
int rsa_method(ENGINE*, EVP_PKEY_METHOD** method, const int** types, int type) {
  if (method == nullptr) {
    *types = kRsaOnly;
    return 1;
  }
  *method = type == EVP_PKEY_RSA ? const_cast<EVP_PKEY_METHOD*>(EVP_PKEY_meth_find(EVP_PKEY_RSA))
                                 : nullptr;
  return *method != nullptr ? 1 : 0;
}

bool register_rsa_engine() {
  if (EVP_PKEY_meth_find(EVP_PKEY_RSA) == nullptr) return false;
  ENGINE* engine = ENGINE_new();
  if (engine == nullptr) return false;
  bool registered = ENGINE_set_id(engine, "mssgate-rsa-keys") == 1 &&
                    ENGINE_set_name(engine, "OpenSSL's RSA code for certificates' keys") == 1 &&
                    ENGINE_set_pkey_meths(engine, &rsa_method) == 1 &&
                    // In OpenSSL's list of engines, which holds it and frees it at exit.
                    ENGINE_add(engine) == 1 && ENGINE_register_pkey_meths(engine) == 1;
  ENGINE_free(engine);
  return registered;
}
#else
bool register_rsa_engine() {
  return false;
}
#endif

}  // namespace

bool decode_certificate_rsa_keys_directly() {
  static const bool registered = register_rsa_engine();
  return registered;
}

}  // namespace mssgate::daemon

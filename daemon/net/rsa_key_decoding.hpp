#pragma once

namespace mssgate::daemon {

// OpenSSL 3.0 decodes the public key of every certificate it parses (at each full handshake,
// the client's certificate and the CA certificate it sends along) through its providers'
// decoders, building a decoder chain for each key: about 100 µs for an RSA key, a fifth of the
// gateway's CPU for a session signed in by certificate. Its RSA code of OpenSSL 1.1, still in
// 3.0, does the same in about 20 µs, and OpenSSL takes it for a key type an ENGINE registers a
// method for. This registers an ENGINE whose method for RSA keys is OpenSSL's own: certificates'
// RSA keys are then decoded, and the signatures made with them checked, by OpenSSL's RSA code
// rather than its default provider's. Private keys (the server's, read from its file), keys
// built from parameters and the other key types stay with the providers; but a context asked
// for by the name "RSA" now gets the engine's method, which cannot build a key from parameters:
// such code names the provider's implementation by the RSA OID (jwt_verifier.cpp).
// Called once per process, before any certificate is parsed; false when OpenSSL refused it (the
// providers then decode every key, as before).
bool decode_certificate_rsa_keys_directly();

}  // namespace mssgate::daemon

#pragma once

namespace mssgate::daemon {

// OpenSSL 3.0 decodes the public key of every certificate it parses (at each full handshake,
// the client's certificate and the CA certificate it sends along) through its providers'
// decoders, building a decoder chain for each key: about 100 µs for an RSA key, most of a
// full handshake's CPU after the signatures. Its RSA code of OpenSSL 1.1, still in 3.0, does the
// same in about 20 µs, and OpenSSL takes it for a key type an ENGINE registers a method for.
// This registers an ENGINE whose method for RSA keys is OpenSSL's own: certificates' RSA keys
// are then decoded, and the signatures made with them checked, by OpenSSL's RSA code rather
// than its default provider's. Keys read from files or built from parameters (the server's
// private key, the keys of PSC's JWKS) and the other key types stay with the providers.
// Called once per process, before any certificate is parsed; false when OpenSSL refused it (the
// providers then decode every key, as before).
bool decode_certificate_rsa_keys_directly();

}  // namespace mssgate::daemon

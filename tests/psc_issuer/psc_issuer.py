#!/usr/bin/env python3
"""A stand-in for Pro Santé Connect on loopback, for tests and the demo.

It speaks the real protocols with PSC's claim names: RFC 7662 introspection (POST /introspect,
HTTP Basic client authentication), the JWK Set (GET /certs) and userinfo (GET /userinfo,
Bearer). Access tokens are JWTs signed RS256 (or ES256 on request), like PSC's Keycloak.
Tests drive it through /admin: issue (for any client, audience, scope, type, acr and amr),
revoke, make it slow, down or answer garbage, and count requests (and the most introspections
it was asked at once).

    psc_issuer.py --dir DIR --cert server.chain.pem --key server.key [--port 0]

Writes DIR/issuer.json ({"port": N, "issuer": URL, "client_id": ..., "client_secret": ...})
once it listens. Keys are made with the openssl command.
"""

import argparse
import base64
import json
import os
import secrets
import ssl
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True).stdout


class Keys:
    def __init__(self, folder):
        self.rsa = os.path.join(folder, "issuer-rsa.pem")
        self.ec = os.path.join(folder, "issuer-ec.pem")
        if not os.path.exists(self.rsa):
            openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", self.rsa)
            openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", self.ec)
        modulus = openssl("rsa", "-in", self.rsa, "-noout", "-modulus").decode().strip().split("=", 1)[1]
        self.rsa_kid = "rsa-" + modulus[:8].lower()
        ec_der = openssl("pkey", "-in", self.ec, "-pubout", "-outform", "DER")
        self.ec_kid = "ec-" + ec_der[-64:-56].hex()
        self.jwks = {"keys": [
            {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.rsa_kid, "e": "AQAB",
             "n": b64url(bytes.fromhex(modulus))},
            {"kty": "EC", "use": "sig", "alg": "ES256", "kid": self.ec_kid, "crv": "P-256",
             "x": b64url(ec_der[-64:-32]), "y": b64url(ec_der[-32:])},
        ]}

    def sign(self, alg, kid, claims):
        header = {"alg": alg, "typ": "JWT", "kid": kid or (self.rsa_kid if alg == "RS256" else self.ec_kid)}
        signing_input = (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())).encode()
        der = openssl("dgst", "-sha256", "-sign", self.rsa if alg == "RS256" else self.ec, data=signing_input)
        if alg == "ES256":
            der = der_to_raw(der)
        return signing_input.decode() + "." + b64url(der)


def der_to_raw(der):
    """ECDSA DER signature to r || s (32 bytes each)."""
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 3
    values = []
    for _ in range(2):
        assert der[i] == 0x02
        length = der[i + 1]
        values.append(der[i + 2:i + 2 + length].lstrip(b"\0").rjust(32, b"\0"))
        i += 2 + length
    return values[0] + values[1]


class Issuer:
    def __init__(self, folder, url_base):
        self.keys = Keys(folder)
        self.issuer = url_base + "/auth/realms/esante-wallet"
        self.client_id = "mssgate-test"
        self.client_secret = secrets.token_hex(16)
        self.tokens = {}  # token -> claims
        self.revoked = set()
        self.mode = "normal"
        self.delay = 0.0
        self.counts = {"introspect": 0, "certs": 0, "userinfo": 0, "introspect_max_in_flight": 0}
        self.introspecting = 0
        self.lock = threading.Lock()

    def issue(self, subject, lifetime=300, azp="lps-test", alg="RS256", kid=None, not_before=None,
              include_subject=True, issuer=None, typ="Bearer", scope="openid scope_all", aud=None,
              acr=None, amr=None, client_id=None):
        """A signed access token for `subject`, issued to the client `azp` (None: no azp claim);
        aud, acr, amr and client_id are added when given, typ and scope left out when None."""
        now = int(time.time())
        claims = {"iss": issuer or self.issuer, "sub": str(uuid.uuid4()), "iat": now, "exp": now + int(lifetime),
                  "jti": "trrtag:" + str(uuid.uuid4())}
        for name, value in (("typ", typ), ("azp", azp), ("scope", scope), ("aud", aud), ("acr", acr),
                            ("amr", amr), ("client_id", client_id)):
            if value is not None:
                claims[name] = value
        if not_before is not None:
            claims["nbf"] = now + int(not_before)
        if include_subject:
            claims["SubjectNameID"] = subject
        token = self.keys.sign(alg, kid, claims)
        with self.lock:
            self.tokens[token] = dict(claims, SubjectNameID=subject)
        return token

    def lookup(self, token):
        with self.lock:
            claims = self.tokens.get(token)
            if not claims or token in self.revoked or claims["exp"] <= time.time():
                return None
            return claims


def make_handler(issuer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, code, body, content_type="application/json"):
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def body(self):
            length = int(self.headers.get("Content-Length", "0"))
            return self.rfile.read(length) if length else b""

        def misbehave(self):
            """Applies the mode to a protocol request; True when the request was handled."""
            if issuer.mode == "slow":
                time.sleep(issuer.delay)
            if issuer.mode == "down":
                self.close_connection = True
                self.connection.close()
                return True
            if issuer.mode == "garbage":
                self.reply(200, b"<html>gateway error</html>", "text/html")
                return True
            if issuer.mode == "error":
                self.reply(503, {"error": "temporarily_unavailable"})
                return True
            return False

        def count(self, name):
            with issuer.lock:
                issuer.counts[name] += 1

        def do_GET(self):
            if self.path == "/auth/realms/esante-wallet/protocol/openid-connect/certs":
                self.count("certs")
                if not self.misbehave():
                    self.reply(200, issuer.keys.jwks)
            elif self.path == "/auth/realms/esante-wallet/protocol/openid-connect/userinfo":
                self.count("userinfo")
                if self.misbehave():
                    return
                auth = self.headers.get("Authorization", "")
                claims = issuer.lookup(auth[7:]) if auth.startswith("Bearer ") else None
                if not claims:
                    self.reply(401, {"error": "invalid_token"})
                else:
                    self.reply(200, {"sub": claims["sub"], "SubjectNameID": claims["SubjectNameID"],
                                     "SubjectRefPro": {"codeCivilite": "DR"}, "preferred_username": claims["SubjectNameID"]})
            elif self.path == "/admin/stats":
                with issuer.lock:
                    self.reply(200, dict(issuer.counts, introspect_in_flight=issuer.introspecting))
            else:
                self.reply(404, {"error": "not_found"})

        def introspect(self, data):
            if self.misbehave():
                return
            form = parse_qs(data.decode())
            expected = "Basic " + base64.b64encode(("%s:%s" % (issuer.client_id, issuer.client_secret)).encode()).decode()
            # Client authentication: HTTP Basic, or a verified client certificate (mutual TLS).
            by_certificate = bool(self.connection.getpeercert()) and form.get("client_id") == [issuer.client_id]
            if self.headers.get("Authorization") != expected and not by_certificate:
                self.reply(401, {"error": "invalid_client"})
                return
            with issuer.lock:
                issuer.counts["mtls"] = issuer.counts.get("mtls", 0) + (1 if by_certificate else 0)
            token = form.get("token", [""])[0]
            claims = issuer.lookup(token)
            self.reply(200, dict(claims, active=True) if claims else {"active": False})

        def do_POST(self):
            data = self.body()
            if self.path == "/auth/realms/esante-wallet/protocol/openid-connect/token/introspect":
                with issuer.lock:
                    issuer.counts["introspect"] += 1
                    issuer.introspecting += 1
                    issuer.counts["introspect_max_in_flight"] = max(issuer.counts["introspect_max_in_flight"],
                                                                    issuer.introspecting)
                try:
                    self.introspect(data)
                finally:
                    with issuer.lock:
                        issuer.introspecting -= 1
            elif self.path == "/admin/issue":
                request = json.loads(data or b"{}")
                self.reply(200, {"access_token": issuer.issue(**request)})
            elif self.path == "/admin/revoke":
                with issuer.lock:
                    issuer.revoked.add(json.loads(data)["token"])
                self.reply(200, {})
            elif self.path == "/admin/mode":
                request = json.loads(data)
                issuer.mode = request["mode"]
                issuer.delay = float(request.get("delay", 0))
                self.reply(200, {})
            elif self.path == "/admin/reset":
                with issuer.lock:
                    issuer.counts = {k: 0 for k in issuer.counts}
                    issuer.mode, issuer.delay = "normal", 0.0
                self.reply(200, {})
            else:
                self.reply(404, {"error": "not_found"})

    return Handler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--client-ca", help="CAs of client certificates, for introspection over mutual TLS")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), None)
    server.daemon_threads = True
    port = server.server_address[1]
    issuer = Issuer(args.dir, "https://localhost:%d" % port)
    server.RequestHandlerClass = make_handler(issuer)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    if args.client_ca:
        ctx.load_verify_locations(args.client_ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    info = {"port": port, "issuer": issuer.issuer, "client_id": issuer.client_id, "client_secret": issuer.client_secret,
            "base": "https://localhost:%d" % port}
    temporary = os.path.join(args.dir, "issuer.json.tmp")
    with open(temporary, "w") as f:
        json.dump(info, f)
    os.replace(temporary, os.path.join(args.dir, "issuer.json"))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())

"""The provisioning API on a running gateway's admin endpoint, over TLS with client certificates:
every client reads, only a certificate of admin.provisioning_writers changes; a change made
through it is in force for sign-ins without a restart, and is an audit event naming the
certificate; refusals are problem documents; the bulk import and export are mssgatectl's; the
OpenAPI document served is the one in docs/."""

import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import unittest
import urllib.parse

from harness import APP_HOPITAL, DOMAIN, Gateway, RawImap, admin_tls_section, client_context, main, pki

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CABINET = "cabinet@" + DOMAIN  # a mailbox of the backend that the harness's directory lacks
WRITER = "cps-dupont"           # the provisioning client's certificate
READER = "org-hopital"          # an admin client that may only read


def spki_sha256(cert):
    """The certificate's spki-sha256, as admin.provisioning_writers names it."""
    public_key = subprocess.run(["openssl", "x509", "-in", pki(cert + ".crt"), "-noout", "-pubkey"],
                                check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=public_key,
                         check=True, capture_output=True).stdout
    return hashlib.sha256(der).hexdigest()


def call(port, method, path, body=None, cert=WRITER, content_type="application/json", piece=None):
    """(status, headers, parsed body or text) of one request to the admin endpoint over TLS."""
    connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=client_context(cert))
    headers = {}
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else (
            body.encode() if isinstance(body, str) else json.dumps(body).encode())
        headers["Content-Type"] = content_type
        headers["Content-Length"] = str(len(data))
    connection.request(method, path, body=data, headers=headers)
    response = connection.getresponse()
    raw = response.read()
    connection.close()
    kind = response.getheader("Content-Type") or ""
    if "json" in kind and "jsonl" not in kind and raw:
        return response.status, response, json.loads(raw)
    return response.status, response, raw.decode()


def external_sign_in(gateway, cert, authzid=None):
    client = RawImap(gateway.imaps_port, implicit_ctx=client_context(cert))
    try:
        return client.authenticate_external(authzid=authzid)[1]
    finally:
        client.close()


class ProvisioningApi(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.writer_key = spki_sha256(WRITER)
        # The writer's key in capitals: the configuration takes either case.
        config = admin_tls_section([cls.writer_key.upper()], 'max_import_bytes = "1MiB"\n')
        cls.gateway = Gateway(extra_config=config)
        cls.gateway.start()
        cls.port = cls.gateway.ports["admin"]

    @classmethod
    def tearDownClass(cls):
        cls.gateway.stop()

    def assert_problem(self, answer, status, kind):
        got, response, document = answer
        self.assertEqual(got, status, document)
        self.assertEqual(response.getheader("Content-Type"), "application/problem+json")
        self.assertEqual(document["type"], "/api/problems/" + kind)
        self.assertEqual(document["status"], status)
        self.assertTrue(document["title"] and document["detail"], document)
        return document

    def in_force(self, change):
        """Makes `change` (a function calling the API), then waits until the gateway has read
        the directory again after it."""
        offset = self.gateway.log_size()
        result = change()
        self.gateway.wait_for_log(r"event=directory_loaded ", since=offset)
        return result

    def test_a_change_through_the_api_is_in_force_and_audited(self):
        labo_key = spki_sha256("org-labo")
        # org-labo opens several mailboxes already (issuer-serial): it names the one it wants.
        self.assertTrue(external_sign_in(self.gateway, "org-labo", CABINET).startswith("a1 NO"))
        status, response, created = self.in_force(lambda: call(
            self.port, "POST", "/api/directory/mailboxes", {"mailbox": CABINET, "type": "APP"}))
        self.assertEqual(status, 201, created)
        self.assertEqual(response.getheader("Location"), "/api/directory/mailboxes/" + CABINET)
        audit_from = self.gateway.log_size()  # the class shares its gateway: this test's events only
        status, _, bound = self.in_force(lambda: call(
            self.port, "POST", "/api/directory/bindings",
            {"mailbox": CABINET, "match": "spki-sha256", "value": labo_key, "label": "LPS labo"}))
        self.assertEqual(status, 201, bound)
        self.assertTrue(external_sign_in(self.gateway, "org-labo", CABINET).startswith("a1 OK"))
        # The audit trail names the certificate that made each change.
        event = self.gateway.wait_for_log(
            r"event=directory_changed operation=create resource=binding mailbox=%s match=spki-sha256 "
            r"value=%s label=\"LPS labo\" client=127\.0\.0\.1 client_spki_sha256=(\w+) client_subject=\"([^\"]*)\""
            % (re.escape(CABINET), labo_key), since=audit_from)
        self.assertEqual(event.group(1), self.writer_key)
        self.assertIn("810001234567", event.group(2))

        # Suspended through the API: refused at once; active again: opens.
        status, _, _ = self.in_force(lambda: call(self.port, "PUT", "/api/directory/mailboxes/" + CABINET,
                                                  {"type": "APP", "status": "suspended"}))
        self.assertEqual(status, 200)
        self.assertTrue(external_sign_in(self.gateway, "org-labo", CABINET).startswith("a1 NO"))
        self.in_force(lambda: call(self.port, "PUT", "/api/directory/mailboxes/" + CABINET, {"type": "APP"}))
        self.assertTrue(external_sign_in(self.gateway, "org-labo", CABINET).startswith("a1 OK"))

        # The binding deleted by its path (the value percent-encoded): refused again.
        path = "/api/directory/bindings/%s/spki-sha256/%s" % (urllib.parse.quote(CABINET), labo_key)
        status, _, _ = self.in_force(lambda: call(self.port, "DELETE", path))
        self.assertEqual(status, 204)
        self.assertTrue(external_sign_in(self.gateway, "org-labo", CABINET).startswith("a1 NO"))
        status, _, _ = self.in_force(lambda: call(self.port, "DELETE", "/api/directory/mailboxes/" + CABINET))
        self.assertEqual(status, 204)
        self.assertEqual(call(self.port, "GET", "/api/directory/mailboxes/" + CABINET)[0], 404)

    def test_a_reader_reads_and_is_refused_a_change(self):
        status, _, page = call(self.port, "GET", "/api/directory/mailboxes?limit=2", cert=READER)
        self.assertEqual(status, 200)
        self.assertEqual(len(page["items"]), 2)
        status, _, rest = call(self.port, "GET", "/api/directory/mailboxes?limit=100&after=" + page["next"],
                               cert=READER)
        self.assertNotIn("next", rest)
        listed = [m["mailbox"] for m in page["items"] + rest["items"]]
        self.assertEqual(listed, sorted(listed))
        self.assertIn(APP_HOPITAL, listed)
        audit_from = self.gateway.log_size()
        refused = self.assert_problem(
            call(self.port, "DELETE", "/api/directory/mailboxes/" + APP_HOPITAL, cert=READER),
            403, "write-forbidden")
        self.assertIn("admin.provisioning_writers", refused["detail"])
        self.gateway.wait_for_log(r"event=directory_change_refused method=DELETE path=/api/directory/mailboxes/%s "
                                  r"client=127\.0\.0\.1 client_spki_sha256=%s"
                                  % (re.escape(APP_HOPITAL), spki_sha256(READER)), since=audit_from)
        status, _, _ = call(self.port, "GET", "/api/directory/mailboxes/" + APP_HOPITAL)
        self.assertEqual(status, 200)

    def test_refusals_are_problem_documents(self):
        document = self.assert_problem(
            call(self.port, "POST", "/api/directory/mailboxes", {"mailbox": "x@" + DOMAIN, "type": "BAL"}),
            422, "invalid-rows")
        self.assertEqual(document["errors"], [{"message": "unknown type 'BAL' (PER, ORG, APP or CAB)"}])
        self.assert_problem(call(self.port, "POST", "/api/directory/mailboxes", "{not json"), 400, "bad-request")
        self.assert_problem(call(self.port, "POST", "/api/directory/mailboxes",
                                 {"mailbox": APP_HOPITAL, "type": "APP"}), 409, "already-exists")
        self.assert_problem(call(self.port, "POST", "/api/directory/senders",
                                 {"mailbox": "nobody@" + DOMAIN, "sender": "a@" + DOMAIN}),
                            409, "missing-reference")
        self.assert_problem(call(self.port, "POST", "/api/directory/mailboxes", "mailbox=x",
                                 content_type="application/x-www-form-urlencoded"),
                            415, "unsupported-media-type")
        status, response, document = call(self.port, "PATCH", "/api/directory/mailboxes/" + APP_HOPITAL, {})
        self.assertEqual(status, 405)
        self.assertEqual(response.getheader("Allow"), "GET, HEAD, PUT, DELETE")
        # A body over 64 KiB to a single resource: 413 before it is read.
        status, _, text = call(self.port, "POST", "/api/directory/mailboxes", b"x" * 70000)
        self.assertEqual(status, 413, text)
        # The endpoint goes on.
        self.assertEqual(call(self.port, "GET", "/api/directory")[2]["may_write"], True)
        self.assertEqual(call(self.port, "GET", "/api/directory", cert=READER)[2]["may_write"], False)

    def test_bulk_import_and_export(self):
        csv = ("kind,mailbox,type,status,sender\n"
               "mailbox,secretariat@%s,ORG,active,\n"
               "sender,secretariat@%s,,,accueil@%s\n" % (DOMAIN, DOMAIN, DOMAIN))
        status, _, dry = call(self.port, "POST", "/api/directory/import?dry_run=true", csv, content_type="text/csv")
        self.assertEqual(status, 200, dry)
        self.assertEqual(dry["change_count"], 2)
        self.assertEqual(call(self.port, "GET", "/api/directory/mailboxes/secretariat@" + DOMAIN)[0], 404)
        audit_from = self.gateway.log_size()
        status, _, done = call(self.port, "POST", "/api/directory/import", csv, content_type="text/csv")
        self.assertEqual(status, 200, done)
        self.assertEqual(done["counts"]["senders"]["added"], 1)
        self.gateway.wait_for_log(r"event=directory_imported sync=no .* client_spki_sha256=" + self.writer_key,
                                  since=audit_from)
        # The export is mssgatectl's, byte for byte; importing it changes nothing.
        status, _, exported = call(self.port, "GET", "/api/directory/export?format=jsonl")
        self.assertEqual(status, 200)
        by_ctl = self.gateway.ctl("directory", "export", "--format", "jsonl").stdout
        self.assertEqual(exported, by_ctl)
        status, _, again = call(self.port, "POST", "/api/directory/import", exported,
                                content_type="application/jsonl")
        self.assertEqual(again["summary"].count(" 0 added, 0 changed, 0 removed"), 5, again)
        # A bad row: its line, and nothing changed.
        document = self.assert_problem(call(self.port, "POST", "/api/directory/import",
                                            "kind,mailbox,type\nmailbox,cabinet@%s,APP\nmailbox,bad,APP\n" % DOMAIN,
                                            content_type="text/csv"), 422, "invalid-rows")
        self.assertEqual(document["errors"][0]["line"], 3)
        self.assertEqual(call(self.port, "GET", "/api/directory/mailboxes/cabinet@" + DOMAIN)[0], 404)
        # An import over admin.max_import_bytes (1 MiB here): 413, nothing read.
        big = "kind,mailbox,type\n" + "".join("mailbox,m%07d@%s,APP\n" % (i, DOMAIN) for i in range(40000))
        self.assertGreater(len(big), 1 << 20)
        status, _, text = call(self.port, "POST", "/api/directory/import", big, content_type="text/csv")
        self.assertEqual(status, 413, text)
        self.gateway.ctl("mailbox", "remove", "secretariat@" + DOMAIN)

    def raw_request(self, head):
        """A TLS connection to the admin endpoint as the writer, `head` (an import's request line
        and header section) sent on it."""
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        conn = client_context(WRITER).wrap_socket(raw, server_hostname="localhost")
        conn.sendall(head.encode())
        return conn

    @staticmethod
    def read_until(conn, marker):
        data = b""
        while marker not in data:
            piece = conn.recv(65536)
            if not piece:
                break
            data += piece
        return data

    def import_head(self, length, expect=False):
        return ("POST /api/directory/import HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/csv\r\n"
                "Content-Length: %d\r\n%s\r\n" % (length, "Expect: 100-continue\r\n" if expect else ""))

    def test_a_refused_body_still_sent_does_not_cost_the_client_its_answer(self):
        """The client sends an import over the limit after the gateway has refused it (its
        header alone decides): the body is read and dropped, and the client reads its 413
        instead of a reset connection."""
        body = b"kind,mailbox,type\n" + b"x" * (2 << 20)
        conn = self.raw_request(self.import_head(len(body)))
        try:
            # The refusal is written as soon as the header is read: it waits for the client.
            conn.settimeout(30)
            time.sleep(0.5)
            conn.sendall(body)
            answer = self.read_until(conn, b"\r\n\r\n")
        finally:
            conn.close()
        self.assertTrue(answer.startswith(b"HTTP/1.1 413 "), answer[:200])

    def test_expect_100_continue_is_answered_before_the_body(self):
        """curl sends a large import with "Expect: 100-continue": "100 Continue" when the body
        will be read, the refusal in its place when it will not."""
        conn = self.raw_request(self.import_head((1 << 20) + 1, expect=True))
        try:
            # The refusal, then the connection closed at once: no body is awaited.
            conn.settimeout(2)
            answer = self.read_until(conn, b"never sent")
        finally:
            conn.close()
        self.assertTrue(answer.startswith(b"HTTP/1.1 413 "), answer[:200])
        self.assertNotIn(b"100 Continue", answer)
        body = ("kind,mailbox,type\nmailbox,bad,APP\n").encode()
        conn = self.raw_request(self.import_head(len(body), expect=True))
        try:
            interim = self.read_until(conn, b"\r\n\r\n")
            self.assertEqual(interim, b"HTTP/1.1 100 Continue\r\n\r\n")
            conn.sendall(body)
            final = self.read_until(conn, b"}")
        finally:
            conn.close()
        self.assertTrue(final.startswith(b"HTTP/1.1 422 "), final[:300])
        self.assertIn(b"invalid-rows", final)

    def test_the_operator_guides_curl_commands(self):
        """curl as the operator guide shows it: -d with the JSON Content-Type, -X PUT, and
        --data-binary @file for an import (curl sends the Content-Length)."""
        base = "https://127.0.0.1:%d" % self.port
        tls = ["--cert", pki(WRITER + ".crt"), "--key", pki(WRITER + ".key"), "--cacert", pki("ca-chain.pem")]

        def curl(*args):
            result = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", *tls, *args], capture_output=True,
                                    text=True, timeout=30)
            self.assertEqual(result.returncode, 0, result.stderr)
            body, _, status = result.stdout.rpartition("\n")
            return int(status), body

        mailbox = "patient.test@" + DOMAIN
        status, body = curl("-H", "Content-Type: application/json", "-d",
                            json.dumps({"mailbox": mailbox, "type": "PER"}), base + "/api/directory/mailboxes")
        self.assertEqual(status, 201, body)
        status, body = curl("-X", "PUT", "-H", "Content-Type: application/json", "-d",
                            '{"type": "PER", "status": "suspended"}', base + "/api/directory/mailboxes/" + mailbox)
        self.assertEqual((status, json.loads(body)["status"]), (200, "suspended"), body)
        # Without the Content-Type, curl -d says form data: refused with what to send.
        status, body = curl("-d", '{"type": "PER"}', "-X", "PUT", base + "/api/directory/mailboxes/" + mailbox)
        self.assertEqual(status, 415, body)
        self.assertIn("application/json", json.loads(body)["detail"])
        path = os.path.join(self.gateway.dir, "annuaire.csv")
        with open(path, "w") as f:
            f.write("kind,mailbox,sender\nsender,%s,accueil@%s\n" % (mailbox, DOMAIN))
        status, body = curl("-H", "Content-Type: text/csv", "--data-binary", "@" + path,
                            base + "/api/directory/import?dry_run=true")
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["changes"], ["+ sender %s may send as accueil@%s" % (mailbox, DOMAIN)])
        status, body = curl("-X", "DELETE", base + "/api/directory/mailboxes/" + mailbox)
        self.assertEqual(status, 204, body)

    def test_the_openapi_document_is_the_one_in_docs(self):
        status, response, served = call(self.port, "GET", "/api/openapi.json", cert=READER)
        self.assertEqual(status, 200)
        with open(os.path.join(ROOT, "docs", "openapi.json")) as f:
            self.assertEqual(served, json.load(f))


class ProvisioningAcrossReload(unittest.TestCase):
    def test_the_writers_and_the_import_limit_are_taken_on_reload(self):
        with Gateway(extra_config=admin_tls_section()) as gateway:
            port = gateway.ports["admin"]
            body = {"mailbox": CABINET, "type": "APP"}
            self.assertEqual(call(port, "POST", "/api/directory/mailboxes", body)[0], 403)
            gateway.set_option("admin", "provisioning_writers", '["%s"]' % spki_sha256(WRITER))
            gateway.set_option("admin", "max_import_bytes", '"1KiB"')
            offset = gateway.log_size()
            gateway.process.send_signal(signal.SIGHUP)
            gateway.wait_for_log(r"event=reloaded ", since=offset)
            self.assertEqual(call(port, "POST", "/api/directory/mailboxes", body)[0], 201)
            csv = "kind,mailbox,type\n" + "mailbox,m@%s,APP\n" % DOMAIN * 60
            self.assertEqual(call(port, "POST", "/api/directory/import", csv, content_type="text/csv")[0], 413)


class ProvisioningOnLoopback(unittest.TestCase):
    def test_a_plain_admin_endpoint_serves_reads_and_refuses_changes(self):
        with Gateway(extra_config='[admin]\nlisten = ["127.0.0.1:0"]\n') as gateway:
            port = gateway.ports["admin"]
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", "/api/directory/mailboxes/" + APP_HOPITAL)
            response = connection.getresponse()
            self.assertEqual(response.status, 200)
            self.assertEqual(json.loads(response.read())["type"], "APP")
            body = json.dumps({"type": "APP", "status": "closed"})
            connection.request("PUT", "/api/directory/mailboxes/" + APP_HOPITAL, body=body,
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            document = json.loads(response.read())
            self.assertEqual(response.status, 403)
            self.assertIn("over TLS and a client certificate", document["detail"])
            connection.close()

    def test_writers_without_tls_are_a_configuration_error(self):
        gateway = Gateway(extra_config='[admin]\nlisten = ["127.0.0.1:0"]\nprovisioning_writers = ["%s"]\n'
                          % ("ab" * 32))
        try:
            result = subprocess.run([os.environ["MSSGATE_BIN"], "--check-config", gateway.config_path],
                                    capture_output=True, text=True, timeout=30)
        finally:
            shutil.rmtree(gateway.dir, ignore_errors=True)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("admin.provisioning_writers", result.stderr + result.stdout)
        self.assertIn("needs TLS", result.stderr + result.stdout)


if __name__ == "__main__":
    main()

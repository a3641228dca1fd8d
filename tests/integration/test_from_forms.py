"""The From check against hostile header forms (data/hostile_from.json): each form is submitted
through mssgate, and mssgate's answer is compared with the table and with what Python's email
package (policy.default) reads in the same bytes. mssgate never accepts a form that Python
reads as another address or with a defect; where it refuses a form Python reads cleanly, the
table says why."""

import email.utils
import json
import os
import re
import time
from email import policy
from email.parser import BytesParser, Parser

from harness import (APP_HOPITAL, APP_LABO, DOMAIN, PER_MARTIN, SMTP, GatewayTestCase, client_context,
                     delivered_messages, main, new_marker, wait_for_delivery)

ALLOWED = "secretariat@" + DOMAIN  # an address APP_HOPITAL may also send as
PLACES = {"me": APP_HOPITAL, "allowed": ALLOWED, "victim": PER_MARTIN, "outside": "victim@other.fr"}
AUTHORISED = {APP_HOPITAL, ALLOWED}
FIELDS = ("From", "Sender", "Resent-From", "Resent-Sender")
TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "hostile_from.json")


def load_rows():
    with open(TABLE, encoding="utf-8") as f:
        return json.load(f)["rows"]


def build(row, marker):
    """The message of a row: its header lines first, then the usual fields and a body."""
    lines = [line.format(**PLACES) for line in row["lines"]]
    rest = ("To: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@test>\r\n\r\nBonjour.\r\n"
            % (APP_LABO, marker.decode(), email.utils.formatdate(), marker.decode()))
    return ("\r\n".join(lines) + "\r\n" + rest).encode("utf-8")


def python_reading(raw, utf8):
    """What Python reads in the author fields: {field: [addresses of each field]} (lower-cased
    addr-specs, as the directory compares them) and the defects it found (of the message and of
    those fields). Under SMTPUTF8 the message is UTF-8 text (RFC 6532)."""
    if utf8:
        msg = Parser(policy=policy.default).parsestr(raw.decode("utf-8"))
    else:
        msg = BytesParser(policy=policy.default).parsebytes(raw)
    problems = [type(d).__name__ for d in msg.defects]
    read = {}
    for name in FIELDS:
        for header in msg.get_all(name) or []:
            try:
                addresses = [a.addr_spec.lower() for a in header.addresses]
                problems += ["%s: %s" % (type(d).__name__, d) for d in header.defects]
            except Exception as error:  # Python cannot read it at all
                addresses = []
                problems.append("%s: %s" % (type(error).__name__, error))
            read.setdefault(name, []).append(addresses)
    return read, problems


def python_verdict(read, problems):
    """(clean, why): clean when Python reads one From field, and only authorised addresses in
    every author field, without any defect."""
    if problems:
        return False, "defects %r" % problems
    froms = read.get("From", [])
    if len(froms) != 1 or not froms[0]:
        return False, "From fields %r" % froms
    for name, fields in read.items():
        for addresses in fields:
            others = [a for a in addresses if a not in AUTHORISED]
            if others or not addresses:
                return False, "%s reads %r" % (name, addresses)
    return True, "only authorised addresses, no defect"


def stuffed(raw):
    return re.sub(rb"(?m)^\.", b"..", raw)


class FromFormsTest(GatewayTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.gateway.change_directory("mailbox", "add", ALLOWED, "--type", "ORG")
        cls.gateway.change_directory("mailbox", "allow-sender", APP_HOPITAL, ALLOWED)

    def test_the_table_agrees_with_python(self):
        """Accepted forms are read cleanly by Python; a refusal of a form Python reads cleanly
        is explained in the table, and only such a refusal is."""
        rows = load_rows()
        self.assertGreaterEqual(len(rows), 40)
        self.assertEqual(len({row["name"] for row in rows}), len(rows), "row names are unique")
        for row in rows:
            with self.subTest(row=row["name"]):
                clean, why = python_verdict(*python_reading(build(row, b"m"), row.get("smtputf8", False)))
                if row["expect"] == "accept":
                    self.assertTrue(clean, why)
                    self.assertNotIn("choice", row)
                else:
                    self.assertEqual(row["expect"], "refuse")
                    self.assertIn(row.get("field"), ("header", "from", "sender", "resent_from", "resent_sender"))
                    self.assertTrue(row.get("detail"))
                    self.assertEqual("choice" in row, clean, "a refusal by choice is one Python reads cleanly: " + why)

    def submit(self, smtp, raw, utf8):
        code, text = smtp.docmd("MAIL", "FROM:<%s>%s" % (APP_HOPITAL, " SMTPUTF8" if utf8 else ""))
        self.assertEqual(code, 250, text)
        code, text = smtp.docmd("RCPT", "TO:<%s>" % APP_LABO)
        self.assertEqual(code, 250, text)
        code, text = smtp.docmd("DATA")
        self.assertEqual(code, 354, text)
        smtp.send(stuffed(raw) + b".\r\n")
        return smtp.getreply()

    def test_each_form_gets_the_answer_of_the_table(self):
        rows = load_rows()
        failures, accepted, refused = [], [], []
        smtp = SMTP("127.0.0.1", self.gateway.submission_port, timeout=30)
        smtp.starttls(context=client_context("org-hopital"))
        smtp.ehlo("lps.test")
        self.assertEqual(smtp.auth("EXTERNAL", lambda challenge=None: "", initial_response_ok=True)[0], 235)
        session = self.gateway.session_of(smtp.sock)
        start = time.monotonic()
        for number, row in enumerate(rows):
            marker = new_marker("form%d" % number)
            raw = build(row, marker)
            utf8 = row.get("smtputf8", False)
            offset = self.gateway.log_size()
            code, text = self.submit(smtp, raw, utf8)
            clean, why = python_verdict(*python_reading(raw, utf8))
            label = "%s %r: mssgate %d %s; Python: %s" % (row["name"], row["lines"], code, text.decode(), why)
            if code == 250 and not clean:
                failures.append("ACCEPTED what Python reads otherwise: " + label)
            if row["expect"] == "accept":
                # Dovecot's LMTP does not offer SMTPUTF8: Postfix may bounce such a message
                # (5.6.7) after queueing it, so only mssgate's 250 is checked for those.
                if not utf8:
                    accepted.append(marker)
                if code != 250:
                    failures.append("refused, the table accepts: " + label)
                continue
            refused.append(marker)
            if code != 550 or not text.startswith(b"5.7.1 "):
                failures.append("not refused with 550 5.7.1: " + label)
                continue
            event = (r"event=sender_refused session=%s mailbox=%s where=from_header field=%s detail=%s\n"
                     % (session, re.escape(APP_HOPITAL), row["field"], row["detail"]))
            reason = r"event=message session=%s \S+ message_id=<%s@test> .*result=refused reason=from_header " % (
                session, re.escape(marker.decode()))
            log = self.gateway.log(since=offset)
            if not re.search(event, log) or not re.search(reason, log):
                found = re.findall(r"event=sender_refused [^\n]*", log)
                failures.append("log: expected field=%s detail=%s, found %r: %s"
                                % (row["field"], row["detail"], found, label))
        elapsed = time.monotonic() - start
        self.assertEqual(smtp.docmd("QUIT")[0], 221)
        smtp.close()
        print("%d forms submitted in %.2f s (%d refused)" % (len(rows), elapsed, len(refused)))
        self.assertEqual(failures, [], "\n" + "\n".join(failures))
        # An accepted form is delivered; a refused one never reaches the backend.
        for marker in accepted:
            wait_for_delivery(APP_LABO, marker)
        for marker in refused:
            self.assertEqual(delivered_messages(APP_LABO, marker), [], marker)


if __name__ == "__main__":
    main()

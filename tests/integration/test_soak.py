"""The soak's short version (tests/soak/soak.py): for about a minute, four clients send through
submission (two signed in by certificate, two by Pro Santé Connect tokens), some messages with an
IHE_XDM archive, to a mailbox Postfix delivers through the LMTP tap, while two readers fetch
that mailbox over IMAP; meanwhile the peers fail one after the other behind chaos gates, the
configuration is reloaded every few seconds, and mssgate is killed twice (SIGKILL) and started
again. Then the ledgers agree: nothing acknowledged is lost or altered, no event is lost or
counted twice, the JSON-lines log holds each event once, no reload failed, no sanitizer report,
and Dovecot's Sieve script (with lmtp.serial_per_mailbox, so that Dovecot keeps every delivery
id) leaves no duplicate in the mailbox."""

import json
import os
import sys
import unittest

from harness import BACKEND_DIR, MSSGATE, MSSGATECTL, PKI, main

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "soak"))
import soak  # noqa: E402

TAP_PORT = 21124  # the backend fixture's Postfix delivers tap.test.mssante.fr here
SECONDS = 60
PAUSE = 0.1  # each client's pause between two messages: Postfix's deliveries keep up


class Soak(unittest.TestCase):
    def test_faults_reloads_and_kills_while_clients_send_and_read(self):
        summary = soak.run(MSSGATE, MSSGATECTL, PKI, BACKEND_DIR, TAP_PORT, seconds=SECONDS, clients=4, kills=2,
                           pause=PAUSE, serial_per_mailbox=True, readers=2, faults=True, fault_every=4.0,
                           reload_every=3.0, xdm_share=0.3)
        print(json.dumps({k: v for k, v in summary.items() if k != "faults"}, indent=2), file=sys.stderr)
        print("faults: %s" % json.dumps(summary["faults"]["by_peer"]), file=sys.stderr)
        self.assertEqual(summary["problems"], [])
        self.assertGreaterEqual(summary["clients"]["acked"], 200, "the clients sent too little to tell")
        self.assertEqual(len(summary["kills"]), 2)
        self.assertGreaterEqual(summary["faults"]["count"], 5, "too few faults to tell")
        self.assertGreaterEqual(summary["reloads"]["reloaded"], 10)
        self.assertGreater(summary["journal"]["sent_by"]["certificate"], 0)
        self.assertGreater(summary["journal"]["sent_by"]["psc"], 0)
        self.assertGreater(summary["mailbox"]["with_archive"], 0)
        self.assertGreater(summary["readers"]["archives_checked"], 0, "the readers checked no archive")
        self.assertEqual(summary["mailbox"]["extra_copies"], 0, "a message stored twice")
        self.assertEqual(summary["journal"]["received_events"], summary["mailbox"]["messages"])


if __name__ == "__main__":
    main()

"""The soak's short version (tests/soak/soak.py): four clients send through submission to a
mailbox Postfix delivers through the LMTP tap while mssgate is killed twice (SIGKILL) and
started again; then the ledgers agree: nothing acknowledged is lost, no event is lost or
counted twice, the JSON-lines log holds each event once, and Dovecot's Sieve script (with
lmtp.serial_per_mailbox, so that Dovecot keeps every delivery id) leaves no duplicate in the
mailbox."""

import json
import os
import sys
import unittest

from harness import BACKEND_DIR, MSSGATE, MSSGATECTL, PKI, main

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "soak"))
import soak  # noqa: E402

TAP_PORT = 21124  # the backend fixture's Postfix delivers tap.test.mssante.fr here
SECONDS = 20
PAUSE = 0.08  # each client's pause between two messages: Postfix's deliveries keep up


class Soak(unittest.TestCase):
    def test_kills_while_clients_send(self):
        summary = soak.run(MSSGATE, MSSGATECTL, PKI, BACKEND_DIR, TAP_PORT, seconds=SECONDS, clients=4, kills=2,
                           pause=PAUSE, serial_per_mailbox=True)
        print(json.dumps(summary, indent=2), file=sys.stderr)
        self.assertEqual(summary["problems"], [])
        self.assertGreaterEqual(summary["clients"]["acked"], 150, "the clients sent too little to tell")
        self.assertEqual(len(summary["kills"]), 2)
        self.assertEqual(summary["mailbox"]["extra_copies"], 0, "a message stored twice")
        self.assertEqual(summary["journal"]["received_events"], summary["mailbox"]["messages"])


if __name__ == "__main__":
    main()

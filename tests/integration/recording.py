"""A TCP relay between mssgate and a real backend that keeps what mssgate sent: tests read it to
check what reached Dovecot or Postfix, and what never did."""

from harness import CuttableForwarder


class RecordingForwarder(CuttableForwarder):
    """Relays every connection to the backend on `target_port`, as CuttableForwarder does, and
    records the bytes sent towards the backend (`sent()`) and the connections made
    (`connections`)."""

    def __init__(self, target_port):
        super().__init__(target_port, record=True)

    def sent(self):
        """Every byte forwarded towards the backend, in the order it went."""
        return self.kept("up")

    @property
    def connections(self):
        """How many connections were accepted."""
        return len(self.stats())

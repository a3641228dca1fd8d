"""A TCP relay between mssgate and a real backend that keeps what mssgate sent: tests read it to
check what reached Dovecot or Postfix, and what never did."""

import threading

from harness import CuttableForwarder


class RecordingForwarder(CuttableForwarder):
    """Relays every connection to the backend on `target_port`, as CuttableForwarder does, and
    records the bytes sent towards the backend (`sent()`) and the connections made
    (`connections`)."""

    def __init__(self, target_port):
        self.record_lock = threading.Lock()
        self.recorded = b""
        self.connections = 0
        super().__init__(target_port)

    def pump(self, source, destination, state, upstream):
        if upstream:
            with self.record_lock:
                self.connections += 1
            destination = _Recorder(destination, self)
        super().pump(source, destination, state, upstream)

    def sent(self):
        with self.record_lock:
            return self.recorded


class _Recorder:
    """The backend's socket, as the upstream pump writes to it: what is written is recorded."""

    def __init__(self, sock, forwarder):
        self.sock = sock
        self.forwarder = forwarder

    def sendall(self, data):
        with self.forwarder.record_lock:
            self.forwarder.recorded += data
        return self.sock.sendall(data)

    def __getattr__(self, name):
        return getattr(self.sock, name)

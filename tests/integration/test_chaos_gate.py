"""The chaos gate itself, against an echo server on loopback (no mssgate, no backend): each fault
does what it says at the byte it says, the counters count, clear() serves faithfully again, the
control socket drives the same faults, and close() leaves nothing running."""

import json
import socket
import subprocess
import sys
import threading
import time
import unittest

from chaos_gate import ChaosGate
from harness import main, wait_for_close


class EchoServer:
    """Echoes every byte back, on a thread per connection."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.echo, args=(sock,), daemon=True).start()

    @staticmethod
    def echo(sock):
        with sock:
            try:
                while True:
                    data = sock.recv(65536)
                    if not data:
                        return
                    sock.sendall(data)
            except OSError:
                pass

    def close(self):
        self.listener.close()


def receive(sock, count, timeout=5.0):
    sock.settimeout(timeout)
    data = b""
    while len(data) < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


class ChaosGateTest(unittest.TestCase):
    def setUp(self):
        self.echo = EchoServer()
        self.addCleanup(self.echo.close)
        self.gate = ChaosGate(self.echo.port)
        self.addCleanup(self.gate.close)

    def connect(self):
        sock = socket.create_connection(("127.0.0.1", self.gate.port), timeout=5)
        self.addCleanup(sock.close)
        return sock

    def test_forwards_faithfully_and_counts(self):
        sock = self.connect()
        sock.sendall(b"x" * 100_000)
        self.assertEqual(receive(sock, 100_000), b"x" * 100_000)
        self.gate.wait_connections(1)
        [connection] = self.gate.stats()
        self.assertEqual(connection["sent"], {"up": 100_000, "down": 100_000})
        self.assertEqual(connection["fired"], [])

    def test_corrupt_and_truncate_at_a_pattern(self):
        sock = self.connect()
        self.gate.fault("corrupt", "down", at=b"MARK", after=1, data=b"**", existing=True)
        sock.sendall(b"abcMARKdef")
        self.assertEqual(receive(sock, 10), b"abcM**Kdef")
        self.gate.fault("truncate", "down", after=4, existing=True)
        sock.sendall(b"0123456789")
        self.assertEqual(receive(sock, 10), b"0123")  # then end of stream
        self.assertEqual(self.gate.fired("corrupt"), 1)
        self.assertEqual(self.gate.fired("truncate"), 1)

    def test_close_and_reset_after_a_byte_count(self):
        sock = self.connect()
        self.gate.fault("close", "up", after=5)
        sock = self.connect()
        sock.sendall(b"0123456789")
        how, data = wait_for_close(sock.recv, sock)
        self.assertEqual(how, "eof")
        self.gate.wait_fired("close")
        self.assertEqual(self.gate.stats()[1]["sent"]["up"], 5)  # the peer got 5 bytes, then the end
        self.gate.fault("reset", "down", after=3)
        sock = self.connect()
        sock.sendall(b"0123456789")
        how, data = wait_for_close(sock.recv, sock)
        self.assertEqual(how, "reset")
        self.assertEqual([c["ended"] for c in self.gate.stats()[1:]], ["close", "reset"])

    def test_a_once_only_fault_takes_hold_on_one_connection_only(self):
        # Armed for the open connections and new ones; the first to reach the pattern meets it,
        # the others (a peer's retry) go through untouched.
        idle = self.connect()
        self.gate.wait_connections(1)
        self.gate.fault("reset", "down", at=b"MARK", existing=True, once=True)
        first = self.connect()
        first.sendall(b"abcMARK")
        how, _ = wait_for_close(first.recv, first)
        self.assertEqual(how, "reset")
        retry = self.connect()
        retry.sendall(b"MARK again")
        self.assertEqual(receive(retry, 10), b"MARK again")
        idle.sendall(b"MARK too")
        self.assertEqual(receive(idle, 8), b"MARK too")
        self.assertEqual(self.gate.fired("reset"), 1)
        self.assertEqual([c["ended"] for c in self.gate.stats()], [None, "reset", None])

    def test_stall_trickle_and_clear(self):
        self.gate.fault("stall", "down", seconds=0.5)
        sock = self.connect()
        start = time.monotonic()
        sock.sendall(b"ping")
        self.assertEqual(receive(sock, 4), b"ping")
        self.assertGreaterEqual(time.monotonic() - start, 0.45)
        self.gate.fault("trickle", "down", rate=2, interval=0.05, existing=True)
        start = time.monotonic()
        sock.sendall(b"abcdefgh")
        self.assertEqual(receive(sock, 8), b"abcdefgh")
        self.assertGreaterEqual(time.monotonic() - start, 0.15)
        start = time.monotonic()  # and what comes next, in other reads, as slowly
        sock.sendall(b"0123456789" * 4)
        self.assertEqual(receive(sock, 40), b"0123456789" * 4)
        self.assertGreaterEqual(time.monotonic() - start, 0.9)
        self.gate.fault("stall", "down", existing=True)  # until clear()
        sock.sendall(b"held")
        sock.settimeout(0.3)
        self.assertRaises(socket.timeout, sock.recv, 10)
        self.gate.clear()
        self.assertEqual(receive(sock, 4), b"held")

    def test_refusals(self):
        self.gate.refuse("unlisten")
        self.assertRaises(ConnectionRefusedError, socket.create_connection, ("127.0.0.1", self.gate.port), 2)
        self.gate.clear()
        self.gate.refuse("reset")
        try:
            sock = self.connect()
            self.assertEqual(wait_for_close(sock.recv, sock)[0], "reset")
        except ConnectionResetError:
            pass  # the reset came before connect() returned
        self.gate.wait_connections(1)
        self.assertEqual(self.gate.stats()[0]["ended"], "refused")
        self.gate.clear()
        sock = self.connect()
        sock.sendall(b"back")
        self.assertEqual(receive(sock, 4), b"back")

    def test_the_control_socket_drives_a_gate_in_another_process(self):
        process = subprocess.Popen([sys.executable, sys.modules[ChaosGate.__module__].__file__,
                                    "--target", "127.0.0.1:%d" % self.echo.port],
                                   stdout=subprocess.PIPE, text=True)
        self.addCleanup(process.wait, 10)
        self.addCleanup(process.terminate)
        ports = json.loads(process.stdout.readline())
        control = socket.create_connection(("127.0.0.1", ports["control_port"]), timeout=5)
        self.addCleanup(control.close)
        answers = control.makefile("r")

        def command(**request):
            control.sendall(json.dumps(request).encode() + b"\n")
            return json.loads(answers.readline())

        self.assertEqual(command(op="fault", kind="corrupt", direction="down", data="Z"), {"ok": True})
        sock = socket.create_connection(("127.0.0.1", ports["port"]), timeout=5)
        self.addCleanup(sock.close)
        sock.sendall(b"abc")
        self.assertEqual(receive(sock, 3), b"Zbc")
        stats = command(op="stats")
        self.assertEqual(stats["connections"][0]["fired"], [["corrupt", "down", 0]])
        self.assertFalse(command(op="fault", kind="melt")["ok"])
        self.assertEqual(command(op="clear"), {"ok": True})

    def test_close_ends_every_connection_and_the_thread(self):
        self.gate.fault("stall", "down")
        sock = self.connect()
        sock.sendall(b"never answered")
        self.gate.wait_connections(1)
        self.gate.close()
        self.assertFalse(self.gate.thread.is_alive())
        self.assertIn(wait_for_close(sock.recv, sock)[0], ("eof", "reset"))


if __name__ == "__main__":
    main()

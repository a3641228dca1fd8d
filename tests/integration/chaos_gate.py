"""A TCP gate between mssgate and one of its peers (Dovecot IMAP or LMTP, Postfix, the PSC issuer,
a CRL source) that forwards every connection faithfully until told to misbehave.

Faults, each on one direction of the traffic ("up": what mssgate sends to the peer, "down": what
the peer sends back, or "both"), taking hold at a chosen byte: `after` bytes past the moment the
fault was set on the connection (its start, for a new one), or past the first byte of the
pattern `at` seen in that direction:

- close     the connection is closed both ways (FIN to both ends);
- reset     the connection is reset both ways (RST: SO_LINGER 0);
- truncate  that direction ends there (FIN to its receiver); what follows is dropped;
- stall     that direction stops for `seconds` (None: until clear() or close());
- trickle   that direction goes on `rate` bytes every `interval` seconds, until clear();
- corrupt   the bytes there are replaced by `data` (default: the one byte XOR 0xFF).

With `once=True` a fault takes hold on one connection only: the first one that reaches its byte;
it is then withdrawn from the others and from new connections (a peer's retry goes through).

New connections can also be refused: accepted then closed (`close`) or reset (`reset`) at once,
or not accepted at all (`unlisten`: the port is closed until clear()).

Tests use it in-process (ChaosGate(...).fault(...)); a separate process drives it through its
control socket, one JSON object per line (`python3 chaos_gate.py --help`). Everything it waits
for is bounded: the connection to the peer, every stall (released by clear() and close()), and
close() itself, which ends every connection and its thread.
"""

import argparse
import asyncio
import json
import signal
import socket
import struct
import sys
import threading
import time

DIRECTIONS = ("up", "down")
KINDS = ("close", "reset", "truncate", "stall", "trickle", "corrupt")
REFUSALS = ("close", "reset", "unlisten")
CALL_TIMEOUT = 10.0  # how long an API call waits for the gate's loop


class Fault:
    """What to do, on which direction, from which byte (see the module's docstring)."""

    def __init__(self, kind, direction="down", after=0, at=None, seconds=None, rate=1, interval=0.05, data=None,
                 from_start=False, once=False):
        if kind not in KINDS:
            raise ValueError("unknown fault %r" % kind)
        if direction not in DIRECTIONS + ("both",):
            raise ValueError("unknown direction %r" % direction)
        self.kind = kind
        self.direction = direction
        self.after = int(after)
        self.at = at.encode() if isinstance(at, str) else at
        self.seconds = seconds
        self.rate = max(1, int(rate))
        self.interval = float(interval)
        self.data = data.encode() if isinstance(data, str) else data
        self.from_start = bool(from_start)  # `after` counts from the connection's first byte
        self.once = bool(once)  # withdrawn everywhere once it took hold on one connection

    def directions(self):
        return DIRECTIONS if self.direction == "both" else (self.direction,)

    def describe(self):
        return {"kind": self.kind, "direction": self.direction, "after": self.after,
                "at": self.at.decode("latin-1") if self.at else None, "seconds": self.seconds,
                "rate": self.rate, "interval": self.interval,
                "data": self.data.decode("latin-1") if self.data is not None else None,
                "from_start": self.from_start, "once": self.once}

    @classmethod
    def from_json(cls, spec):
        spec = dict(spec)
        for name in ("at", "data"):
            if spec.get(name) is not None:
                spec[name] = spec[name].encode("latin-1")
        return cls(**spec)


class _Hold:
    """One fault on one direction of one connection: where it takes hold, and whether it did."""

    def __init__(self, fault, offset):
        self.fault = fault
        if fault.at:
            self.hold_at = None
        elif fault.from_start:
            self.hold_at = max(fault.after, offset)
        else:
            self.hold_at = offset + fault.after
        self.tail = b""  # the last bytes seen, for a pattern that spans two reads
        self.fired = False
        self.done = False
        self.release = asyncio.Event()

    def find(self, data, offset):
        """Where the pattern starts (an offset of the direction), once it is seen."""
        window = self.tail + data
        index = window.find(self.fault.at)
        if index < 0:
            self.tail = window[-(len(self.fault.at) - 1):] if len(self.fault.at) > 1 else b""
            return None
        return offset - len(self.tail) + index


class Connection:
    """One connection through the gate, as the tests see it: its counters and what befell it."""

    def __init__(self, number):
        self.number = number
        self.opened = time.monotonic()
        self.read = {"up": 0, "down": 0}  # bytes read from each sender
        self.sent = {"up": 0, "down": 0}  # bytes forwarded to each receiver
        self.fired = []  # (kind, direction, offset) of each fault that took hold
        self.ended = None  # how: "eof", "reset", "refused", "unreachable", "closed_by_gate", or the fault's kind

    def summary(self):
        return {"number": self.number, "read": dict(self.read), "sent": dict(self.sent),
                "fired": [list(f) for f in self.fired], "ended": self.ended}


class _Link:
    """The live half of a Connection: its streams, faults and pumps (the gate's loop only)."""

    def __init__(self, client_reader, client_writer):
        self.readers = {"up": client_reader, "down": None}
        self.writers = {"up": None, "down": client_writer}  # who receives each direction
        self.holds = {"up": None, "down": None}
        self.dead = {"up": False, "down": False}  # a truncated direction drops what follows
        self.eof = {"up": False, "down": False}
        self.closing = False


def _rst(writer):
    if writer is None:
        return
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()


def _fin(writer):
    if writer is None or writer.transport.is_closing():
        return
    try:
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        pass


class ChaosGate:
    """Listens on a loopback port and forwards each connection to target_host:target_port, on a
    thread of its own running an asyncio loop. Faults and refusals apply to new connections until
    clear(); with existing=True, to the open ones too."""

    def __init__(self, target_port, target_host="127.0.0.1", connect_timeout=5.0, control=False, record=False,
                 listen_port=0):
        self.target = (target_host, int(target_port))
        self.connect_timeout = connect_timeout
        self.lock = threading.Lock()  # guards the Connection objects the tests read, and kept_bytes
        self.kept_bytes = {"up": bytearray(), "down": bytearray()}  # with record=True, in time order
        self.record = record
        self.all = []  # every Connection, in order
        self.links = {}  # Connection -> _Link, while open (the loop only)
        self.fault_for_new = None
        self.refusing = None
        self.loop = asyncio.new_event_loop()
        self.server = None
        self.control_server = None
        self.port = None
        self.control_port = None
        self.thread = threading.Thread(target=self.loop.run_forever, name="chaos-gate", daemon=True)
        self.thread.start()
        self._call(self._listen(listen_port, control))

    # ---- the tests' side (any thread) ----------------------------------------------------------
    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(CALL_TIMEOUT)

    def fault(self, kind, direction="down", *, existing=False, new=True, **options):
        """Sets a fault: on each new connection (new=True) until clear(), and on the open ones now
        (existing=True). Options: after, at, seconds, rate, interval, data (see Fault)."""
        fault = Fault(kind, direction, **options)
        self._call(self._set_fault(fault, existing, new))
        return fault

    def refuse(self, how="reset"):
        """New connections are refused until clear(): closed or reset at once, or not accepted."""
        if how not in REFUSALS:
            raise ValueError("unknown refusal %r" % how)
        self._call(self._refuse(how))

    def clear(self):
        """Serves faithfully again: no fault or refusal for new connections, stalls released,
        trickles back to full speed. What a fault already did (a closed connection) stays done."""
        self._call(self._clear())

    def stats(self):
        """Every connection made through the gate so far, in order (snapshots of their counters)."""
        with self.lock:
            return [c.summary() for c in self.all]

    def fired(self, kind=None):
        """How many times a fault (of `kind`) took hold, over every connection."""
        with self.lock:
            return sum(1 for c in self.all for f in c.fired if kind is None or f[0] == kind)

    def kept(self, direction="up"):
        """With record=True: the bytes forwarded in `direction` by every connection, in time order."""
        with self.lock:
            return bytes(self.kept_bytes[direction])

    def close_connections(self, reset=False):
        """Ends every open connection now (FIN both ways, or RST), as a peer that drops its idle
        clients does; not counted as a fault."""
        self._call(self._close_connections(reset))

    def wait_fired(self, kind=None, count=1, timeout=10.0):
        """Waits until faults (of `kind`) took hold `count` times; fails the test otherwise."""
        deadline = time.monotonic() + timeout
        while self.fired(kind) < count:
            if time.monotonic() > deadline:
                raise AssertionError("the gate's %s fault took hold %d time(s), not %d, in %g s: %s"
                                     % (kind or "any", self.fired(kind), count, timeout, self.stats()))
            time.sleep(0.01)

    def wait_connections(self, count, timeout=10.0):
        deadline = time.monotonic() + timeout
        while len(self.stats()) < count:
            if time.monotonic() > deadline:
                raise AssertionError("%d connection(s) through the gate, not %d, in %g s"
                                     % (len(self.stats()), count, timeout))
            time.sleep(0.01)

    def close(self):
        """Stops listening, ends every connection (reset) and the loop's thread."""
        if not self.loop.is_running():
            return
        try:
            self._call(self._shutdown())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(CALL_TIMEOUT)
            if not self.thread.is_alive():
                self.loop.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- the loop's side -----------------------------------------------------------------------
    async def _listen(self, port, control):
        self.server = await asyncio.start_server(self._accepted, "127.0.0.1", port, reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]
        if control:
            self.control_server = await asyncio.start_server(self._control, "127.0.0.1", 0)
            self.control_port = self.control_server.sockets[0].getsockname()[1]

    async def _set_fault(self, fault, existing, new):
        if new:
            self.fault_for_new = fault
        if existing:
            for connection, link in list(self.links.items()):
                self._hold(connection, link, fault)

    async def _refuse(self, how):
        self.refusing = how
        if how == "unlisten" and self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    async def _clear(self):
        self.fault_for_new = None
        self.refusing = None
        for link in self.links.values():
            for direction in DIRECTIONS:
                hold = link.holds[direction]
                if hold is not None and hold.fault.kind in ("stall", "trickle"):
                    hold.done = True
                    hold.release.set()
        if self.server is None:
            self.server = await asyncio.start_server(self._accepted, "127.0.0.1", self.port, reuse_address=True)

    async def _close_connections(self, reset):
        for connection, link in list(self.links.items()):
            self._end(connection, link, "closed_by_gate", reset=reset)

    async def _shutdown(self):
        for server in (self.server, self.control_server):
            if server is not None:
                server.close()
        for connection, link in list(self.links.items()):
            self._end(connection, link, "closed_by_gate", reset=True)
        self.server = self.control_server = None
        # The pumps see their streams end and finish.
        for _ in range(100):
            if not self.links:
                break
            await asyncio.sleep(0.01)
        tasks = [t for t in asyncio.all_tasks(self.loop) if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)

    def _hold(self, connection, link, fault):
        for direction in fault.directions():
            hold = _Hold(fault, connection.sent[direction])
            previous = link.holds[direction]
            if previous is not None:
                previous.done = True
                previous.release.set()
            link.holds[direction] = hold
            # A close, reset or truncate due now needs no more bytes to take hold.
            if hold.hold_at == connection.sent[direction] and fault.kind in ("close", "reset", "truncate"):
                asyncio.ensure_future(self._fire(connection, link, direction, hold, b""))

    async def _accepted(self, reader, writer):
        with self.lock:
            connection = Connection(len(self.all) + 1)
            self.all.append(connection)
        if self.refusing in ("close", "reset"):
            (_rst if self.refusing == "reset" else _fin)(writer)
            writer.close()
            self._ended(connection, "refused")
            return
        link = _Link(reader, writer)
        self.links[connection] = link
        try:
            upstream_reader, upstream_writer = await asyncio.wait_for(
                asyncio.open_connection(*self.target), self.connect_timeout)
        except (OSError, asyncio.TimeoutError):
            self.links.pop(connection, None)
            _rst(writer)
            self._ended(connection, "unreachable")
            return
        link.readers["down"] = upstream_reader
        link.writers["up"] = upstream_writer
        if link.closing:  # ended (close()) while connecting
            _rst(upstream_writer)
            return
        if self.fault_for_new is not None:
            self._hold(connection, link, self.fault_for_new)
        await asyncio.gather(self._pump(connection, link, "up"), self._pump(connection, link, "down"),
                             return_exceptions=True)
        self.links.pop(connection, None)
        for w in link.writers.values():
            if w is not None and not w.transport.is_closing():
                w.close()
        self._ended(connection, "eof")

    def _ended(self, connection, how):
        with self.lock:
            if connection.ended is None:
                connection.ended = how

    async def _pump(self, connection, link, direction):
        reader = link.readers[direction]
        try:
            while not link.closing:
                data = await reader.read(65536)
                if not data:
                    break
                with self.lock:
                    connection.read[direction] += len(data)
                await self._forward(connection, link, direction, data)
        except (ConnectionError, OSError):
            # The sender reset: so is the other end, as the peer itself would have been seen.
            self._end(connection, link, "reset", reset=True)
            return
        if link.closing:
            return
        link.eof[direction] = True
        if not link.dead[direction]:
            _fin(link.writers[direction])
        if all(link.eof.values()):
            self._end(connection, link, "eof", reset=False)

    async def _forward(self, connection, link, direction, data):
        while data and not link.closing:
            if link.dead[direction]:
                return
            hold = link.holds[direction]
            if hold is None or hold.done:
                return await self._write(connection, link, direction, data)
            offset = connection.sent[direction]
            if hold.hold_at is None:
                start = hold.find(data, offset)
                if start is not None:
                    hold.hold_at = max(start, offset) + hold.fault.after
            end = offset + len(data)
            # A fault that acts on bytes waits for the next one; the others take hold at once.
            acts_on_bytes = hold.fault.kind in ("stall", "trickle", "corrupt")
            if hold.hold_at is None or hold.hold_at > end or (hold.hold_at == end and acts_on_bytes):
                return await self._write(connection, link, direction, data)
            split = max(0, hold.hold_at - offset)  # past it already: a trickle goes on
            if split > 0:
                await self._write(connection, link, direction, data[:split])
            data = await self._fire(connection, link, direction, hold, data[split:])

    async def _write(self, connection, link, direction, data):
        writer = link.writers[direction]
        if writer is None or writer.transport.is_closing():
            return
        with self.lock:  # counted first: a test that saw the bytes arrive sees them counted
            connection.sent[direction] += len(data)
            if self.record:
                self.kept_bytes[direction] += data
        writer.write(data)
        try:
            await writer.drain()
        except (ConnectionError, OSError):
            self._end(connection, link, "reset", reset=True)

    async def _fire(self, connection, link, direction, hold, rest):
        """The fault takes hold at the start of `rest`; returns what is then forwarded as is."""
        fault = hold.fault
        if not hold.fired:
            hold.fired = True
            with self.lock:
                connection.fired.append((fault.kind, direction, connection.sent[direction]))
            if fault.once:
                self._withdraw(fault, keep=hold)
        if fault.kind in ("close", "reset"):
            hold.done = True
            self._end(connection, link, fault.kind, reset=fault.kind == "reset")
            return b""
        if fault.kind == "truncate":
            hold.done = True
            link.dead[direction] = True
            _fin(link.writers[direction])
            return b""
        if fault.kind == "corrupt":
            hold.done = True
            replacement = fault.data if fault.data is not None else bytes([rest[0] ^ 0xFF]) if rest else b""
            return replacement[:len(rest)] + rest[len(replacement):]
        if fault.kind == "stall":
            try:
                await asyncio.wait_for(hold.release.wait(), fault.seconds)
            except asyncio.TimeoutError:
                pass
            hold.done = True
            return rest
        # trickle: this direction goes on slowly until clear()
        while rest and not hold.done and not link.closing:
            await self._write(connection, link, direction, rest[:fault.rate])
            rest = rest[fault.rate:]
            try:
                await asyncio.wait_for(hold.release.wait(), fault.interval)
            except asyncio.TimeoutError:
                pass
        return rest

    def _withdraw(self, fault, keep):
        """A once-only fault took hold (`keep`): no other connection, open or new, meets it."""
        if self.fault_for_new is fault:
            self.fault_for_new = None
        for link in self.links.values():
            for direction in DIRECTIONS:
                hold = link.holds[direction]
                if hold is not None and hold is not keep and hold.fault is fault and not hold.fired:
                    hold.done = True
                    link.holds[direction] = None

    def _end(self, connection, link, how, reset):
        if link.closing:
            return
        link.closing = True
        for hold in link.holds.values():
            if hold is not None:
                hold.release.set()
        for writer in link.writers.values():
            if reset:
                _rst(writer)
            elif writer is not None:
                _fin(writer)
                writer.close()
        # The transports are closed: their readers end, so do the pumps.
        self._ended(connection, how)

    # ---- the control socket --------------------------------------------------------------------
    async def _control(self, reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    answer = await self._command(json.loads(line))
                except (ValueError, TypeError, KeyError) as error:
                    answer = {"ok": False, "error": str(error)}
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _command(self, request):
        op = request.pop("op")
        if op == "fault":
            existing = request.pop("existing", False)
            new = request.pop("new", True)
            await self._set_fault(Fault.from_json(request), existing, new)
        elif op == "refuse":
            how = request.get("how", "reset")
            if how not in REFUSALS:
                raise ValueError("unknown refusal %r" % how)
            await self._refuse(how)
        elif op == "clear":
            await self._clear()
        elif op == "stats":
            with self.lock:
                return {"ok": True, "port": self.port, "connections": [c.summary() for c in self.all],
                        "open": sum(1 for c in self.all if c.ended is None)}
        else:
            raise ValueError("unknown op %r" % op)
        return {"ok": True}


def _address(text):
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def main():
    parser = argparse.ArgumentParser(description="A TCP gate that misbehaves on command. Control lines are JSON: "
                                     '{"op": "fault", "kind": "reset", "direction": "down", "after": 100, '
                                     '"existing": true}, {"op": "refuse", "how": "unlisten"}, {"op": "clear"}, '
                                     '{"op": "stats"}.')
    parser.add_argument("--target", required=True, help="HOST:PORT of the peer")
    parser.add_argument("--listen-port", type=int, default=0)
    args = parser.parse_args()
    host, port = _address(args.target)
    gate = ChaosGate(port, host, control=True, listen_port=args.listen_port)
    print(json.dumps({"port": gate.port, "control_port": gate.control_port}), flush=True)
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass
    gate.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the fault tests of each peer (test_chaos_*.py) share: the gateway's footprint (resident
memory, open descriptors, open sessions) taken before the faults and checked after them, and its
metrics."""

import http.client
import os
import re
import sys
import time

# The gateway's resident memory may grow this much over the faults of one test class, whatever
# their number. It covers what warms up once (a thread's arena, a kept HTTP connection, a grown
# log buffer) and the allocator's slack; with the sanitizer's quarantine capped (ASAN_ENV), freed
# blocks held back for use-after-free checks stay within QUARANTINE_MIB of it. A leak of what one
# session holds (its buffers alone are 48 KiB, its TLS state more) over the dozens of faulted
# sessions of a class passes it.
QUARANTINE_MIB = 4
RSS_GROWTH_KIB = 6 * 1024


def asan_env():
    """The environment of a gateway whose memory is measured: the sanitizer's quarantine of freed
    blocks capped at QUARANTINE_MIB (256 MiB by default, which would hide any leak), the rest of
    ASAN_OPTIONS as given. Ignored by a build without the sanitizer."""
    options = os.environ.get("ASAN_OPTIONS", "")
    options = ":".join(o for o in options.split(":") if o and not o.startswith("quarantine_size_mb="))
    return {"ASAN_OPTIONS": (options + ":" if options else "") + "quarantine_size_mb=%d" % QUARANTINE_MIB}


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for process %d" % pid)


def open_descriptors(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def metrics_text(gateway):
    connection = http.client.HTTPConnection("127.0.0.1", gateway.ports["admin"], timeout=10)
    try:
        connection.request("GET", "/metrics")
        return connection.getresponse().read().decode()
    finally:
        connection.close()


def metric_sum(gateway, name, **labels):
    """The sum of the samples of `name` whose labels include `labels` (0 when there is none)."""
    total = 0.0
    for line in metrics_text(gateway).splitlines():
        m = re.match(r"^%s(?:\{([^}]*)\})? (\S+)$" % re.escape(name), line)
        if not m:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(m.group(2))
    return total


ADMIN = '\n[admin]\nlisten = ["127.0.0.1:0"]\n'


class Footprint:
    """The gateway's resources before the faults, to check that they come back after them."""

    def __init__(self, gateway):
        self.gateway = gateway
        self.pid = gateway.process.pid
        self.rss = None
        self.descriptors = None

    def open_sessions(self):
        return metric_sum(self.gateway, "mssgate_sessions")

    def settle(self, timeout=15.0):
        """Waits until no session is open and the descriptors stop changing."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            now = (self.open_sessions(), open_descriptors(self.pid))
            if now[0] == 0 and now == last:
                return now
            last = now
            time.sleep(0.2)
        raise AssertionError("the gateway did not settle in %g s: %d session(s) open, %d descriptors"
                             % (timeout, last[0], last[1]))

    def take(self):
        """The baseline: once no session is open."""
        _, self.descriptors = self.settle()
        self.rss = rss_kib(self.pid)
        return self

    def check(self, test, descriptor_slack=2):
        """Every session the faults opened is closed, the descriptors are back (a kept HTTP
        connection or two may differ), and the memory is within RSS_GROWTH_KIB of the baseline."""
        _, descriptors = self.settle()
        rss = rss_kib(self.pid)
        # The figures, for the record (the test's output).
        print("footprint %s: descriptors %d -> %d, resident memory %d -> %d KiB (%+d KiB)"
              % (test.id().rsplit(".", 1)[-1], self.descriptors, descriptors, self.rss, rss, rss - self.rss),
              file=sys.stderr)
        test.assertLessEqual(descriptors, self.descriptors + descriptor_slack,
                             "descriptors: %d before the faults, %d after" % (self.descriptors, descriptors))
        test.assertLessEqual(rss - self.rss, RSS_GROWTH_KIB,
                             "resident memory: %d KiB before the faults, %d KiB after" % (self.rss, rss))
        return rss - self.rss

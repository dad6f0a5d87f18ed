"""A network namespace joined to the root one by a veth pair, for tests that
impair the network between sfud and its peers.

    from netns import new_namespace
    ns = new_namespace()              # sfuimp-<pid>-<n>, veth, addresses
    try:
        sfud = Sfud(..., listen_host=ns.inner, prefix=ns.exec_prefix())
        ns.set_loss(0.05)             # random UDP loss, both directions
        ns.set_rate(300)              # kbit/s cap on what leaves the namespace
        print(ns.drops())             # packets the loss rules dropped so far
    finally:
        ns.close()                    # always: deletes the namespace and veth

new_namespace() first deletes what killed earlier runs left under its tag
(sweep_stale_namespaces()), and raises unittest.SkipTest where namespaces
cannot be used (NetNS() raises Unavailable).

Only the namespace's own netfilter tables and qdiscs are touched (nothing
in the root namespace but the root end of the veth pair, which goes away
with the namespace). Addresses are 10.77.S.1 (root end, `outer`) and
10.77.S.2 (namespace end, `inner`) on a /24 that no root interface uses.

Namespaces can also be chained away from the root one: with `peer=other`
(a NetNS), the outer end of the pair is in `other` instead, so the new
namespace reaches `other` and nothing else (tests/integration/test_turn.py:
clients that reach only the TURN server). `with ns.entered():` runs the
calling thread inside the namespace: sockets it opens there (aiortc's, a
DevTools connection) and processes it starts belong to it.

Needs root, `ip` (iproute2, with tc) and `iptables` (the statistic match:
netem is not available on these machines, see docs/testing.md).
"""
import contextlib
import ctypes
import itertools
import os
import re
import shutil
import subprocess
import unittest

from sfutest import pid_alive

_serial = itertools.count()
CLONE_NEWNET = 0x40000000


class Unavailable(Exception):
    """Namespaces or iptables cannot be used here (not root, tool missing,
    no kernel support): the caller skips."""


def _run(*cmd, check=True):
    r = subprocess.run(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=20)
    if check and r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(cmd), r.returncode,
                                                (r.stderr or r.stdout).strip()))
    return r


def _free_subnet():
    """A third octet S such that no root interface has an address in
    10.77.S.0/24 (another run of this test, or anything else)."""
    used = _run("ip", "-4", "-o", "addr", "show").stdout
    start = os.getpid() % 200
    for i in range(200):
        s = 20 + (start + i) % 200
        if (" 10.77.%d." % s) not in used:
            return s
    raise RuntimeError("no free 10.77.S.0/24 subnet")


class NetNS:
    """One namespace `name` with the veth end `inner_dev` (address `inner`);
    the root end is `outer_dev` (address `outer`)."""

    def __init__(self, tag="sfuimp", peer=None):
        for tool in ("ip", "iptables"):
            if shutil.which(tool) is None:
                raise Unavailable("%s not installed (scripts/deps.sh --test)" % tool)
        if os.geteuid() != 0:
            raise Unavailable("network namespaces need root")
        n = next(_serial)
        self.name = "%s-%d-%d" % (tag, os.getpid(), n)
        # interface names: at most 15 bytes
        base = "si%d%s" % (os.getpid(), chr(ord("a") + n % 26))
        self.outer_dev, self.inner_dev = base + "o", base + "i"
        self.loss = 0.0
        self.rate_kbit = None
        self.peer = peer                 # the namespace of the outer end (None: root)
        r = _run("ip", "netns", "add", self.name, check=False)
        if r.returncode != 0:
            raise Unavailable("ip netns add: " + r.stderr.strip())
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    def _setup(self):
        s = _free_subnet()
        self.outer, self.inner = "10.77.%d.1" % s, "10.77.%d.2" % s
        _run("ip", "link", "add", self.outer_dev, "type", "veth", "peer", "name", self.inner_dev)
        _run("ip", "link", "set", self.inner_dev, "netns", self.name)
        outer = _run if self.peer is None else self.peer.run
        if self.peer is not None:
            _run("ip", "link", "set", self.outer_dev, "netns", self.peer.name)
        outer("ip", "addr", "add", self.outer + "/24", "dev", self.outer_dev)
        outer("ip", "link", "set", self.outer_dev, "up")
        self.run("ip", "addr", "add", self.inner + "/24", "dev", self.inner_dev)
        self.run("ip", "link", "set", self.inner_dev, "up")
        self.run("ip", "link", "set", "lo", "up")
        r = self.run("iptables", "-S", check=False)
        if r.returncode != 0:
            raise Unavailable("iptables in a namespace: " + (r.stderr or r.stdout).strip())

    def exec_prefix(self):
        """Words that run a command inside the namespace (in place: `ip
        netns exec` execs it, so its pid is the command's)."""
        return ["ip", "netns", "exec", self.name]

    def run(self, *cmd, check=True):
        return _run(*self.exec_prefix(), *cmd, check=check)

    @contextlib.contextmanager
    def entered(self):
        """Moves the calling thread into the namespace (setns(2): network
        namespaces are per thread) and back when the block ends. Other
        threads, and sockets opened before, stay where they were."""
        libc = ctypes.CDLL(None, use_errno=True)
        back = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            fd = os.open("/run/netns/" + self.name, os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns " + self.name)
            finally:
                os.close(fd)
            try:
                yield self
            finally:
                if libc.setns(back, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back")
        finally:
            os.close(back)

    def set_loss(self, p):
        """Drop each UDP packet entering or leaving the namespace with
        probability p (0 removes the rules). TCP (HTTP, WebSocket) is
        never dropped."""
        for chain in ("INPUT", "OUTPUT"):
            self.run("iptables", "-F", chain)
            if p > 0:
                self.run("iptables", "-A", chain, "-p", "udp", "-m", "statistic",
                         "--mode", "random", "--probability", "%.4f" % p, "-j", "DROP")
        self.loss = p

    def drops(self):
        """{"in": n, "out": n}: packets dropped by the loss rules so far
        (since the last set_loss)."""
        out = {}
        for chain, key in (("INPUT", "in"), ("OUTPUT", "out")):
            text = self.run("iptables", "-L", chain, "-v", "-x", "-n").stdout
            out[key] = sum(int(l.split()[0]) for l in text.splitlines()
                           if l.split()[2:3] == ["DROP"])
        return out

    def set_rate(self, kbit, burst_kbit=32, latency_ms=400):
        """Cap what leaves the namespace through its veth (token bucket);
        None removes the cap."""
        if kbit is None:
            self.run("tc", "qdisc", "del", "dev", self.inner_dev, "root", check=False)
        else:
            self.run("tc", "qdisc", "replace", "dev", self.inner_dev, "root", "tbf",
                     "rate", "%dkbit" % kbit, "burst", "%dkbit" % burst_kbit,
                     "latency", "%dms" % latency_ms)
        self.rate_kbit = kbit

    def close(self):
        """Delete the namespace (its veth end, and so the pair, goes with
        it) and the root end if it is still there. Idempotent."""
        _run("ip", "netns", "del", self.name, check=False)
        if self.peer is None and os.path.exists("/sys/class/net/" + self.outer_dev):
            _run("ip", "link", "del", self.outer_dev, check=False)

    def exists(self):
        return self.name in _run("ip", "netns", "list").stdout.split()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def sweep_stale_namespaces(tag="sfuimp"):
    """Delete namespaces a killed earlier run left behind (named tag-PID-N,
    PID no longer alive)."""
    try:
        r = subprocess.run(["ip", "netns", "list"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True, timeout=20)
    except OSError:
        return                       # no ip: NetNS() says so and the test skips
    for line in r.stdout.splitlines():
        m = re.match(r"(%s-(\d+)-\d+)\b" % re.escape(tag), line)
        if m and int(m.group(2)) != os.getpid() and not pid_alive(int(m.group(2))):
            subprocess.run(["ip", "netns", "del", m.group(1)], stderr=subprocess.DEVNULL)


def new_namespace(tag="sfuimp", peer=None):
    """NetNS(tag, peer) for a test, after sweep_stale_namespaces(tag);
    unittest.SkipTest if namespaces cannot be used here."""
    sweep_stale_namespaces(tag)
    try:
        return NetNS(tag, peer=peer)
    except Unavailable as e:
        raise unittest.SkipTest(str(e))

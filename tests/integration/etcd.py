"""A real etcd (Debian's etcd-server) for fleet tests, and a few calls to
its v3 JSON gateway so that tests can read and change what sfud wrote.

    with Etcd() as etcd:
        etcd.url                      http://127.0.0.1:PORT
        etcd.range_prefix("/sfu/nodes/")  -> {key: parsed JSON value}
        etcd.stop(); etcd.start()     same data directory: leases survive
"""
import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid

from sfutest import CallTest, Sfud

ETCD = "/usr/bin/etcd"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def prefix_end(prefix):
    b = bytearray(prefix.encode())
    b[-1] += 1
    return bytes(b)


class Etcd:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="sfu-test-etcd-")
        self.proc = None
        for attempt in range(5):
            # a free port may be taken by someone else before etcd binds it
            self.port = _free_port()
            self.peer_port = _free_port()
            self.url = "http://127.0.0.1:%d" % self.port
            try:
                self.start()
                return
            except RuntimeError:
                self.stop()
                with open(os.path.join(self.dir, "etcd.log")) as f:
                    if "address already in use" not in f.read() or attempt == 4:
                        raise

    def start(self):
        self.log = open(os.path.join(self.dir, "etcd.log"), "a")
        self.proc = subprocess.Popen(
            [ETCD, "--name", "test", "--data-dir", os.path.join(self.dir, "data"),
             "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
             "--listen-peer-urls", "http://127.0.0.1:%d" % self.peer_port,
             "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % self.peer_port,
             "--initial-cluster", "test=http://127.0.0.1:%d" % self.peer_port],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                    if json.load(r).get("health") == "true":
                        return
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError("etcd did not start; see %s/etcd.log" % self.dir)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        if self.proc:
            self.log.close()

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def call(self, path, body):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read().decode().split("\n")[0])

    def range_prefix(self, prefix):
        """{key: (parsed value, lease id)} of every key under prefix."""
        res = self.call("/v3/kv/range", {"key": b64(prefix), "range_end": b64(prefix_end(prefix))})
        out = {}
        for kv in res.get("kvs", []):
            out[base64.b64decode(kv["key"]).decode()] = (
                json.loads(base64.b64decode(kv.get("value", "")).decode() or "null"),
                kv.get("lease", "0"))
        return out

    def revoke(self, lease):
        return self.call("/v3/lease/revoke", {"ID": lease})


class EtcdFleet:
    """A mixin for the fleet tests' TestCase classes: one real etcd for the
    class (cls.etcd); each test sets self.prefix, its own key space, and
    starts nodes with fleet_args() and wait_registered()."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.etcd = Etcd()

    @classmethod
    def tearDownClass(cls):
        cls.etcd.close()
        super().tearDownClass()

    def fleet_args(self, node_id, ttl):
        """sfud's flags for node `node_id` of self.prefix, lease of ttl s."""
        return ["--node-id", node_id, "--etcd-url", self.etcd.url, "--etcd-prefix", self.prefix,
                "--etcd-lease-ttl-s", str(ttl)]

    def wait_registered(self, node_id, timeout=10):
        key = self.prefix + "/nodes/" + node_id
        end = time.monotonic() + timeout
        while key not in self.range_nodes():
            if time.monotonic() > end:
                raise AssertionError("node %s did not register in etcd" % node_id)
            time.sleep(0.05)

    def range_nodes(self):
        return self.etcd.range_prefix(self.prefix + "/nodes/")

    def journal(self, node, after=0):
        """Every record of `node`'s journal after seq `after`."""
        out = []
        while True:
            st, j = node.request("GET", "/v1/events?after=%d&limit=1000" % after)
            self.assertEqual(st, 200, j)
            if not j["records"]:
                return out
            out += j["records"]
            after = j["next_after"]

    def room_owner(self, room_id):
        """The node_id of room_id's key in etcd, or None."""
        v = self.etcd.range_prefix(self.prefix + "/rooms/" + room_id)
        return next(iter(v.values()))[0]["node_id"] if v else None


class FleetCallTest(EtcdFleet, CallTest):
    """A CallTest over sfud nodes of one fleet: each test has its own key
    space (self.prefix) and the nodes start_node() started (self.nodes, by
    node id), stopped once its peers are closed. The sfud and room binaries
    are the test script's --sfud and --room (sfutest.main())."""
    TTL = 2  # seconds: the nodes' lease

    def setUp(self):
        self.prefix = "/t-" + uuid.uuid4().hex[:8]
        self.nodes = {}
        self.peers = []

    async def asyncTearDown(self):
        await super().asyncTearDown()
        for n in self.nodes.values():
            n.stop()

    def start_node(self, node_id, *extra):
        import __main__
        n = Sfud(__main__.ARGS.sfud, __main__.ARGS.room, *self.fleet_args(node_id, self.TTL),
                 *extra)
        self.nodes[node_id] = n
        self.wait_registered(node_id)
        return n

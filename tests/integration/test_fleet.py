#!/usr/bin/env python3
"""A fleet of real sfud nodes around a real etcd (Debian's etcd-server,
started by the test on loopback), docs/fleet.md:

* registration: each node's record under <prefix>/nodes/ with its lease;
* placement: 30 rooms created through one node spread evenly by load over
  three; each answer names the node and its ws_url; every room reachable
  (GET, tokens, DELETE) through any node, the request passed to its owner;
* names unique under concurrent creation from all three nodes at once;
* a pinned node, a region, a draining node, an unknown node or region;
* etcd unreachable: rooms keep running and answering, new rooms get a
  clear 503, and registration comes back with etcd;
* a lease etcd forgot: the node registers again and claims its rooms again;
* a node that dies: its rooms are reported crashed (node_lost) through the
  other nodes and their names are free once its lease expires; a room
  placed on it meanwhile goes elsewhere; a node that stops cleanly frees
  its names at once and reports nothing crashed.

Usage: test_fleet.py --sfud PATH --room PATH
"""
import os
import signal
import sys
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from etcd import EtcdFleet  # noqa: E402
from sfutest import Sfud, TestCA, main, wait_for  # noqa: E402
ARGS = None

TTL = 2  # seconds: the nodes' lease


class FleetTest(EtcdFleet, unittest.TestCase):
    def setUp(self):
        self.prefix = "/t-" + uuid.uuid4().hex[:8]
        self.nodes = {}

    def tearDown(self):
        for n in self.nodes.values():
            n.stop_and_check()

    def start_node(self, node_id, *extra, region=None, tls=None):
        args = [*self.fleet_args(node_id, TTL), *extra]
        if region:
            args += ["--region", region]
        n = Sfud(ARGS.sfud, ARGS.room, *args, tls=tls)
        self.nodes[node_id] = n
        self.wait_registered(node_id)
        return n

    def start_three(self):
        return [self.start_node(i) for i in ("a", "b", "c")]

    def local_rooms(self, node):
        st, body = node.request("GET", "/v1/rooms")
        self.assertEqual(st, 200)
        return [r for r in body["rooms"] if r["state"] in ("starting", "running")]

    def room_keys(self):
        return {k.rsplit("/", 1)[1]: v for k, (v, _) in
                self.etcd.range_prefix(self.prefix + "/rooms/").items()}

    # ------------------------------------------------------------------

    def test_node_record_in_etcd_under_its_lease(self):
        a = self.start_node("a", region="eu-west")
        keys = self.etcd.range_prefix(self.prefix + "/nodes/")
        rec, lease = keys[self.prefix + "/nodes/a"]
        self.assertNotEqual(lease, "0")
        self.assertEqual(rec["node_id"], "a")
        self.assertEqual(rec["region"], "eu-west")
        self.assertEqual(rec["api_url"], "http://127.0.0.1:%d" % a.port)
        self.assertEqual(rec["ws_url"], "ws://127.0.0.1:%d/v1/rtc" % a.port)
        self.assertFalse(rec["draining"])
        for field in ("max_rooms", "rooms", "participants", "loadavg_1m", "forwarded_pps"):
            self.assertIn(field, rec)
        st, node = a.request("GET", "/v1/node")
        self.assertEqual(node["fleet"]["registered"], True)
        self.assertEqual(node["fleet"]["lease_id"], lease)
        self.assertEqual(a.metric("sfu_fleet_registered"), 1)

    def test_rooms_spread_by_load_and_reachable_through_any_node(self):
        nodes = self.start_three()
        a, b, c = nodes
        created = []
        for i in range(30):
            st, room = a.request("POST", "/v1/rooms", {"name": "spread-%d" % i})
            self.assertEqual(st, 201, room)
            created.append(room)
        per_node = {n: len(self.local_rooms(self.nodes[n])) for n in self.nodes}
        print("rooms per node after 30 creations through a:", per_node)
        self.assertEqual(per_node, {"a": 10, "b": 10, "c": 10})
        for room in created:  # the answer names the node that runs it
            owner = self.nodes[room["node_id"]]
            self.assertEqual(room["ws_url"], "ws://127.0.0.1:%d/v1/rtc" % owner.port)
            self.assertIn(room["room_id"], [r["room_id"] for r in self.local_rooms(owner)])
        keys = self.room_keys()
        self.assertEqual(sorted(keys), sorted(r["room_id"] for r in created))

        # GET, tokens and DELETE through a node that does not run the room
        room = next(r for r in created if r["node_id"] == "c")
        for via in (a, b):
            for ref in (room["room_id"], room["name"]):
                st, got = via.request("GET", "/v1/rooms/" + ref)
                self.assertEqual(st, 200, got)
                self.assertEqual(got["room_id"], room["room_id"])
                self.assertEqual(got["ws_url"], room["ws_url"])
        st, tok = a.request("POST", "/v1/rooms/%s/tokens" % room["name"], {"identity": "alice"})
        self.assertEqual(st, 201, tok)
        self.assertEqual(tok["ws_url"], room["ws_url"])
        self.assertEqual(tok["room_id"], room["room_id"])
        self.assertGreaterEqual(a.metric("sfu_fleet_proxied_total"), 5)
        st, gone = b.request("DELETE", "/v1/rooms/" + room["room_id"])
        self.assertEqual(st, 202, gone)
        wait_for(lambda: room["room_id"] not in self.room_keys(), what="the room's key released")
        st, _ = a.request("GET", "/v1/rooms/" + room["name"])
        self.assertEqual(st, 404)
        st, again = b.request("POST", "/v1/rooms", {"name": room["name"]})
        self.assertEqual(st, 201, again)  # the name is free again
        # a request for a room nobody runs
        st, err = a.request("GET", "/v1/rooms/rm_0000000000000000")
        self.assertEqual((st, err["error"]["code"]), (404, "room_not_found"))
        st, fleet = c.request("GET", "/v1/fleet")
        self.assertEqual(st, 200)
        self.assertEqual(sorted(n["node_id"] for n in fleet["nodes"]), ["a", "b", "c"])
        self.assertEqual(len(fleet["rooms"]), 30)

    def test_names_unique_under_concurrent_creation_from_all_nodes(self):
        nodes = self.start_three()
        names = ["race-%d" % i for i in range(15)]
        results = []
        lock = threading.Lock()
        barrier = threading.Barrier(len(nodes) * 2)

        def create(node, order):
            barrier.wait()
            for name in order:
                st, body = node.request("POST", "/v1/rooms", {"name": name})
                with lock:
                    results.append((name, st, body))

        threads = []
        for i, n in enumerate(nodes):  # two clients per node, in different orders
            threads.append(threading.Thread(target=create, args=(n, names)))
            threads.append(threading.Thread(target=create, args=(n, names[::-1] if i % 2 else
                                                                  names[5:] + names[:5])))
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(len(results), len(names) * 6)
        for name in names:
            codes = sorted(st for n, st, _ in results if n == name)
            self.assertEqual(codes, [201] + [409] * 5, (name, codes))
        conflicts = {b["error"]["code"] for _, st, b in results if st == 409}
        self.assertEqual(conflicts, {"name_in_use"})
        live = [r for n in nodes for r in self.local_rooms(n)]
        self.assertEqual(sorted(r["name"] for r in live), sorted(names))
        names_in_etcd = self.etcd.range_prefix(self.prefix + "/names/")
        self.assertEqual(len(names_in_etcd), len(names))

    def test_pinned_node_region_and_draining(self):
        a = self.start_node("a")
        b = self.start_node("b")
        eu = self.start_node("e", region="eu")
        st, room = a.request("POST", "/v1/rooms", {"node": "b"})
        self.assertEqual((st, room["node_id"]), (201, "b"), room)
        st, room = a.request("POST", "/v1/rooms", {"region": "eu"})
        self.assertEqual((st, room["node_id"]), (201, "e"), room)
        st, err = a.request("POST", "/v1/rooms", {"node": "zz"})
        self.assertEqual((st, err["error"]["code"]), (404, "node_not_found"))
        st, err = a.request("POST", "/v1/rooms", {"region": "mars"})
        self.assertEqual((st, err["error"]["code"]), (503, "no_capacity"))
        st, err = a.request("POST", "/v1/rooms", {"node": "../x"})
        self.assertEqual((st, err["error"]["code"]), (400, "invalid_field"))
        # b drains: placement leaves it out, a pin to it is refused
        st, _ = b.request("POST", "/v1/node/drain", {"draining": True})
        self.assertEqual(st, 200)
        wait_for(lambda: self.etcd.range_prefix(self.prefix + "/nodes/b")[
            self.prefix + "/nodes/b"][0]["draining"], what="b's record says draining")
        for _ in range(4):
            st, room = eu.request("POST", "/v1/rooms", {"region": "default"})
            self.assertEqual((st, room.get("node_id")), (201, "a"), room)
        st, err = a.request("POST", "/v1/rooms", {"node": "b"})
        self.assertEqual((st, err["error"]["code"]), (503, "draining"))

    def test_etcd_unreachable_then_back(self):
        a = self.start_node("a")
        b = self.start_node("b")
        st, room = a.request("POST", "/v1/rooms", {"name": "steady", "node": "b"})
        self.assertEqual(st, 201)
        self.etcd.stop()
        try:
            st, err = a.request("POST", "/v1/rooms", {"name": "new"})
            self.assertEqual((st, err["error"]["code"]), (503, "fleet_unavailable"))
            time.sleep(TTL + 0.5)  # the leases are no longer confirmed
            self.assertEqual(b.metric("sfu_fleet_registered"), 0)
            # the room runs on and its node answers for it
            st, got = b.request("GET", "/v1/rooms/steady")
            self.assertEqual((st, got["state"]), (200, "running"))
            st, _ = b.request("POST", "/v1/rooms/steady/tokens", {"identity": "x"})
            self.assertEqual(st, 201)
            st, err = b.request("POST", "/v1/rooms", {"node": "b"})
            self.assertEqual((st, err["error"]["code"]), (503, "fleet_unavailable"))
            st, err = a.request("GET", "/v1/rooms/steady")
            self.assertEqual((st, err["error"]["code"]), (503, "fleet_unavailable"))
            st, err = a.request("GET", "/v1/fleet")
            self.assertEqual(st, 503)
        finally:
            self.etcd.start()
        wait_for(lambda: a.metric("sfu_fleet_registered") == 1 and
                 b.metric("sfu_fleet_registered") == 1, timeout=15, what="registered again")
        st, room2 = a.request("POST", "/v1/rooms", {"name": "new"})
        self.assertEqual(st, 201, room2)
        st, got = a.request("GET", "/v1/rooms/steady")
        self.assertEqual((st, got["room_id"]), (200, room["room_id"]))
        self.assertGreater(a.metric("sfu_fleet_etcd_errors_total"), 0)

    def test_forgotten_lease_registers_again_and_claims_rooms(self):
        a = self.start_node("a")
        st, room = a.request("POST", "/v1/rooms", {"name": "kept"})
        self.assertEqual(st, 201)
        lease = self.etcd.range_prefix(self.prefix + "/nodes/a")[self.prefix + "/nodes/a"][1]
        self.etcd.revoke(lease)  # as if it expired while etcd could not be reached
        self.assertEqual(self.etcd.range_prefix(self.prefix + "/"), {})
        wait_for(lambda: room["room_id"] in self.room_keys(), timeout=10,
                 what="the room claimed again")
        self.assertEqual(a.metric("sfu_fleet_leases_lost_total"), 1)
        self.assertEqual(a.metric("sfu_fleet_registrations_total"), 2)
        keys = self.etcd.range_prefix(self.prefix + "/")
        self.assertIn(self.prefix + "/names/kept", keys)
        self.assertNotEqual(keys[self.prefix + "/nodes/a"][1], lease)
        st, err = a.request("POST", "/v1/rooms", {"name": "kept"})
        self.assertEqual((st, err["error"]["code"]), (409, "name_in_use"))

    def test_dead_node_rooms_crashed_fleet_wide_and_names_freed(self):
        a = self.start_node("a")
        b = self.start_node("b")
        c = self.start_node("c")
        st, on_b = a.request("POST", "/v1/rooms", {"name": "doomed", "node": "b"})
        self.assertEqual(st, 201)
        st, on_c = a.request("POST", "/v1/rooms", {"name": "closed", "node": "c"})
        self.assertEqual(st, 201)
        for pin in ("a", "a", "c"):  # b is now the least loaded node
            self.assertEqual(a.request("POST", "/v1/rooms", {"node": pin})[0], 201)
        b.kill()
        del self.nodes["b"]
        # before its lease ends b is still chosen; it cannot be connected
        # to, so placement runs again without it
        st, room = a.request("POST", "/v1/rooms", {})
        self.assertEqual(st, 201, room)
        self.assertIn(room["node_id"], ("a", "c"))
        self.assertIn(self.prefix + "/nodes/b", self.etcd.range_prefix(self.prefix + "/"))
        wait_for(lambda: self.prefix + "/nodes/b" not in self.etcd.range_prefix(self.prefix + "/"),
                 timeout=TTL * 3, what="b's lease expired")
        for via in (a, c):
            st, got = via.request("GET", "/v1/rooms/doomed")
            self.assertEqual(st, 200, got)
            self.assertEqual((got["state"], got["end_reason"], got["node_id"], got["room_id"]),
                             ("crashed", "node_lost", "b", on_b["room_id"]))
            st, err = via.request("POST", "/v1/rooms/doomed/tokens", {"identity": "x"})
            self.assertEqual((st, err["error"]["code"]), (409, "room_not_running"))
        st, fleet = a.request("GET", "/v1/fleet")
        self.assertEqual([r["room_id"] for r in fleet["lost_rooms"]], [on_b["room_id"]])
        self.assertEqual(sorted(n["node_id"] for n in fleet["nodes"]), ["a", "c"])

        def crash_records():  # room_crashed for doomed, from every live node's journal
            out = []
            for via in (a, c):
                st, ev = via.request("GET", "/v1/events?limit=1000")
                out += [r for r in ev["records"] if r["type"] == "room_crashed" and
                        r.get("room_id") == on_b["room_id"]]
            return out
        wait_for(lambda: crash_records(), what="the lost room journaled")
        time.sleep(0.5)  # a second report would come as fast
        recs = crash_records()
        self.assertEqual(len(recs), 1, recs)
        self.assertEqual((recs[0]["end_reason"], recs[0]["node_id"], recs[0]["name"]),
                         ("node_lost", "b", "doomed"))
        st, again = c.request("POST", "/v1/rooms", {"name": "doomed"})
        self.assertEqual(st, 201, again)
        self.assertIn(again["node_id"], ("a", "c"))
        # a clean stop: names free at once, nothing reported crashed
        c.stop_and_check()
        del self.nodes["c"]
        self.assertNotIn(self.prefix + "/names/closed", self.etcd.range_prefix(self.prefix + "/"))
        time.sleep(0.5)
        st, err = a.request("GET", "/v1/rooms/closed")
        self.assertEqual(st, 404, err)
        st, fleet = a.request("GET", "/v1/fleet")
        self.assertEqual([r["room_id"] for r in fleet["lost_rooms"]], [on_b["room_id"]])

    def test_upgraded_node_keeps_its_lease_and_rooms(self):
        a = self.start_node("a")
        b = self.start_node("b")
        st, room = a.request("POST", "/v1/rooms", {"name": "through", "node": "b"})
        self.assertEqual(st, 201)
        before = self.etcd.range_prefix(self.prefix + "/")
        lease = before[self.prefix + "/nodes/b"][1]
        mark = len(b.log)
        os.kill(b.proc.pid, signal.SIGUSR2)
        wait_for(lambda: any("adopted" in line for line in b.log[mark:]), timeout=10,
                 what="b upgraded")
        wait_for(lambda: b.metric("sfu_fleet_registered") == 1, what="b registered")
        time.sleep(TTL)  # a lease that lapsed would show by now
        after = self.etcd.range_prefix(self.prefix + "/")
        self.assertEqual({k: v[1] for k, v in after.items()},
                         {k: v[1] for k, v in before.items()})
        self.assertEqual(after[self.prefix + "/nodes/b"][1], lease)
        self.assertEqual(b.metric("sfu_fleet_registrations_total"), 0)  # the new process
        st, got = a.request("GET", "/v1/rooms/through")
        self.assertEqual((st, got["room_id"], got["state"]), (200, room["room_id"], "running"))
        st, fleet = a.request("GET", "/v1/fleet")
        self.assertEqual(fleet["lost_rooms"], [])

    def test_nodes_on_https_place_and_pass_requests_over_tls(self):
        import socket
        import tempfile
        with tempfile.TemporaryDirectory(prefix="sfu-fleet-ca-") as d:
            ca = TestCA(d)
            nodes = []
            for node_id in ("a", "b"):
                with socket.socket() as sk:  # a port for the URL the others verify
                    sk.bind(("127.0.0.1", 0))
                    port = sk.getsockname()[1]
                cert, key = ca.issue(node_id, dns=("localhost",))
                nodes.append(self.start_node(
                    node_id, "--listen-port", str(port), "--public-url",
                    "https://localhost:%d" % port, "--fleet-tls-ca-file", ca.pem,
                    tls=(cert, key, ca.pem)))
            a, b = nodes
            st, room = a.request("POST", "/v1/rooms", {"name": "secure", "node": "b"})
            self.assertEqual((st, room.get("node_id")), (201, "b"), room)
            self.assertEqual(room["ws_url"], "wss://localhost:%d/v1/rtc" % b.port)
            st, got = a.request("GET", "/v1/rooms/secure")
            self.assertEqual((st, got["room_id"]), (200, room["room_id"]))
            self.assertEqual(a.metric("sfu_fleet_proxied_total"), 2)

    def test_start_up_errors(self):
        import subprocess
        for args, msg in (
                (["--etcd-url", self.etcd.url], "node_id is required with etcd_url"),
                (["--etcd-url", "etcd:2379", "--node-id", "x"], "is not an http:// or https://"),
                (["--etcd-url", self.etcd.url, "--node-id", "x", "--etcd-prefix", "sfu"],
                 "must start with /")):
            p = subprocess.run([ARGS.sfud, "--room-binary", ARGS.room, "--listen-port", "0", *args],
                               capture_output=True, text=True, timeout=10)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn(msg, p.stderr)


if __name__ == "__main__":
    main()

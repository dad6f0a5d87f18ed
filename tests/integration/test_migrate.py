#!/usr/bin/env python3
"""Rooms moving between real sfud nodes around a real etcd (docs/fleet.md
"Moving rooms", docs/signaling.md "Moving to another node"):

* an empty room moves at once; it is then found through every node, its
  keys in etcd name the new node, the old node journals room_migrated
  (not room_finished) and the new one no room_started; the API's errors;
* a target that refuses (draining) or is dead (its lease not yet expired):
  the room stays, the clients are never told to move and keep hearing
  each other;
* a target that dies after the clients were told: the move is aborted,
  the clients get migrate_abort, nobody leaves, the call goes on;
* a drain with "migrate" moves every room off the node;
* the old room's last usage reaches a new node that refused connections
  (iptables) while the old room ended: the old node asks again until it is
  taken, once, and room_finished's totals on the new node equal the sum of
  every usage record on both.

* aiortc peers follow a move make-before-break: each prints the longest
  pause of what it played from the other around the switch, and the RTP
  packets it missed there (by the new leg's sequence numbers).

In the failure cases the aiortc peers ignore `migrate` (follow_moves=False),
so that the target waits for clients that never come. sfu-replay's clients
(test_migrate_replay.py) and Chromium's (test_migrate_browser.py) follow
moves too.

Usage: test_migrate.py --sfud PATH --room PATH [--replay PATH]
"""
import asyncio
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aiortc_peer import Peer  # noqa: E402
from etcd import FleetCallTest  # noqa: E402
from sfutest import main, wait_for  # noqa: E402
import test_upgrade as tu  # noqa: E402
ARGS = None



class MigrateTest(FleetCallTest):
    PEER = Peer

    def events(self, node):
        st, j = node.request("GET", "/v1/events")
        self.assertEqual(st, 200, j)
        return [r["type"] for r in j["records"]]

    def create(self, node, name, pin):
        st, room = node.request("POST", "/v1/rooms", {"name": name, "node": pin})
        self.assertEqual(st, 201, room)
        wait_for(lambda: node.request("GET", "/v1/rooms/" + room["room_id"])[1]["state"] ==
                 "running", what="room running")
        return room

    async def migrate(self, node, room_id, body):
        return await asyncio.get_running_loop().run_in_executor(
            None, lambda: node.request("POST", "/v1/rooms/%s/migrate" % room_id, body))

    async def two_speakers(self, room, node, follow=False):
        self.sfud = node  # CallTest.token() mints through it
        a = self.peer(room, "alice", freq=440.0, follow_moves=follow)
        b = self.peer(room, "bob", freq=660.0, follow_moves=follow)
        await a.join()
        await b.join()
        await self.until(lambda: a.heard(660.0, 1.0) and b.heard(440.0, 1.0), what="tones")
        return a, b

    # ------------------------------------------------------------------

    async def test_empty_room_moves_and_is_found_everywhere(self):
        a, b = self.start_node("a"), self.start_node("b")
        room = self.create(a, "empty-mover", "a")
        rid = room["room_id"]
        st, res = await self.migrate(a, rid, {"node": "b"})
        self.assertEqual(st, 200, res)
        self.assertEqual((res["from_node"], res["to_node"], res["participants"]), ("a", "b", 0))
        print("empty room moved in %d ms" % res["took_ms"])
        wait_for(lambda: self.room_owner(rid) == "b", what="room keys under node b")
        for n in (a, b):  # found through both nodes, on b, same id, name, creation time
            st, j = n.request("GET", "/v1/rooms/" + rid)
            self.assertEqual(st, 200, j)
            self.assertEqual((j["state"], j["name"], j["created_at_ms"]),
                             ("running", "empty-mover", room["created_at_ms"]))
            self.assertEqual(j["ws_url"], res["ws_url"])
        wait_for(lambda: "room_migrated" in self.events(a), what="room_migrated on a")
        self.assertNotIn("room_finished", self.events(a))
        self.assertNotIn("room_started", self.events(b))
        # its name is still taken fleet-wide
        st, j = a.request("POST", "/v1/rooms", {"name": "empty-mover"})
        self.assertEqual(st, 409, j)
        # errors
        st, j = await self.migrate(a, rid, {"node": "b"})
        self.assertEqual((st, j["error"]["code"]), (409, "same_node"))
        st, j = await self.migrate(a, rid, {"node": "nowhere"})
        self.assertEqual((st, j["error"]["code"]), (404, "node_not_found"))
        st, j = await self.migrate(a, rid, {"to": "a"})
        self.assertEqual((st, j["error"]["code"]), (400, "unknown_field"))
        st, j = a.request("GET", "/v1/rooms/%s/migrate" % rid)
        self.assertEqual(st, 405, j)
        st, j = b.request("GET", "/v1/node/migrations/" + rid)
        self.assertEqual((st, j["error"]["code"]), (404, "not_moving_in"))
        # the old node's last usage, added to the totals where the room runs
        usage = "/v1/node/migrations/%s/usage" % rid
        for bad in ({}, {"ms": {"connected": -1}}, {"ms": {"connected": "1"}}, {"ms": []}):
            st, j = b.request("POST", usage, bad)
            self.assertEqual((st, j["error"]["code"]), (400, "invalid_body"), bad)
        st, j = a.request("POST", usage, {"ms": {"connected": 5}})  # (it moved away)
        self.assertEqual((st, j["error"]["code"]), (404, "room_not_found"), j)
        st, j = b.request("POST", usage, {"ms": {"connected": 5}})
        self.assertEqual((st, j), (200, {"room_id": rid, "added": True}))
        st, j = b.request("GET", usage)
        self.assertEqual(st, 405, j)
        # and back: placement chooses the only other node
        st, res = await self.migrate(b, rid, {})
        self.assertEqual((st, res.get("to_node")), (200, "a"), res)
        wait_for(lambda: self.room_owner(rid) == "a", what="room keys back under node a")

    async def test_aiortc_peers_follow_a_move(self):
        a, b = self.start_node("a"), self.start_node("b")
        room = self.create(a, "followed", "a")
        alice, bob = await self.two_speakers(room, a, follow=True)
        await asyncio.sleep(1.0)  # a call before the window measured
        marks = {p.identity: p.mark() for p in (alice, bob)}
        st, res = await self.migrate(a, room["room_id"], {"node": "b"})
        self.assertEqual((st, res.get("to_node"), res.get("participants")), (200, "b", 2), res)
        print("a -> b with two aiortc peers: %d ms" % res["took_ms"])
        for p in (alice, bob):
            await p.wait_until(lambda: len(p.legs) == 2, what="the switch to b's leg")
            self.assertEqual(p.moves[0]["aborted"], None)
            self.assertEqual(p.ws_url, "ws://127.0.0.1:%d/v1/rtc" % b.port)
            await p.wait_connected()
        await asyncio.sleep(1.2)  # the window after the switch
        self.assertTrue(alice.heard(660.0, 1.0) and bob.heard(440.0, 1.0))
        for p, other in ((alice, "bob"), (bob, "alice")):
            [(gap, lost)] = p.move_figures(other)
            print("  %s <- %s: longest pause %.0f ms around the switch, %d RTP packets "
                  "missing" % (p.identity, other, gap * 1000, lost))
            self.assertEqual(lost, 0, p.identity)
            self.assertLess(gap, 1.0, p.identity)  # generous: a loaded machine
            for kind in ("participant_left", "participant_joined"):
                self.assertEqual(p.events_of(kind, marks[p.identity]), [], p.identity)
        self.assertEqual(self.room_owner(room["room_id"]), "b")
        wait_for(lambda: "room_migrated" in self.events(a), what="room_migrated on a")
        st, j = b.request("GET", "/v1/rooms/" + room["room_id"])
        self.assertEqual((st, j["participants"]), (200, 2), j)
        self.assert_peers_clean()

    async def test_target_refusing_or_dead_leaves_the_call_alone(self):
        a, b = self.start_node("a"), self.start_node("b")
        self.start_node("c")
        room = self.create(a, "stays", "a")
        alice, bob = await self.two_speakers(room, a)
        st, j = b.request("POST", "/v1/node/drain", {"draining": True})
        self.assertEqual(st, 200, j)
        wait_for(lambda: self.etcd.range_prefix(self.prefix + "/nodes/b")
                 [self.prefix + "/nodes/b"][0].get("draining"), what="b draining in etcd")
        st, j = await self.migrate(a, room["room_id"], {"node": "b"})
        self.assertEqual((st, j["error"]["code"]), (503, "draining"), j)
        self.nodes["c"].kill()  # dead, but its lease lives on for a while
        st, j = await self.migrate(a, room["room_id"], {"node": "c"})
        self.assertEqual((st, j["error"]["code"]), (502, "migration_failed"), j)
        await asyncio.sleep(1.0)
        for p in (alice, bob):
            self.assertEqual(p.events_of("migrate"), [], p.identity)
            self.assertEqual(p.events_of("participant_left"), [], p.identity)
        self.assertTrue(alice.heard(660.0, 1.0) and bob.heard(440.0, 1.0))
        self.assertEqual(self.room_owner(room["room_id"]), "a")
        st, j = a.request("GET", "/v1/rooms/" + room["room_id"])
        self.assertEqual((st, j["participants"]), (200, 2))
        self.assertNotIn("migration", j)
        self.assert_peers_clean()

    async def test_target_dying_mid_move_aborts(self):
        a, b = self.start_node("a"), self.start_node("b")
        room = self.create(a, "abort", "a")
        alice, bob = await self.two_speakers(room, a)
        move = asyncio.ensure_future(self.migrate(a, room["room_id"], {"node": "b"}))
        told = await alice.wait_event("migrate", timeout=10)
        self.assertEqual(told["room"], room["room_id"])
        self.assertTrue(told["ws_url"].startswith("ws://"))
        self.assertEqual(len(told["resume_token"]), 32)
        st, j = b.request("GET", "/v1/node/migrations/" + room["room_id"])
        self.assertEqual((st, j["ready"]), (200, False), j)  # nobody came over
        b.kill()
        st, j = await move
        self.assertEqual((st, j["error"]["code"]), (502, "migration_failed"), j)
        for p in (alice, bob):
            m = await p.wait_event("migrate_abort", timeout=5)
            self.assertTrue(m["reason"])
            self.assertEqual(p.events_of("participant_left"), [], p.identity)
        t = time.monotonic()
        await self.until(lambda: time.monotonic() - t > 1.0, what="a second of call")
        self.assertTrue(alice.heard(660.0, 1.0) and bob.heard(440.0, 1.0))
        st, j = a.request("GET", "/v1/rooms/" + room["room_id"])
        self.assertEqual((st, j["state"], j["participants"]), (200, "running", 2), j)
        self.assertNotIn("room_migrated", self.events(a))
        self.assert_peers_clean()

    async def test_drain_with_migrate_moves_every_room(self):
        a = self.start_node("a")
        self.start_node("b")
        ids = [self.create(a, "drained-%d" % i, "a")["room_id"] for i in range(3)]
        st, j = a.request("POST", "/v1/node/drain", {"draining": True, "migrate": True})
        self.assertEqual((st, j["rooms_moving"], j["draining"]), (202, 3, True), j)
        wait_for(lambda: all(self.room_owner(i) == "b" for i in ids), timeout=15,
                 what="every room under node b")
        wait_for(lambda: not [r for r in a.request("GET", "/v1/rooms")[1]["rooms"]
                              if r["state"] in ("starting", "running", "closing")],
                 what="node a empty")
        self.assertEqual(self.events(a).count("room_migrated"), 3)
        st, j = a.request("POST", "/v1/node/drain", {"draining": False, "migrate": True})
        self.assertEqual((st, j["error"]["code"]), (400, "invalid_field"), j)

    async def test_last_usage_reaches_a_node_that_refused_for_a_while(self):
        a, b = self.start_node("a"), self.start_node("b")
        room = self.create(a, "tail-later", "a")
        rid = room["room_id"]
        alice, bob = await self.two_speakers(room, a, follow=True)
        await asyncio.sleep(1.0)  # usage on a since the export
        st, res = await self.migrate(a, rid, {"node": "b"})
        self.assertEqual((st, res.get("to_node")), (200, "b"), res)
        # the old room ends 500 ms after the commit: b refuses new connections then
        rule = ["INPUT", "-p", "tcp", "-d", "127.0.0.1", "--dport", str(b.port), "-m",
                "conntrack", "--ctstate", "NEW", "-j", "REJECT", "--reject-with", "tcp-reset"]
        subprocess.run(["iptables", "-I", *rule], check=True, timeout=10)
        self.addCleanup(subprocess.run, ["iptables", "-D", *rule], capture_output=True,
                        timeout=10)
        refused = "room %s: node b did not take its last usage" % rid
        await self.until(lambda: sum(refused in line for line in a.log) >= 2, timeout=10,
                         what="node a refused twice")
        subprocess.run(["iptables", "-D", *rule], check=True, timeout=10)
        took = "room %s: node b took its last usage at try" % rid
        await self.until(lambda: any(took in line for line in a.log), timeout=10,
                         what="node b taking the last usage")
        print("the last usage reached b: %s" % next(line.strip() for line in a.log
                                                    if took in line))
        # taken once: the same again adds nothing
        st, j = b.request("POST", "/v1/node/migrations/%s/usage" % rid, {"ms": {"connected": 5}})
        self.assertEqual((st, j), (200, {"room_id": rid, "added": False}))
        st, j = b.request("DELETE", "/v1/rooms/" + rid)
        self.assertEqual(st, 202, j)
        await self.until(lambda: any(r["type"] == "room_finished" and r.get("room_id") == rid
                                     for r in self.journal(b)), what="room_finished on b")
        tu.check_room_usage(self, self.journal(a) + self.journal(b), rid, ["alice", "bob"], {},
                            "a and b", seam_ms=20)


if __name__ == "__main__":
    ARGS = main()

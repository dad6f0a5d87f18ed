#!/usr/bin/env python3
"""sfud dies, its calls do not (docs/internals/supervisor.md "When sfud
crashes"): rooms outlive a SIGKILLed sfud for room_orphan_grace_s, media
keeps flowing meanwhile, and an sfud restarted on the same data dir (and
port) takes the rooms over: the clients resume their sessions, nobody
leaves, signaling works again, and what the rooms said while no sfud was
there reaches the journal. Rooms that no sfud takes over within the grace
end by themselves, and the next sfud reports them crashed.

Usage: test_crash.py --sfud PATH --room PATH
"""
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aiortc_peer import Peer, PeerClosed  # noqa: E402
from sfutest import CallTest, Sfud, main, pid_alive, wait_for  # noqa: E402
ARGS = None


class CrashTest(CallTest):
    PEER = Peer

    def setUp(self):
        self.peers = []
        self.extra_nodes = []

    async def asyncTearDown(self):
        await super().asyncTearDown()
        for n in self.extra_nodes:
            n.kill()

    def events(self, node):
        st, j = node.request("GET", "/v1/events")
        self.assertEqual(st, 200, j)
        return j["records"]

    async def resume(self, peer, timeout=15.0):
        """Resumes the peer's session once its socket has dropped, retrying
        while nothing listens yet."""
        await peer.wait_closed(timeout)
        end = time.monotonic() + timeout
        while True:
            try:
                return await peer.resume(timeout=5)
            except PeerClosed:
                raise
            except Exception:             # connection refused: no sfud yet
                if time.monotonic() > end:
                    raise
                await asyncio.sleep(0.1)

    async def test_rooms_outlive_a_crash_and_are_taken_over(self):
        old = self.start_sfud(ARGS.sfud, ARGS.room, "--room-orphan-grace-s", "20")
        self.room = self.new_room("survivor")
        alice = self.peer(self.room, "alice", freq=440.0)
        bob = self.peer(self.room, "bob", freq=660.0)
        await alice.join()
        await bob.join()
        await self.until(lambda: alice.heard(660.0, 1.0) and bob.heard(440.0, 1.0), what="tones")
        pids = old.children()
        self.assertEqual(len(pids), 1)
        old.crash()
        # no sfud: the call goes on
        t = time.monotonic()
        await self.until(lambda: time.monotonic() - t > 1.5, what="time")
        self.assertTrue(alice.heard(660.0, 1.0) and bob.heard(440.0, 1.0),
                        "media stopped with sfud")
        self.assertTrue(pid_alive(pids[0]))
        new = Sfud(ARGS.sfud, ARGS.room, "--room-orphan-grace-s", "20", data_dir=old.data_dir,
                   port=old.port)
        self.extra_nodes.append(new)
        self.sfud = new
        st, j = new.request("GET", "/v1/rooms/" + self.room["room_id"])
        self.assertEqual((st, j.get("state"), j.get("participants"), j.get("name")),
                         (200, "running", 2, "survivor"), (j, "".join(new.log[-30:])))
        for p in (alice, bob):
            try:
                r = await self.resume(p)
            except Exception as e:
                self.fail("%s did not resume: %r\n%s" % (p.identity, e, "".join(new.log[-40:])))
            self.assertEqual(r["participant"]["sid"], p.sid)
        mark = bob.mark()
        await alice.mute(True)
        await bob.wait_event("participant_updated", since=mark,
                             predicate=lambda m: m["participant"]["identity"] == "alice")
        await alice.mute(False)
        await self.until(lambda: alice.heard(660.0, 1.0) and bob.heard(440.0, 1.0),
                         what="tones after the take-over")
        for p in (alice, bob):
            self.assertEqual(p.events_of("participant_left"), [], p.identity)
        kinds = [r["type"] for r in self.events(new)]
        self.assertNotIn("participant_left", kinds)
        self.assertNotIn("room_crashed", kinds)
        self.assertEqual(new.children(), [])  # not its child: the room it took over
        # the room still ends properly, through the new sfud
        st, j = new.request("DELETE", "/v1/rooms/" + self.room["room_id"])
        self.assertEqual(st, 202, j)
        wait_for(lambda: not pid_alive(pids[0]), what="the room process ended")
        wait_for(lambda: "room_finished" in [r["type"] for r in self.events(new)],
                 what="room_finished journaled")
        self.assert_peers_clean()

    async def test_rooms_end_when_no_sfud_comes(self):
        old = self.start_sfud(ARGS.sfud, ARGS.room, "--room-orphan-grace-s", "1")
        self.room = self.new_room("orphan")
        alice = self.peer(self.room, "alice", freq=440.0)
        await alice.join()
        wait_for(lambda: len(old.children()) == 1, what="room process")
        pid = old.children()[0]
        time.sleep(0.5)  # the record file follows a change within a heartbeat (200 ms)
        old.crash()
        wait_for(lambda: not pid_alive(pid), timeout=10, what="the orphan room ending")
        new = Sfud(ARGS.sfud, ARGS.room, data_dir=old.data_dir)
        self.extra_nodes.append(new)
        st, j = new.request("GET", "/v1/rooms/" + self.room["room_id"])
        self.assertEqual(st, 404, j)
        # the journal is written behind the start-up: wait for the record
        wait_for(lambda: any(r["type"] == "room_crashed" for r in self.events(new)),
                 what="room_crashed journaled")
        recs = self.events(new)
        crashed = [r for r in recs if r["type"] == "room_crashed"]
        self.assertEqual(len(crashed), 1, recs)
        self.assertEqual(crashed[0]["end_reason"], "sfud_died")
        self.assertEqual([r["participant"] for r in recs if r["type"] == "participant_left"],
                         ["alice"])
        self.assertEqual(os.listdir(os.path.join(old.data_dir, "rooms")), [])

    async def test_a_fleet_node_restarted_keeps_its_lease_and_rooms(self):
        from etcd import Etcd
        etcd = Etcd()
        self.addCleanup(etcd.close)
        args = ("--node-id", "a", "--etcd-url", etcd.url, "--etcd-prefix", "/crash",
                "--etcd-lease-ttl-s", "3")
        old = self.start_sfud(ARGS.sfud, ARGS.room, *args)
        wait_for(lambda: "/crash/nodes/a" in etcd.range_prefix("/crash"), what="registered")
        other = Sfud(ARGS.sfud, ARGS.room, "--node-id", "b", "--etcd-url", etcd.url,
                     "--etcd-prefix", "/crash", "--etcd-lease-ttl-s", "3")
        self.extra_nodes.append(other)
        st, room = old.request("POST", "/v1/rooms", {"name": "kept", "node": "a"})
        self.assertEqual(st, 201, room)
        lease = etcd.range_prefix("/crash/rooms/")["/crash/rooms/" + room["room_id"]][1]
        old.crash()
        new = Sfud(ARGS.sfud, ARGS.room, *args, data_dir=old.data_dir, port=old.port)
        self.extra_nodes.append(new)
        time.sleep(4)  # longer than the TTL: the lease was kept alive
        keys = etcd.range_prefix("/crash/rooms/")
        self.assertEqual(keys["/crash/rooms/" + room["room_id"]][1], lease)
        st, j = other.request("GET", "/v1/fleet")
        self.assertEqual((st, j["lost_rooms"]), (200, []), j)
        st, j = other.request("GET", "/v1/rooms/" + room["room_id"])  # passed to a
        self.assertEqual((st, j.get("state")), (200, "running"), j)
        self.assertNotIn("room_crashed", [r["type"] for r in self.events(other)])


if __name__ == "__main__":
    ARGS = main()

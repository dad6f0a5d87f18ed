#!/usr/bin/env python3
"""Usage minutes and events reach the control plane: none lost, none twice.

sfud delivers its journal to the reference receiver (tools/sfu-receiver.py)
as signed webhook batches; these tests stop and break things on the way.

Usage: test_usage.py --sfud PATH --room PATH
"""
import asyncio
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sfutest import Receiver, Sfud, main  # noqa: E402
from aiortc_peer import Peer  # noqa: E402

ARGS = None
HEARD = 0.01


def by_identity(recs, kind):
    """Sum of usage ms of `kind` per participant."""
    out = {}
    for r in recs:
        if r["type"] == "usage":
            out[r["participant"]] = out.get(r["participant"], 0) + r["ms"][kind]
    return out


class UsageTest(unittest.IsolatedAsyncioTestCase):
    # sfud's settings for one test; the others run with the defaults
    SFUD_ARGS = {
        # retries from 250 ms (1 s by default), doubling: the outage below
        # spans as many failed attempts in a quarter of the time
        "test_receiver_down_for_4_attempts_loses_and_doubles_nothing":
            ("--webhook-retry-min-ms", "250"),
    }

    def setUp(self):
        self.rcv = Receiver()
        self.peers = []
        self.start_sfud()

    def start_sfud(self, data_dir=None, fsize=None):
        self.sfud = Sfud(ARGS.sfud, ARGS.room, "--webhook-url", self.rcv.url,
                         "--webhook-secret", Receiver.SECRET, "--node-id", "node-a",
                         "--usage-interval-s", "1",
                         *self.SFUD_ARGS.get(self._testMethodName, ()),
                         data_dir=data_dir, fsize=fsize)
        return self.sfud

    async def asyncTearDown(self):
        for p in self.peers:
            await p.close()

    def tearDown(self):
        self.sfud.stop()
        self.rcv.close()
        self.sfud.assert_clean_log()

    def room(self):
        st, r = self.sfud.request("POST", "/v1/rooms", {})
        self.assertEqual(st, 201)
        return r

    def peer(self, room, identity, freq, **kw):
        st, t = self.sfud.request("POST", "/v1/rooms/%s/tokens" % room["room_id"],
                                  {"identity": identity})
        p = Peer(room["ws_url"], room["room_id"], t["token"], identity, freq=freq, **kw)
        self.peers.append(p)
        return p

    def delivered(self):
        """All records of the journal are at the receiver (exactly once)."""
        last = self.sfud.request("GET", "/v1/events?after=0&limit=1000")[1]["next_after"]
        recs = self.rcv.records()
        return recs if recs and recs[-1]["seq"] >= last else None

    def assert_exactly_once_in_order(self, recs):
        ids = [r["id"] for r in recs]
        self.assertEqual(len(ids), len(set(ids)))
        seqs = [r["seq"] for r in recs]
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))))  # none missing

    async def until(self, pred, timeout=15.0, what="condition"):
        """Like sfutest.wait_for, but lets the peers run meanwhile (a
        blocking wait would starve their media and pings)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            v = pred()
            if v:
                return v
            await asyncio.sleep(0.1)
        self.fail("timed out waiting for " + what)

    async def test_reported_seconds_match_connected_time_and_follow_mute(self):
        room = self.room()
        a, b = self.peer(room, "alice", 440), self.peer(room, "bob", 660)
        t0 = time.monotonic()
        await a.join()
        await b.join()
        await self.until(lambda: a.tone_power("bob", 660, 1.0) > HEARD, what="call up")
        await asyncio.sleep(1.5)
        await b.mute(True)
        await asyncio.sleep(2)
        await b.mute(False)
        await asyncio.sleep(1.5)
        await a.leave()
        t_a = time.monotonic() - t0
        await b.leave()
        # b's leave is handled after leave() returns: its final usage record
        # (journaled just before its participant_left) may still be on its way
        recs = await self.until(lambda: (lambda r: r if r and sum(
            x["type"] == "participant_left" for x in r) == 2 else None)(self.delivered()),
            timeout=10, what="both participant_left delivered")
        self.assert_exactly_once_in_order(recs)
        conn = by_identity(recs, "connected")
        pub = by_identity(recs, "audio_published")
        self.assertAlmostEqual(conn["alice"] / 1000, t_a, delta=1.0)  # one interval
        self.assertLess(pub["bob"], conn["bob"] - 1500)  # two seconds muted
        self.assertGreater(pub["bob"], conn["bob"] - 3500)
        self.sfud.request("DELETE", "/v1/rooms/" + room["room_id"])
        recs = await self.until(lambda: (lambda r: r if r and r[-1]["type"] == "room_finished" else None)(
            self.delivered()), timeout=10, what="room_finished")
        fin = recs[-1]
        self.assertEqual(fin["participants"], 2)
        self.assertEqual(fin["ms"]["connected"], conn["alice"] + conn["bob"])  # the totals
        self.assertEqual(fin["ms"]["audio_published"], pub["alice"] + pub["bob"])
        types = [r["type"] for r in recs]
        for t in ("room_started", "participant_joined", "track_published", "usage",
                  "participant_left"):
            self.assertIn(t, types)

    async def test_receiver_down_for_4_attempts_loses_and_doubles_nothing(self):
        room = self.room()
        a, b = self.peer(room, "alice", 440), self.peer(room, "bob", 660)
        await a.join()
        await b.join()
        await self.until(lambda: a.tone_power("bob", 660, 1.0) > HEARD, what="call up")
        port = self.rcv.port
        self.rcv.stop()
        await asyncio.sleep(1)
        await b.mute(True)
        c = self.peer(room, "carol", 880)
        await c.join()
        await asyncio.sleep(1)
        await b.leave()
        # 3 s down (four failed attempts at 250 ms doubling), calls going on
        await asyncio.sleep(1)
        self.assertGreater(self.sfud.metric("sfu_webhook_failures_total"), 0)
        self.rcv.start(port)
        recs = await self.until(self.delivered, timeout=90, what="delivery after the outage")
        self.assert_exactly_once_in_order(recs)
        left = [r["participant"] for r in recs if r["type"] == "participant_left"]
        self.assertEqual(left, ["bob"])
        self.assertIn("carol", [r["participant"] for r in recs
                                if r["type"] == "participant_joined"])

    async def test_killed_sfud_delivers_its_journal_after_restart(self):
        self.rcv.stop()  # nothing delivered before the kill
        port = self.rcv.port
        room = self.room()
        a = self.peer(room, "alice", None)
        await a.join(negotiate=False)
        await asyncio.sleep(2.5)  # a few usage checkpoints
        journaled = self.sfud.request("GET", "/v1/events?after=0&limit=1000")[1]["records"]
        self.assertGreater(len(journaled), 3)
        self.sfud.kill(keep_data=True)
        data = self.sfud.data_dir
        seg = sorted(f for f in os.listdir(os.path.join(data, "journal")) if f.endswith(".seg"))[-1]
        with open(os.path.join(data, "journal", seg), "ab") as f:
            f.write(b"SFUJ\x00\x00")  # a torn last record
        self.rcv.start(port)
        self.start_sfud(data_dir=data)
        recs = await self.until(lambda: (lambda r: r if len(r) >= len(journaled) else None)(
            self.rcv.records()), timeout=15, what="redelivery")
        self.assertEqual([r["id"] for r in recs[:len(journaled)]], [r["id"] for r in journaled])
        self.assert_exactly_once_in_order(recs)

    async def test_room_crash_reports_sessions_closed_at_last_checkpoint(self):
        room = self.room()
        a = self.peer(room, "alice", None)
        await a.join(negotiate=False)
        await asyncio.sleep(1.5)
        os.kill(room["pid"], signal.SIGKILL)
        recs = await self.until(lambda: (lambda r: r if r and r[-1]["type"] == "room_crashed" else None)(
            self.delivered()), timeout=10, what="crash records")
        tail = [(r["type"], r.get("participant"), r.get("reason")) for r in recs[-2:]]
        self.assertEqual(tail, [("participant_left", "alice", "room_crashed"),
                                ("room_crashed", None, None)])
        usage = [r for r in recs if r["type"] == "usage"]
        self.assertTrue(usage)
        self.assertFalse(any(r["final"] for r in usage))  # closed by the crash record

    async def test_refused_batch_is_parked_not_retried_forever(self):
        self.rcv.stop()
        self.rcv.start(self.rcv.port, "--fail-status", "400")
        self.room()
        await self.until(lambda: self.sfud.metric("sfu_webhook_parked_total") >= 1, what="parked")
        parked = os.listdir(os.path.join(self.sfud.data_dir, "parked"))
        self.assertTrue(parked and parked[0].endswith(".json"))
        with open(os.path.join(self.sfud.data_dir, "parked", parked[0])) as f:
            self.assertIn("room_started", f.read())
        self.assertTrue(any("parked in" in l for l in self.sfud.log))
        self.assertEqual(self.sfud.metric("sfu_webhook_failures_total"), 0)

    async def test_full_disk_keeps_serving_and_nothing_is_lost(self):
        self.sfud.stop()
        self.sfud = self.start_sfud(fsize=1500)  # the journal can hold a few records
        rooms = [self.room() for _ in range(30)]
        hz = await self.until(lambda: (lambda j: j if j.get("status") == "degraded" else None)(
            self.sfud.request("GET", "/healthz", auth=False)[1]), what="degraded")
        self.assertGreater(hz["records_in_memory"], 0)
        self.assertEqual(self.sfud.request("POST", "/v1/rooms", {})[0], 201)  # still serving
        subprocess.run(["prlimit", "--pid", str(self.sfud.proc.pid), "--fsize=unlimited"],
                       check=True)
        for r in rooms:
            self.sfud.request("DELETE", "/v1/rooms/" + r["room_id"])
        recs = await self.until(lambda: (lambda r: r if sum(x["type"] == "room_finished" for x in r)
                                 >= 30 else None)(self.rcv.records()), timeout=30,
                        what="everything delivered")
        self.assert_exactly_once_in_order(recs)
        self.assertEqual(sum(r["type"] == "room_started" for r in recs), 31)
        self.assertEqual(self.sfud.metric("sfu_events_lost_total"), 0)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""sfu-replay's clients (tools/client/peer.c) follow a room that moves
between real sfud nodes around a real etcd (docs/signaling.md "Moving to
another node", docs/replay.md "Moving rooms"):

* make-before-break: a call of two tones, a VP8 capture and a listener
  moves from node a to b, then back to a. Every client follows both moves
  by itself (a second socket and connection to the new node, the old one
  played until `migrated`); the run stays within its loss bound, with no
  duplicate or corrupt packet (what both connections delivered is played
  once), and sfu-replay's figures per receiver are printed: the longest
  audio gap around each switch and the frames lost, and for the video when
  the new connection carried its first keyframe (the new node asks the
  publisher for one; it answers) and whether the video played from it
  was decodable at once (asserted). Between the moves the
  clients' signaling connections to b are killed (`ss -K`): they resume on
  b, the node they moved to, with b's tokens;
* the target dies while the clients are on their way (they wait 4 s before
  following: --migrate-delay): the old node aborts the move, the clients
  get `migrate_abort`, drop their new connection and stay, the call intact;
* a slow client (--migrate-delay 9, beyond the old node's 8 s wait): the
  old node commits without it; `migrated` comes before its new connection
  exists, it carries on connecting and the call comes back (break-before-
  make for it: the gap, about a second, is printed);
* the signaling of a move, against two stand-in nodes (sfu-replay --token
  --ws-url needs no API; no media): a new node that refuses the resume
  (4014) ends that move, the client staying; the next `migrate` is
  followed (`resume` with its token, the same tracks offered there), a
  third one while it is under way ignored; after `migrated` and the old
  node's 4015 the client never returns to the old node, and a drop of its
  new socket resumes on the new node with the new node's token.

Usage: test_migrate_replay.py --sfud PATH --room PATH --replay PATH
"""
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from etcd import EtcdFleet  # noqa: E402
from sfutest import Sfud, main, wait_for  # noqa: E402
ARGS = None

TTL = 2  # seconds: the nodes' lease
VP8 = os.path.join(HERE, "..", "data", "pcaps", "membrane-input_vp8.pcap")


class MigrateReplayTest(EtcdFleet, unittest.TestCase):
    def setUp(self):
        self.prefix = "/t-" + uuid.uuid4().hex[:8]
        self.nodes = {}
        self.procs = []
        self.tmp = tempfile.mkdtemp(prefix="sfu-migrate-replay-")

    def tearDown(self):
        for proc in self.procs:  # only what this test started
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        for n in self.nodes.values():
            n.stop_and_check()
        import shutil
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start_node(self, node_id):
        n = Sfud(ARGS.sfud, ARGS.room, *self.fleet_args(node_id, TTL))
        self.nodes[node_id] = n
        self.wait_registered(node_id)
        return n

    def create(self, node, name):
        st, room = node.request("POST", "/v1/rooms", {"name": name, "node": "a"})
        self.assertEqual(st, 201, room)
        wait_for(lambda: node.request("GET", "/v1/rooms/" + room["room_id"])[1]["state"] ==
                 "running", what="room running")
        return room

    def replay(self, node, room, *args):
        """sfu-replay into `room` (by name: the live room is joined) through
        `node`: two tones and a listener, and `args`."""
        self.summary_path = os.path.join(self.tmp, "summary.json")
        self.err_path = os.path.join(self.tmp, "replay.err")
        err = open(self.err_path, "w")
        proc = subprocess.Popen(
            [os.path.abspath(ARGS.replay), "--server", "http://127.0.0.1:%d" % node.port,
             "--api-key", node.api_key, "--room", room["name"], "--tone", "440", "--tone", "660",
             "--json", self.summary_path, *args], stdout=subprocess.DEVNULL, stderr=err)
        err.close()
        self.procs.append(proc)
        return proc

    def finish(self, proc, timeout=90):
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        with open(self.err_path) as f:
            err = f.read()
        self.assertEqual(proc.returncode, 0, "sfu-replay: exit %s\n%s" % (proc.returncode, err))
        with open(self.summary_path) as f:
            return json.load(f), err

    def sending(self, node, room, n):
        """Waits until the n clients are in and sfu-replay sends."""
        wait_for(lambda: node.request("GET", "/v1/rooms/" + room["room_id"])[1]
                 .get("participants") == n, timeout=20, what="%d participants" % n)
        time.sleep(1.5)  # everyone connected, the publishers started

    def migrate(self, node, room, to):
        t = time.monotonic()
        st, res = node.request("POST", "/v1/rooms/%s/migrate" % room["room_id"], {"node": to})
        return st, res, time.monotonic() - t

    def kill_signaling(self, proc, node):
        """Kills sfu-replay's TCP connections to `node` without a close
        (`ss -K`); how many, or None where ss cannot."""
        out = subprocess.run(["ss", "-tnp"], capture_output=True, text=True, timeout=20).stdout
        socks = [l.split() for l in out.splitlines() if "pid=%d," % proc.pid in l and
                 l.startswith("ESTAB") and l.split()[4:5] == ["127.0.0.1:%d" % node.port]]
        for s in socks:
            r = subprocess.run(["ss", "-K", "-tn", "dst", s[4], "src", s[3]],
                               capture_output=True, text=True, timeout=20)
            if r.returncode != 0:
                return None
        return len(socks)

    def assert_usage_tiles(self, first):
        """Each participant's usage records, from both nodes' journals, tile
        its stay: periods end to end (a move's cut within 20 ms), exactly
        one final, the connected time their whole span: every
        participant-second counted once across the nodes."""
        recs = {}
        for n in self.nodes.values():
            st, j = n.request("GET", "/v1/events?after=0&limit=1000")
            self.assertEqual(st, 200, j)
            recs[n] = j["records"]
        self.assertEqual([r["type"] for r in recs[first] if r["type"] == "room_started"],
                         ["room_started"])
        for n, rs in recs.items():  # a move is neither a leave nor a join, nor a new room
            if n is not first:
                self.assertEqual([r for r in rs if r["type"] in
                                  ("participant_joined", "room_started", "track_published")], [])
        who = [r["participant"] for r in recs[first] if r["type"] == "participant_joined"]
        self.assertTrue(who)
        usage = [r for rs in recs.values() for r in rs if r["type"] == "usage"]
        for ident in who:
            rs = sorted((r for r in usage if r["participant"] == ident),
                        key=lambda r: r["period_start_ms"])
            self.assertEqual([r["final"] for r in rs].count(True), 1, rs)
            self.assertTrue(rs[-1]["final"], rs)
            seams = [y["period_start_ms"] - x["period_end_ms"] for x, y in zip(rs, rs[1:])]
            for d in seams:  # both rooms place the one cut on their own clocks
                self.assertLess(abs(d), 20, rs)
            total = sum(r["ms"]["connected"] for r in rs)
            span = rs[-1]["period_end_ms"] - rs[0]["period_start_ms"]
            self.assertLess(abs(total - span), 50, rs)
            print("  usage of %s: %d periods over both nodes, %d ms connected of a %d ms stay, "
                  "seams %s ms" % (ident, len(rs), total, span, seams))

    @staticmethod
    def print_moves(summary):
        for m in summary["migration"]:
            video = ""
            if m["video_tracks"]:
                fmt = lambda v: "none" if v is None else "%+.0f ms" % v  # noqa: E731
                video = "; video keyframe on the new leg %s, decodable from %s%s" % (
                    fmt(m["video_keyframe_ms"]), fmt(m["video_resume_ms"]),
                    " at once" if m["video_keyed"] else " (waited for a keyframe)")
            print("  %-10s moved at %5.2f s: audio gap %6.1f ms (ending %+5.0f ms from the "
                  "switch), %d frames lost, %d video packets lost, %d played on both legs%s" %
                  (m["receiver"], m["at_s"], m["gap_ms"], m["gap_end_ms"], m["frames_lost"],
                   m["video_packets_lost"], m["leg_duplicates"], video))

    # ------------------------------------------------------------------

    def test_clients_follow_moves_and_resume_on_the_new_node(self):
        a, b = self.start_node("a"), self.start_node("b")
        room = self.create(a, "follow")
        proc = self.replay(a, room, "-n", "4", "--loop", "0", "--duration", "11",
                           "--max-loss", "0.05", VP8)
        self.sending(a, room, 4)
        st, res, took = self.migrate(a, room, "b")
        self.assertEqual((st, res.get("to_node"), res.get("participants")), (200, "b", 4), res)
        print("a -> b: %d ms (the API answered in %.0f ms)" % (res["took_ms"], took * 1000))
        self.assertEqual(self.room_owner(room["room_id"]), "b")
        time.sleep(1.5)
        before = b.metric("sfu_ws_resumes_total")  # (the clients' moves in were resumes)
        killed = self.kill_signaling(proc, b)
        if killed is not None:
            self.assertEqual(killed, 4)
            wait_for(lambda: b.metric("sfu_ws_resumes_total") == before + 4,
                     what="4 resumes on b")
        time.sleep(1.5)
        st, res, took = self.migrate(b, room, "a")
        self.assertEqual((st, res.get("to_node"), res.get("participants")), (200, "a", 4), res)
        print("b -> a: %d ms (the API answered in %.0f ms)" % (res["took_ms"], took * 1000))
        s, err = self.finish(proc)
        self.print_moves(s)
        print("migrations %d, worst audio gap %d ms, frames lost %d; loss %.4f" %
              (s["migrations"], s["migration_gap_ms_max"], s["migration_frames_lost"], s["loss"]))
        self.assertEqual((s["migrations"], s["migrations_aborted"]), (8, 0), err)
        self.assertEqual(len(s["migration"]), 8)
        for c in s["clients"]:
            self.assertEqual((c["migrations"], c["close_code"]), (2, 0), c)
            self.assertTrue(c["connected"], c)
            self.assertEqual(c["self_received"] + c["unknown_received"], 0, c)
            self.assertEqual(c["resumes"], 1 if killed else 0, c)
        for st_ in s["streams"]:  # what both legs delivered was played once
            self.assertEqual((st_["duplicated"], st_["corrupt"]), (0, 0), st_)
            self.assertEqual(st_["receivers"], 3, st_)
        for m in s["migration"]:
            self.assertLess(m["gap_ms"], 1500, m)  # generous: a loaded machine
            # both legs carry the call until the switch (the old room
            # forwards on for a while after the cut): nothing is missed
            self.assertLessEqual(m["frames_lost"], 1, m)
        # Video at every move, for each of its 3 receivers: the new node
        # asked the publisher for a keyframe (its new subscribers), the
        # publisher sent one on both connections, and the video played
        # from the new connection became decodable by a decoder of its own
        # (a keyframe from it, nothing missing since), at once: the new node
        # is ready (and the move committed) only once a keyframe of every
        # video has reached its subscribers there, so the first picture
        # played from the new connection is decodable. (Generous bound on
        # the time: the printed figures are the measurement.)
        video = [m for m in s["migration"] if m["video_tracks"]]
        self.assertEqual(sorted(m["receiver"] for m in video),
                         sorted(["tone0", "tone1", "listener"] * 2), s["migration"])
        for m in video:
            self.assertIsNotNone(m["video_keyframe_ms"], m)
            self.assertIsNotNone(m["video_resume_ms"], m)
            self.assertLess(m["video_resume_ms"], 2000, m)
            self.assertTrue(m["video_keyed"], m)
        vp8 = [st_ for st_ in s["streams"] if st_["kind"] == "video"][0]
        print("the VP8 publisher: %d keyframe requests, %d answered by skipping ahead (%d "
              "packets)" % (vp8["keyframe_requests"], vp8["keyframe_skips"],
                            vp8["keyframe_skipped"]))
        self.assertEqual(self.room_owner(room["room_id"]), "a")
        self.assertIn("migrated", err)
        wait_for(lambda: a.request("GET", "/v1/rooms/" + room["room_id"])[1].get(
            "participants") == 0, what="everyone left")
        time.sleep(0.3)  # their final usage journaled
        self.assert_usage_tiles(a)

    def test_target_dying_aborts_and_the_clients_stay(self):
        a, b = self.start_node("a"), self.start_node("b")
        room = self.create(a, "abort")
        proc = self.replay(a, room, "-n", "3", "--duration", "8", "--max-loss", "0.01",
                           "--migrate-delay", "4")
        self.sending(a, room, 3)
        out = {}
        mover = threading.Thread(target=lambda: out.update(r=self.migrate(a, room, "b")))
        mover.start()
        wait_for(lambda: b.request("GET", "/v1/node/migrations/" + room["room_id"])[0] == 200,
                 what="the room moving in on b")
        time.sleep(0.5)  # the clients are told; they wait 4 s
        b.kill()
        mover.join(30)
        st, res, _ = out["r"]
        self.assertEqual((st, res["error"]["code"]), (502, "migration_failed"), res)
        s, err = self.finish(proc)
        self.assertEqual((s["migrations"], s["migrations_aborted"]), (0, 3), err)
        self.assertEqual(s["migration"], [])
        for c in s["clients"]:
            self.assertEqual((c["migrations_aborted"], c["close_code"], c["resumes"]), (1, 0, 0), c)
        for st_ in s["streams"]:
            self.assertEqual((st_["lost"], st_["duplicated"], st_["corrupt"]), (0, 0, 0), st_)
        self.assertIn("move aborted", err)
        self.assertEqual(self.room_owner(room["room_id"]), "a")

    def test_slow_client_carries_on_after_migrated(self):
        a, _ = self.start_node("a"), self.start_node("b")
        room = self.create(a, "slow")
        proc = self.replay(a, room, "-n", "3", "--duration", "15", "--max-loss", "0.3",
                           "--migrate-delay", "9")
        self.sending(a, room, 3)
        st, res, _ = self.migrate(a, room, "b")
        # the old node waits 8 s for clients that do not come, then commits
        self.assertEqual((st, res.get("to_node")), (200, "b"), res)
        print("a -> b without its clients: %d ms" % res["took_ms"])
        s, err = self.finish(proc)
        self.print_moves(s)
        self.assertEqual((s["migrations"], s["migrations_aborted"]), (3, 0), err)
        self.assertIn("still connecting", err)
        for c in s["clients"]:
            self.assertEqual((c["migrations"], c["close_code"]), (1, 0), c)
        for m in s["migration"]:  # about a second of nothing: 9 s minus the 8 s wait
            self.assertGreater(m["gap_ms"], 500, m)
            self.assertLess(m["gap_ms"], 5000, m)
            self.assertGreater(m["frames_lost"], 10, m)
        for st_ in s["streams"]:  # heard again after the move
            self.assertEqual((st_["duplicated"], st_["corrupt"]), (0, 0), st_)
            self.assertGreater(st_["received"], st_["lost"] * 2, st_)


class StandIn:
    """A WebSocket endpoint playing one node's signaling for one client:
    every message it gets is kept (`got`: (socket number, message)), and
    `script(ws, first)` answers each socket's first message."""

    def __init__(self, script):
        self.script, self.got, self.sockets, self.closes = script, [], 0, []

    async def start(self):
        import websockets
        self.server = await websockets.serve(self.handler, "127.0.0.1", 0)
        self.url = "ws://127.0.0.1:%d/v1/rtc" % self.server.sockets[0].getsockname()[1]

    async def handler(self, ws, path=None):
        import websockets
        self.sockets += 1
        n = self.sockets
        reader = asyncio.ensure_future(self.read(ws, n))
        while not any(k == n for k, _ in self.got):
            if reader.done():
                return
            await asyncio.sleep(0.01)
        try:
            await self.script(ws, next(m for k, m in self.got if k == n))
            await reader
        except websockets.ConnectionClosed:
            pass

    async def read(self, ws, n):
        """Keeps what comes on socket n; answers pings."""
        import websockets
        try:
            async for text in ws:
                m = json.loads(text)
                self.got.append((n, m))
                if m.get("type") == "ping":
                    await ws.send(json.dumps({"type": "pong", "id": m.get("id")}))
        except websockets.ConnectionClosed:
            pass
        self.closes.append((n, ws.close_code))

    def of(self, kind):
        return [m for _, m in self.got if m.get("type") == kind]

    async def stop(self):
        self.server.close()
        await self.server.wait_closed()


class StandInTest(unittest.IsolatedAsyncioTestCase):
    async def until(self, pred, timeout=15.0, what="condition"):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred():
                return
            await asyncio.sleep(0.05)
        self.fail("timed out waiting for " + what)

    async def test_the_signaling_of_a_move(self):
        sid = "PA_standin"

        async def old_node(ws, first):
            self.assertEqual(first["type"], "join")
            await ws.send(json.dumps({
                "type": "welcome", "id": first["id"], "v": 1,
                "participant": {"sid": sid, "identity": "tone0"},
                "room": {"room_id": "rm_standin", "name": "standin"}, "participants": [],
                "resume_token": "t0", "resume_grace_s": 20}))
            await self.until(lambda: old.of("offer"), what="the first offer")
            move = {"type": "migrate", "v": 1, "room": "rm_standin", "ws_url": new.url}
            await ws.send(json.dumps(dict(move, resume_token="m1")))  # refused there
            await self.until(lambda: len(new.closes) == 1, what="the refused move")
            await asyncio.sleep(0.3)
            await ws.send(json.dumps(dict(move, resume_token="m2")))
            await self.until(lambda: len(new.of("offer")) == 1, what="the offer on the new node")
            await ws.send(json.dumps(dict(move, resume_token="m3")))  # under way: ignored
            await asyncio.sleep(0.5)
            await ws.send(json.dumps({"type": "migrated", "v": 1}))
            await ws.close(4015, "room migrated")

        async def new_node(ws, first):
            self.assertEqual(first["type"], "resume")
            tok = first["resume_token"]
            if tok == "m1":
                await ws.close(4014, "resume failed: no such session (join again)")
                return
            nxt = {"m2": "n1", "n1": "n2"}[tok]
            await ws.send(json.dumps({"type": "resumed", "id": first["id"], "v": 1,
                                      "participant": {"sid": sid, "identity": "tone0"},
                                      "resume_token": nxt, "resume_grace_s": 20}))
            if tok == "m2":  # dropped once the old node is gone: resumed here
                await self.until(lambda: old.closes, what="the old socket closed")
                await asyncio.sleep(0.5)
                ws.transport.abort()

        old, new = StandIn(old_node), StandIn(new_node)
        await old.start()
        await new.start()
        tmp = tempfile.mkdtemp(prefix="sfu-migrate-standin-")
        summary = os.path.join(tmp, "summary.json")
        err = open(os.path.join(tmp, "replay.err"), "w+")
        proc = subprocess.Popen([os.path.abspath(ARGS.replay), "--token", "x.y.z", "--ws-url",
                                 old.url, "--room", "rm_standin", "--tone", "440",
                                 "--duration", "0.1", "--json", summary],
                                stdout=subprocess.DEVNULL, stderr=err)
        try:
            # The offers are never answered: sfu-replay would wait 20 s for
            # media before its run. Once the move is played out (the resume
            # after the drop made, the track offered there again), SIGINT
            # has it summarise and leave (after its 1 s drain).
            end = time.monotonic() + 60
            while proc.poll() is None and time.monotonic() < end:
                if len(new.of("resume")) >= 3 and len(old.of("offer") + new.of("offer")) >= 3:
                    proc.send_signal(signal.SIGINT)
                    break
                await asyncio.sleep(0.1)
            while proc.poll() is None and time.monotonic() < end:
                await asyncio.sleep(0.1)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
            await old.stop()
            await new.stop()
        err.seek(0)
        text = err.read()
        err.close()
        self.assertEqual(proc.returncode, 0, text)
        with open(summary) as f:
            c = json.load(f)["clients"][0]
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
        # the old node: one socket, never resumed, its 4015 no error
        self.assertEqual(old.sockets, 1, text)
        self.assertEqual(old.of("resume"), [])
        # the new node: the refused move, the move, the resume after the drop
        self.assertEqual([m["resume_token"] for m in new.of("resume")], ["m1", "m2", "n1"], text)
        self.assertEqual({m["room"] for m in new.of("resume")}, {"rm_standin"})
        # the same track offered on both nodes
        ssrcs = [re.findall(r"a=ssrc:(\d+) ", m["sdp"]) for m in old.of("offer") + new.of("offer")]
        self.assertEqual(len(ssrcs), 3, text)  # (offered again after the resume)
        self.assertEqual(ssrcs[0], ssrcs[1])
        self.assertTrue(ssrcs[0])
        self.assertIn("the move is given up", text)
        self.assertIn("migrated", text)
        self.assertEqual((c["migrations"], c["migrations_aborted"], c["resumes"]), (1, 1, 1), text)
        self.assertEqual(c["close_code"], 0, text)
        self.assertTrue(new.of("leave"), "the end of the run leaves on the new node")


if __name__ == "__main__":
    main(replay="required")

#!/usr/bin/env python3
"""A rolling deploy of a fleet, as docs/fleet.md ("Upgrading a node") and
docs/internals/upgrade.md describe it, under live calls: three sfud nodes
(a, b, c) around a real etcd (etcd.py), each run from its own copies of
sfud and sfu-room in a temporary directory, so that "installing the new
version" is renaming fresh copies over them.

* one room per node, created through node a and spread by placement; a call
  in each: two aiortc peers (alice, bob) in the room on a, sfu-replay (a
  publisher pub0 looping a capture, and its listener) in the rooms on b and
  c;
* then each node in turn: POST /v1/node/drain {"draining": true}; its etcd
  record says draining; rooms created without a node (through the draining
  node itself and through another one) go to the other two, one each, and
  a room pinned to it gets 503 draining. The new binaries are renamed over
  the old ones and SIGUSR2 sent; its log says it adopted its room and two
  sessions; it kept its PID (now running the new file), its lease (the
  node key and its room's keys still under the same lease, no new
  registration, no lease lost) and its room process (still the old
  sfu-room); its clients resume. Then {"draining": false}: its record says
  so, and the next room created without a node goes to it (the least
  loaded), forked from the new sfu-room. The extra rooms are deleted;
* after the three upgrades: the aiortc receivers lost no RTP packet in any
  upgrade window (1 s before SIGUSR2 to 2 s after the last resume) and
  never paused longer than test_upgrade.MAX_GAP_S; each peer resumed once
  (node a's upgrade) and its WebSocket stayed up through b's and c's; no
  participant joined or left anywhere (journals of the three nodes, and
  what the peers saw); GET /v1/fleet lists the three nodes, not draining,
  and the three rooms, no lost room. Then the calls end: each sfu-replay
  (SIGINT: it summarises) reports every client resumed once, no ICE
  restart, 0 packets lost by its listener; every node's journal has each
  record once (ids unique, seqs contiguous), and each participant's usage
  periods tile its time from join to leave (aiortc's against the stay the
  test measured), summed by room_finished.

Figures printed: per node, SIGUSR2 to "adopted" (from the log's
timestamps) and the new process's start-up (exec to adopted); per
receiver, packets lost and the longest gap in each window; per sfu-replay
client, its resume time; per participant, its usage.

A second test: a drained node that is upgraded is still draining after
the upgrade (GET /v1/node, its etcd record, a pinned room refused). The
main test only prints what it sees there.

And the deploy without upgrading in place (docs/fleet.md "Deploying a new
version"): the same three calls; each node in turn is drained with
"migrate" (its rooms move to the other two, make-before-break), stopped
once empty, started again from the new binaries on its data directory and
port, and takes rooms again as the next node's drain moves them over. Four
moves in all (the rooms of a, b, c and back). Asserted: every room moved,
every client followed each move of its room (aiortc's and sfu-replay's:
none aborted, nobody left or joined), no RTP packet missing on either side
of any aiortc switch, the fleet back as it was; across the three journals,
room_migrated once per move, and each participant's usage periods tile its
stay with seams under 20 ms and one final record, room_finished's totals
their sum. Printed: per node, how long its rooms took to move off and its
restart; per aiortc receiver and move, the longest pause around the switch;
per sfu-replay receiver and move, its audio gap and frames lost.

Helpers (LoopWatch, exe_inode, the resume of a dropped peer) come from
test_upgrade.py, the RTP log on aiortc's receivers from aiortc_peer.py.

Usage: test_deploy.py --sfud PATH --room PATH --replay PATH
"""
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from etcd import EtcdFleet  # noqa: E402
from sfutest import CallTest, Sfud, _die_with_parent, main, pid_alive  # noqa: E402
import test_upgrade as tu  # noqa: E402
from aiortc_peer import Peer, rtp_window  # noqa: E402

ARGS = None
TTL = 2                  # s: the nodes' lease
USAGE_INTERVAL_S = 1
NODES = ("a", "b", "c")
AIORTC_NODE = "a"        # where alice and bob talk; sfu-replay on the others
REPLAY_MAX_S = 150       # sfu-replay sends until SIGINT, at most this long
AFTER_RESUME_S = 2.0     # media measured after the last resume


def log_wall_time(line):
    """The wall-clock time (s since the epoch) of one of sfud's log lines."""
    m = re.match(r"ts=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z ", line)
    if not m:
        return None
    return datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(
        tzinfo=timezone.utc).timestamp()


def inode(path):
    st = os.stat(path)
    return st.st_dev, st.st_ino


class Node:
    """One sfud of the fleet, run from its own sfud and sfu-room in `dir`."""

    def __init__(self, node_id, directory, etcd, prefix):
        self.id = node_id
        os.mkdir(directory)
        self.bin = os.path.join(directory, "sfud")
        self.room_bin = os.path.join(directory, "sfu-room")
        self.data_dir = os.path.join(directory, "data")
        os.mkdir(self.data_dir)
        shutil.copy2(ARGS.sfud, self.bin)
        shutil.copy2(ARGS.room, self.room_bin)
        self.key = prefix + "/nodes/" + node_id
        self.args = ("--node-id", node_id, "--etcd-url", etcd.url, "--etcd-prefix", prefix,
                     "--etcd-lease-ttl-s", str(TTL), "--usage-interval-s", str(USAGE_INTERVAL_S))
        self.start()

    def start(self, port=0):
        self.sfud = Sfud(self.bin, self.room_bin, *self.args, data_dir=self.data_dir, port=port)
        self.pid = self.sfud.proc.pid

    def restart(self):
        """SIGTERM, the new binaries installed, started again on the same
        data directory (its journal) and port. Returns the new sfud's
        inode."""
        port = self.sfud.port
        self.sfud.stop_and_check()
        exe, _ = self.install()
        self.start(port)
        return exe

    def request(self, *a, **kw):
        return self.sfud.request(*a, **kw)

    def install(self):
        """The new sfud and sfu-room over the old files, by rename (the
        running processes keep theirs). Returns their new inodes."""
        for src, dst in ((ARGS.sfud, self.bin), (ARGS.room, self.room_bin)):
            shutil.copy2(src, dst + ".new")
            os.rename(dst + ".new", dst)
        return inode(self.bin), inode(self.room_bin)

    def log_since(self, mark, pattern):
        return [line for line in self.sfud.log[mark:] if re.search(pattern, line)]


class Replay:
    """An sfu-replay run (pub0 and a listener) in an existing room."""

    def __init__(self, test, room, via):
        tag = room["node_id"]
        self.room = room
        self.summary_path = os.path.join(test.tmp, "replay-%s.json" % tag)
        self.err = open(os.path.join(test.tmp, "replay-%s.err" % tag), "w+")
        test.addCleanup(self.err.close)
        self.proc = subprocess.Popen(
            [os.path.abspath(ARGS.replay), "--server", "http://127.0.0.1:%d" % via.sfud.port,
             "--api-key", via.sfud.api_key, "--room", room["name"], "-n", "2", "--loop", "0",
             "--duration", str(REPLAY_MAX_S), "--json", self.summary_path, tu.CAPTURE],
            stdout=subprocess.DEVNULL, stderr=self.err, preexec_fn=_die_with_parent)
        test.procs.append(self.proc)

    def log(self):
        self.err.seek(0)
        return self.err.read()

    def summary(self):
        with open(self.summary_path) as f:
            return json.load(f)


class DeployTest(EtcdFleet, CallTest):
    PEER = Peer
    POLL_S = 0.05
    UNTIL_S = 20.0

    # test_upgrade's: waits for a peer's WebSocket to drop, resumes it
    resume_after_drop = tu.UpgradeBase.resume_after_drop
    resume_all = tu.UpgradeBase.resume_all
    hear_each_other = tu.UpgradeBase.hear_each_other

    def setUp(self):
        self.peers = []
        self.procs = []
        self.nodes = {}
        self.tmp = tempfile.mkdtemp(prefix="sfu-deploy-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.prefix = "/deploy-" + uuid.uuid4().hex[:8]

    # -- the fleet ----------------------------------------------------------

    def start_fleet(self, ids=NODES):
        for node_id in ids:
            n = Node(node_id, os.path.join(self.tmp, node_id), self.etcd, self.prefix)
            self.nodes[node_id] = n
            self.addCleanup(self._stop_node, n)
            # (after the nodes stop: LIFO)
        self.addCleanup(self._end_procs)
        for node_id in ids:
            self.wait_sync(lambda: self.record(node_id), "node %s registered" % node_id)
        self.sfud = self.nodes[ids[0]].sfud          # CallTest's token() goes through it
        return self.nodes

    def _stop_node(self, n):
        try:
            n.sfud.stop_and_check()
        finally:
            if os.environ.get("SFU_TEST_LOG"):
                sys.stderr.write("--- node %s ---\n%s" % (n.id, "".join(n.sfud.log[-60:])))

    def _end_procs(self):
        for proc in self.procs:            # only what this test started
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)

    def wait_sync(self, pred, what, timeout=10.0):
        end = time.monotonic() + timeout
        while True:
            v = pred()
            if v:
                return v
            if time.monotonic() > end:
                self.fail("timed out waiting for " + what)
            time.sleep(0.05)

    async def timeout_details(self):
        out = []
        for n in self.nodes.values():
            out.append("\nnode %s's log (end):\n%s" % (n.id, "".join(n.sfud.log[-25:])))
        return "".join(out)

    def keys(self, sub=""):
        """{key: (value, lease)} under the test's prefix."""
        return self.etcd.range_prefix(self.prefix + "/" + sub)

    def record(self, node_id):
        """(node record, lease) from etcd, or None."""
        return self.keys("nodes/").get(self.prefix + "/nodes/" + node_id)

    def room_info(self, room, via=None):
        st, j = (via or self.nodes["a"]).request("GET", "/v1/rooms/%s" % room["room_id"])
        return j if st == 200 else None

    # -- the upgrade ---------------------------------------------------------

    async def upgrade(self, node, rooms, sessions):
        """Installs the new binaries, sends SIGUSR2 and waits for "adopted".
        Returns the figures and the new files' inodes."""
        old_exe = tu.exe_inode(node.pid)
        new_exe, new_room = node.install()
        self.assertNotEqual(new_exe, old_exe)
        mark = len(node.sfud.log)
        t_sig, wall_sig = time.monotonic(), time.time()
        os.kill(node.pid, signal.SIGUSR2)
        lines = await self.until(lambda: node.log_since(mark, r"adopted \d+ rooms?"), timeout=20,
                                 what="node %s's log saying it adopted its state" % node.id,
                                 step=0.01)
        self.assertIsNone(node.sfud.proc.poll(), "node %s exited:\n%s"
                          % (node.id, "".join(node.sfud.log[mark:])))
        self.assertEqual(node.sfud.proc.pid, node.pid)
        self.assertEqual(tu.exe_inode(node.pid), new_exe,
                         "/proc/%d/exe is not the new binary" % node.pid)
        m = re.search(r"adopted (\d+) rooms?, (\d+) sessions?", lines[0])
        self.assertIsNotNone(m, lines[0])
        self.assertEqual((int(m.group(1)), int(m.group(2))), (rooms, sessions), lines[0])
        execs = node.log_since(mark, r"exec'ing")
        t_adopted = log_wall_time(lines[0])
        fig = {"t_sig": t_sig,
               "sig_to_adopted_ms": (t_adopted - wall_sig) * 1000,
               "exec_to_adopted_ms": ((t_adopted - log_wall_time(execs[0])) * 1000
                                      if execs else float("nan"))}
        print("  node %s: SIGUSR2 -> \"adopted %s rooms, %s sessions\" in %.0f ms "
              "(the new process: %.0f ms from exec)"
              % (node.id, m.group(1), m.group(2), fig["sig_to_adopted_ms"],
                 fig["exec_to_adopted_ms"]))
        return fig, new_room

    async def wait_record(self, node_id, draining):
        return await self.until(
            lambda: (self.record(node_id) or ({},))[0].get("draining") is draining,
            what="node %s's record saying draining %s" % (node_id, draining))

    def delete_rooms(self, rooms):
        for r in rooms:
            st, j = self.nodes["a"].request("DELETE", "/v1/rooms/%s" % r["room_id"])
            self.assertIn(st, (200, 202), j)

    async def rooms_gone(self, rooms):
        ids = {r["room_id"] for r in rooms}
        await self.until(lambda: not ids & {k.rsplit("/", 1)[1] for k in self.keys("rooms/")},
                         what="the rooms' keys released")
        await self.until(lambda: not any(pid_alive(r["pid"]) for r in rooms),
                         what="the rooms' processes ended")

    # -- the procedure -------------------------------------------------------

    async def deploy_node(self, nid, call_rooms, peers):
        """drain, upgrade, undrain one node; returns its figures."""
        nodes = self.nodes
        node = nodes[nid]
        others = [n for n in NODES if n != nid]
        via = nodes[others[0]]
        room = call_rooms[nid]
        print("node %s:" % nid)

        # 1. drain: placement leaves it out
        st, j = node.request("POST", "/v1/node/drain", {"draining": True})
        self.assertEqual((st, j.get("draining")), (200, True), j)
        await self.wait_record(nid, True)
        lease = self.record(nid)[1]
        self.assertNotEqual(lease, "0")
        extras = []
        for v in (node, via):              # through the draining node itself, and another
            st, r = v.request("POST", "/v1/rooms", {})
            self.assertEqual(st, 201, r)
            self.assertNotEqual(r["node_id"], nid, "a room placed on draining node %s" % nid)
            extras.append(r)
        self.assertEqual(sorted(r["node_id"] for r in extras), others, extras)
        st, err = via.request("POST", "/v1/rooms", {"node": nid})
        self.assertEqual((st, err["error"]["code"]), (503, "draining"), err)

        # 2. the new binaries, SIGUSR2
        info = self.room_info(room, node)
        room_pid = info["pid"]
        old_room_exe = tu.exe_inode(room_pid)
        fig, new_room_exe = await self.upgrade(node, rooms=1, sessions=2)
        t_sig = fig["t_sig"]
        if nid == AIORTC_NODE:
            await self.resume_all(peers, t_sig)
        await self.until(lambda: node.sfud.metric("sfu_ws_resumes_total") == 2,
                         what="node %s's two sessions resumed" % nid)
        fig["resumed_ms"] = (time.monotonic() - t_sig) * 1000
        print("  node %s: both sessions resumed %.0f ms after SIGUSR2" % (nid, fig["resumed_ms"]))
        await asyncio.sleep(AFTER_RESUME_S)  # media after the resumes; over a TTL too
        fig["window"] = (t_sig - 1.0, time.monotonic())

        # same process, same lease, same room process
        self.assertIsNone(node.sfud.proc.poll())
        self.assertEqual(node.sfud.proc.pid, node.pid)
        rec, lease_now = self.record(nid)
        self.assertEqual(lease_now, lease, "node %s's key is under another lease" % nid)
        for k in ("rooms/" + room["room_id"], "names/" + room["name"]):
            got = self.keys(k).get(self.prefix + "/" + k)
            self.assertIsNotNone(got, "%s gone from etcd" % k)
            self.assertEqual(got[1], lease, "%s under another lease" % k)
        st, ni = node.request("GET", "/v1/node")
        self.assertEqual(st, 200, ni)
        self.assertEqual((ni["fleet"]["lease_id"], ni["fleet"]["registered"]), (lease, True), ni)
        self.assertEqual(node.sfud.metric("sfu_fleet_registrations_total"), 0,
                         "the new process took a lease of its own")
        self.assertEqual(node.sfud.metric("sfu_fleet_leases_lost_total"), 0)
        fig["draining_after"] = (ni["draining"], rec["draining"])
        print("  node %s after the upgrade: lease %s kept; draining: GET /v1/node %s, etcd %s"
              % (nid, lease, ni["draining"], rec["draining"]))
        info = self.room_info(room, node)
        self.assertEqual((info["state"], info["pid"], info["participants"]),
                         ("running", room_pid, 2), info)
        self.assertEqual(tu.exe_inode(room_pid), old_room_exe,
                         "the running room changed binary")

        # 3. undrain: it takes rooms again, from the new sfu-room
        st, j = node.request("POST", "/v1/node/drain", {"draining": False})
        self.assertEqual((st, j.get("draining")), (200, False), j)
        await self.wait_record(nid, False)
        st, r = via.request("POST", "/v1/rooms", {})
        self.assertEqual(st, 201, r)
        self.assertEqual(r["node_id"], nid, "node %s, the least loaded, did not take the "
                         "room after draining ended" % nid)
        extras.append(r)
        self.assertEqual(tu.exe_inode(r["pid"]), new_room_exe,
                         "the new room does not run the new sfu-room")
        self.delete_rooms(extras)
        await self.rooms_gone(extras)
        return fig

    async def start_calls(self):
        """One room per node, placed through a; a call in each: aiortc's
        alice and bob on a, sfu-replay (through a's API) on b and c.
        Returns the rooms by node, the sfu-replays by node and the peers."""
        t_start = time.monotonic()
        nodes = self.nodes
        a = nodes["a"]
        call_rooms = {}
        for i in range(3):
            st, room = a.request("POST", "/v1/rooms", {"name": "deploy-%d" % i})
            self.assertEqual(st, 201, room)
            call_rooms[room["node_id"]] = room
        self.assertEqual(sorted(call_rooms), list(NODES), "placement: not one room per node")
        for nid, room in call_rooms.items():
            self.assertEqual(room["ws_url"], "ws://127.0.0.1:%d/v1/rtc" % nodes[nid].sfud.port)

        # the calls: aiortc on a, sfu-replay (through a's API) on b and c
        replays = {nid: Replay(self, call_rooms[nid], a) for nid in NODES if nid != AIORTC_NODE}
        t_join = time.monotonic()
        ra = call_rooms[AIORTC_NODE]
        alice = self.peer(ra, "alice", freq=440)
        bob = self.peer(ra, "bob", freq=660)
        peers = [alice, bob]
        for p in peers:
            await p.join()
        await self.until(lambda: alice.tone_power("bob", 660, 1.0) > tu.HEARD and
                         bob.tone_power("alice", 440, 1.0) > tu.HEARD, what="alice and bob talk")

        def flowing(room):
            info = self.room_info(room) or {}
            out = ((info.get("stats") or {}).get("packets") or {}).get("rtp_out", 0)
            return info.get("participants") == 2 and out > 100
        for nid, rp in replays.items():
            await self.until(lambda: flowing(rp.room) or rp.proc.poll() is not None,
                             what="sfu-replay's listener getting pub0 on %s" % nid)
            self.assertIsNone(rp.proc.poll(), "sfu-replay ended early:\n" + rp.log())
        await self.until(lambda: (self.room_info(ra) or {}).get("participants") == 2,
                         what="the room on a counting alice and bob")
        print("calls up %.1f s after the start" % (time.monotonic() - t_start))
        return call_rooms, replays, peers, t_join

    def assert_fleet_as_it_was(self, call_rooms):
        """GET /v1/fleet: the three nodes, none draining, the calls' rooms."""
        st, fleet = self.nodes["c"].request("GET", "/v1/fleet")
        self.assertEqual(st, 200, fleet)
        self.assertEqual(sorted(n["node_id"] for n in fleet["nodes"]), list(NODES), fleet)
        self.assertEqual([n["node_id"] for n in fleet["nodes"] if n["draining"]], [], fleet)
        self.assertEqual(sorted(r["room_id"] for r in fleet["rooms"]),
                         sorted(r["room_id"] for r in call_rooms.values()), fleet)
        self.assertEqual(fleet["lost_rooms"], [])

    async def end_calls(self, replays, peers, t_join, call_rooms):
        """sfu-replay ends on SIGINT (it summarises: exit 0), the peers
        leave, the rooms are deleted. Returns each peer's stay (s)."""
        for rp in replays.values():
            rp.proc.send_signal(signal.SIGINT)
        for nid, rp in replays.items():
            end = time.monotonic() + 20
            while rp.proc.poll() is None and time.monotonic() < end:
                await asyncio.sleep(0.1)
            self.assertEqual(rp.proc.poll(), 0, "sfu-replay on %s: exit %s\n%s"
                             % (nid, rp.proc.returncode, rp.log()))
        self.assert_peers_clean()
        stay = {}
        for p in peers:
            await p.leave()
            stay[p.identity] = time.monotonic() - t_join
        self.delete_rooms(call_rooms.values())
        return stay

    async def test_rolling_upgrade_keeps_every_call(self):
        t_start = time.monotonic()
        nodes = self.start_fleet()
        watch = tu.LoopWatch()
        self.addAsyncCleanup(watch.stop)
        call_rooms, replays, peers, t_join = await self.start_calls()
        alice, bob = peers

        seq_before = {}
        for nid, n in nodes.items():
            recs = self.journal(n)
            seq_before[nid] = recs[-1]["seq"] if recs else 0
        since = {p.identity: p.mark() for p in peers}

        # the deploy: one node after the other
        figs = {}
        for nid in NODES:
            figs[nid] = await self.deploy_node(nid, call_rooms, peers)
            for rp in replays.values():
                self.assertIsNone(rp.proc.poll(), "sfu-replay ended:\n" + rp.log())
            if nid != AIORTC_NODE:
                for p in peers:
                    self.assertFalse(p._closed.is_set(), "%s's WebSocket closed in node %s's "
                                     "upgrade" % (p.identity, nid))
        t_deployed = time.monotonic()
        print("deploy done in %.1f s" % (t_deployed - t_start))
        for nid, n in nodes.items():
            self.assertEqual((n.sfud.proc.pid, n.sfud.proc.poll()), (n.pid, None), nid)
        await self.hear_each_other(alice, bob)

        self.assert_fleet_as_it_was(call_rooms)

        # nobody left or joined: the journals, what the peers saw
        names = {"alice", "bob", "pub0", "listener"}
        ids = {r["room_id"] for r in call_rooms.values()}
        for nid, n in nodes.items():
            moves = [r for r in self.journal(n, seq_before[nid])
                     if r["type"] in ("participant_joined", "participant_left")
                     and r.get("room_id") in ids]
            self.assertEqual(moves, [], "node %s: sessions left or joined during the deploy" % nid)
        for p in peers:
            for kind in ("participant_left", "participant_joined"):
                seen = [m for m in p.events_of(kind, since[p.identity])
                        if (m.get("participant") or m).get("identity") in names]
                self.assertEqual(seen, [], "%s saw %s" % (p.identity, kind))

        # RTP at the aiortc receivers in each upgrade window
        worst = {}
        for nid in NODES:
            start, end = figs[nid]["window"]
            stall = watch.longest_pause(start, end)
            for p in peers:
                for t in p.pc.getTransceivers():
                    src = p.sources.get(t.mid)
                    if src is None:
                        continue
                    who = "%s <- %s" % (p.identity, p.source_identity(src) or src.sid)
                    n, lost, gap, ended = rtp_window(getattr(t.receiver, "rtp_log", []),
                                                        start, end)
                    print("  RTP %s, node %s's upgrade (%.1f s): %d packets, %s lost, "
                          "longest gap %.0f ms (ended %+.0f ms from SIGUSR2; the test's loop "
                          "paused %.0f ms)" % (who, nid, end - start, n, lost, gap * 1000,
                                               (ended - figs[nid]["t_sig"]) * 1000,
                                               stall * 1000))
                    self.assertIsNotNone(lost, "%s: nothing in node %s's upgrade" % (who, nid))
                    self.assertEqual(lost, 0, "%s: RTP lost in node %s's upgrade" % (who, nid))
                    self.assertLess(gap, tu.MAX_GAP_S + stall,
                                    "%s: media paused in node %s's upgrade" % (who, nid))
                    w = worst.setdefault(who, [0, 0.0])
                    w[0] += lost
                    w[1] = max(w[1], gap)
        self.assertEqual(len(worst), 2, worst)

        stay = await self.end_calls(replays, peers, t_join, call_rooms)
        for nid, room in call_rooms.items():
            await self.until(lambda: [r for r in self.journal(nodes[nid])
                                      if r["type"] == "room_finished"
                                      and r.get("room_id") == room["room_id"]],
                             what="room_finished on node %s" % nid)

        # figures
        print("figures:")
        for nid in NODES:
            f = figs[nid]
            print("  node %s: SIGUSR2 -> adopted %.0f ms (exec -> adopted %.0f ms), sessions "
                  "resumed %.0f ms; draining after the upgrade (node, etcd): %s"
                  % (nid, f["sig_to_adopted_ms"], f["exec_to_adopted_ms"], f["resumed_ms"],
                     f["draining_after"]))
        for who, (lost, gap) in sorted(worst.items()):
            print("  aiortc %s: %d RTP packets lost in the 3 upgrade windows, longest gap %.0f ms"
                  % (who, lost, gap * 1000))
        for nid, rp in sorted(replays.items()):
            s = rp.summary()
            err = rp.log()
            for c in s["clients"]:
                print("  sfu-replay on %s, %s: resumes %d (attempts %d, %d ms), ice_restarts %d"
                      % (nid, c["identity"], c["resumes"], c["resume_attempts"],
                         c["resume_gap_ms"], c["ice_restarts"]))
                self.assertEqual((c["resumes"], c["ice_restarts"]), (1, 0), err)
            st0 = s["streams"][0]
            print("  sfu-replay on %s, listener: %d of pub0's %d packets, %d lost"
                  % (nid, st0["received"], st0["sent"], st0["lost"]))
            self.assertEqual((st0["receivers"], st0["lost"], st0["corrupt"], st0["duplicated"]),
                             (1, 0, 0, 0), st0)

        # usage: each record once per node, each participant's time tiled
        for nid, n in nodes.items():
            who = ["alice", "bob"] if nid == AIORTC_NODE else ["listener", "pub0"]
            self.assert_usage(n, call_rooms[nid], who, stay)
        print("total %.1f s" % (time.monotonic() - t_start))

    def assert_usage(self, node, room, identities, stay):
        recs = self.journal(node)
        self.assertEqual([r["id"] for r in recs if not r["id"].startswith(node.id + "-")], [])
        tu.check_usage(self, recs, room, identities, stay, where=node.id)

    # -- deploying by moving the rooms (docs/fleet.md "Deploying a new version")

    async def move_off_and_restart(self, nid, peers):
        """Drain with "migrate", wait for the node to be empty, restart it
        from the new binaries, check it is back. Returns how long it took."""
        node = self.nodes[nid]
        t0 = time.monotonic()
        mine = [r for r in node.request("GET", "/v1/rooms")[1]["rooms"]
                if r["state"] == "running"]
        st, j = node.request("POST", "/v1/node/drain", {"draining": True, "migrate": True})
        self.assertEqual((st, j.get("draining"), j.get("rooms_moving")),
                         (202, True, len(mine)), j)
        await self.until(lambda: not [r for r in node.request("GET", "/v1/rooms")[1]["rooms"]
                                      if r["state"] in ("starting", "running", "closing")],
                         what="node %s empty" % nid)
        t_empty = time.monotonic()
        for r in mine:  # on another node now, and every participant with it
            owner = self.room_owner_of(r["room_id"])
            self.assertNotIn(owner, (None, nid), r)
            info = self.room_info(r, self.nodes[owner])
            self.assertEqual((info["state"], info["participants"]), ("running", 2), info)
        for p in peers:
            await self.until(lambda: p.moving is None, what="%s done moving" % p.identity)
        new_exe = node.restart()
        self.assertEqual(tu.exe_inode(node.pid), new_exe)
        await self.wait_record(nid, False)
        st, ni = node.request("GET", "/v1/node")
        self.assertEqual((st, ni["draining"], ni["fleet"]["registered"]), (200, False, True), ni)
        print("  node %s: %d room(s) moved off in %.0f ms; restarted from the new binaries and "
              "registered %.0f ms later" % (nid, len(mine), (t_empty - t0) * 1000,
                                            (time.monotonic() - t_empty) * 1000))
        return [r["room_id"] for r in mine]

    def room_owner_of(self, room_id):
        got = self.keys("rooms/" + room_id).get(self.prefix + "/rooms/" + room_id)
        return got[0]["node_id"] if got else None

    async def test_rolling_deploy_by_moving_rooms(self):
        t_start = time.monotonic()
        nodes = self.start_fleet()
        call_rooms, replays, peers, t_join = await self.start_calls()
        alice, bob = peers
        ids = {r["room_id"] for r in call_rooms.values()}
        since = {p.identity: p.mark() for p in peers}
        await asyncio.sleep(1.0)  # a call before the first move's window

        moved = []  # room ids, one per move
        for nid in NODES:
            print("node %s:" % nid)
            moved += await self.move_off_and_restart(nid, peers)
            for rp in replays.values():
                self.assertIsNone(rp.proc.poll(), "sfu-replay ended:\n" + rp.log())
        await asyncio.sleep(1.2)  # the last move's window
        print("deploy done in %.1f s: %d moves" % (time.monotonic() - t_start, len(moved)))
        self.assertEqual(sorted(set(moved)), sorted(ids), "a room never moved")
        for nid, n in nodes.items():
            self.assertEqual(n.sfud.metric("sfu_fleet_leases_lost_total"), 0, nid)
        await self.hear_each_other(alice, bob)

        # the aiortc call: every move followed, nothing lost at a switch
        ra = call_rooms[AIORTC_NODE]["room_id"]
        for p, other in ((alice, "bob"), (bob, "alice")):
            self.assertEqual([m["aborted"] for m in p.moves], [None] * moved.count(ra), p.moves)
            for i, (gap, lost) in enumerate(p.move_figures(other)):
                print("  aiortc %s <- %s, move %d: longest pause %.0f ms around the switch, "
                      "%d RTP packets missing" % (p.identity, other, i + 1, gap * 1000, lost))
                self.assertEqual(lost, 0, p.identity)
                self.assertLess(gap, tu.MAX_GAP_S * 2, p.identity)  # generous: a loaded machine
            for kind in ("participant_left", "participant_joined"):
                self.assertEqual(p.events_of(kind, since[p.identity]), [], p.identity)

        self.assert_fleet_as_it_was(call_rooms)  # on the new binaries
        stay = await self.end_calls(replays, peers, t_join, call_rooms)

        for nid, rp in sorted(replays.items()):
            s, err = rp.summary(), rp.log()
            room_moves = moved.count(call_rooms[nid]["room_id"])
            for c in s["clients"]:
                self.assertEqual((c["migrations"], c["migrations_aborted"], c["close_code"]),
                                 (room_moves, 0, 0), err)
            for m in s["migration"]:
                print("  sfu-replay (room of %s), %s at %.1f s: audio gap %.0f ms, %d frames "
                      "lost" % (nid, m["receiver"], m["at_s"], m["gap_ms"], m["frames_lost"]))
                self.assertLessEqual(m["frames_lost"], 1, m)  # (as in test_migrate_replay)
            for st_ in s["streams"]:
                self.assertEqual((st_["duplicated"], st_["corrupt"]), (0, 0), st_)

        # the journals of the fleet: moves, nobody joining or leaving, usage once
        recs = []
        await self.until(lambda: len([r for n in nodes.values() for r in self.journal(n)
                                      if r["type"] == "room_finished"
                                      and r.get("room_id") in ids]) == len(ids),
                         what="room_finished for the three rooms")
        for nid, n in nodes.items():
            mine = self.journal(n)
            got = [r["id"] for r in mine]
            self.assertEqual(len(got), len(set(got)), "%s: a record twice" % nid)
            recs += mine
        self.assertEqual(sorted(r["room_id"] for r in recs if r["type"] == "room_migrated"),
                         sorted(moved))
        who = {r["room_id"]: (["alice", "bob"] if nid == AIORTC_NODE else ["listener", "pub0"])
               for nid, r in call_rooms.items()}
        for rid, identities in who.items():  # across the nodes
            tu.check_room_usage(self, recs, rid, identities, stay, "the fleet", seam_ms=20)
        print("total %.1f s" % (time.monotonic() - t_start))

    async def test_drained_node_stays_drained_across_its_upgrade(self):
        nodes = self.start_fleet(("a", "b"))
        a, b = nodes["a"], nodes["b"]
        st, j = b.request("POST", "/v1/node/drain", {"draining": True})
        self.assertEqual((st, j.get("draining")), (200, True), j)
        await self.wait_record("b", True)
        await self.upgrade(b, rooms=0, sessions=0)
        await asyncio.sleep(TTL)          # the new process has rewritten its record by now
        st, ni = b.request("GET", "/v1/node")
        self.assertEqual(st, 200, ni)
        rec = self.record("b")[0]
        st, r = a.request("POST", "/v1/rooms", {"node": "b"})
        code = r.get("error", {}).get("code") if st != 201 else "created"
        print("  after the upgrade: GET /v1/node draining %s, etcd record draining %s, "
              "a room pinned to b: %d %s" % (ni["draining"], rec["draining"], st, code))
        self.assertEqual((ni["draining"], rec["draining"], st, code), (True, True, 503, "draining"),
                         "node b was drained before its upgrade and is not after it (nothing "
                         "was asked to end the drain)")


if __name__ == "__main__":
    main(replay="required")

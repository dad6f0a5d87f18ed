#!/usr/bin/env python3
"""sfud upgrades in place (docs/internals/upgrade.md): `kill -USR2` makes it
execve() the binary now at its own path, keeping its PID, the room
processes, the listening socket and the clients' sessions.

Each test starts sfud from a copy of the built binary in a temporary
directory, so that the file can be replaced (a fresh copy renamed over the
path: a new inode) or taken away.

* an upgrade keeps the call: two aiortc peers talking and sfu-replay
  publishing a capture (with a listener of its own). After SIGUSR2 sfud has
  the same PID, /proc/PID/exe is the new file's inode, its log says it
  adopted the state, the room process is the same, every client's
  WebSocket drops and resumes (same sid, none re-joins: the room still
  counts them, no participant_left/participant_joined, neither in the
  journal nor at the others), and no RTP packet is lost by any receiver
  over a window spanning the upgrade (figures printed: longest gap between
  packets, packets lost, resume times). New requests work: the room is
  listed, a new room is forked by a new zygote while the old one keeps
  running, and neither that zygote nor its room holds any of sfud's sockets
  (the descriptors handed over the exec are close-on-exec again before
  anything is spawned). After the call: every journal record once, each
  session's usage periods tile time from join to leave, the totals cover
  the measured stay and room_finished sums them;
* two upgrades in a row, then the room ends normally when deleted (its
  process exits, 404, room_finished), the retired zygotes go, and SIGTERM
  stops sfud with status 0 leaving no process behind;
* a failed upgrade (no binary at the path) is logged and changes nothing:
  same PID and binary, the API serves, the room runs, the peers' sockets
  stay open; once the binary is back, an upgrade works;
* with rooms exec'd directly (--zygote 0, children of sfud's PID), the room
  survives the upgrade and its exit is still reaped (no zombie).

Usage: test_upgrade.py --sfud PATH --room PATH --replay PATH
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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from sfutest import (CallTest, _die_with_parent, live_procs, main, pid_alive,  # noqa: E402
                     proc_stat_fields)
from aiortc_peer import Peer, PeerClosed, rtp_window  # noqa: E402

ARGS = None
HEARD = 0.01
RESUME_FAILED = 4014
USAGE_INTERVAL_S = 1
CAPTURE = os.path.join(HERE, "..", "data", "pcaps", "gst-opus-tone-stereo.pcap")
MAX_GAP_S = 0.5          # media never stops: a longer pause between packets fails


class LoopWatch:
    """Ticks every 5 ms on the test's event loop: its longest pause in a
    window is what the test process itself added to any gap it measures
    (aiortc reads its UDP sockets on this loop)."""

    def __init__(self):
        self.ticks = []
        self.task = asyncio.ensure_future(self._run())

    async def _run(self):
        while True:
            self.ticks.append(time.monotonic())
            await asyncio.sleep(0.005)

    def longest_pause(self, start, end):
        times = [start] + [t for t in self.ticks if start <= t <= end] + [end]
        return max(b - a for a, b in zip(times, times[1:]))

    async def stop(self):
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def zygotes(sfud):
    """PIDs of sfud's zygotes: the current one and retired ones."""
    pid = sfud.proc.pid
    return {p for p, fields, cmdline in live_procs()
            if int(fields[1]) == pid and b"--zygote" in cmdline()}


def ppid(pid):
    fields = proc_stat_fields(pid)
    return int(fields[1]) if fields else None


def reaped(pid):
    """The process is gone from /proc (not left a zombie)."""
    return proc_stat_fields(pid) is None


def sockets(pid):
    """{socket inode: fd} of the process's open sockets."""
    out = {}
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:"):
            out[link] = int(fd)
    return out


def leaked(sfud_pid, pid):
    """sfud's sockets (its listener, its ends of the zygotes' and rooms'
    channels) that another process holds too, as "fd N (socket:[I], sfud's
    fd M)": what it inherited by mistake. A room or zygote shares none."""
    mine = sockets(sfud_pid)
    return ["fd %d (%s, sfud's fd %d)" % (fd, s, mine[s])
            for s, fd in sorted(sockets(pid).items()) if s in mine]


def exe_inode(pid):
    st = os.stat("/proc/%d/exe" % pid)
    return st.st_dev, st.st_ino


def check_usage(tc, recs, room, identities, stay, where="sfud"):
    """Asserts on one node's journal `recs` (GET /v1/events): every record
    once, seqs without gaps; for `room`, each of `identities` joined and
    left once and its usage periods tile from join to a final one, their
    connected time the span (and the `stay` the test measured, when given);
    room_finished's totals are the usage records' sum."""
    ids = [r["id"] for r in recs]
    tc.assertEqual(len(ids), len(set(ids)), "%s: a record twice in the journal" % where)
    seqs = [r["seq"] for r in recs]
    tc.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))), "%s: seq gaps" % where)
    check_room_usage(tc, recs, room["room_id"], identities, stay, where)


def check_room_usage(tc, recs, room_id, identities, stay, where, seam_ms=0):
    """check_usage() without the journal's own checks: `recs` may come
    from several nodes' journals (a room that moved), whose periods meet
    within `seam_ms` (each room places the cut on its own clock)."""
    mine = [r for r in recs if r.get("room_id") == room_id]
    usage = [r for r in mine if r["type"] == "usage"]
    per_sid = {}
    for r in usage:
        per_sid.setdefault((r["participant"], r["sid"]), []).append(r)
    tc.assertEqual(sorted(i for i, _ in per_sid), sorted(identities), where)
    for (ident, sid), rs in sorted(per_sid.items()):
        rs.sort(key=lambda r: r["period_start_ms"])
        for prev, cur in zip(rs, rs[1:]):
            tc.assertLessEqual(abs(cur["period_start_ms"] - prev["period_end_ms"]), seam_ms,
                               "%s on %s: usage periods do not tile (a gap or overlap)"
                               % (ident, where))
        tc.assertEqual([r["final"] for r in rs], [False] * (len(rs) - 1) + [True], ident)
        span = rs[-1]["period_end_ms"] - rs[0]["period_start_ms"]
        conn = sum(r["ms"]["connected"] for r in rs)
        print("  usage on %s, %s: %d periods, connected %d ms over a span of %d ms%s"
              % (where, ident, len(rs), conn, span,
                 ", stay measured %.0f ms" % (stay[ident] * 1000) if ident in stay else ""))
        tc.assertAlmostEqual(conn, span, delta=2000 * USAGE_INTERVAL_S)
        if ident in stay:
            tc.assertAlmostEqual(conn, stay[ident] * 1000, delta=2000 * USAGE_INTERVAL_S)
        for kind in ("participant_joined", "participant_left"):
            tc.assertEqual(len([r for r in mine if r["type"] == kind
                                and r["participant"] == ident]), 1, (ident, kind))
    fin = [r for r in mine if r["type"] == "room_finished"]
    tc.assertEqual(len(fin), 1, fin)
    tc.assertEqual(fin[0]["participants"], len(identities), fin[0])
    tc.assertEqual(fin[0]["ms"]["connected"], sum(r["ms"]["connected"] for r in usage),
                   "room_finished's totals differ from the usage records")


async def only_room(tc, sfud, rpid):
    """The room process is the one sfud has. A retired zygote that is closing
    may briefly have a child of its own (under ASan, the leak checker's
    tracer at its exit): wait for it to be gone."""
    await tc.until(lambda: sfud.children() == [rpid], timeout=10,
                   what="the room's process, and only it (%s)" % sfud.children())


class UpgradeBase(CallTest):
    PEER = Peer
    POLL_S = 0.05
    UNTIL_S = 20.0

    def setUp(self):
        self.peers = []
        self.procs = []
        self.tmp = tempfile.mkdtemp(prefix="sfu-upgrade-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.bin = os.path.join(self.tmp, "bin", "sfud")
        os.mkdir(os.path.dirname(self.bin))
        shutil.copy2(ARGS.sfud, self.bin)

    def start(self, *extra):
        """sfud from the copy; checked for sanitizer reports after it stops."""
        self.addCleanup(self._after_sfud)
        self.start_sfud(self.bin, os.path.abspath(ARGS.room),
                        "--usage-interval-s", str(USAGE_INTERVAL_S), *extra)
        self.addCleanup(self._end_procs)
        return self.sfud

    def _after_sfud(self):
        self.sfud.proc.stderr.close()
        self.sfud.assert_clean_log()

    def _end_procs(self):
        for proc in self.procs:            # only what this test started
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)

    async def timeout_details(self):
        return "\nsfud's log (end):\n" + "".join(self.sfud.log[-40:])

    # -- the binary and the upgrade -----------------------------------------

    def replace_binary(self):
        """A fresh copy renamed over the path: a new inode. Returns it."""
        fresh = self.bin + ".new"
        shutil.copy2(ARGS.sfud, fresh)
        os.rename(fresh, self.bin)
        return os.stat(self.bin).st_dev, os.stat(self.bin).st_ino

    def log_since(self, mark, pattern):
        return [l for l in self.sfud.log[mark:] if re.search(pattern, l)]

    async def upgrade(self, rooms=None, sessions=None):
        """Replaces the binary, sends SIGUSR2 and waits for sfud's "adopted"
        line. Returns (time of the signal, the line)."""
        pid = self.sfud.proc.pid
        old = exe_inode(pid)
        new = self.replace_binary()
        self.assertNotEqual(new, old)
        mark = len(self.sfud.log)
        t_sig = time.monotonic()
        os.kill(pid, signal.SIGUSR2)
        lines = await self.until(lambda: self.log_since(mark, r"adopted"), timeout=20,
                                 what="sfud's log saying the upgrade adopted its state")
        t_adopted = time.monotonic()
        self.assertIsNone(self.sfud.proc.poll(), "sfud exited:\n" + "".join(self.sfud.log[mark:]))
        self.assertEqual(exe_inode(pid), new, "/proc/%d/exe is not the new binary" % pid)
        m = re.search(r"adopted (\d+) rooms?, (\d+) sessions?", lines[0])
        if m and rooms is not None:
            self.assertEqual(int(m.group(1)), rooms, lines[0])
        if m and sessions is not None:
            self.assertEqual(int(m.group(2)), sessions, lines[0])
        print("  upgrade: SIGUSR2 -> %r after %.0f ms" % (lines[0].strip()[-80:],
                                                          (t_adopted - t_sig) * 1000))
        return t_sig, lines[0]

    async def resume_after_drop(self, peer, t_sig, timeout=15.0):
        """Waits for the peer's WebSocket to drop, then resumes its session
        as a client does (at once, again on a connection failure). Returns
        (drop, resumed) in s after t_sig."""
        try:
            await peer.wait_closed(timeout)
        except asyncio.TimeoutError:
            self.fail("%s's WebSocket did not drop with the upgrade" % peer.identity)
        t_drop = time.monotonic()
        sid, end, last = peer.sid, time.monotonic() + timeout, None
        while True:
            try:
                resumed = await peer.resume(timeout=5)
                break
            except PeerClosed as e:
                if e.code == RESUME_FAILED:
                    self.fail("%s's resume refused after the upgrade: %s%s"
                              % (peer.identity, e, await self.timeout_details()))
                last = e
            except Exception as e:           # connection refused, reset, timeout
                last = e
            if time.monotonic() > end:
                self.fail("%s did not resume: %r%s" % (peer.identity, last,
                                                       await self.timeout_details()))
            await asyncio.sleep(0.1)
        self.assertEqual(resumed["participant"]["sid"], sid, resumed)
        return t_drop - t_sig, time.monotonic() - t_sig

    async def resume_all(self, peers, t_sig):
        got = await asyncio.gather(*(self.resume_after_drop(p, t_sig) for p in peers))
        for p, (drop, back) in zip(peers, got):
            print("  %s: WebSocket dropped %.0f ms after SIGUSR2, resumed after %.0f ms"
                  % (p.identity, drop * 1000, back * 1000))
        return got

    # -- the API ------------------------------------------------------------

    def room_info(self, room):
        st, j = self.sfud.request("GET", "/v1/rooms/%s" % room["room_id"])
        return j if st == 200 else None

    def journal(self, after=0):
        out = []
        while True:
            st, j = self.sfud.request("GET", "/v1/events?after=%d&limit=1000" % after)
            self.assertEqual(st, 200, j)
            if not j["records"]:
                return out
            out += j["records"]
            after = j["next_after"]

    def last_seq(self):
        recs = self.journal()
        return recs[-1]["seq"] if recs else 0

    def finished(self, room):
        return [r for r in self.journal() if r["type"] == "room_finished"
                and r.get("room_id") == room["room_id"]]

    async def call(self, name, who=(("alice", 440), ("bob", 660))):
        room = self.new_room(name)
        peers = [self.peer(room, ident, freq=f) for ident, f in who]
        for p in peers:
            await p.join()
        if len(peers) == 2:
            a, b = peers
            await self.until(lambda: a.tone_power(b.identity, b.freq, 1.0) > HEARD and
                             b.tone_power(a.identity, a.freq, 1.0) > HEARD, what="call up")
        await self.until(lambda: (self.room_info(room) or {}).get("participants") == len(peers),
                         what="the room counting its participants")
        return room, peers

    async def hear_each_other(self, a, b):
        """Both hear the other's tone now (after the last second)."""
        await asyncio.sleep(1.0)
        await self.until(lambda: a.tone_power(b.identity, b.freq, 1.0) > HEARD and
                         b.tone_power(a.identity, a.freq, 1.0) > HEARD,
                         what="the call goes on")

    async def end_room(self, room, pid):
        """DELETE: the process exits and is reaped, the room is gone (404),
        room_finished journaled."""
        st, j = self.sfud.request("DELETE", "/v1/rooms/%s" % room["room_id"])
        self.assertIn(st, (200, 202), j)
        await self.until(lambda: not pid_alive(pid), what="room process %d exits" % pid)
        await self.until(lambda: reaped(pid), timeout=5,
                         what="room process %d reaped (it is a zombie: %s)"
                         % (pid, proc_stat_fields(pid)))
        await self.until(lambda: self.sfud.request(
            "GET", "/v1/rooms/%s" % room["room_id"])[0] == 404, what="the room gone (404)")
        await self.until(lambda: self.finished(room), what="room_finished journaled")


class UpgradeCallTest(UpgradeBase):
    async def test_upgrade_keeps_the_call(self):
        self.start()
        sfud = self.sfud
        pid = sfud.proc.pid
        watch = LoopWatch()
        self.addAsyncCleanup(watch.stop)
        t_call = time.monotonic()
        room, (a, b) = await self.call("upgrade-call")
        t_joined = {"alice": t_call}                  # (bob joined just after)
        # sfu-replay: pub0 publishes a looped capture, its "listener" hears it
        summary = os.path.join(self.tmp, "replay.json")
        replay_err = open(os.path.join(self.tmp, "replay.err"), "w+")
        self.addCleanup(replay_err.close)
        proc = subprocess.Popen(
            [os.path.abspath(ARGS.replay), "--server", "http://127.0.0.1:%d" % sfud.port,
             "--api-key", sfud.api_key, "--room", room["name"], "-n", "2", "--loop", "0",
             "--duration", "12", "--json", summary, CAPTURE],
            stdout=subprocess.DEVNULL, stderr=replay_err, preexec_fn=_die_with_parent)
        self.procs.append(proc)

        def replay_log():
            replay_err.seek(0)
            return replay_err.read()

        def heard_pub0(p):
            return sum(s.frames for s in p.find_sources("pub0")) > 50
        await self.until(lambda: (heard_pub0(a) and heard_pub0(b)) or proc.poll() is not None,
                         what="the peers get sfu-replay's capture")
        self.assertIsNone(proc.poll(), "sfu-replay ended early:\n" + replay_log())
        info = self.room_info(room)
        self.assertEqual(info["participants"], 4, info)
        rooms_before = sfud.children()
        self.assertEqual(rooms_before, [info["pid"]])
        zyg_before = zygotes(sfud)
        self.assertEqual(len(zyg_before), 1, zyg_before)
        seq_before = self.last_seq()
        since = {p.identity: p.mark() for p in (a, b)}

        t_sig, _ = await self.upgrade(rooms=1, sessions=4)
        await self.resume_all([a, b], t_sig)
        await self.until(lambda: sfud.metric("sfu_ws_resumes_total") == 4,
                         what="sfu-replay's two clients resume too")
        t_all = time.monotonic()
        print("  all four sessions resumed %.0f ms after SIGUSR2" % ((t_all - t_sig) * 1000))
        await asyncio.sleep(2.0)                  # media after the resumes
        t_end = time.monotonic()
        self.assertIsNone(proc.poll(), "sfu-replay stopped sending before the window "
                          "ended:\n" + replay_log())

        # the same process, rooms and participants
        self.assertEqual(sfud.proc.pid, pid)
        self.assertIsNone(sfud.proc.poll())
        self.assertEqual(sfud.children(), rooms_before, "room processes changed")
        info = self.room_info(room)
        self.assertEqual((info["state"], info["pid"], info["participants"]),
                         ("running", rooms_before[0], 4), info)
        names = {"alice", "bob", "pub0", "listener"}
        moves = [r for r in self.journal(seq_before)
                 if r["type"] in ("participant_joined", "participant_left")]
        self.assertEqual(moves, [], "the upgrade made sessions leave or join")
        for p in (a, b):
            for kind in ("participant_left", "participant_joined"):
                seen = [m for m in p.events_of(kind, since[p.identity])
                        if (m.get("participant") or m).get("identity") in names]
                self.assertEqual(seen, [], "%s saw %s" % (p.identity, kind))

        # RTP across the upgrade, at each aiortc receiver; a pause of the
        # test's own event loop delays every arrival it records alike
        start = t_sig - 1.0
        stall = watch.longest_pause(start, t_end)
        print("  the test's event loop paused at most %.0f ms in the window" % (stall * 1000))
        worst_lost, worst_gap = 0, 0.0
        for p in (a, b):
            for t in p.pc.getTransceivers():
                src = p.sources.get(t.mid)
                if src is None:
                    continue
                who = p.source_identity(src) or src.sid
                arrivals = getattr(t.receiver, "rtp_log", [])
                # (from its first packet, if the stream began in the window)
                first = arrivals[0][0] if arrivals else start
                n, lost, gap, ended = rtp_window(arrivals, max(start, first), t_end)
                print("  RTP %s <- %s over %.1f s around the upgrade: %d packets, %s lost, "
                      "longest gap %.0f ms (ended %+.0f ms from SIGUSR2)"
                      % (p.identity, who, t_end - start, n, lost, gap * 1000,
                         (ended - t_sig) * 1000))
                self.assertIsNotNone(lost, "%s got nothing from %s" % (p.identity, who))
                worst_lost = max(worst_lost, lost)
                worst_gap = max(worst_gap, gap)
        self.assertEqual(worst_lost, 0, "RTP packets lost across the upgrade")
        self.assertLess(worst_gap, MAX_GAP_S + stall, "media paused across the upgrade")

        # new requests: listed, and a new room forked by a new zygote
        st, j = sfud.request("GET", "/v1/rooms")
        self.assertEqual(st, 200, j)
        self.assertIn(room["room_id"], [r["room_id"] for r in j["rooms"]])
        zyg_new = await self.until(lambda: zygotes(sfud) - zyg_before,
                                   what="a new zygote from the new binary")
        self.assertEqual(len(zyg_new), 1, zyg_new)
        self.assertTrue(zyg_before <= zygotes(sfud), "the retired zygote of a live room went")
        room2 = self.new_room("after-upgrade")
        self.assertIn(ppid(room2["pid"]), zyg_new,
                      "the new room %d is not forked by the new zygote %s (its parent: %s)"
                      % (room2["pid"], zyg_new, ppid(room2["pid"])))
        await self.until(lambda: (self.room_info(room2) or {}).get("state") == "running",
                         what="the new room running")
        # (asserted at the end, after the rest)
        leaks = {what: leaked(pid, p) for what, p in (
            ("the new zygote", min(zyg_new)), ("the new room", room2["pid"]),
            ("the old room", rooms_before[0]))}
        carol = self.peer(room2, "carol", freq=None)
        await carol.join(negotiate=False)
        await self.until(lambda: self.room_info(room2)["participants"] == 1,
                         what="carol counted in the new room")
        await carol.leave()
        self.assertEqual(self.room_info(room)["state"], "running")
        self.assertEqual(sfud.children(), sorted(rooms_before + [room2["pid"]]))
        print("  zygote %s retired (its room runs on), new rooms from zygote %s"
              % (sorted(zyg_before), sorted(zyg_new)))

        # the end of the call
        end = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < end:
            await asyncio.sleep(0.1)
        err = replay_log()
        self.assertEqual(proc.returncode, 0, "sfu-replay: exit %s\n%s" % (proc.returncode, err))
        with open(summary) as f:
            s = json.load(f)
        for c in s["clients"]:
            print("  sfu-replay %s: resumes %d (attempts %d, %d ms), ice_restarts %d"
                  % (c["identity"], c["resumes"], c["resume_attempts"], c["resume_gap_ms"],
                     c["ice_restarts"]))
            self.assertEqual(c["resumes"], 1, err)
            self.assertEqual(c["ice_restarts"], 0, err)
        st0 = s["streams"][0]
        print("  sfu-replay's listener: %d of pub0's %d packets, %d lost"
              % (st0["received"], st0["sent"], st0["lost"]))
        self.assertEqual((st0["receivers"], st0["lost"], st0["corrupt"], st0["duplicated"]),
                         (1, 0, 0, 0), st0)
        # sfu-replay's leaves renegotiated: answered before alice and bob go
        await self.until(lambda: all(len(p.events_of("offer")) == p.server_offers_answered
                                     for p in (a, b)), what="server offers answered")
        self.assert_peers_clean()
        stay = {}
        await a.leave()
        stay["alice"] = time.monotonic() - t_joined["alice"]
        await b.leave()
        for r in (room, room2):
            st, j = sfud.request("DELETE", "/v1/rooms/%s" % r["room_id"])
            self.assertIn(st, (200, 202), j)
        await self.until(lambda: self.finished(room) and self.finished(room2),
                         what="both rooms finished")
        self.assert_usage(room, stay)
        self.assertEqual({k: v for k, v in leaks.items() if v}, {},
                         "processes holding sfud's sockets after the upgrade")

    def assert_usage(self, room, stay):
        check_usage(self, self.journal(), room, ["alice", "bob", "listener", "pub0"], stay)


class UpgradeTwiceTest(UpgradeBase):
    async def test_upgrade_twice_and_rooms_end_normally_after(self):
        self.start()
        sfud = self.sfud
        room, (a, b) = await self.call("twice")
        rpid = sfud.children()[0]
        seen_zygotes = set(zygotes(sfud))
        for i in (1, 2):
            t_sig, _ = await self.upgrade(rooms=1, sessions=2)
            await self.resume_all([a, b], t_sig)
            seen_zygotes |= zygotes(sfud)
            await only_room(self, sfud, rpid)
            self.assertLess(await a.ping(), 5.0)
            await self.hear_each_other(a, b)
        self.assertEqual(self.room_info(room)["participants"], 2)
        print("  zygotes seen: %s" % sorted(seen_zygotes))
        await self.end_room(room, rpid)
        for p in (a, b):
            await p.wait_closed(10)
        # the retired zygotes are closed once they have no room left
        try:
            await self.until(lambda: len(zygotes(sfud)) == 1, timeout=10,
                             what="only the current zygote left")
        except AssertionError:
            now = sorted(zygotes(sfud))
            self.fail("zygotes %s still running (retired ones told to close: %s); sockets each "
                      "holds besides its channel (fd 3): %s; of them, sfud's own: %s" % (
                          now, [l.strip() for l in sfud.log if "retired zygote" in l],
                          {z: sorted(fd for fd in sockets(z).values() if fd != 3) for z in now},
                          {z: leaked(sfud.proc.pid, z) for z in now}))
        seen_zygotes |= zygotes(sfud)
        rc = sfud.stop()
        self.assertEqual(rc, 0, "sfud's exit status after SIGTERM\n" + "".join(sfud.log[-30:]))
        left = [p for p in seen_zygotes | {rpid} if pid_alive(p)]
        self.assertEqual(left, [], "processes left after sfud stopped")


class FailedUpgradeTest(UpgradeBase):
    async def test_failed_upgrade_keeps_running(self):
        self.start()
        sfud = self.sfud
        pid = sfud.proc.pid
        room, (a, b) = await self.call("failed")
        rpid = sfud.children()[0]
        old = exe_inode(pid)
        away = self.bin + ".away"
        os.rename(self.bin, away)
        mark = len(sfud.log)
        os.kill(pid, signal.SIGUSR2)
        lines = await self.until(
            lambda: self.log_since(mark, r"(?i)level=(error|warn)\S*.*upgrad|upgrad.*(fail|error"
                                         r"|cannot|could not|refus|no such file|abort)"),
            what="sfud's log saying the upgrade failed")
        print("  logged: %s" % lines[0].strip())
        await asyncio.sleep(0.5)         # (anything it would do next, done)
        self.assertIsNone(sfud.proc.poll(), "sfud exited")
        self.assertEqual(sfud.proc.pid, pid)
        self.assertEqual(exe_inode(pid), old)
        self.assertEqual(self.log_since(mark, r"adopted"), [])
        st, j = sfud.request("GET", "/v1/node")
        self.assertEqual(st, 200, j)
        info = self.room_info(room)
        self.assertEqual((info["state"], info["pid"], info["participants"]),
                         ("running", rpid, 2), info)
        await only_room(self, sfud, rpid)
        for p in (a, b):
            self.assertFalse(p._closed.is_set(), "%s's WebSocket closed" % p.identity)
            self.assertLess(await p.ping(), 5.0)
        self.assertEqual(sfud.metric("sfu_ws_detached_total"), 0)
        await self.hear_each_other(a, b)
        # the binary back: now it upgrades
        os.rename(away, self.bin)
        t_sig, _ = await self.upgrade(rooms=1, sessions=2)
        await self.resume_all([a, b], t_sig)
        await only_room(self, sfud, rpid)
        await self.hear_each_other(a, b)
        self.assert_peers_clean()


class ExecRoomsUpgradeTest(UpgradeBase):
    async def test_upgrade_with_exec_rooms(self):
        self.start("--zygote", "0")
        sfud = self.sfud
        room, (a,) = await self.call("exec", who=(("alice", 440),))
        self.assertEqual(zygotes(sfud), set())
        rpid = sfud.children()[0]
        self.assertEqual(ppid(rpid), sfud.proc.pid)
        t_sig, _ = await self.upgrade(rooms=1, sessions=1)
        await self.resume_all([a], t_sig)
        self.assertTrue(pid_alive(rpid))
        await only_room(self, sfud, rpid)
        info = self.room_info(room)
        self.assertEqual((info["state"], info["pid"], info["participants"]),
                         ("running", rpid, 1), info)
        self.assertLess(await a.ping(), 5.0)
        # a room started by the new sfud, and the adopted one: both end and
        # are reaped
        room2 = self.new_room("exec-after")
        await self.until(lambda: (self.room_info(room2) or {}).get("state") == "running",
                         what="the new room running")
        self.assertEqual(ppid(room2["pid"]), sfud.proc.pid)
        self.assertEqual(leaked(sfud.proc.pid, room2["pid"]), [],
                         "a room exec'd after the upgrade holds sfud's sockets")
        await self.end_room(room, rpid)
        await a.wait_closed(10)
        await self.end_room(room2, room2["pid"])
        self.assertEqual(sfud.children(), [])
        st, j = sfud.request("GET", "/v1/node")
        self.assertEqual(st, 200, j)
        self.assertEqual(j["load"]["rooms"], 0, j)


if __name__ == "__main__":
    main(replay="required")

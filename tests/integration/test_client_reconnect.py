#!/usr/bin/env python3
"""The C client (tools/client/peer.c, run as sfu-replay) reconnects on its
own, in a call with an aiortc listener that hears its tone.

* a dropped signaling socket resumes: sfu-replay's TCP connection to sfud
  is killed mid-call without a close frame (`ss -K`, as a dead network
  would end it); sfu-replay resumes the session by itself (its summary
  counts one resume), sfud counts one resume (sfu_ws_resumes_total), the
  listener sees no participant_left/participant_joined for it and hears
  it throughout (the longest audio gap is printed); a participant who
  joins after the resume reaches it through the resumed socket (its
  server offer is answered: sfu-replay gets that track);
* ICE restarts on request (--restart-ice-at): a re-offer with new ICE
  credentials and the same m-lines, answered; the tone goes on (the gap
  is printed);
* ICE restarts when the client moves: sfu-replay runs in a network
  namespace (netns.py) and reaches sfud, which listens and has its media
  address on the root end of the veth pair, through it; mid-call the
  namespace's address changes (a new one added, the old one deleted), so
  the old path -- media and signaling -- dies. sfu-replay gathers on both
  addresses (--address OLD,NEW: the new one does not exist at first and
  yields no candidate until it does); it notices (its sends fail), restarts
  ICE on the new address -- taking its session over on a fresh signaling
  socket first, since the old one died with the address -- and the aiortc
  listener hears the tone again. The time from the address change to
  audio back is printed, and must be under a generous bound. A second
  client of the same sfu-replay, a listener in the namespace, notices by
  what it stops receiving and comes back too (its loss is printed);
* giving up, against a stand-in signaling server (sfu-replay --token
  --ws-url needs no API): a resume refused with 4014 ends the client with
  4014 after one attempt; a grace that runs out while every attempt is
  dropped ends it with the drop's 1006, the attempts backing off (at once,
  then 250 ms doubling to 4 s, each between half and all of it), none
  after the grace.

Skips the namespace test without root, `ip netns` or iptables.

Usage: test_client_reconnect.py --sfud PATH --room PATH --replay PATH
"""
import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from sfutest import Sfud  # noqa: E402
from aiortc_peer import Peer  # noqa: E402
from netns import NetNS, Unavailable  # noqa: E402

ARGS = None
HEARD = 0.01            # tone power of a clearly audible tone
TONE = 440              # sfu-replay --tone: its participant is "tone0"
BACK_WITHIN_S = 15.0    # audio back after the address change (generous)
OUTAGE_S = 0.15         # a pause between decoded frames this long is an outage


def track_arrivals(peer, identity, times):
    """Appends to `times` the arrival time of every non-silent frame `peer`
    decodes from `identity`, from now on (each of its sources)."""
    for src in peer.find_sources(identity):
        if getattr(src, "arrivals_hooked", False):
            continue
        src.arrivals_hooked = True
        orig = src.add_samples

        def add_samples(mono, t=None, src=src, orig=orig):
            nonsilent = orig(mono, t)
            if nonsilent:
                times.append(src.last_audio_t)
            return nonsilent
        src.add_samples = add_samples


def longest_gap(times, start, end):
    """The longest time without a frame between `start` and `end`, and the
    arrival that ended it."""
    pts = [start] + [t for t in times if start < t < end] + [end]
    gap, ended = 0.0, None
    for a, b in zip(pts, pts[1:]):
        if b - a > gap:
            gap, ended = b - a, b
    return gap, ended


class Base(unittest.IsolatedAsyncioTestCase):
    def setUp(self):
        self.peers = []
        self.procs = []
        self.tmp = tempfile.mkdtemp(prefix="sfu-cres-")
        self.ns = None

    async def asyncTearDown(self):
        for p in self.peers:
            await p.close()

    def tearDown(self):
        for proc in self.procs:          # only what this test started
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        if getattr(self, "replay_err", None) is not None:
            self.replay_err.close()
        if getattr(self, "sfud", None) is not None:
            self.sfud.stop()
            if os.environ.get("SFU_TEST_LOG"):
                sys.stderr.write("".join(self.sfud.log[-80:]))
            self.sfud.assert_clean_log()
        if self.ns is not None:
            self.ns.close()
            self.assertFalse(self.ns.exists(), "namespace left behind")

    def start_sfud(self, *extra, listen_host=None):
        self.sfud = Sfud(ARGS.sfud, ARGS.room, *extra, listen_host=listen_host)

    def room(self, name):
        st, room = self.sfud.request("POST", "/v1/rooms", {"name": name})
        self.assertEqual(st, 201, room)
        return room

    async def listener(self, room, host=None):
        st, j = self.sfud.request("POST", "/v1/rooms/%s/tokens" % room["room_id"],
                                  {"identity": "ear"})
        self.assertEqual(st, 201, j)
        p = Peer(room["ws_url"], room["room_id"], j["token"], "ear", freq=None,
                 host_addresses=[host] if host else ("127.0.0.1",))
        self.peers.append(p)
        await p.join()
        return p

    def replay(self, room, *args, prefix=(), n=1):
        """Starts sfu-replay publishing a tone into `room` (by name: the live
        room is joined), with n - 1 listeners of its own; its summary goes
        to self.summary_path."""
        self.summary_path = os.path.join(self.tmp, "summary.json")
        self.replay_err = open(os.path.join(self.tmp, "replay.err"), "w+")
        cmd = [*prefix, os.path.abspath(ARGS.replay), "--server",
               "http://%s:%d" % (self.sfud.host, self.sfud.port), "--api-key",
               self.sfud.api_key, "--room", room["name"], "-n", str(n), "--tone", str(TONE),
               "--json", self.summary_path, *args]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.replay_err)
        self.procs.append(proc)
        return proc

    async def finish_replay(self, proc, timeout=60):
        end = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < end:
            await asyncio.sleep(0.2)
        self.replay_err.seek(0)
        err = self.replay_err.read()
        self.assertIsNotNone(proc.poll(), "sfu-replay did not end\n" + err)
        self.assertEqual(proc.returncode, 0, "sfu-replay: exit %d\n%s" % (proc.returncode, err))
        with open(self.summary_path) as f:
            s = json.load(f)
        return s, next(c for c in s["clients"] if c["identity"] == "tone0"), err

    async def until(self, pred, timeout=20.0, what="condition"):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred():
                return
            await asyncio.sleep(0.05)
        self.fail("timed out waiting for " + what)

    async def tone_heard(self, ear, proc):
        await self.until(lambda: ear.tone_power("tone0", TONE, 1.0) > HEARD or
                         proc.poll() is not None, what="the listener hears sfu-replay")
        self.assertIsNone(proc.poll(), "sfu-replay ended early")

    def assert_stayed(self, ear, since):
        for kind in ("participant_left", "participant_joined"):
            self.assertEqual([m for m in ear.events_of(kind, since)
                              if (m.get("participant") or m).get("identity") == "tone0"], [],
                             kind)


class ResumeTest(Base):
    async def test_killed_signaling_socket_resumes_by_itself(self):
        self.start_sfud()
        room = self.room("cres-resume")
        ear = await self.listener(room)
        # (ended by SIGINT once judged; the duration only bounds a lost test)
        proc = self.replay(room, "--duration", "60")
        await self.tone_heard(ear, proc)
        times, since = [], ear.mark()
        track_arrivals(ear, "tone0", times)
        await asyncio.sleep(1.0)
        # sfu-replay's one open connection to sfud: its signaling socket
        out = subprocess.run(["ss", "-tnp"], capture_output=True, text=True, timeout=20).stdout
        socks = [l.split() for l in out.splitlines()
                 if "pid=%d," % proc.pid in l and l.split()[4:5] ==
                 ["127.0.0.1:%d" % self.sfud.port] and l.startswith("ESTAB")]
        self.assertEqual(len(socks), 1, out)
        local, remote = socks[0][3], socks[0][4]
        t_kill = time.monotonic()
        r = subprocess.run(["ss", "-K", "-tn", "dst", remote, "src", local],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        await self.until(lambda: self.sfud.metric("sfu_ws_resumes_total") == 1,
                         what="sfu-replay resumes its session")
        t_resumed = time.monotonic()
        # someone new after the resume: its server offer reaches sfu-replay
        # on the resumed socket and is answered (a subscription)
        st, j = self.sfud.request("POST", "/v1/rooms/%s/tokens" % room["room_id"],
                                  {"identity": "mouth"})
        mouth = Peer(room["ws_url"], room["room_id"], j["token"], "mouth", freq=660)
        self.peers.append(mouth)
        await mouth.join()
        await asyncio.sleep(3.0)
        t_end = time.monotonic()
        gap, _ = longest_gap(times, t_kill - 0.5, t_end)
        print("listener's longest gap in sfu-replay's audio across the kill and the resume: "
              "%.3f s; resumed %.3f s after the kill (sfud's metric)" % (gap, t_resumed - t_kill))
        self.assert_stayed(ear, since)
        self.assertLess(gap, 1.0, "the tone stopped")
        proc.send_signal(signal.SIGINT)   # enough: sfu-replay summarises and leaves
        s, tone0, err = await self.finish_replay(proc)
        print("sfu-replay: resumes %d (attempts %d, last %d ms), ice_restarts %d" %
              (tone0["resumes"], tone0["resume_attempts"], tone0["resume_gap_ms"],
               tone0["ice_restarts"]))
        self.assertEqual(tone0["resumes"], 1, err)
        self.assertGreaterEqual(tone0["resume_attempts"], 1)
        self.assertEqual(tone0["ice_restarts"], 0)
        self.assertEqual(tone0["subscriptions"], 1, "mouth's track after the resume")
        self.assertGreater(tone0["unknown_received"], 0, "mouth's audio after the resume")
        self.assertIn("signaling resumed", err)
        self.assertEqual(self.sfud.metric("sfu_ws_resumes_total"), 1)
        self.assertEqual(self.sfud.metric("sfu_ws_resume_failures_total"), 0)


class IceRestartTest(Base):
    async def test_ice_restart_on_request_keeps_the_call(self):
        self.start_sfud()
        room = self.room("cres-ice")
        ear = await self.listener(room)
        # sending until the 6 s window below is over (SIGINT), however long
        # a loaded machine took to start it: the duration only bounds a lost test
        proc = self.replay(room, "--duration", "60", "--restart-ice-at", "3")
        await self.tone_heard(ear, proc)
        times, since = [], ear.mark()
        track_arrivals(ear, "tone0", times)
        t0 = time.monotonic()
        await asyncio.sleep(6.0)         # the restart is 3 s into the sending
        gap, _ = longest_gap(times, t0, time.monotonic())
        self.assert_stayed(ear, since)
        proc.send_signal(signal.SIGINT)
        s, tone0, err = await self.finish_replay(proc)
        print("ICE restart on request: sfu-replay connected again in %d ms; the listener's "
              "longest gap %.3f s" % (tone0["ice_gap_ms"], gap))
        self.assertEqual(tone0["ice_restarts"], 1, err)
        self.assertEqual(tone0["resumes"], 0)
        self.assertLess(gap, 1.0, "the tone stopped")


class FakeServer:
    """A WebSocket endpoint that plays sfud's signaling just enough: it
    welcomes a `join` with a resume token and a grace, drops that socket
    after `drop_after` s, and answers each `resume` as `on_resume` says:
    "refuse" (close 4014) or "drop" (abort the TCP connection again)."""

    def __init__(self, on_resume, grace_s, drop_after=1.0):
        self.on_resume, self.grace_s, self.drop_after = on_resume, grace_s, drop_after
        self.resumes = []              # (monotonic time, token) of each `resume`
        self.dropped_at = None

    async def start(self):
        import websockets
        self.server = await websockets.serve(self.handler, "127.0.0.1", 0)
        self.url = "ws://127.0.0.1:%d/v1/rtc" % self.server.sockets[0].getsockname()[1]

    async def handler(self, ws, path=None):
        msg = json.loads(await ws.recv())
        if msg.get("type") == "join":
            await ws.send(json.dumps({
                "type": "welcome", "id": msg.get("id"), "v": 1,
                "participant": {"sid": "PA_fake", "identity": "tone0"},
                "room": {"room_id": "rm_fake", "name": "fake"}, "participants": [],
                "resume_token": "t0", "resume_grace_s": self.grace_s}))
            await asyncio.sleep(self.drop_after)   # (its offer goes unanswered)
            self.dropped_at = time.monotonic()
            ws.transport.abort()
        elif msg.get("type") == "resume":
            self.resumes.append((time.monotonic(), msg.get("resume_token"), msg.get("room")))
            if self.on_resume == "refuse":
                await ws.close(4014, "resume failed: no such session (join again)")
            else:
                ws.transport.abort()

    async def stop(self):
        self.server.close()
        await self.server.wait_closed()


class GiveUpTest(Base):
    """Against FakeServer (sfu-replay --token --ws-url needs no API): a
    refused resume and a grace that runs out end the client as a drop did
    before; attempts back off from 250 ms, doubling, with jitter."""

    async def run_fake(self, on_resume, grace_s):
        fake = FakeServer(on_resume, grace_s)
        await fake.start()
        summary = os.path.join(self.tmp, on_resume + ".json")
        err_path = os.path.join(self.tmp, on_resume + ".err")
        err = open(err_path, "w+")
        proc = subprocess.Popen([os.path.abspath(ARGS.replay), "--token", "x.y.z", "--ws-url",
                                 fake.url, "--room", "rm_fake", "--tone", str(TONE),
                                 "--duration", "0.1", "--json", summary],
                                stdout=subprocess.DEVNULL, stderr=err)
        self.procs.append(proc)
        # The session ends long before sfu-replay would stop waiting for its
        # media (20 s: the fake never answers the offer): once it says so,
        # SIGINT has it summarise and leave (after its 1 s drain, in which a
        # further attempt would still reach the fake).
        end = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < end:
            with open(err_path) as f:    # (err's offset is sfu-replay's too)
                ended = "session ended" in f.read()
            if ended:
                proc.send_signal(signal.SIGINT)
                break
            await asyncio.sleep(0.1)
        while proc.poll() is None and time.monotonic() < end:
            await asyncio.sleep(0.1)
        await fake.stop()
        err.seek(0)
        text = err.read()
        err.close()
        self.assertEqual(proc.returncode, 0, text)
        with open(summary) as f:
            client = json.load(f)["clients"][0]
        return fake, client, text

    async def test_refused_resume_and_expired_grace_end_the_client(self):
        (refused, c1, err1), (expired, c2, err2) = await asyncio.gather(
            self.run_fake("refuse", 20), self.run_fake("drop", 3))
        # 4014: one attempt, with the welcome's token, then the end
        self.assertEqual([(tok, room) for _, tok, room in refused.resumes],
                         [("t0", "rm_fake")], err1)
        self.assertEqual(c1["close_code"], 4014, err1)
        self.assertEqual((c1["resumes"], c1["resume_attempts"]), (0, 1))
        self.assertIn("resume refused", err1)
        # dropped again and again: attempts back off until the grace ends
        times = [t - expired.dropped_at for t, _, _ in expired.resumes]
        gaps = [b - a for a, b in zip(times, times[1:])]
        print("resume attempts after the drop (s): %s" % ", ".join("%.3f" % t for t in times))
        self.assertLess(times[0], 0.5, "the first attempt is at once")
        self.assertGreaterEqual(len(times), 3, err2)
        for i, g in enumerate(gaps):     # 250 ms doubling to 4 s, each in [half, all]
            nominal = min(250 * 2 ** i, 4000) / 1000.0
            self.assertGreaterEqual(g, nominal / 2 - 0.02, gaps)
            self.assertLessEqual(g, nominal + 0.5, gaps)
        self.assertLess(times[-1], 3 + 0.5, "no attempt after the grace")
        self.assertEqual(c2["close_code"], 1006, err2)
        self.assertEqual((c2["resumes"], c2["resume_attempts"]), (0, len(times)))
        self.assertIn("the grace is over", err2)


class MoveTest(Base):
    async def test_new_address_restarts_ice_and_audio_comes_back(self):
        try:
            self.ns = NetNS("sfucres")
        except Unavailable as e:
            self.skipTest(str(e))
        # sfud (signaling and media) on the root end of the pair; the
        # clients inside; their new address on the same /24
        self.start_sfud("--rtc-addresses", self.ns.outer, listen_host=self.ns.outer)
        old = self.ns.inner
        new = re.sub(r"\.\d+$", ".3", old)
        room = self.room("cres-move")
        ear = await self.listener(room, host=self.ns.outer)
        # tone0 publishes (the ear hears it), "listener" receives tone0
        proc = self.replay(room, "--duration", "30", "--address", "%s,%s" % (old, new),
                           prefix=self.ns.exec_prefix(), n=2)
        await self.tone_heard(ear, proc)
        times, since = [], ear.mark()
        track_arrivals(ear, "tone0", times)
        await asyncio.sleep(1.0)
        # the new address first, then the old one goes (promote_secondaries
        # keeps the new one when the primary is deleted)
        dev = self.ns.inner_dev
        self.ns.run("sysctl", "-qw", "net.ipv4.conf.%s.promote_secondaries=1" % dev)
        self.ns.run("ip", "addr", "add", new + "/24", "dev", dev)
        t_change = time.monotonic()
        self.ns.run("ip", "addr", "del", old + "/24", "dev", dev)

        def back():
            gap, ended = longest_gap(times, t_change, time.monotonic())
            return ended is not None and gap >= OUTAGE_S and \
                len([t for t in times if t > ended]) >= 25
        end = time.monotonic() + BACK_WITHIN_S
        while not back() and time.monotonic() < end and proc.poll() is None:
            await asyncio.sleep(0.05)
        gap, ended = longest_gap(times, t_change, time.monotonic())
        came_back = back()
        if came_back:
            print("address change to tone0's audio back at the aiortc listener: %.3f s "
                  "(outage %.3f s)" % (ended - t_change, gap))
        self.replay_err.seek(0)
        self.assertTrue(came_back, "no audio within %.0f s of the address change; last frame "
                        "%.3f s after it\n%s" % (BACK_WITHIN_S, (times[-1] - t_change)
                                                 if times else -1, self.replay_err.read()))
        await asyncio.sleep(3.0)          # sfu-replay's own listener is back too
        self.assert_stayed(ear, since)
        t_stop = time.monotonic()
        proc.send_signal(signal.SIGINT)   # enough: sfu-replay summarises and leaves
        s, tone0, err = await self.finish_replay(proc)
        lis = next(c for c in s["clients"] if c["identity"] == "listener")
        st = s["streams"][0]               # tone0's tone at sfu-replay's listener
        for c in (tone0, lis):
            print("%s: ice_restarts %d (%d ms from noticing to connected), resumes %d "
                  "(%d ms)" % (c["identity"], c["ice_restarts"], c["ice_gap_ms"],
                               c["resumes"], c["resume_gap_ms"]))
        outage = st["lost"] * 0.020
        print("sfu-replay's listener lost %d packets of tone0: %.2f s of audio"
              % (st["lost"], outage))
        print("sfu-replay said:\n" + "".join("  " + l + "\n" for l in err.splitlines()
                                                if "mod=peer" in l))
        for c in (tone0, lis):
            self.assertGreaterEqual(c["ice_restarts"], 1, err)
        self.assertLess(outage, t_stop - t_change - 1.0, "sfu-replay's listener never heard "
                        "tone0 again")


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--sfud", required=True)
    ap.add_argument("--room", required=True)
    ap.add_argument("--replay", required=True)
    ARGS, rest = ap.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()

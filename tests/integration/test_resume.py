#!/usr/bin/env python3
"""Clients that reconnect: a dropped WebSocket resumes its session, against
a real sfud and room with aiortc peers.

A drop is made the way a network makes it: the peer's TCP connection is
aborted with no close frame (Peer.drop_signaling()); the media path is
left alone. Then:

* the session resumes on a new socket with the token of the welcome: same
  sid, the others see no participant_left/participant_joined and hear the
  dropped peer throughout (the longest audio gap is printed), what the room
  said meanwhile (a newcomer, its server offer) arrives after `resumed`, in
  order; the journal shows one stay (one join, one leave at the end);
* a token works once; a forged one, one for another room, one after the
  grace, one after a kick are refused with 4014 -- and a session that is
  not resumed in time leaves the room as before;
* a resume while the old socket is still open (the client saw its path
  die before the server did) takes over: the old socket is closed with
  4009 and the room hears nothing.

Usage: test_resume.py --sfud PATH --room PATH
"""
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sfutest import CallTest, main  # noqa: E402
from aiortc_peer import Peer, PeerClosed  # noqa: E402

ARGS = None
HEARD = 0.01
RESUME_FAILED = 4014
REPLACED = 4009


class Base(CallTest):
    GRACE = None  # sfud's default
    PEER = Peer
    POLL_S = 0.05

    def setUp(self):
        extra = ("--resume-grace-s", str(self.GRACE)) if self.GRACE is not None else ()
        self.start_sfud(ARGS.sfud, ARGS.room, *extra)
        self.peers = []

    def journal(self, kind, identity):
        st, j = self.sfud.request("GET", "/v1/events?after=0&limit=1000")
        self.assertEqual(st, 200, j)
        return [r for r in j["records"] if r.get("type") == kind
                and r.get("participant") == identity]

    async def call(self, name):
        room = self.new_room(name)
        a, b = self.peer(room, "alice", freq=440), self.peer(room, "bob", freq=660)
        await a.join()
        await b.join()
        await self.until(lambda: a.tone_power("bob", 660, 1.0) > HEARD and
                         b.tone_power("alice", 440, 1.0) > HEARD, what="call up")
        self.assertTrue(a.resume_token and len(a.resume_token) == 32, a.welcome)
        self.assertEqual(a.welcome.get("resume_grace_s"), self.GRACE or 20)
        return room, a, b


class ResumeTest(Base):
    async def test_dropped_websocket_resumes_the_session(self):
        room, a, b = await self.call("resume")
        first_token, since = a.resume_token, b.mark()
        a.drop_signaling()
        await self.until(lambda: self.sfud.metric("sfu_ws_detached_total") == 1,
                         what="the drop seen by sfud")
        # while alice is away: carol joins (alice is owed participant_joined
        # and a server offer for carol's track) -- and bob hears alice
        carol = self.peer(room, "carol", freq=550)
        await carol.join()
        levels, t0 = [], time.monotonic()
        while time.monotonic() - t0 < 2.0:
            levels.append(b.tone_power("alice", 440, 0.2))
            await asyncio.sleep(0.1)
        t_resume = time.monotonic()
        resumed = await a.resume()
        t_resumed = time.monotonic()
        while time.monotonic() - t_resumed < 1.0:
            levels.append(b.tone_power("alice", 440, 0.2))
            await asyncio.sleep(0.1)
        self.assertEqual(resumed["participant"]["sid"], a.sid, resumed)
        self.assertEqual(resumed["participant"]["identity"], "alice")
        self.assertNotEqual(resumed["resume_token"], first_token)
        # what the room said while alice was away, after `resumed`, in order
        types = [m["type"] for m in a.events_of("participant_joined")]
        self.assertIn("participant_joined", types)
        await self.until(lambda: a.tone_power("carol", 550, 1.0) > HEARD,
                         what="alice hears carol (kept offer answered)")
        # bob saw nothing of it, and heard alice throughout
        for kind in ("participant_left", "participant_joined"):
            self.assertEqual([m for m in b.events_of(kind, since)
                              if (m.get("participant") or m).get("identity") == "alice"], [])
        longest, run = 0, 0
        for level in levels:
            run = run + 1 if level < HEARD else 0
            longest = max(longest, run)
        print("bob's longest gap in alice's audio across drop and resume: %.1f s "
              "(0.1 s samples of 0.2 s windows); resume round trip %.3f s" %
              (longest * 0.1, t_resumed - t_resume))
        self.assertLessEqual(longest, 3, levels)  # at most 0.3 s below audible
        # the token of the welcome is spent
        self.assertEqual(self.sfud.metric("sfu_ws_resumes_total"), 1)
        spy = self.peer(room, "spy", freq=None)
        with self.assertRaises(PeerClosed) as cm:
            await spy.resume(token=first_token)
        self.assertEqual(cm.exception.code, RESUME_FAILED)
        # one stay in the journal: joined once, not left
        self.assertEqual(len(self.journal("participant_joined", "alice")), 1)
        self.assertEqual(self.journal("participant_left", "alice"), [])
        await a.leave()
        await self.until(lambda: len(self.journal("participant_left", "alice")) == 1,
                         what="alice's one leave journaled")

    async def test_resume_while_the_old_socket_is_open_replaces_it(self):
        room, a, b = await self.call("replace")
        old_ws, since = a.ws, b.mark()
        resumed = await a.resume()  # the old socket is still open
        self.assertEqual(resumed["participant"]["sid"], a.sid)
        await self.until(lambda: old_ws.close_code is not None, what="old socket closed")
        self.assertEqual(old_ws.close_code, REPLACED)
        self.assertLess(await a.ping(), 5.0)
        await a.mute(True)
        await self.until(lambda: any((m.get("participant") or m).get("identity") == "alice"
                                     for m in b.events_of("participant_updated", since)),
                         what="bob sees alice's mute (the resumed socket speaks)")
        self.assertEqual(b.events_of("participant_left", since), [])


class ResumeRefusalTest(Base):
    GRACE = 2

    async def test_refusals_and_an_expired_grace(self):
        room, a, b = await self.call("refuse")
        other = self.new_room("other")
        # forged token, token of this room's session but another room named
        x = self.peer(room, "x", freq=None)
        with self.assertRaises(PeerClosed) as cm:
            await x.resume(token="0" * 32)
        self.assertEqual(cm.exception.code, RESUME_FAILED)
        x.room = other["room_id"]
        with self.assertRaises(PeerClosed) as cm:
            await x.resume(token=a.resume_token)
        self.assertEqual(cm.exception.code, RESUME_FAILED)
        # not resumed within the grace: alice leaves the room as before
        since = b.mark()
        a.drop_signaling()
        await b.wait_event("participant_left", lambda m: m.get("identity") == "alice" or
                           (m.get("participant") or {}).get("identity") == "alice",
                           timeout=10, since=since)
        with self.assertRaises(PeerClosed) as cm:
            await a.resume()
        self.assertEqual(cm.exception.code, RESUME_FAILED)
        self.assertEqual(self.sfud.metric("sfu_ws_resume_expired_total"), 1)
        self.assertGreaterEqual(self.sfud.metric("sfu_ws_resume_failures_total"), 3)

    async def test_kick_while_detached_ends_the_session(self):
        room, a, b = await self.call("kick")
        since = b.mark()
        a.drop_signaling()
        await self.until(lambda: self.sfud.metric("sfu_ws_detached_total") == 1,
                         what="the drop seen by sfud")
        st, _ = self.sfud.request("DELETE", "/v1/rooms/%s/participants/alice" % room["room_id"])
        self.assertIn(st, (200, 202, 204))
        await b.wait_event("participant_left", lambda m: m.get("identity") == "alice" or
                           (m.get("participant") or {}).get("identity") == "alice",
                           timeout=10, since=since)
        with self.assertRaises(PeerClosed) as cm:
            await a.resume()
        self.assertEqual(cm.exception.code, RESUME_FAILED)


if __name__ == "__main__":
    main()

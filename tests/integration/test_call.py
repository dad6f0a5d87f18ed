#!/usr/bin/env python3
"""Real calls through sfud + a room process, with aiortc peers on loopback.

Each aiortc peer publishes its own sine frequency; receivers decode the Opus
they get and tell by Goertzel power who they hear.

Usage: test_call.py --sfud PATH --room PATH
"""
import asyncio
import base64
import hashlib
import hmac
import json
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sfutest import Sfud, main, wait_for  # noqa: E402
from aiortc_peer import Peer, JoinRejected  # noqa: E402

ARGS = None
HEARD = 0.01      # tone power of a clearly audible 0.3-amplitude tone is ~0.045
SILENT = 0.0005   # what "not heard" means


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def make_jwt(secret, claims):
    h = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    p = b64url(json.dumps(claims).encode())
    s = b64url(hmac.new(secret.encode(), (h + "." + p).encode(), hashlib.sha256).digest())
    return h + "." + p + "." + s


class CallTest(unittest.IsolatedAsyncioTestCase):
    # sfud's settings for one test; the others run with the defaults
    SFUD_ARGS = {
        # media_timeout_s (15 s by default) shortened: the same removal, sooner
        "test_vanished_participant_times_out_for_everyone": ("--media-timeout-s", "3"),
    }

    def setUp(self):
        self.sfud = Sfud(ARGS.sfud, ARGS.room, *self.SFUD_ARGS.get(self._testMethodName, ()))
        st, self.room = self.sfud.request("POST", "/v1/rooms", {"name": "call"})
        self.assertEqual(st, 201)
        self.ws_url = self.room["ws_url"]
        self.peers = []

    async def asyncTearDown(self):
        for p in self.peers:
            await p.close()
        for p in self.peers:
            self.assertEqual(p.errors, [], p.identity)
            self.assertEqual(p.violations, [], p.identity)

    def tearDown(self):
        self.sfud.stop()
        # sfud's and the room's log, for when a test fails
        with open(os.path.join(ARGS.logdir, self._testMethodName + ".log"), "w") as f:
            f.writelines(self.sfud.log)
        self.sfud.assert_clean_log()

    def token(self, identity, room=None, **kw):
        body = {"identity": identity, **kw}
        st, j = self.sfud.request("POST", "/v1/rooms/%s/tokens" % (room or self.room["room_id"]),
                                  body)
        self.assertEqual(st, 201, j)
        return j["token"]

    def peer(self, identity, freq, **kw):
        p = Peer(self.ws_url, self.room["room_id"], self.token(identity), identity, freq=freq, **kw)
        self.peers.append(p)
        return p

    def room_stats(self):
        self.sfud.request("GET", "/v1/rooms/" + self.room["room_id"])
        return wait_for(lambda: self.sfud.request("GET", "/v1/rooms/" + self.room["room_id"])[1]
                        .get("stats"), what="room stats")

    async def until(self, pred, timeout=15.0, what="condition"):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred():
                return
            await asyncio.sleep(0.1)
        self.fail("timed out waiting for " + what)

    async def test_three_aiortc_peers_hear_each_other_and_not_themselves(self):
        freqs = {"alice": 440, "bob": 660, "carol": 880}
        peers = {n: self.peer(n, f) for n, f in freqs.items()}
        for p in peers.values():
            await p.join()
        for p in peers.values():  # ICE and DTLS really complete, both ends
            await p.wait_connected()
        for n, p in peers.items():
            others = [o for o in freqs if o != n]
            await self.until(lambda: all(p.tone_power(o, freqs[o], 1.0) > HEARD for o in others),
                             what=n + " hearing the others")
        await asyncio.sleep(5.5)  # then judge on five seconds of audio
        for n, p in peers.items():
            for o, f in freqs.items():
                if o == n:
                    continue
                self.assertGreater(p.tone_power(o, f, 5.0), HEARD, (n, o))
                # each source carries only its own tone
                for f2 in freqs.values():
                    if f2 != f:
                        self.assertLess(p.tone_power(o, f2, 5.0), SILENT, (n, o, f2))
            # nothing of one's own tone comes back, from any source
            self.assertEqual(p.sources_with_tone(freqs[n], 5.0, SILENT), [], n)
            self.assertEqual(sorted(s for s in p.received_by_source()), sorted(
                o for o in freqs if o != n))
        times = [p.join_to_first_audio_s for p in peers.values()]
        self.assertTrue(all(t is not None for t in times))
        print("\njoin-to-first-audio (s):", ", ".join("%.3f" % t for t in times))
        stats = self.room_stats()
        self.assertGreater(stats["packets"]["rtp_out"], 0)
        self.assertEqual(stats["packets"]["drop_unknown_ssrc"], 0)

    async def test_max_audio_streams_1_forwards_only_the_loudest(self):
        """A room of max_audio_streams 1: the listener hears the loud
        speaker only; once that one falls silent, the quiet one instead."""
        st, room = self.sfud.request("POST", "/v1/rooms", {"name": "loud", "max_audio_streams": 1})
        self.assertEqual(st, 201, room)
        self.assertEqual(room["max_audio_streams"], 1)

        def peer(identity, freq=None):
            p = Peer(room["ws_url"], room["room_id"], self.token(identity, room["room_id"]),
                     identity, freq=freq)
            self.peers.append(p)
            return p
        alice, bob, carol = peer("alice", 440), peer("bob", 660), peer("carol")
        bob.track.amplitude = 0.02          # -37 dBov: speaking, but quieter than alice
        for p in (alice, bob, carol):
            await p.join()
        for p in (alice, bob, carol):
            await p.wait_connected()
        await self.until(lambda: carol.tone_power("alice", 440, 1.0) > HEARD,
                         what="carol hearing alice")
        await asyncio.sleep(2.0)
        self.assertGreater(carol.tone_power("alice", 440, 2.0), HEARD)
        self.assertLess(carol.tone_power("bob", 660, 2.0), SILENT / 100)
        # each speaker hears the other: its own track is not one of the N
        self.assertGreater(alice.tone_power("bob", 660, 2.0), HEARD / 100)
        self.assertGreater(bob.tone_power("alice", 440, 2.0), HEARD)

        alice.track.amplitude = 0.0         # alice falls silent: bob is the loudest
        await self.until(lambda: carol.tone_power("bob", 660, 0.5) > HEARD / 100, timeout=5,
                         what="carol hearing bob")
        self.sfud.request("GET", "/v1/rooms/" + room["room_id"])
        stats = wait_for(lambda: self.sfud.request("GET", "/v1/rooms/" + room["room_id"])[1]
                         .get("stats"), what="room stats")
        self.assertGreater(stats["packets"]["audio"]["drop_not_loudest"], 50)

    async def test_late_joiner_hears_others_and_leaver_disappears(self):
        a, b, c = self.peer("alice", 440), self.peer("bob", 660), self.peer("carol", 880)
        for p in (a, b, c):
            await p.join()
        await self.until(lambda: a.tone_power("bob", 660, 1.0) > HEARD, what="a hears b")
        d = self.peer("dave", 550)
        await d.join()
        await self.until(lambda: all(d.tone_power(o, f, 1.0) > HEARD
                                     for o, f in (("alice", 440), ("bob", 660), ("carol", 880))),
                         what="late joiner hearing everyone")
        await self.until(lambda: a.tone_power("dave", 550, 1.0) > HEARD, what="a hears dave")
        mark = a.mark()
        await b.leave()
        for p in (a, c, d):
            await p.wait_event("participant_left", lambda m: m["identity"] == "bob", timeout=5)
        ev = a.events_of("participant_left", mark)[0]
        self.assertEqual(ev["reason"], "left")
        await asyncio.sleep(1.5)
        for p in (a, c, d):
            self.assertLess(p.tone_power("bob", 660, 1.0), SILENT, p.identity)
            self.assertGreater(p.tone_power("carol" if p is not c else "alice",
                                            880 if p is not c else 440, 1.0), HEARD)

    async def test_server_mute_stops_audio_everywhere_and_unmute_restores(self):
        a, b, c = self.peer("alice", 440), self.peer("bob", 660), self.peer("carol", 880)
        for p in (a, b, c):
            await p.join()
        await self.until(lambda: a.tone_power("bob", 660, 1.0) > HEARD and
                         c.tone_power("bob", 660, 1.0) > HEARD, what="bob heard")
        st, j = self.sfud.request("POST", "/v1/rooms/%s/participants/bob/mute" %
                                  self.room["room_id"], {"muted": True})
        self.assertEqual(st, 202, j)
        await b.wait_event("participant_updated",
                           lambda m: m["participant"]["identity"] == "bob" and
                           m["participant"]["server_muted"], timeout=5)
        await asyncio.sleep(1.5)
        for p in (a, c):
            self.assertLess(p.tone_power("bob", 660, 1.0), SILENT, p.identity)
        self.assertGreater(b.tone_power("alice", 440, 1.0), HEARD)  # bob still hears
        self.assertGreater(self.room_stats()["packets"]["drop_muted"], 0)
        st, _ = self.sfud.request("POST", "/v1/rooms/%s/participants/bob/mute" %
                                  self.room["room_id"], {"muted": False})
        self.assertEqual(st, 202)
        await self.until(lambda: a.tone_power("bob", 660, 1.0) > HEARD and
                         c.tone_power("bob", 660, 1.0) > HEARD, what="bob heard again")
        st, j = self.sfud.request("POST", "/v1/rooms/%s/participants/nobody/mute" %
                                  self.room["room_id"], {"muted": "yes"})
        self.assertEqual((st, j["error"]["code"]), (400, "invalid_field"))

    async def test_speaking_follows_level_extension_and_decoded_opus(self):
        a = self.peer("alice", 440)                          # sends RFC 6464 levels
        b = self.peer("bob", 660, send_audio_level=False)    # SFU must decode Opus
        listener = self.peer("lis", None)
        for p in (a, b, listener):
            await p.join()

        def speakers():
            ev = listener.events_of("speaking")
            return set(s["identity"] for s in ev[-1]["speakers"]) if ev else set()
        await self.until(lambda: speakers() == {"alice", "bob"}, what="both speaking")
        await b.mute(True)   # bob's track now sends digital silence
        await self.until(lambda: speakers() == {"alice"}, what="bob stops speaking")
        await a.mute(True)
        await self.until(lambda: speakers() == set(), what="nobody speaking")
        await b.mute(False)
        await self.until(lambda: speakers() == {"bob"}, what="bob speaking again")
        gaps = [t2 - t1 for (t1, m1), (t2, m2) in zip(listener.events, listener.events[1:])
                if m1.get("type") == "speaking" and m2.get("type") == "speaking"]
        self.assertTrue(all(g >= 0.15 for g in gaps), gaps)  # rate-limited

    async def test_bad_tokens_are_refused_with_clear_codes(self):
        st, other = self.sfud.request("POST", "/v1/rooms", {"name": "other"})
        now = int(time.time())
        cases = [
            ("garbage", "not.a.jwt", 4001),
            ("bad signature", make_jwt("x" * 40, {"sub": "a", "room": self.room["room_id"],
                                                   "iat": now, "exp": now + 60,
                                                   "iss": "sfu", "aud": "sfu-room"}), 4001),
            ("expired", make_jwt(self.sfud.token_secret, {
                "sub": "a", "room": self.room["room_id"], "iat": now - 120, "exp": now - 60,
                "iss": "sfu", "aud": "sfu-room", "jti": "0" * 32}), 4002),
            ("other room", self.token("a", room=other["room_id"]), 4003),
        ]
        for what, tok, code in cases:
            p = Peer(self.ws_url, self.room["room_id"], tok, "a", freq=None)
            with self.assertRaises(JoinRejected, msg=what) as cm:
                await p.join(negotiate=False)
            self.assertEqual(cm.exception.code, code, what)
            self.assertTrue(cm.exception.reason, what)
            await p.close()
        p = Peer(self.ws_url, "rm_nosuchroom0000", self.token("a"), "a", freq=None)
        with self.assertRaises(JoinRejected) as cm:
            await p.join(negotiate=False)
        self.assertEqual(cm.exception.code, 4004)
        await p.close()

    async def test_bad_signaling_and_garbage_udp_are_contained(self):
        a, b = self.peer("alice", 440), self.peer("bob", 660)
        await a.join()
        await b.join()
        await self.until(lambda: a.tone_power("bob", 660, 1.0) > HEARD, what="call up")
        for bad, code in [({"type": "offer", "sdp": "v=0\r\nthis is not sdp"}, "bad_sdp"),
                          ({"type": "offer", "sdp": 42}, "bad_message"),
                          ({"type": "answer", "sdp": "v=0", "offer_id": 99}, "bad_message"),
                          ({"type": "candidate", "candidate": {"candidate": "nonsense"}},
                           "bad_message"),
                          ({"type": "frobnicate"}, "bad_message"),
                          ({"type": "mute", "muted": "yes"}, "bad_message")]:
            mark = a.mark()
            await a.send({**bad, "id": 77})
            ev = await a.wait_event("error", since=mark, timeout=5)
            self.assertEqual(ev["code"], code, bad)
        await a.ws.send("{not json")
        await a.wait_event("error", lambda m: m["code"] == "bad_message", timeout=5)
        # A flood is cut down to the rate limit, and said so once a second.
        mark, t0 = a.mark(), time.monotonic()
        for i in range(400):
            await a.ws.send(json.dumps({"type": "ping", "id": 1000 + i}))
        flood_s = time.monotonic() - t0
        await a.wait_event("error", lambda m: m["code"] == "rate_limited", since=mark, timeout=5)
        await asyncio.sleep(2.5)
        pongs = [m for m in a.events_of("pong", mark) if m.get("id", 0) >= 1000]
        self.assertLess(len(pongs), 400)
        self.assertGreaterEqual(len(pongs), 50)  # the burst left after the tests above
        errors = a.events_of("error", mark)
        self.assertTrue(1 <= len(errors) <= int(flood_s) + 2, (len(errors), flood_s))
        # Garbage datagrams at the room's media port: dropped and counted.
        port = None
        for line in a.pc.remoteDescription.sdp.splitlines():
            if line.startswith("a=candidate:") and " udp " in line.lower():
                port = int(line.split()[5])
                break
        self.assertIsNotNone(port)
        before = self.room_stats()["packets"]
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(50):
            s.sendto(bytes([i * 5 % 256]) * (i + 1), ("127.0.0.1", port))
        # well-formed-looking RTP from a stranger's address: not the peer's
        for i in range(20):
            s.sendto(bytes([0x80, 111]) + bytes(10 + i), ("127.0.0.1", port))
        s.close()
        await asyncio.sleep(1.5)
        after = self.room_stats()["packets"]
        self.assertGreaterEqual(after["drop_foreign_source"] - before["drop_foreign_source"], 20,
                                (before, after))
        self.assertGreater(a.tone_power("bob", 660, 1.0), HEARD)
        self.assertGreater(b.tone_power("alice", 440, 1.0), HEARD)
        await a.ping()

    async def test_media_port_range_and_announced_address(self):
        def candidates(peer):
            return [l.split() for l in peer.pc.remoteDescription.sdp.splitlines()
                    if l.startswith("a=candidate:")]
        self.sfud.stop()
        self.sfud = Sfud(ARGS.sfud, ARGS.room, "--rtc-port-min", "41000",
                         "--rtc-port-max", "41009")
        st, self.room = self.sfud.request("POST", "/v1/rooms", {})
        self.ws_url = self.room["ws_url"]
        a, b = self.peer("alice", 440), self.peer("bob", 660)
        await a.join()
        await b.join()
        await self.until(lambda: a.tone_power("bob", 660, 1.0) > HEARD, what="call in range")
        for c in candidates(a) + candidates(b):
            self.assertTrue(41000 <= int(c[5]) <= 41009, c)
        await a.close()
        await b.close()
        self.peers = []
        self.sfud.stop()
        self.sfud = Sfud(ARGS.sfud, ARGS.room, "--rtc-announced-address", "127.0.0.9")
        st, self.room = self.sfud.request("POST", "/v1/rooms", {})
        self.ws_url = self.room["ws_url"]
        c = self.peer("carol", 880)
        await c.join()
        # the UDP candidate and the TCP one (ICE-TCP) both announce it
        self.assertEqual([(x[2].lower(), x[4]) for x in candidates(c)],
                         [("udp", "127.0.0.9"), ("tcp", "127.0.0.9")])

    async def test_usage_checkpoints_follow_connected_time_and_mute(self):
        self.sfud.stop()
        self.sfud = Sfud(ARGS.sfud, ARGS.room, "--usage-interval-s", "1", "--log-level", "debug")
        st, self.room = self.sfud.request("POST", "/v1/rooms", {})
        self.ws_url = self.room["ws_url"]
        a, b = self.peer("alice", 440), self.peer("bob", 660)
        t_a = time.monotonic()
        await a.join()
        t_b = time.monotonic()
        await b.join()
        await self.until(lambda: a.tone_power("bob", 660, 1.0) > HEARD, what="call up")
        await asyncio.sleep(2)
        t_mute = time.monotonic()
        await b.mute(True)
        await asyncio.sleep(2)
        await b.mute(False)
        muted_s = time.monotonic() - t_mute
        await asyncio.sleep(1)
        await b.leave()
        t_b_end = time.monotonic()
        await asyncio.sleep(1.5)
        await a.leave()
        t_a_end = time.monotonic()
        await asyncio.sleep(0.5)
        totals = {}
        finals = {}
        for line in self.sfud.log:
            if 'msg="usage ' not in line:
                continue
            recs = json.loads(line.split('msg="usage ', 1)[1].rsplit('"', 1)[0].replace('\\"', '"'))
            for r in recs:
                t = totals.setdefault(r["identity"], {k: 0 for k in r["ms"]})
                for k, v in r["ms"].items():
                    t[k] += v
                finals[r["identity"]] = finals.get(r["identity"], 0) + r["final"]
        self.assertEqual(finals, {"alice": 1, "bob": 1})  # one final record each
        # connected time: as measured here, within one checkpoint interval
        self.assertAlmostEqual(totals["alice"]["connected"] / 1000, t_a_end - t_a, delta=1.0)
        self.assertAlmostEqual(totals["bob"]["connected"] / 1000, t_b_end - t_b, delta=1.0)
        # bob published all the time he was connected and not muted, less
        # the time ICE/DTLS took to come up
        self.assertAlmostEqual(totals["bob"]["audio_published"] / 1000,
                               (t_b_end - t_b) - muted_s, delta=1.0)
        # alice received bob's audio only while he published
        self.assertAlmostEqual(totals["alice"]["audio_received"] / 1000,
                               totals["bob"]["audio_published"] / 1000, delta=0.5)
        self.assertEqual(totals["bob"]["video_published"], 0)
        self.assertEqual(self.sfud.metric("sfu_usage_records_total") > 0, True)

    def events(self, after=0):
        out = []
        while True:
            st, j = self.sfud.request("GET", "/v1/events?after=%d&limit=1000" % after)
            self.assertEqual(st, 200, j)
            out += j["records"]
            if not j["records"]:
                return out
            after = j["next_after"]

    async def test_events_are_journaled_in_order_and_survive_a_killed_sfud(self):
        a, b = self.peer("alice", 440), self.peer("bob", 660)
        await a.join()
        await b.join()
        await self.until(lambda: a.tone_power("bob", 660, 1.0) > HEARD, what="call up")
        await asyncio.sleep(1)
        await b.leave()
        await asyncio.sleep(0.5)
        recs = self.events()
        seqs = [r["seq"] for r in recs]
        self.assertEqual(seqs, sorted(seqs))
        self.assertEqual(len(set(r["id"] for r in recs)), len(recs))
        types = [r["type"] for r in recs]
        self.assertEqual(types[0], "room_started")
        self.assertEqual(types.count("participant_joined"), 2)
        self.assertEqual(types.count("track_published"), 2)
        left = [r for r in recs if r["type"] == "participant_left"]
        self.assertEqual([(r["participant"], r["reason"]) for r in left], [("bob", "left")])
        # bob's final usage precedes his participant_left
        final = [i for i, r in enumerate(recs) if r["type"] == "usage" and r["final"]]
        self.assertEqual(len(final), 1)
        self.assertLess(final[0], types.index("participant_left"))
        self.assertEqual(self.sfud.request("GET", "/v1/events?after=x")[0], 400)
        # sfud killed outright, its last segment torn: restart keeps everything
        self.sfud.kill(keep_data=True)
        segs = sorted(f for f in os.listdir(os.path.join(self.sfud.data_dir, "journal"))
                      if f.endswith(".seg"))
        with open(os.path.join(self.sfud.data_dir, "journal", segs[-1]), "ab") as f:
            f.write(b"SFUJ\x00\x00\x01")  # half a header: a torn append
        old = self.sfud
        self.sfud = Sfud(ARGS.sfud, ARGS.room, data_dir=old.data_dir)
        again = self.events()
        self.assertEqual([r["id"] for r in again][:len(recs)], [r["id"] for r in recs])
        self.assertTrue(any("torn tail 7 bytes" in l for l in self.sfud.log))  # cut, not fatal

    async def test_room_crash_closes_sessions_in_the_record(self):
        a, b = self.peer("alice", None), self.peer("bob", None)
        await a.join(negotiate=False)
        await b.join(negotiate=False)
        await asyncio.sleep(0.5)
        os.kill(self.room["pid"], 9)
        await a.wait_closed(10)
        self.assertEqual(a.close_code, 4011)
        await asyncio.sleep(0.5)
        recs = [r for r in self.events() if r.get("room_id") == self.room["room_id"]]
        tail = [(r["type"], r.get("participant"), r.get("reason")) for r in recs[-3:]]
        self.assertEqual(sorted(tail[:2]), [("participant_left", "alice", "room_crashed"),
                                            ("participant_left", "bob", "room_crashed")])
        self.assertEqual(tail[2][0], "room_crashed")
        self.assertEqual(recs[-1]["end_reason"], "signal 9")

    async def test_vanished_participant_times_out_for_everyone(self):
        a, b = self.peer("alice", 440), self.peer("bob", 660)
        await a.join()
        await b.join()
        await self.until(lambda: a.tone_power("bob", 660, 1.0) > HEARD, what="call up")
        await b.pc.close()   # media gone; its WebSocket stays open and pings
        ev = await a.wait_event("participant_left", lambda m: m["identity"] == "bob",
                                timeout=25)
        self.assertEqual(ev["reason"], "timeout")


if __name__ == "__main__":
    main(logdir=os.environ.get("TMPDIR", "/tmp"))

"""Offline self-test of aiortc_peer.py: no sfud needed.

Checks the test participant itself, so that a failing integration test points
at the SFU and not at the harness:

* the sine track's frames (format, pts continuity, tone, pacing, mute);
* the analysis: tone_power separates present from absent frequencies in
  noisy stereo mixes, windows by arrival time, identity/sid/mid lookup;
* the SDP munging of send_audio_level=False on real aiortc offers;
* the tone survives aiortc's own Opus encoder/decoder;
* a full call against a tiny mock server (websockets + an aiortc peer
  connection playing the SFU) on loopback: join/welcome, offer/answer,
  a server offer adding "bob", tones both ways, the RFC 6464 levels aiortc
  really puts on the wire, mute/ack, ping/pong, leave, and a rejected join.

Run: /usr/bin/python3 tests/integration/test_aiortc_selftest.py
"""
import asyncio
import fractions
import json
import os
import re
import sys
import time
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import av  # noqa: E402
import websockets  # noqa: E402
from aiortc import (RTCConfiguration, RTCPeerConnection,  # noqa: E402
                    RTCRtpCodecParameters, RTCSessionDescription)
from aiortc.codecs import get_decoder, get_encoder  # noqa: E402
from aiortc.jitterbuffer import JitterFrame  # noqa: E402
from aiortc.rtp import unpack_header_extensions  # noqa: E402

import aiortc_peer as ap  # noqa: E402

OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000,
                             channels=2, payloadType=111)
FULL = 0.3 ** 2 / 2          # tone_power of the peer's 0.3-amplitude tone


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def sine(freq, amp, n, rate=48000, start=0):
    t = np.arange(start, start + n) / rate
    return amp * np.sin(2 * np.pi * freq * t)


def stereo_frame(left, right, pts):
    """Float (-1..1) channels -> packed s16 stereo AudioFrame (like aiortc's
    Opus decoder produces)."""
    inter = np.empty(2 * len(left))
    inter[0::2], inter[1::2] = left, right
    s16 = np.clip(np.round(inter * 32767), -32768, 32767).astype(np.int16)
    frame = av.AudioFrame.from_ndarray(s16.reshape(1, -1), format="s16",
                                       layout="stereo")
    frame.sample_rate = 48000
    frame.pts = pts
    frame.time_base = fractions.Fraction(1, 48000)
    return frame


async def sine_frames(freq, count, **kw):
    track = ap.SineTrack(freq, paced=False, **kw)
    return [await track.recv() for _ in range(count)]


class SineTrackTest(unittest.TestCase):
    def test_frames(self):
        frames = run(sine_frames(440, 50))              # 1 s
        pcm = []
        for i, f in enumerate(frames):
            self.assertEqual(f.format.name, "s16")
            self.assertEqual(f.layout.name, "mono")
            self.assertEqual(f.samples, 960)
            self.assertEqual(f.sample_rate, 48000)
            self.assertEqual(f.time_base, fractions.Fraction(1, 48000))
            self.assertEqual(f.pts, 960 * i)             # contiguous, no gaps
            pcm.append(f.to_ndarray().reshape(-1))
        pcm = np.concatenate(pcm)
        # one continuous sine across frame boundaries, to within rounding
        ideal = np.round(sine(440, 0.3, len(pcm)) * 32767)
        self.assertLessEqual(np.max(np.abs(pcm - ideal)), 1)
        self.assertAlmostEqual(np.max(np.abs(pcm)) / 32767, 0.3, places=3)
        self.assertAlmostEqual(ap.tone_power(pcm, 440) / FULL, 1.0, delta=0.01)
        self.assertLess(ap.tone_power(pcm, 660), FULL * 1e-5)

    def test_pacing(self):
        async def go():
            track = ap.SineTrack(440)                    # paced
            t0 = time.monotonic()
            for _ in range(11):                          # 1 + 10 frames
                await track.recv()
            return time.monotonic() - t0
        elapsed = run(go())
        self.assertGreater(elapsed, 0.19)
        self.assertLess(elapsed, 0.35)

    def test_mute_sends_silence_and_keeps_pts(self):
        async def go():
            track = ap.SineTrack(440, paced=False)
            a = await track.recv()
            track.muted = True
            b = await track.recv()
            track.muted = False
            c = await track.recv()
            return a, b, c
        a, b, c = run(go())
        self.assertEqual([a.pts, b.pts, c.pts], [0, 960, 1920])
        self.assertFalse(b.to_ndarray().any())
        self.assertTrue(c.to_ndarray().any())


class AnalysisTest(unittest.TestCase):
    def feed(self, src, left, right, t0, pts0=0):
        """Feed float channels to an AudioSource as 20 ms stereo frames that
        'arrived' in real time ending at t0."""
        n = len(left) // 960
        for i in range(n):
            sl = slice(960 * i, 960 * (i + 1))
            src.add_frame(stereo_frame(left[sl], right[sl], pts0 + 960 * i),
                          t=t0 - (n - 1 - i) * 0.02)

    def test_mix_separates_tones(self):
        rng = np.random.default_rng(1)
        n = 3 * 48000
        mix = sine(440, 0.3, n) + sine(660, 0.1, n) + rng.normal(0, 0.05, n)
        peer = ap.Peer("ws://unused", "room", "tok", "carol", freq=880)
        peer.identities.update({"PA_a": "alice", "PA_b": "bob"})
        src = peer.sources["1"] = ap.AudioSource("1", "PA_a", "TR_a")
        now = time.monotonic()
        self.feed(src, mix, mix, now)

        p440 = peer.tone_power("alice", 440, last_s=2.0)
        p660 = peer.tone_power("alice", 660, last_s=2.0)
        self.assertAlmostEqual(p440 / FULL, 1.0, delta=0.05)
        self.assertAlmostEqual(p660 / (0.1 ** 2 / 2), 1.0, delta=0.1)
        for absent in (550, 880, 1000, 300):
            pa = peer.tone_power("alice", absent, last_s=2.0)
            self.assertLess(pa, 1e-4, absent)
            self.assertGreater(p660 / pa, 100, absent)    # weak tone vs none
            self.assertGreater(p440 / pa, 1000, absent)
        # the same source by sid and by mid; unknown sources are silent
        # (time moves on between calls: a frame may leave the 2 s window)
        self.assertAlmostEqual(peer.tone_power("PA_a", 440, 2.0), p440, delta=0.01 * p440)
        self.assertAlmostEqual(peer.tone_power("1", 440, 2.0), p440, delta=0.01 * p440)
        self.assertEqual(peer.tone_power("bob", 440, 2.0), 0.0)
        # energy = sum of the parts: 0.045 + 0.005 + 0.0025
        self.assertAlmostEqual(peer.audio_energy("alice", 2.0), 0.0525, delta=0.002)
        self.assertTrue(peer.heard(440, 2.0))
        self.assertTrue(peer.heard(660, 2.0, threshold=0.003))
        self.assertFalse(peer.heard(660, 2.0, threshold=0.01))
        self.assertFalse(peer.heard(1000, 2.0))
        summary = peer.received_by_source()
        self.assertEqual(list(summary), ["alice"])
        self.assertEqual(summary["alice"]["samples"], n)
        self.assertEqual(summary["alice"]["frames"], n // 960)
        self.assertEqual(summary["alice"]["pts_gaps"], 0)
        self.assertEqual(summary["alice"]["nonsilent_frames"], n // 960)

    def test_stereo_downmix(self):
        # 440 only left, 660 only right: the mono mix holds both at half amplitude
        src = ap.AudioSource("0")
        n = 48000
        self.feed(src, sine(440, 0.4, n), sine(660, 0.4, n), time.monotonic())
        half = 0.2 ** 2 / 2
        self.assertAlmostEqual(src.tone_power(440, 1.0) / half, 1.0, delta=0.05)
        self.assertAlmostEqual(src.tone_power(660, 1.0) / half, 1.0, delta=0.05)

    def test_window_is_arrival_time_and_silence(self):
        src = ap.AudioSource("0")
        now = time.monotonic()
        n = 48000
        self.feed(src, sine(440, 0.3, n), sine(440, 0.3, n), now - 3.0)  # 3 s ago
        zeros = np.zeros(n)
        self.feed(src, zeros, zeros, now, pts0=n)                        # silence now
        self.assertAlmostEqual(src.tone_power(440, 5.0) / FULL, 0.5, delta=0.05)
        self.assertLess(src.tone_power(440, 1.0), 1e-9)
        self.assertEqual(src.energy(1.0), 0.0)
        self.assertEqual(src.nonsilent_frames, 50)
        self.assertAlmostEqual(src.last_audio_t, now - 3.0, places=6)
        # a gap in pts is counted
        src.add_frame(stereo_frame(zeros[:960], zeros[:960], 10 ** 6), t=now)
        self.assertEqual(src.pts_gaps, 1)

    def test_rejoined_identity_and_first_audio(self):
        peer = ap.Peer("ws://unused", "room", "tok", "carol")
        peer.identities.update({"PA_1": "bob", "PA_2": "bob"})
        old = peer.sources["1"] = ap.AudioSource("1", "PA_1")
        new = peer.sources["2"] = ap.AudioSource("2", "PA_2")
        now = time.monotonic()
        self.feed(old, np.zeros(9600), np.zeros(9600), now)
        self.feed(new, sine(660, 0.3, 9600), sine(660, 0.3, 9600), now)
        self.assertGreater(peer.tone_power("bob", 660, 1.0), 0.8 * FULL)
        self.assertEqual(sorted(peer.received_by_source()), ["bob#1", "bob#2"])

    def test_parse_mlines(self):
        sdp = ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
               "a=group:BUNDLE 0 1\r\n"
               "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=recvonly\r\n"
               "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=sendonly\r\n"
               "a=msid:PA_7c1e TR_5d2f\r\na=ssrc:1234 cname:x\r\n"
               "m=audio 0 UDP/TLS/RTP/SAVPF 111\r\na=mid:2\r\na=inactive\r\n"
               "a=ssrc:99 msid:PA_9 TR_9\r\n")
        ml = ap.parse_mlines(sdp)
        self.assertEqual([m["mid"] for m in ml], ["0", "1", "2"])
        self.assertEqual([m["direction"] for m in ml], ["recvonly", "sendonly", "inactive"])
        self.assertEqual((ml[1]["sid"], ml[1]["track_id"], ml[1]["ssrcs"]),
                         ("PA_7c1e", "TR_5d2f", [1234]))
        self.assertEqual((ml[2]["port"], ml[2]["sid"], ml[2]["track_id"]), (0, "PA_9", "TR_9"))
        self.assertIsNone(ml[0]["sid"])


class SdpMungingTest(unittest.TestCase):
    def test_strip_audio_level(self):
        async def go(publish):
            ap.use_host_addresses(["127.0.0.1"])
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            if publish:
                pc.addTrack(ap.SineTrack(440))
            else:
                pc.addTransceiver("audio", direction="recvonly")
            offer = await pc.createOffer()
            munged = ap.strip_audio_level(offer.sdp)
            await pc.setLocalDescription(RTCSessionDescription(munged, "offer"))
            sent = pc.localDescription.sdp
            await pc.close()
            return offer.sdp, munged, sent

        for publish in (True, False):
            with self.subTest(publish=publish):
                orig, munged, sent = run(go(publish))
                a, b = orig.splitlines(True), munged.splitlines(True)
                removed = [l for l in a if l not in b]
                self.assertEqual(len(a) - len(b), 1)
                self.assertEqual(len(removed), 1)
                self.assertRegex(removed[0],
                                 r"^a=extmap:\d+ urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n$")
                self.assertEqual([l for l in a if l != removed[0]], b)   # rest identical, in order
                self.assertIn("urn:ietf:params:rtp-hdrext:sdes:mid", munged)
                # what actually goes to the server after setLocalDescription
                self.assertNotIn("ssrc-audio-level", sent)
                self.assertIn("sdes:mid", sent)
                self.assertIn("a=candidate:", sent)
                self.assertIn("a=end-of-candidates", sent)
                # the default path leaves the offer alone
                self.assertEqual(ap.strip_audio_level(munged), munged)


class OpusRoundTripTest(unittest.TestCase):
    def test_tone_survives_opus(self):
        frames = run(sine_frames(440, 100))              # 2 s
        enc, dec = get_encoder(OPUS), get_decoder(OPUS)
        src = ap.AudioSource("0")
        now = time.monotonic()
        sizes = []
        for i, f in enumerate(frames):
            payloads, ts = enc.encode(f)
            self.assertEqual(len(payloads), 1)
            self.assertEqual(ts, f.pts)
            sizes.append(len(payloads[0]))
            for out in dec.decode(JitterFrame(data=payloads[0], timestamp=ts)):
                self.assertEqual((out.format.name, out.layout.name, out.samples),
                                 ("s16", "stereo", 960))
                src.add_frame(out, t=now - (99 - i) * 0.02)
        self.assertEqual(src.frames, 100)
        self.assertLess(max(sizes), 400)
        p440 = src.tone_power(440, 1.5)
        self.assertGreater(p440 / FULL, 0.8)
        self.assertLess(p440 / FULL, 1.2)
        for absent in (550, 660, 880):
            self.assertLess(src.tone_power(absent, 1.5) / p440, 1e-3, absent)


# --------------------------------------------------------------------------
# A mock server: just enough of docs/signaling.md, media by aiortc.


class MockSfu:
    """Welcomes anyone whose token is not "bad" into a room where "bob"
    (sid PA_bob) already is. Answers the client's offer with an aiortc peer
    connection, then sends a server offer adding bob's 660 Hz track on its
    own sendonly m-line with a=msid:PA_bob TR_bob. Records what it receives
    from the client and the RFC 6464 header extension of every RTP packet."""

    def __init__(self):
        self.pc = None
        self.source = ap.AudioSource("client")
        self.levels = []              # (V bit, level) or None, per RTP packet
        self.ext_ids = set()          # header extension ids seen on the wire
        self.audio_level_id = None
        self.answers = []
        self.bob_track = None

    async def __aenter__(self):
        self.server = await websockets.serve(self.handler, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/v1/rtc"
        return self

    async def __aexit__(self, *exc):
        if self.pc:
            await self.pc.close()
        if self.bob_track:
            self.bob_track.stop()
        self.server.close()
        await self.server.wait_closed()

    def spy(self, transport):
        """Look at decrypted RTP before aiortc parses it."""
        orig = transport._handle_rtp_data

        async def handle(data, arrival_time_ms):
            if data[0] & 0x10:                                  # X bit
                off = 12 + 4 * (data[0] & 0x0F)
                profile = int.from_bytes(data[off:off + 2], "big")
                length = int.from_bytes(data[off + 2:off + 4], "big") * 4
                exts = dict(unpack_header_extensions(profile, data[off + 4:off + 4 + length]))
                self.ext_ids.update(exts)
                v = exts.get(self.audio_level_id)
                self.levels.append((bool(v[0] & 0x80), v[0] & 0x7F) if v else None)
            else:
                self.levels.append(None)
            await orig(data, arrival_time_ms=arrival_time_ms)
        transport._handle_rtp_data = handle

    async def handler(self, ws, path=None):
        join = json.loads(await ws.recv())
        assert join == {"type": "join", "id": 1, "v": 1, "room": join["room"],
                        "token": join["token"]}, join
        if join["token"] == "bad":
            await ws.close(4001, "invalid token: bad signature")
            return
        me = {"sid": "PA_alice", "identity": "alice", "name": "Alice"}
        bob = {"sid": "PA_bob", "identity": "bob", "name": "Bob", "muted": False,
               "speaking": False, "tracks": [{"track_id": "TR_bob", "kind": "audio",
                                              "muted": False}]}
        await ws.send(json.dumps({"type": "welcome", "id": 1, "v": 1, "participant": me,
                                  "room": {"room_id": "rm_test", "name": "t"},
                                  "participants": [bob]}))
        async for raw in ws:
            msg = json.loads(raw)
            t = msg["type"]
            if t == "offer":
                await self.answer(ws, msg)
            elif t == "answer":
                self.answers.append(msg)
                await self.pc.setRemoteDescription(RTCSessionDescription(msg["sdp"], "answer"))
            elif t == "ping":
                await ws.send(json.dumps({"type": "pong", "id": msg["id"]}))
            elif t == "mute":
                await ws.send(json.dumps({"type": "ack", "id": msg["id"]}))
                await ws.send(json.dumps({"type": "participant_updated", "participant":
                                          dict(me, muted=msg["muted"], server_muted=False)}))
            elif t == "leave":
                await ws.close(1000, "left")
                return

    async def answer(self, ws, msg):
        m = re.search(r"a=extmap:(\d+) urn:ietf:params:rtp-hdrext:ssrc-audio-level", msg["sdp"])
        self.audio_level_id = int(m.group(1)) if m else None
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))

        @self.pc.on("track")
        def on_track(track):
            async def record():
                try:
                    while True:
                        self.source.add_frame(await track.recv())
                except Exception:
                    pass
            asyncio.ensure_future(record())

        await self.pc.setRemoteDescription(RTCSessionDescription(msg["sdp"], "offer"))
        self.spy(self.pc.getTransceivers()[0].receiver.transport)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await ws.send(json.dumps({"type": "answer", "id": msg["id"],
                                  "sdp": self.pc.localDescription.sdp}))
        # trickle a duplicate of our candidate, then end-of-candidates:
        # exercises the client's candidate handling
        cand = re.search(r"a=(candidate:.*)\r\n", self.pc.localDescription.sdp).group(1)
        await ws.send(json.dumps({"type": "candidate", "candidate":
                                  {"candidate": cand, "sdpMid": "0", "sdpMLineIndex": 0}}))
        await ws.send(json.dumps({"type": "candidate", "candidate": None}))
        # server offer: bob's track on a new sendonly m-line, msid = bob's sid
        self.bob_track = ap.SineTrack(660)
        self.pc.addTransceiver(self.bob_track, direction="sendonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        sdp = re.sub(r"msid:\S+ \S+", "msid:PA_bob TR_bob", self.pc.localDescription.sdp)
        await ws.send(json.dumps({"type": "offer", "offer_id": 7, "sdp": sdp}))


class MockCallTest(unittest.TestCase):
    async def call(self, send_audio_level):
        async with MockSfu() as sfu:
            async with ap.Peer(sfu.url, "rm_test", "tok", "alice", freq=440,
                               send_audio_level=send_audio_level) as alice:
                welcome = await alice.join()
                self.assertEqual(welcome["type"], "welcome")
                self.assertEqual(alice.sid, "PA_alice")
                self.assertEqual(alice.identities["PA_bob"], "bob")
                self.assertEqual("ssrc-audio-level" in alice.local_offer_sdp,
                                 send_audio_level)
                await alice.wait_connected(10)
                # alice hears bob (660 Hz), identified through a=msid + welcome
                await alice.wait_until(lambda: alice.tone_power("bob", 660, 1.0) > 0.5 * FULL,
                                       timeout=10, what="bob's tone")
                # (a loaded machine drops/delays packets: the clicks leak some
                # energy to every frequency, hence not a tighter bound)
                self.assertLess(alice.tone_power("bob", 440, 1.0), 0.02 * FULL,
                                alice.received_by_source())
                self.assertFalse(alice.heard(440, 1.0))
                self.assertEqual(alice.server_offers_answered, 1)
                self.assertEqual(sfu.answers[0]["offer_id"], 7)
                self.assertEqual(alice.join_to_first_audio_s,
                                 alice.first_audio_t - alice.join_t)
                self.assertLess(alice.join_to_first_audio_s, 10)
                self.assertIn("bob", alice.received_by_source())
                # the server hears alice's 440 Hz
                await alice.wait_until(lambda: sfu.source.tone_power(440, 1.0) > 0.5 * FULL,
                                       timeout=10, what="alice's tone at the server")
                self.assertLess(sfu.source.tone_power(660, 1.0), 0.02 * FULL)
                loud = list(sfu.levels)
                # control messages
                self.assertGreaterEqual(await alice.ping(), 0)
                mark = alice.mark()
                ack = await alice.mute(True)
                self.assertEqual(ack, {"type": "ack", "id": ack["id"]})
                upd = await alice.wait_event("participant_updated",
                                             lambda m: m["participant"]["muted"], since=mark)
                self.assertEqual(upd["participant"]["identity"], "alice")
                # muted = digital silence (once what was in flight has drained)
                await alice.wait_until(lambda: sfu.source.last_frame_t > time.monotonic() - 0.1
                                       and sfu.source.energy(0.3) < 1e-6,
                                       timeout=5, what="silence at the server")
                first_muted = len(sfu.levels)
                await asyncio.sleep(0.3)
                muted = sfu.levels[first_muted:]
                self.assertEqual(await alice.leave(), 1000)
                self.assertEqual(alice.close_reason, "left")
                self.assertEqual(alice.errors, [])
                self.assertEqual(alice.violations, [])
            return loud, muted, sfu.ext_ids, sfu.audio_level_id

    def test_call_with_audio_level(self):
        loud, muted, ext_ids, level_id = run(self.call(True))
        self.assertEqual(level_id, 2)
        self.assertIn(2, ext_ids)
        # aiortc puts a level on every packet, V bit always 0;
        # 0.3-amplitude sine = -13.5 dBov -> 13; digital silence -> 127
        self.assertTrue(loud and all(l is not None for l in loud))
        # (per-frame RMS of 8.8 cycles of 440 Hz wobbles around -13.47 dBov)
        self.assertLessEqual({l for l in loud[5:]}, {(False, 13), (False, 14)})
        self.assertTrue(muted and {l for l in muted} == {(False, 127)}, muted[:5])

    def test_call_without_audio_level(self):
        loud, muted, ext_ids, level_id = run(self.call(False))
        self.assertIsNone(level_id)
        self.assertTrue(loud)
        self.assertEqual(ext_ids, {1})          # only sdes:mid on the wire

    def test_heartbeat_and_events(self):
        async def go():
            async with MockSfu() as sfu:
                async with ap.Peer(sfu.url, "rm_test", "tok", "alice",
                                   ping_interval=0.1) as alice:
                    await alice.join(negotiate=False)
                    self.assertIsNone(alice.pc)
                    first = await alice.wait_event("pong", timeout=2)
                    await alice.wait_event("pong", lambda m: m["id"] != first["id"],
                                           timeout=2)
                    with self.assertRaises(ap.PeerError):
                        await alice.wait_event("speaking", timeout=0.2)
                    self.assertEqual(await alice.leave(), 1000)
                    with self.assertRaises(ap.PeerClosed):
                        await alice.wait_event("speaking", timeout=5)
                    with self.assertRaises(ap.PeerClosed):
                        await alice.ping()
                    self.assertEqual(alice.events[0][1]["type"], "welcome")
                    self.assertGreaterEqual(len(alice.events_of("pong")), 2)
        run(go())

    def test_rejected_join(self):
        async def go():
            async with MockSfu() as sfu:
                peer = ap.Peer(sfu.url, "rm_test", "bad", "mallory", freq=440)
                try:
                    with self.assertRaises(ap.JoinRejected) as cm:
                        await peer.join(timeout=5)
                finally:
                    await peer.close()
                return peer, cm.exception
        peer, exc = run(go())
        self.assertEqual((peer.close_code, peer.close_reason),
                         (4001, "invalid token: bad signature"))
        self.assertEqual((exc.code, exc.reason), (4001, "invalid token: bad signature"))
        self.assertIn("4001", str(exc))


if __name__ == "__main__":
    unittest.main(verbosity=2)

#!/usr/bin/env python3
"""Video through the SFU with aiortc peers: keyframes, PLI throttling,
recovery from loss by NACK/RTX, and a viewer on a relay of the room.

aiortc encodes and decodes VP8 with libvpx, sends PLI when its decoder
needs a keyframe and NACK for missing packets, and answers NACKs with RTX.
Loss is injected inside the peers (no netem on this machine): a publisher
drops 5 % of the RTP it sends to the SFU, a subscriber 5 % of the RTP the
SFU sends it, before SRTP -- so every packet the SFU sees or sends is real
and the SFU's own recovery is what keeps the picture going.

Usage: test_video_aiortc.py --sfud PATH --room PATH
"""
import argparse
import asyncio
import fractions
import os
import random
import sys
import time
import unittest

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.rtp import is_rtcp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sfutest import CallTest, wait_for  # noqa: E402
from aiortc_peer import VideoPeer  # noqa: E402

ARGS = None
FPS = 30
WIDTH, HEIGHT = 320, 240


class PatternTrack(MediaStreamTrack):
    """320x240 frames at 30 fps: a bar moving over a gradient."""
    kind = "video"

    def __init__(self):
        super().__init__()
        self.n = 0
        self.start = None
        base = np.tile(np.arange(WIDTH, dtype=np.uint8), (HEIGHT, 1))
        self.base = np.stack([base, base[::-1], np.full_like(base, 128)], axis=-1)

    async def recv(self):
        if self.start is None:
            self.start = time.monotonic()
        due = self.start + self.n / FPS
        await asyncio.sleep(max(0, due - time.monotonic()))
        img = self.base.copy()
        x = (self.n * 4) % WIDTH
        img[:, x:x + 16] = 255
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = self.n * 3000
        frame.time_base = fractions.Fraction(1, 90000)
        self.n += 1
        return frame


class PatternPeer(VideoPeer):
    """A VideoPeer that publishes PatternTrack (no audio) or listens."""

    def __init__(self, *a, video=True, drop_out=0.0, drop_in=0.0, **kw):
        super().__init__(*a, freq=None, **kw)
        self.video = PatternTrack() if video else None
        self.drop_out, self.drop_in = drop_out, drop_in
        self.dropped = [0, 0]
        self.rtp_in = 0  # RTP packets the SFU sent us, dropped ones included

    async def negotiate(self, timeout=10.0):
        async with self._neg_lock:
            if self.pc is None:
                self.pc = self._new_pc()
            if self.video is not None:
                self.pc.addTrack(self.video)
            else:
                self.pc.addTransceiver("video", direction="recvonly")
            offer = await self.pc.createOffer()
            await self.pc.setLocalDescription(offer)
            self.local_offer_sdp = self.pc.localDescription.sdp
            reply = await self.request({"type": "offer", "id": 2, "sdp": self.local_offer_sdp},
                                       timeout=timeout)
            await self._set_remote(reply["sdp"], "answer")
        self._lossy()

    def _lossy(self):
        """Drops RTP (not RTCP) on the DTLS transport, both ways."""
        t = self.pc.getTransceivers()[0].sender.transport
        send, handle = t._send_rtp, t._handle_rtp_data

        async def send_rtp(data):
            if not is_rtcp(data) and random.random() < self.drop_out:
                self.dropped[0] += 1
                return
            await send(data)

        async def handle_rtp(data, arrival_time_ms):
            self.rtp_in += 1
            if random.random() < self.drop_in:
                self.dropped[1] += 1
                return
            await handle(data, arrival_time_ms)
        t._send_rtp, t._handle_rtp_data = send_rtp, handle_rtp

    def gaps(self, since, until, over=0.1):
        """Pauses between decoded frames longer than `over` seconds."""
        ts = [t for t, _, _ in self.video_frames if since <= t < until]
        return [round(b - a, 2) for a, b in zip(ts, ts[1:]) if b - a > over]

    def fps(self, since, until):
        return sum(1 for t, _, _ in self.video_frames if since <= t < until) / (until - since)

    def subscriber_ssrc(self):
        """The SFU's SSRC of the first video m-line offered to us."""
        for ml in self.remote_mlines:
            if ml.get("kind") == "video" and ml.get("ssrcs"):
                return ml["ssrcs"][0]
        sdp = self.pc.remoteDescription.sdp
        for line in sdp.splitlines():
            if line.startswith("a=ssrc:"):
                return int(line[7:].split()[0])
        return None


class VideoTest(CallTest):
    PEER = PatternPeer

    def setUp(self):
        self.start_sfud(ARGS.sfud, ARGS.room)
        self.peers = []

    def video_stats(self, room):
        """The room's video counters, from a stats message newer than now."""
        def get():
            return self.sfud.request("GET", "/v1/rooms/" + room["room_id"])[1].get("stats")
        first = wait_for(get, what="room stats")
        s = wait_for(lambda: (lambda x: x if x and x["uptime_ms"] > first["uptime_ms"] else None)(
            get()), what="fresh room stats")
        return s["packets"]["video"], s["packets"]

    async def call(self, name, seconds, drop):
        """Publisher + subscriber; returns (fps over `seconds` after warm-up,
        frame sizes seen, room counters, peers)."""
        room = self.new_room(name)
        pub = self.peer(room, "cam", drop_out=drop)
        sub = self.peer(room, "viewer", video=False, drop_in=drop)
        await pub.join()
        await pub.wait_connected()
        await asyncio.sleep(2)  # the viewer comes in mid-stream: it needs a keyframe
        await sub.join()
        await sub.wait_connected()
        t0 = time.monotonic()
        try:
            await self.first_frame(sub)
        except Exception:
            print("%s: no frame; viewer got %d RTP packets, dropped %d; publisher dropped %d; "
                  "room %s" % (name, sub.rtp_in, sub.dropped[1], pub.dropped[0],
                               self.video_stats(room)[1]))
            raise
        first = time.monotonic() - t0
        await asyncio.sleep(2)  # warm-up: encoder rate, jitter buffer
        start = time.monotonic()
        await asyncio.sleep(seconds)
        fps = sub.fps(start, time.monotonic())
        print("%s: pauses over 100 ms: %s" % (name, sub.gaps(start, time.monotonic())))
        video, packets = self.video_stats(room)
        return fps, first, {(w, h) for _, w, h in sub.video_frames}, video, packets, pub, sub

    async def test_video_reaches_subscriber_and_survives_5pc_loss_each_way(self):
        # The loss-free call and the lossy one side by side, in two rooms:
        # the reference rate is measured on the same machine at the same
        # time (the clean call's peers stay up until the lossy window ends).
        (clean_fps, first, sizes, v0, _, pub0, _), (lossy_fps, _, _, v, packets, pub, sub) \
            = await asyncio.gather(self.call("clean", 10, 0.0), self.call("lossy", 20, 0.05))
        print("loss-free: %.1f fps decoded, first frame %.2f s after connecting, sizes %s, %s"
              % (clean_fps, first, sizes, v0))
        self.assertEqual(sizes, {(WIDTH, HEIGHT)})
        self.assertGreater(clean_fps, 10)
        # the new subscriber's keyframe, asked for at once (aiortc's encoder
        # would otherwise send the next one only after thousands of frames)
        self.assertGreaterEqual(v0["plis_sent"], 1)
        self.assertGreaterEqual(v0["keyframes_in"], 2)
        self.assertLess(first, 2.0)

        print("5%% loss each way: %.1f fps decoded (%.0f %% of loss-free); dropped %d up, %d "
              "down; %s" % (lossy_fps, 100 * lossy_fps / clean_fps, pub.dropped[0],
                            sub.dropped[1], v))
        self.assertGreater(pub.dropped[0], 10)
        self.assertGreater(sub.dropped[1], 10)
        # upstream: the SFU NACKed what the publisher's losses left out, and
        # the publisher's RTX repaired it
        self.assertGreater(v["nacks_sent"], 0)
        self.assertGreater(v["rtx_in"], 0)
        # downstream: the subscriber NACKed, the SFU answered from its cache
        self.assertGreater(v["nacks_received"], 0)
        self.assertGreater(v["rtx_out"], 0)
        self.assertGreaterEqual(lossy_fps, 0.9 * clean_fps)

    async def first_frame(self, sub, timeout=20.0):
        """Waits for the viewer's first decoded frame. A browser asks for a
        keyframe (PLI) when it cannot decode what it has; aiortc does not: a
        keyframe whose packet and retransmission were both lost leaves it
        waiting for the next one, seconds away. So, from 2 s on, the viewer
        sends a PLI each second while it has nothing decoded, as a browser
        would; their number is printed."""
        deadline = time.monotonic() + timeout
        asked = 0
        while time.monotonic() < deadline:
            try:
                await sub.wait_until(lambda: len(sub.video_frames) > 0,
                                     timeout=min(2.0 if asked == 0 else 1.0,
                                                 max(0.1, deadline - time.monotonic())),
                                     what="a first frame")
                if asked:
                    print("%s: first frame after %d PLI(s) from the viewer" % (sub.identity, asked))
                return
            except Exception:
                if time.monotonic() >= deadline:
                    raise
            receiver = next(t.receiver for t in sub.pc.getTransceivers()
                            if t.receiver.track and t.receiver.track.kind == "video")
            ssrc = sub.subscriber_ssrc()
            if ssrc is not None:
                await receiver._send_rtcp_pli(ssrc)
                asked += 1
        await sub.wait_until(lambda: len(sub.video_frames) > 0, timeout=0.1, what="a first frame")

    async def test_keyframe_requests_are_throttled(self):
        room = self.new_room("plis")
        pub = self.peer(room, "cam")
        sub = self.peer(room, "viewer", video=False)
        await pub.join()
        await sub.join()
        await sub.wait_until(lambda: len(sub.video_frames) > 10, timeout=20)
        await asyncio.sleep(1.0)  # past the subscription's own request
        before, _ = self.video_stats(room)
        receiver = next(t.receiver for t in sub.pc.getTransceivers()
                        if t.receiver.track and t.receiver.track.kind == "video")
        ssrc = sub.subscriber_ssrc()
        self.assertIsNotNone(ssrc)
        t0 = time.monotonic()
        for _ in range(20):  # 20 PLIs in one second
            await receiver._send_rtcp_pli(ssrc)
            await asyncio.sleep(0.05)
        took = time.monotonic() - t0
        await asyncio.sleep(0.5)
        after, _ = self.video_stats(room)
        got = after["plis_received"] - before["plis_received"]
        sent = after["plis_sent"] - before["plis_sent"]
        folded = after["plis_throttled"] - before["plis_throttled"]
        print("20 PLIs in %.2f s -> %d to the publisher, %d folded; keyframes %d -> %d"
              % (took, sent, folded, before["keyframes_in"], after["keyframes_in"]))
        self.assertEqual(got, 20)
        # one request per 500 ms per layer: at most ceil(took / 0.5) + 1
        self.assertGreaterEqual(sent, 1)
        self.assertLessEqual(sent, int(took / 0.5) + 2)
        self.assertGreaterEqual(sent + folded, got)
        self.assertGreater(after["keyframes_in"], before["keyframes_in"])

    async def test_video_through_a_relay_and_its_keyframe_requests(self):
        """A viewer on a relay of the room (docs/internals/relay.md) decodes
        the publisher's video; its keyframe requests cross the link to the
        publisher, which answers with keyframes."""
        room = self.new_room("relayed")
        st, relay = self.sfud.request("POST", "/v1/rooms/%s/relays" % room["room_id"], {})
        self.assertEqual(st, 201, relay)
        await self.until(lambda: [x for x in self.sfud.request(
            "GET", "/v1/rooms/%s/relays" % room["room_id"])[1] if x["state"] == "running"],
            what="the relay running")
        pub = self.peer(room, "cam")
        await pub.join()
        st, tok = self.sfud.request("POST", "/v1/rooms/%s/tokens" % room["room_id"],
                                   {"identity": "viewer",
                                    "grants": {"publish": False, "subscribe": True}})
        self.assertEqual(st, 201, tok)
        sub = PatternPeer(room["ws_url"], room["room_id"], tok["token"], "viewer", video=False)
        self.peers.append(sub)
        await sub.join()
        await self.first_frame(sub)
        await sub.wait_until(lambda: len(sub.video_frames) > 30, timeout=20, what="30 frames")
        self.assertEqual({(w, h) for _, w, h in sub.video_frames}, {(WIDTH, HEIGHT)})

        def relay_video():
            r = self.sfud.request("GET", "/v1/rooms/%s/relays" % room["room_id"])[1]
            return r[0]["packets"]["video"] if r and "packets" in r[0] else None
        await asyncio.sleep(1.0)  # past the throttle of the subscription's own request
        before, _ = self.video_stats(room)
        receiver = next(t.receiver for t in sub.pc.getTransceivers()
                        if t.receiver.track and t.receiver.track.kind == "video")
        await receiver._send_rtcp_pli(sub.subscriber_ssrc())
        after = await self.until(lambda: (lambda v: v if v["plis_received"] > before["plis_received"]
                                          and v["keyframes_in"] > before["keyframes_in"] else None)(
            self.video_stats(room)[0]), what="the relay's PLI at the publisher, and a keyframe")
        print("through a relay: %d frames; origin %s; relay %s" % (len(sub.video_frames), after,
                                                                   relay_video()))
        self.assertGreater(after["plis_sent"], before["plis_sent"])  # to the publisher
        rv = await self.until(lambda: (lambda v: v if v and v["plis_received"] >= 1 else None)(
            relay_video()), what="the relay's own counters")
        self.assertGreaterEqual(rv["keyframes_in"], 2)  # the relay saw the keyframes come


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--sfud", required=True)
    ap.add_argument("--room", required=True)
    ARGS, rest = ap.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)

#!/usr/bin/env python3
"""Calls through sfud over an impaired network: random loss (and the classes
test_bandwidth.py caps the bandwidth with).

Topology (netns.py): sfud and its rooms run *inside* a network namespace
the test creates, listening on the namespace end of a veth pair (10.77.S.2,
HTTP/WebSocket and media); the peers -- aiortc in this process, headless
Chromium -- run in the root namespace and reach sfud only through the veth
pair (their ICE host address is the root end, 10.77.S.1). Every media
packet therefore crosses the pair once per hop, and the impairment sits on
the namespace end:

* loss: `iptables -m statistic --mode random --probability p -j DROP` on
  the namespace's INPUT and OUTPUT, UDP only (signaling over TCP stays
  lossless). A packet from a publisher to a subscriber crosses it twice
  (publisher -> sfud, sfud -> subscriber), so the loss a subscriber should
  see end to end is 1 - (1 - p)^2;
* bandwidth: a `tc tbf` on the namespace's veth end, i.e. on everything
  sfud sends to its peers (the subscribers' downlink): test_bandwidth.py.

This is the brief's "clients in a namespace" turned inside out, for the
same packets: Chromium's DevTools socket ignores --remote-debugging-address
in the new headless mode, so a Chromium inside a namespace could not be
driven from here without a relay, and the peers stay simple in-process
objects. (netem is not available on these machines: no delay or jitter.)

Tests:

* AudioLossTest: two aiortc peers, each publishing its own tone, through
  5 %, 10 % and 20 % loss in one call. Per level and direction, over an
  8 s window: the loss the receiver sees in the RTP sequence numbers
  (aiortc's inbound-rtp packetsLost / expected) must lie within
  [0.5, 1.6] x (1 - (1 - p)^2) -- more means the SFU lost packets of its
  own (amplified the loss), much less that the impairment did not apply;
  packets keep arriving (no gap over MAX_STALL_S) and what is decoded
  carries the tone; the peer connections stay connected and the WebSocket
  answers a ping. After the loss is lifted both hear each other cleanly again.
  Decoded frames are printed, not judged: aiortc's audio jitter buffer
  (16 packets, 4 prefetched) emits nothing while a hole sits among the
  next few packets and, once full, discards the oldest *received* packet
  to make room, so under sustained loss it decodes far fewer frames than
  arrive whatever the SFU does. Fed a perfect sequence with random holes
  offline, it decodes 63 %, 39 % and 14 % of the packets that arrive at
  9.75 %, 19 % and 36 % loss -- what the test sees too.
* VideoLossTest: Chromium A publishes its fake camera (one VP8 layer,
  640x480, degradationPreference maintain-framerate so that the encoder's
  own CPU/bandwidth adaptation trades resolution, not frames); Chromium B
  subscribes. B's decoded frame rate (getStats framesDecoded over a
  window) with 5 % loss both ways must be >= 0.9 x the rate without loss
  on the same call: NACK/RTX and PLI recover the losses in time.
* A bandwidth cap on the subscribers' downlink: test_bandwidth.py, on
  these classes.

Figures are printed (ctest -V / the log). Skips only if network namespaces
or iptables cannot be used here.

Usage: test_impairment.py --sfud PATH --room PATH [--logdir DIR]
"""
import asyncio
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WEB_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "web"))
sys.path.insert(0, HERE)
from sfutest import CallTest, Sfud, main  # noqa: E402
from netns import new_namespace  # noqa: E402
from pagejs import VIDEO_STATS_JS  # noqa: E402

ARGS = None
LOSS_LEVELS = (0.05, 0.10, 0.20)
AUDIO_WINDOW_S = 8.0       # 400 packets a direction: 1 sigma of the 5 % level's
                           # 9.75 % end-to-end loss is 1.5 points (band: -3.3, +4 sigma)
LOSS_BAND = (0.5, 1.6)     # measured / expected
MAX_STALL_S = 1.0          # longest time without an RTP packet (at 36 % loss
                           # the chance of none among 50 is 1e-22)
HEARD = 0.01               # tone power of a clearly audible tone (0.045 at full)
VIDEO_WINDOW_S = 8.0
MIN_FPS_RATIO = 0.9


def expected_loss(p):
    return 1 - (1 - p) ** 2


class NetTestBase(CallTest):
    """A namespace with sfud inside it and a room; peers in self.peers."""

    sfud_args = ()

    def setUp(self):
        self.peers = []
        self.browsers = {}
        self.pages = {}
        self.ns = new_namespace()
        self.addCleanup(self._close_ns)
        self.sfud = Sfud(ARGS.sfud, ARGS.room, "--rtc-addresses", self.ns.inner,
                         *self.sfud_args, listen_host=self.ns.inner,
                         prefix=self.ns.exec_prefix())
        self.addCleanup(self.sfud.stop_and_check, ARGS.logdir and os.path.join(
            ARGS.logdir, "impairment." + self._testMethodName + ".log"))
        self.room = self.new_room("impaired")
        self.ws_url = self.room["ws_url"]
        self.assertIn(self.ns.inner, self.ws_url)

    def _close_ns(self):
        self.ns.close()
        self.assertFalse(self.ns.exists(), "namespace left behind")

    def room_stats(self):
        st, j = self.sfud.request("GET", "/v1/rooms/%s" % self.room["room_id"])
        self.assertEqual(st, 200, j)
        return j.get("stats") or {}


# --------------------------------------------------------------------------
# Audio: aiortc peers through random loss


class AudioLossTest(NetTestBase):

    async def rtp_received(self, peer):
        """(packets received, packets lost) over the peer's audio receivers,
        from aiortc's RTP statistics (sequence numbers as they arrive)."""
        got = lost = 0
        for r in peer.pc.getReceivers():
            if r.track is None or r.track.kind != "audio":
                continue
            for s in (await r.getStats()).values():
                if s.type == "inbound-rtp":
                    got += s.packetsReceived
                    lost += s.packetsLost
        return got, lost

    async def snapshot(self, pairs):
        out = {}
        for rx, tx in pairs:
            got, lost = await self.rtp_received(rx)
            src = rx.find_sources(tx.identity)
            out[rx.identity] = {"got": got, "lost": lost,
                                "frames": sum(s.frames for s in src),
                                "sent": tx.track.frames_sent}
        out["t"] = time.monotonic()
        out["room"] = self.room_stats().get("packets", {})
        out["drops"] = self.ns.drops()
        return out

    async def test_audio_through_random_loss(self):
        from aiortc_peer import Peer
        a = Peer(self.ws_url, self.room["room_id"], self.token("alice"), "alice", freq=440,
                 host_addresses=[self.ns.outer])
        b = Peer(self.ws_url, self.room["room_id"], self.token("bob"), "bob", freq=660,
                 host_addresses=[self.ns.outer])
        self.peers += [a, b]
        await a.join()
        await b.join()
        await a.wait_connected(15)
        await b.wait_connected(15)
        pairs = [(a, b), (b, a)]     # (receiver, sender)
        await self.until(lambda: a.tone_power("bob", 660, 1.0) > HEARD
                         and b.tone_power("alice", 440, 1.0) > HEARD, 15, "both hearing")
        await asyncio.sleep(1.0)
        base = await self.snapshot(pairs)

        rows = []
        for p in LOSS_LEVELS:
            self.ns.set_loss(p)
            await asyncio.sleep(0.5)
            s0 = await self.snapshot(pairs)
            # watch the window: packets must keep arriving (and decoded
            # frames coming out), the connections stay up
            stall = {(rx.identity, k): 0.0 for rx, _ in pairs for k in ("rtp", "dec")}
            last = {(rx.identity, k): (time.monotonic(), s0[rx.identity][n])
                    for rx, _ in pairs for k, n in (("rtp", "got"), ("dec", "frames"))}
            states = set()
            end = time.monotonic() + AUDIO_WINDOW_S
            while time.monotonic() < end:
                await asyncio.sleep(0.05)
                for rx, tx in pairs:
                    now = time.monotonic()
                    counts = {"rtp": (await self.rtp_received(rx))[0],
                              "dec": sum(s.frames for s in rx.find_sources(tx.identity))}
                    for k, n in counts.items():
                        if n > last[rx.identity, k][1]:
                            last[rx.identity, k] = (now, n)
                        stall[rx.identity, k] = max(stall[rx.identity, k],
                                                    now - last[rx.identity, k][0])
                    states.add((rx.identity, rx.pc.connectionState))
            s1 = await self.snapshot(pairs)
            heard = {rx.identity: rx.tone_power(tx.identity, tx.freq, AUDIO_WINDOW_S)
                     for rx, tx in pairs}
            dt = s1["t"] - s0["t"]
            exp = expected_loss(p)
            row = {"p": p, "expected": exp, "window_s": dt}
            sent_both = sum(s1[tx.identity]["sent"] - s0[tx.identity]["sent"]
                            for tx, _ in pairs)
            rtp_in = s1["room"].get("rtp_in", 0) - s0["room"].get("rtp_in", 0)
            row["hop1"] = 1 - rtp_in / sent_both if sent_both else None
            row["drops"] = {k: s1["drops"][k] - s0["drops"][k] for k in s1["drops"]}
            for rx, tx in pairs:
                d0, d1 = s0[rx.identity], s1[rx.identity]
                got, lost = d1["got"] - d0["got"], d1["lost"] - d0["lost"]
                sent = d1["sent"] - d0["sent"]
                frames = d1["frames"] - d0["frames"]
                row[rx.identity] = {
                    "rtp_loss": lost / (got + lost) if got + lost > 0 else None,
                    "rtp_got": got, "rtp_lost": lost, "sent": sent,
                    "decoded": frames, "decoded_loss": 1 - frames / sent if sent else None,
                    "stall_s": stall[rx.identity, "rtp"],
                    "decoded_stall_s": stall[rx.identity, "dec"], "tone": heard[rx.identity],
                    "closed": rx.close_code}
            rows.append(row)
            print("\nloss %2.0f %% each way (expected end to end %.1f %%): " % (
                p * 100, exp * 100) + "; ".join(
                "%s hears %s: RTP loss %.1f %% (%d of %d), longest gap between packets"
                " %.2f s; decoded %d of %d sent (%.1f %% missing), longest gap %.2f s,"
                " tone %.3f" % (
                    rx.identity, tx.identity, 100 * (row[rx.identity]["rtp_loss"] or 0),
                    row[rx.identity]["rtp_lost"],
                    row[rx.identity]["rtp_got"] + row[rx.identity]["rtp_lost"],
                    row[rx.identity]["stall_s"],
                    row[rx.identity]["decoded"], row[rx.identity]["sent"],
                    100 * (row[rx.identity]["decoded_loss"] or 0),
                    row[rx.identity]["decoded_stall_s"],
                    row[rx.identity]["tone"]) for rx, tx in pairs)
                + "; first hop ~%.1f %% (room rtp_in, 200 ms stale); iptables dropped"
                " in %d, out %d" % (
                    100 * (row["hop1"] or 0), row["drops"]["in"], row["drops"]["out"]),
                flush=True)
            # the call is up: both connections connected all along, socket open
            self.assertEqual({st for _, st in states}, {"connected"}, states)
            for rx, tx in pairs:
                r = row[rx.identity]
                self.assertIsNone(r["closed"], (p, rx.identity))
                self.assertIsNotNone(r["rtp_loss"], (p, rx.identity))
                lo, hi = LOSS_BAND[0] * exp, LOSS_BAND[1] * exp
                self.assertTrue(lo <= r["rtp_loss"] <= hi,
                                "%s hearing %s at %.0f %% loss each way: %.1f %% lost end to"
                                " end, expected %.1f %% (band %.1f-%.1f %%): %s" % (
                                    rx.identity, tx.identity, p * 100, r["rtp_loss"] * 100,
                                    exp * 100, lo * 100, hi * 100, json.dumps(row)))
                self.assertLess(r["stall_s"], MAX_STALL_S, row)
                self.assertGreater(r["tone"], HEARD / 4, row)
            await a.ping(5)
            await b.ping(5)

        # Loss lifted: clean audio both ways again, nothing left behind.
        self.ns.set_loss(0)
        await asyncio.sleep(2.0)
        s0 = await self.snapshot(pairs)
        await asyncio.sleep(3.0)
        s1 = await self.snapshot(pairs)
        for rx, tx in pairs:
            lost = s1[rx.identity]["lost"] - s0[rx.identity]["lost"]
            got = s1[rx.identity]["got"] - s0[rx.identity]["got"]
            self.assertEqual(lost, 0, (rx.identity, got))
            self.assertGreater(got, 100, rx.identity)
            self.assertGreater(rx.tone_power(tx.identity, tx.freq, 2.0), HEARD, rx.identity)
        room = s1["room"]
        for k in ("drop_unknown_ssrc", "drop_malformed", "drop_srtp"):
            self.assertEqual(room.get(k, 0) - base["room"].get(k, 0), 0, (k, room))
        for p in self.peers:
            self.assertEqual(p.errors, [], p.identity)
            self.assertEqual(p.violations, [], p.identity)


# --------------------------------------------------------------------------
# Video: headless Chromium


# Installed in each page: window.sfu = {...}; resolves after join().
PAGE_JS = r"""
(async () => {
  const { SfuClient } = await import('/web/sfu-client.js');
  const client = new SfuClient({ wsUrl: %(ws_url)s });
  const s = window.sfu = { client, errors: [], closed: null, states: [], videos: [] };
  client.addEventListener('error', (e) => s.errors.push(String(e.detail.error)));
  client.addEventListener('close', (e) => { s.closed = e.detail; });
  client.addEventListener('connection-state', (e) => s.states.push(e.detail.state));
  client.addEventListener('track', (e) => {
    if (e.detail.kind !== 'video') return;
    const v = document.createElement('video');
    v.muted = true; v.autoplay = true; v.playsInline = true;
    v.srcObject = new MediaStream([e.detail.track]);
    document.body.append(v);
    v.play().catch((err) => s.errors.push('play: ' + err));
    s.videos.push({ trackId: e.detail.trackId,
                    mid: e.detail.transceiver ? e.detail.transceiver.mid : null });
  });
  // sfu.inbound(), sfu.outbound(): per video m-line (pagejs.py)
  %(video_stats)s
  s.stats = async () => {
    const out = { t: performance.now(), inbound: null, outbound: [] };
    if (!client.pc) return out;
    (await client.pc.getStats()).forEach((r) => {
      if (r.kind !== 'video') return;
      if (r.type === 'inbound-rtp' && !out.inbound) {
        out.inbound = { framesDecoded: r.framesDecoded || 0, frameWidth: r.frameWidth || 0,
          frameHeight: r.frameHeight || 0, packetsReceived: r.packetsReceived || 0,
          packetsLost: r.packetsLost || 0, nackCount: r.nackCount || 0,
          pliCount: r.pliCount || 0, firCount: r.firCount || 0,
          keyFramesDecoded: r.keyFramesDecoded || 0, framesDropped: r.framesDropped || 0,
          freezeCount: r.freezeCount || 0, totalFreezesDuration: r.totalFreezesDuration || 0,
          retransmittedPacketsReceived: r.retransmittedPacketsReceived || 0 };
      } else if (r.type === 'outbound-rtp') {
        out.outbound.push({ rid: r.rid || '-', framesEncoded: r.framesEncoded || 0,
          framesSent: r.framesSent || 0, frameWidth: r.frameWidth || 0,
          frameHeight: r.frameHeight || 0, nackCount: r.nackCount || 0,
          pliCount: r.pliCount || 0, packetsSent: r.packetsSent || 0,
          retransmittedPacketsSent: r.retransmittedPacketsSent || 0,
          targetBitrate: r.targetBitrate || 0,
          qualityLimitationReason: r.qualityLimitationReason || null });
      }
    });
    out.outbound.sort((x, y) => String(x.rid).localeCompare(String(y.rid)));
    return out;
  };
  const welcome = await client.join(%(join)s);
  return { sid: welcome.participant.sid };
})()
"""


class VideoTestBase(NetTestBase):
    sfud_args = ("--web-root", WEB_DIR)

    async def asyncTearDown(self):
        # browsers first (their pages hold the sessions), then the rest
        for b in list(self.browsers.values()):
            await asyncio.to_thread(b.close)
        await super().asyncTearDown()

    async def join_page(self, name, **join):
        from chromium import Chromium
        origin = "http://%s:%d" % (self.ns.inner, self.sfud.port)
        b = await asyncio.to_thread(Chromium, extra_args=[
            "--autoplay-policy=no-user-gesture-required",
            # a page from 10.77.S.2 is no secure context: no getUserMedia
            "--unsafely-treat-insecure-origin-as-secure=" + origin])
        self.browsers[name] = b
        self.addCleanup(b.close)
        self.pages[name] = await asyncio.to_thread(b.open, origin + "/web/index.html")
        await self.before_join(name)
        join = dict(room=self.room["room_id"], token=self.token(name), **join)
        return await self.js(name, PAGE_JS % {"ws_url": json.dumps(self.ws_url),
                                              "video_stats": VIDEO_STATS_JS,
                                              "join": json.dumps(join)}, timeout=30)

    async def before_join(self, name):
        """The page `name` is open, its client not yet started."""

    async def js(self, name, expression, timeout=15.0):
        return await asyncio.to_thread(self.pages[name].evaluate, expression, True, timeout)

    async def stats(self, name):
        return await self.js(name, "sfu.stats()")

    async def inbound(self, name="B"):
        return (await self.stats(name))["inbound"]

    async def window(self, seconds, name="B"):
        """B's decoded frame rate over `seconds` (page clock), and what
        changed meanwhile in B's inbound and A's outbound stats."""
        s0, a0, r0 = await self.stats(name), await self.stats("A"), self.room_stats()
        await asyncio.sleep(seconds)
        s1, a1, r1 = await self.stats(name), await self.stats("A"), self.room_stats()
        i0, i1 = s0["inbound"], s1["inbound"]
        dt = (s1["t"] - s0["t"]) / 1000
        d = {k: i1[k] - i0[k] for k in i1 if isinstance(i1[k], (int, float))}
        d["fps"] = d["framesDecoded"] / dt
        d["seconds"] = dt
        d["size"] = "%dx%d" % (i1["frameWidth"], i1["frameHeight"])
        d["a_out"] = {o1["rid"]: {k: o1[k] - o0.get(k, 0) for k in
                                  ("framesEncoded", "nackCount", "pliCount",
                                   "retransmittedPacketsSent", "packetsSent")}
                      for o1 in a1["outbound"]
                      for o0 in [next((o for o in a0["outbound"] if o["rid"] == o1["rid"]), {})]}
        d["a_fps"] = {rid: o["framesEncoded"] / dt for rid, o in d["a_out"].items()}
        v0, v1 = r0["packets"]["video"], r1["packets"]["video"]
        d["room"] = {k: v1[k] - v0[k] for k in v1}
        return d

    async def diagnostics(self):
        out = ["--- sfud log (last 60 lines) ---", "".join(self.sfud.log[-60:])]
        for name, page in self.pages.items():
            try:
                out.append("--- %s: %s" % (name, json.dumps(await self.js(
                    name, "({states: sfu.states, errors: sfu.errors, closed: sfu.closed})",
                    timeout=5))))
                out.append(json.dumps(await self.stats(name)))
            except Exception as e:
                out.append("(%s unavailable: %r)" % (name, e))
            out += ["%s console %s: %s" % (name, c["type"], c["text"]) for c in page.console[-30:]]
        return "\n".join(out)

    async def run_scenario(self, coro):
        try:
            await coro
        except BaseException:
            print("\n" + await self.diagnostics(), file=sys.stderr)
            raise

    async def assert_pages_ok(self):
        for name in self.pages:
            st = await self.js(name, "({errors: sfu.errors, closed: sfu.closed,"
                               " state: sfu.client.state})")
            self.assertEqual((st["errors"], st["closed"]), ([], None), (name, st))


class VideoLossTest(VideoTestBase):
    async def test_video_frame_rate_through_5pct_loss(self):
        await self.run_scenario(self._video_loss())

    async def _video_loss(self):
        await self.join_page("B")
        await self.join_page("A", publishVideo=True, simulcast=False, videoCodec="VP8",
                             videoConstraints={"width": {"exact": 640},
                                               "height": {"exact": 480},
                                               "frameRate": {"ideal": 30}},
                             degradationPreference="maintain-framerate")

        async def decoding():
            i = await self.inbound()
            return i and i["framesDecoded"] > 0
        await self.until(decoding, 30, "B decoding A's video", 0.2)
        await asyncio.sleep(3.0)         # past the start: rate settled
        clean = await self.window(VIDEO_WINDOW_S)
        self.ns.set_loss(0.05)
        await asyncio.sleep(2.0)
        lossy = await self.window(VIDEO_WINDOW_S)
        drops = self.ns.drops()
        self.ns.set_loss(0)
        for what, w in (("no loss", clean), ("5 % loss each way", lossy)):
            print("\nvideo, %s: B decodes %.1f fps at %s (A encodes %s fps) over %.1f s; B: %d"
                  " packets, %d lost, %d NACK, %d PLI, %d RTX received, %d freezes (%.2f s),"
                  " %d keyframes; A: %d NACK, %d PLI, %d RTX sent; room: %s" % (
                      what, w["fps"], w["size"],
                      "/".join("%.1f" % f for f in w["a_fps"].values()), w["seconds"],
                      w["packetsReceived"], w["packetsLost"], w["nackCount"], w["pliCount"],
                      w["retransmittedPacketsReceived"], w["freezeCount"],
                      w["totalFreezesDuration"], w["keyFramesDecoded"],
                      sum(o["nackCount"] for o in w["a_out"].values()),
                      sum(o["pliCount"] for o in w["a_out"].values()),
                      sum(o["retransmittedPacketsSent"] for o in w["a_out"].values()),
                      json.dumps(w["room"])), flush=True)
        print("video: ratio %.3f (>= %.2f); iptables dropped in %d, out %d" % (
            lossy["fps"] / clean["fps"], MIN_FPS_RATIO, drops["in"], drops["out"]), flush=True)
        self.assertGreater(clean["fps"], 10, clean)
        self.assertGreater(drops["in"] + drops["out"], 0.02 * lossy["packetsReceived"], drops)
        # the loss really hit the video, and was repaired
        self.assertGreater(lossy["nackCount"] + lossy["room"]["nacks_received"], 0, lossy)
        self.assertGreaterEqual(lossy["fps"], MIN_FPS_RATIO * clean["fps"],
                                "frame rate with 5 %% loss %.1f < %.0f %% of %.1f without" % (
                                    lossy["fps"], MIN_FPS_RATIO * 100, clean["fps"]))
        await self.assert_pages_ok()


if __name__ == "__main__":
    main()

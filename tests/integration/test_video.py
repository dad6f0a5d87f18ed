#!/usr/bin/env python3
"""Video through sfud: simulcast from headless Chromium to Chromium and aiortc.

Chromium "A" publishes its fake camera (1280x720 requested) through
web/sfu-client.js as VP8 simulcast, three encodings listed low to high
(rids q, h, f: scaleResolutionDownBy 4, 2, 1). Chromium "B" and an aiortc
peer "py" subscribe. What is asserted is what they decode:

* B: getStats() inbound-rtp video, sampled in the page every 100 ms
  (framesDecoded, frameWidth/frameHeight); py: the av.VideoFrame objects
  aiortc decodes with libvpx (frame.width/height).
* With no request both get the top layer: the width A's outbound-rtp
  reports for rid f at that moment.
* B asks for `video_quality` low: B's decoded width becomes q's within a
  few seconds, while py stays on f (requests are per subscriber), and the
  longest gap between two increments of B's framesDecoded around the switch
  stays under MAX_GAP_S. Then high: back to f, same bound.
* B pauses: framesDecoded stops; resumes: it grows again, on f.
* `video_quality` naming no video sent to B (a made-up id, an audio track)
  is answered `error` code not_found.
* A single-layer VP8 publisher (no simulcast) reaches B too.
* DynacastTest: A publishes to B alone; the layers B does not take stop
  being encoded (the server's subscribed_layers), A's uplink rate with
  and without B on the top layer is printed and compared; asked for
  again, the top layer is back within a second.
* SvcTest: A publishes VP9 L3T3_KEY (one stream, three spatial layers);
  B asks low, medium, high and decodes 320, 640, 1280 wide.
* Av1TemporalTest: A publishes AV1 L1T3; B asks low and decodes about a
  quarter of the frames, then high and decodes them all again.
* H264TemporalTest: the same with H.264 L1T3, whose temporal ids reach
  the server in the Dependency Descriptor only.
* Av1SvcTest: A publishes AV1 L3T3_KEY with the Dependency Descriptor
  (960x540: one stream, three spatial layers); B asks low, medium, high
  and decodes 240, 480, 960 wide, and goes on decoding at each.
* E2eeTest: A and B encrypt end to end under one passphrase
  (web/e2ee.js), C has another: A and B see and hear each other, C decodes
  nothing of what it receives, and B's layer switches still work.
* ScreenShareTest: A publishes a camera and shares its screen
  (getDisplayMedia(), answered by the fake devices); B decodes both video
  tracks, each at the size A sends it, listed with their sources; once A
  stops sharing, B decodes the camera only.

DemoVideoTest drives web/index.html + demo.js through the UI: a camera
turned on mid-call (a client re-offer), the tile on the other page, its
quality menu (Low -> the low layer plays), camera off ("no video") and on,
a screen share (a tile of its own) started and stopped.

A publishes with degradationPreference 'maintain-resolution': on this
2-core machine Chromium's CPU adaptation would otherwise scale the layers
down while two browsers and aiortc encode and decode 720p, and the layer
widths would drift during the test. Chromium's bandwidth estimate starts
low, so f (1.5 Mb/s) may not be sent at first: the test waits (up to
LAYERS_UP_TIMEOUT) for A's outbound-rtp f to have framesEncoded > 0 and
prints how long it took.

Measured here (Chromium 156, release build, 2 cores), from the printed
summaries: layers 320x180, 640x360, 1280x720 at ~20 fps (the fake camera's
rate). All three encoding ~1 s after A's join now that the server sends
REMB to publishers (~21 s before: Chromium's loss-based ramp-up). First
frame decoded by B and py ~2.1-2.3 s after A's join (its page load and
join included). A requested switch shows in B's decoded frames within
0.07-0.7 s (aiortc: 0.1-0.7 s), with the longest gap between decoded
frames 0.07-0.13 s; resume after pause 0.06-0.6 s. MAX_GAP_S (2.5 s)
leaves room for the keyframe round trip (the server asks for one at most
every 500 ms per layer) under AddressSanitizer.

Usage: test_video.py --sfud PATH --room PATH
(CHROMIUM=... overrides the browser binary, see chromium.py)
"""
import asyncio
import collections
import json
import os
import re
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
WEB_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "web"))
sys.path.insert(0, HERE)
from sfutest import Sfud, main  # noqa: E402
from aiortc_peer import Peer  # noqa: E402
from chromium import Chromium  # noqa: E402
from pagejs import SENT_JS, SOURCES_JS, VIDEO_STATS_JS  # noqa: E402

ARGS = None
RIDS = ("q", "h", "f")          # the client's SIMULCAST_ENCODINGS, low to high
CAPTURE = {"width": {"exact": 1280}, "height": {"exact": 720}, "frameRate": {"ideal": 30}}
MAX_GAP_S = 2.5                 # longest decode gap allowed around a switch
MAX_SWITCH_S = 5.0              # request -> first frame of the new layer
# Generous: the room may run under AddressSanitizer on 2 cores.
LAYERS_UP_TIMEOUT = 35.0
FIRST_FRAME_TIMEOUT = 30.0
SWITCH_WAIT = 15.0
# Video that plays on decodes more frames within this; how soon it does is
# the machine's (Chromium's decoder under a loaded sanitized room), not a bound.
PLAYS_ON_TIMEOUT = 10.0

# Installed in each page: window.sfu = {client, log, ...}; returns after
# join() resolved. A 100 ms sampler records the inbound video stats of the
# page (B) so that gaps and switches are measured in the page, not through
# CDP round trips.
PAGE_JS = r"""
(async () => {
  const { SfuClient } = await import('/web/sfu-client.js');
  const client = new SfuClient({ wsUrl: %(ws_url)s, ...%(client)s });
  const s = window.sfu = { client, log: [], videos: [], samples: [], tJoin: null,
                           tFirstFrame: null };
  const note = (type) => (e) => {
    const d = e.detail || {};
    s.log.push({ type, t: performance.now(),
                 identity: d.identity || (d.participant && d.participant.identity) || null,
                 kind: d.kind || null, trackId: d.trackId || null, sid: d.sid || null,
                 state: d.state || null,
                 error: d.error ? `${d.error.message} (code ${d.error.code})` : null });
  };
  for (const t of ['participant-joined', 'participant-left', 'participant-updated',
                   'connection-state', 'error', 'track', 'track-ended', 'close']) {
    client.addEventListener(t, note(t));
  }
  // Render what arrives, as a page would.
  client.addEventListener('track', (e) => {
    const d = e.detail;
    if (d.kind === 'audio') { // played, so that its decoder runs
      const a = new Audio();
      a.srcObject = new MediaStream([d.track]);
      a.play().catch((err) => s.log.push({ type: 'play-error', error: String(err) }));
      document.body.append(a);
      return;
    }
    if (d.kind !== 'video') return;
    const v = document.createElement('video');
    v.muted = true; v.autoplay = true; v.playsInline = true;
    v.width = 320; v.height = 180;
    v.srcObject = new MediaStream([d.track]);
    v.dataset.trackId = d.trackId; v.dataset.sid = d.sid;
    document.body.append(v);
    v.play().catch((err) => s.log.push({ type: 'play-error', error: String(err) }));
    s.videos.push({ trackId: d.trackId, sid: d.sid, identity: d.identity,
                    mid: d.transceiver ? d.transceiver.mid : null, trackLabel: d.track.id });
  });
  // sfu.inbound(), sfu.outbound() (pagejs.py)
  %(video_stats)s
  s.sdp = () => ({ local: client.pc?.localDescription?.sdp || null,
                   remote: client.pc?.remoteDescription?.sdp || null });
  // Ask the server for a layer / pause; resolves with send and ack times.
  s.quality = async (trackId, opts) => {
    const tReq = performance.now();
    const ack = await client.setVideoQuality(trackId, opts);
    return { tReq, tAck: performance.now(), ack };
  };
  // A request that must fail: the error's code.
  s.qualityError = (trackId) => client.setVideoQuality(trackId, { quality: 'low' })
    .then((ack) => ({ ok: ack }), (err) => ({ code: err.code, message: err.message }));
  s.sampler = setInterval(async () => {
    try {
      const t = performance.now();
      const st = await s.inbound();
      if (!st.length) return;
      const r = st[0];
      if (s.tFirstFrame === null && r.framesDecoded > 0) s.tFirstFrame = t;
      s.samples.push({ t, fd: r.framesDecoded, w: r.frameWidth, h: r.frameHeight,
                       kf: r.keyFramesDecoded, n: st.length });
      if (s.samples.length > 6000) s.samples.splice(0, 1000);
    } catch (err) { /* closed meanwhile */ }
  }, 100);
  s.tJoin = performance.now();
  const welcome = await client.join(%(join)s);
  return { sid: welcome.participant.sid, identity: welcome.participant.identity,
           others: (welcome.participants || []).map((p) => p.identity) };
})()
"""


class VideoSink:
    """What aiortc decoded from one video m-line."""

    def __init__(self, mid, sid, track_id):
        self.mid, self.sid, self.track_id = mid, sid, track_id
        self.frames = 0
        self.first_t = None
        self.last_t = None
        self.sizes = collections.Counter()     # (w, h) -> frames
        self.recent = collections.deque(maxlen=600)  # (t, w, h)
        self.ended = False

    def add(self, frame):
        t = time.monotonic()
        self.frames += 1
        if self.first_t is None:
            self.first_t = t
        self.last_t = t
        self.sizes[(frame.width, frame.height)] += 1
        self.recent.append((t, frame.width, frame.height))

    def since(self, t0):
        return [(t, w, h) for (t, w, h) in self.recent if t >= t0]

    def summary(self):
        return {"mid": self.mid, "sid": self.sid, "track_id": self.track_id,
                "frames": self.frames, "sizes": {"%dx%d" % k: v for k, v in self.sizes.items()},
                "last": list(self.recent)[-1][1:] if self.recent else None,
                "ended": self.ended}


class VideoPeer(Peer):
    """An aiortc listener that also decodes the video it is sent."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.video = {}                   # mid -> VideoSink

    def _on_track(self, track):
        if track.kind != "video":
            return super()._on_track(track)
        mid = next((t.mid for t in self.pc.getTransceivers()
                    if t.receiver.track is track), None)
        ml = next((m for m in self.remote_mlines if m["mid"] == mid), {})
        sink = VideoSink(mid, ml.get("sid"), ml.get("track_id"))
        self.video[mid if mid is not None else "track:" + track.id] = sink
        self._record_tasks.append(asyncio.ensure_future(self._record_video(track, sink)))

    async def _record_video(self, track, sink):
        from aiortc.mediastreams import MediaStreamError
        try:
            while True:
                sink.add(await track.recv())
        except MediaStreamError:
            pass
        finally:
            sink.ended = True

    def video_from(self, sid):
        return next((s for s in self.video.values() if s.sid == sid), None)


def video_sections(sdp):
    """The video m-sections of an SDP, without candidates (for reports)."""
    if not sdp:
        return []
    out = []
    for sec in re.split(r"\r?\n(?=m=)", sdp):
        if sec.startswith("m=video"):
            out.append("\n".join(l for l in sec.splitlines()
                                 if not l.startswith(("a=candidate", "a=fingerprint",
                                                      "a=ice-"))))
    return out


def decode_gaps(samples, t0, t1):
    """Longest time (ms) between two successive framesDecoded increments
    among page samples with t0 <= t <= t1; the gap from t0 to the first
    increment counts too."""
    prev_fd, last_inc, longest = None, t0, 0.0
    for s in samples:
        if s["t"] < t0 - 1000:
            continue
        if prev_fd is not None and s["fd"] > prev_fd and s["t"] >= t0:
            longest = max(longest, s["t"] - last_inc)
            last_inc = s["t"]
        prev_fd = s["fd"]
        if s["t"] > t1:
            break
    return longest


class VideoTestBase(unittest.IsolatedAsyncioTestCase):
    """sfud serving web/, two headless Chromiums (A publishes, B subscribes;
    separate browsers so that both pages are foreground tabs and B's 100 ms
    sampler is not throttled), aiortc peers in self.peers."""

    SFUD_ARGS = ()    # more sfud settings, for a class of its own

    def setUp(self):
        self.browsers = {}
        self.pages = {}
        self.peers = []
        self.sfud = Sfud(ARGS.sfud, ARGS.room, "--web-root", WEB_DIR, *self.SFUD_ARGS)
        self.addCleanup(self._stop_sfud)
        st, self.room = self.sfud.request("POST", "/v1/rooms", {"name": "video"})
        self.assertEqual(st, 201, self.room)
        self.ws_url = self.room["ws_url"]
        self.origin = "http://127.0.0.1:%d" % self.sfud.port

    def _stop_sfud(self):
        try:
            self.sfud.stop()
        finally:
            self.sfud.proc.stderr.close()
        self.sfud.assert_clean_log()

    def _close_browser(self, b):
        tmp = b.tmp_dir
        b.close()
        self.assertFalse(os.path.exists(tmp), "chromium temp dir left behind")
        self.assertEqual(b._own_pids(), [], "chromium processes left behind")

    async def asyncTearDown(self):
        for p in self.peers:
            await p.close()
        for p in self.peers:
            self.assertEqual(p.errors, [], p.identity)
            self.assertEqual(p.violations, [], p.identity)

    def token(self, identity):
        st, j = self.sfud.request("POST", "/v1/rooms/%s/tokens" % self.room["room_id"],
                                  {"identity": identity})
        self.assertEqual(st, 201, j)
        return j["token"]

    async def open_page(self, name):
        b = await asyncio.to_thread(
            Chromium, extra_args=["--autoplay-policy=no-user-gesture-required"])
        self.browsers[name] = b
        self.addCleanup(self._close_browser, b)
        self.pages[name] = await asyncio.to_thread(b.open, self.origin + "/web/index.html")
        return self.pages[name]

    async def join_page(self, name, client=None, **join):
        """Open a Chromium for `name`, join the room through sfu-client.js
        (`client`: more SfuClient options)."""
        page = await self.open_page(name)
        join = dict(room=self.room["room_id"], token=self.token(name), **join)
        return await self.js(name, PAGE_JS % {"ws_url": json.dumps(self.ws_url),
                                              "client": json.dumps(client or {}),
                                              "video_stats": VIDEO_STATS_JS,
                                              "join": json.dumps(join)}, timeout=30)

    async def js(self, name, expression, timeout=15.0):
        return await asyncio.to_thread(self.pages[name].evaluate, expression, True, timeout)

    async def js_until(self, name, expression, timeout=15.0, what=None):
        end = time.monotonic() + timeout
        while True:
            v = await self.js(name, expression)
            if v:
                return v
            if time.monotonic() >= end:
                self.fail("timed out (%.0f s) waiting for %s" % (timeout, what or expression))
            await asyncio.sleep(0.1)

    async def until(self, pred, timeout=15.0, what="condition", step=0.1):
        end = time.monotonic() + timeout
        while True:
            v = await pred()
            if v:
                return v
            if time.monotonic() >= end:
                self.fail("timed out (%.0f s) waiting for %s" % (timeout, what))
            await asyncio.sleep(step)

    async def outbound(self, name="A"):
        return {r["rid"] or "-": r for r in await self.js(name, "sfu.outbound()")}

    async def video_track(self, sid, name="B"):
        """The video track of participant `sid` as `name`'s client lists it,
        once it does."""
        return await self.js_until(
            name, "(() => { const p = sfu.client.getParticipants().find((x) => x.sid === %s);"
            " return p && p.tracks.find((t) => t.kind === 'video'); })()" % json.dumps(sid),
            timeout=15, what="%s's video track in %s's participants" % (sid, name))

    async def inbound(self, name="B"):
        st = await self.js(name, "sfu.inbound()")
        return st[0] if st else None

    async def page_now(self, name="B"):
        return await self.js(name, "performance.now()")

    async def samples(self, since, name="B"):
        return await self.js(name, "sfu.samples.filter((s) => s.t >= %f)" % since)

    def room_stats(self):
        st, j = self.sfud.request("GET", "/v1/rooms/%s" % self.room["room_id"])
        return j.get("stats", j) if isinstance(j, dict) else j

    async def diagnostics(self):
        out = ["--- sfud log (last 80 lines) ---", "".join(self.sfud.log[-80:])]
        try:
            out += ["--- GET /v1/rooms/{id} ---", json.dumps(self.room_stats())]
        except Exception as e:
            out.append("(room unavailable: %r)" % e)
        for name, page in self.pages.items():
            try:
                info = await self.js(name, "window.sfu ? {state: sfu.client.state, log: sfu.log,"
                                     " videos: sfu.videos, participants:"
                                     " sfu.client.getParticipants()} : null", timeout=5)
                out += ["--- %s client ---" % name, json.dumps(info, indent=1)]
                out += ["--- %s outbound-rtp video ---" % name,
                        json.dumps(await self.js(name, "window.sfu ? sfu.outbound() : null",
                                                 timeout=5), indent=1)]
                out += ["--- %s inbound-rtp video ---" % name,
                        json.dumps(await self.js(name, "window.sfu ? sfu.inbound() : null",
                                                 timeout=5), indent=1)]
                out += ["--- %s last samples ---" % name, json.dumps(await self.js(
                    name, "window.sfu ? sfu.samples.slice(-30) : null", timeout=5))]
                sdp = await self.js(name, "window.sfu ? sfu.sdp() : {}", timeout=5) or {}
                for which in ("local", "remote"):
                    for sec in video_sections(sdp.get(which)):
                        out += ["--- %s %s description, video ---" % (name, which), sec]
            except Exception as e:
                out.append("(%s unavailable: %r)" % (name, e))
            out += ["--- %s console ---" % name] + [
                "%s: %s" % (c["type"], c["text"]) for c in page.console[-40:]]
        for p in self.peers:
            out += ["--- %s ---" % p.identity,
                    json.dumps({k: v.summary() for k, v in getattr(p, "video", {}).items()}),
                    "errors=%r violations=%r" % (p.errors, p.violations)]
            if p.pc is not None and p.pc.remoteDescription is not None:
                for sec in video_sections(p.pc.remoteDescription.sdp):
                    out += ["--- %s remote description, video ---" % p.identity, sec]
        return "\n".join(out)

    async def run_scenario(self, coro):
        try:
            await coro
        except BaseException:
            print("\n" + await self.diagnostics(), file=sys.stderr)
            raise

    async def wait_layers(self, rids, timeout=LAYERS_UP_TIMEOUT):
        """Until A's outbound-rtp has every rid encoding frames at a known
        size; returns (seconds waited, {rid: stats})."""
        t0 = time.monotonic()

        async def up():
            ob = await self.outbound()
            ok = all(ob.get(r, {}).get("framesEncoded", 0) > 0
                     and ob.get(r, {}).get("frameWidth", 0) > 0 for r in rids)
            return ob if ok else None
        ob = await self.until(up, timeout, "A sending every layer (%s)" % ",".join(rids), 0.2)
        return time.monotonic() - t0, ob

    def assert_clean_console(self):
        for name, page in self.pages.items():
            bad = [c for c in page.console if c["type"] in ("error", "exception")]
            self.assertEqual(bad, [], name)


class SimulcastTest(VideoTestBase):
    async def test_simulcast_vp8_to_chromium_and_aiortc(self):
        await self.run_scenario(self._simulcast())

    async def _simulcast(self):
        room_id = self.room["room_id"]
        fig = {}

        # The subscribers first: B (listener) and py (aiortc listener).
        b = await self.join_page("B")
        self.assertEqual(b["identity"], "B")
        py = VideoPeer(self.ws_url, room_id, self.token("py"), "py")
        self.peers.append(py)
        await py.join()
        await py.wait_connected(timeout=20)

        # A publishes its camera: VP8 simulcast, 3 layers low -> high.
        t_a = time.monotonic()
        a = await self.join_page("A", publishVideo=True, simulcast=True,
                                 videoConstraints=CAPTURE, videoCodec="VP8",
                                 degradationPreference="maintain-resolution")
        self.assertEqual(sorted(a["others"]), ["B", "py"])
        sdp = await self.js_until(   # (join() resolves at welcome, before the offer)
            "A", "sfu.client.pc.localDescription && sfu.client.pc.localDescription.sdp",
            what="A's offer")
        vid = video_sections(sdp)
        self.assertEqual(len(vid), 1, sdp)
        self.assertIn("a=simulcast:send q;h;f", vid[0])
        ans = video_sections(await self.js_until(
            "A", "sfu.client.pc.remoteDescription && sfu.client.pc.remoteDescription.sdp",
            what="A's answer"))
        self.assertEqual(len(ans), 1)
        for line in ("a=rid:q recv", "a=rid:h recv", "a=rid:f recv",
                     "a=simulcast:recv q;h;f", "a=recvonly"):
            self.assertIn(line, ans[0])
        for fb in ("nack", "nack pli", "ccm fir", "goog-remb"):
            self.assertRegex(ans[0], r"(?m)^a=rtcp-fb:\d+ %s\s*$" % re.escape(fb))
        self.assertRegex(ans[0], r"(?m)^a=rtpmap:\d+ VP8/90000")
        self.assertRegex(ans[0], r"(?m)^a=rtpmap:\d+ rtx/90000")

        # The server announces A's video track to the others.
        a_sid = a["sid"]
        track = await self.video_track(a_sid)
        self.assertEqual(track["codec"], "VP8")
        track_id = track["track_id"]
        self.assertRegex(track_id, r"^TR_")

        # Chromium's bandwidth estimate ramps up: wait for all three layers.
        fig["layers_up_s"], ob = await self.wait_layers(RIDS)
        widths = {r: ob[r]["frameWidth"] for r in RIDS}
        heights = {r: ob[r]["frameHeight"] for r in RIDS}
        self.assertTrue(widths["q"] < widths["h"] < widths["f"], ob)
        self.assertEqual(ob["f"]["codec"], "video/VP8", ob)
        fig["widths"] = widths

        # B and py decode A's video, on the top layer, with no request.
        await self.js_until("B", "sfu.tFirstFrame !== null", FIRST_FRAME_TIMEOUT,
                            "B decoding A's video")
        log_track = await self.js(
            "B", "sfu.log.find((e) => e.type === 'track' && e.kind === 'video')")
        self.assertEqual((log_track["sid"], log_track["trackId"], log_track["identity"]),
                         (a_sid, track_id, "A"))
        fig["b_first_frame_s"] = (await self.js("B", "sfu.tFirstFrame - performance.now()")
                                  ) / 1000 + time.monotonic() - t_a

        async def b_on(width):
            r = await self.inbound()
            return r if r and r["frameWidth"] == width else None
        top = (await self.outbound())["f"]["frameWidth"]
        r = await self.until(lambda: b_on(top), 20, "B decoding the f layer (width %d)" % top)
        self.assertEqual(r["codec"], "video/VP8")
        self.assertEqual(r["frameHeight"], (await self.outbound())["f"]["frameHeight"])
        fd0 = r["framesDecoded"]
        await self.until(lambda: self._grown(fd0 + 6), PLAYS_ON_TIMEOUT,
                         "B decoding 5 more frames")

        await py.wait_until(lambda: py.video_from(a_sid) and py.video_from(a_sid).frames,
                            FIRST_FRAME_TIMEOUT, what="py decoding A's video")
        sink = py.video_from(a_sid)
        fig["py_first_frame_s"] = sink.first_t - t_a
        self.assertEqual(sink.track_id, track_id)
        await py.wait_until(lambda: sink.recent and sink.recent[-1][1] == top, 20,
                            what="py decoding the f layer (width %d)" % top)

        # B asks for low: B switches to q, py stays on f. (B must be on f
        # here, or the switch measured below would be none; B's bandwidth
        # estimate may have taken it lower for a while on a loaded machine)
        await self.until(lambda: b_on(top), 20, "B on the f layer before asking for low")
        t_req = await self.page_now()
        q = await self.js("B", "sfu.quality(%s, {quality: 'low'})" % json.dumps(track_id))
        self.assertEqual(q["ack"]["type"], "ack")
        low = (await self.outbound())["q"]["frameWidth"]
        await self.until(lambda: b_on(low), SWITCH_WAIT, "B on the q layer (width %d)" % low)
        await asyncio.sleep(2.0)
        smp = await self.samples(t_req - 1000)
        first_low = next((s for s in smp if s["t"] >= q["tReq"] and s["w"] == low), None)
        self.assertIsNotNone(first_low, smp)
        fig["switch_low_s"] = (first_low["t"] - q["tReq"]) / 1000
        fig["gap_low_s"] = decode_gaps(smp, q["tReq"], smp[-1]["t"]) / 1000
        self.assertLessEqual(fig["switch_low_s"], MAX_SWITCH_S, fig)
        self.assertLess(fig["gap_low_s"], MAX_GAP_S, fig)
        self.assertEqual(smp[-1]["w"], low, smp[-5:])
        t_py = time.monotonic()
        await asyncio.sleep(1.0)
        py_sizes = {w for (_, w, _) in sink.since(t_py)}
        self.assertEqual(py_sizes, {top}, "py should stay on f while B is on q")

        # ... and back to high.
        t_req = await self.page_now()
        q = await self.js("B", "sfu.quality(%s, {quality: 'high'})" % json.dumps(track_id))
        top = (await self.outbound())["f"]["frameWidth"]
        await self.until(lambda: b_on(top), SWITCH_WAIT, "B back on f (width %d)" % top)
        await asyncio.sleep(2.0)
        smp = await self.samples(t_req - 1000)
        first_high = next((s for s in smp if s["t"] >= q["tReq"] and s["w"] == top), None)
        self.assertIsNotNone(first_high, smp)
        fig["switch_high_s"] = (first_high["t"] - q["tReq"]) / 1000
        fig["gap_high_s"] = decode_gaps(smp, q["tReq"], smp[-1]["t"]) / 1000
        self.assertLessEqual(fig["switch_high_s"], MAX_SWITCH_S, fig)
        self.assertLess(fig["gap_high_s"], MAX_GAP_S, fig)

        # Pause: nothing more is decoded (after in-flight frames drain).
        q = await self.js("B", "sfu.quality(%s, {paused: true})" % json.dumps(track_id))
        self.assertEqual(q["ack"]["type"], "ack")
        await asyncio.sleep(1.5)
        fd1 = (await self.inbound())["framesDecoded"]
        t_py = time.monotonic()
        await asyncio.sleep(2.5)
        fd2 = (await self.inbound())["framesDecoded"]
        self.assertEqual(fd2, fd1, "B still decoding while paused")
        self.assertGreater(len(sink.since(t_py)), 10, "py must not be paused by B")
        # Resume: decoding grows again, on the layer asked for (f).
        q = await self.js("B", "sfu.quality(%s, {paused: false})" % json.dumps(track_id))
        await self.until(lambda: self._grown(fd2 + 10), SWITCH_WAIT, "B decoding after resume")
        smp = await self.samples(q["tReq"])
        fig["resume_s"] = (next(s for s in smp if s["fd"] > fd2)["t"] - q["tReq"]) / 1000
        await self.until(lambda: b_on(top), SWITCH_WAIT, "B on f after resume")

        # A request naming no video sent to B is not_found.
        err = await self.js("B", "sfu.qualityError('TR_0000000000000000')")
        self.assertEqual(err.get("code"), "not_found", err)
        err = await self.js("B", "sfu.qualityError(%s)" % json.dumps(a_sid))
        self.assertEqual(err.get("code"), "not_found", err)

        errors = await self.js("B", "sfu.log.filter((e) => e.type === 'error')")
        self.assertEqual(errors, [])
        self.assert_clean_console()
        stats = self.room_stats()
        ob = await self.outbound()
        ib = await self.inbound()
        print("\nlayers (A outbound-rtp): " + ", ".join(
            "%s %dx%d %.0f fps %s" % (r, ob[r]["frameWidth"], ob[r]["frameHeight"],
                                      ob[r]["framesPerSecond"],
                                      ob[r]["qualityLimitationReason"]) for r in RIDS))
        print("all 3 layers encoding %.1f s after A's join; first frame decoded: B %.2f s,"
              " py %.2f s after A's join" % (fig["layers_up_s"], fig["b_first_frame_s"],
                                              fig["py_first_frame_s"]))
        print("B low: switched in %.2f s, longest decode gap %.2f s; high: %.2f s, gap %.2f s;"
              " resume after pause: %.2f s" % (fig["switch_low_s"], fig["gap_low_s"],
                                             fig["switch_high_s"], fig["gap_high_s"],
                                             fig["resume_s"]))
        print("B inbound: %d frames decoded (%d key), %d lost, %d NACK, %d PLI, %d freezes;"
              " py: %s" % (ib["framesDecoded"], ib["keyFramesDecoded"], ib["packetsLost"],
                           ib["nackCount"], ib["pliCount"], ib["freezeCount"],
                           sink.summary()["sizes"]))
        print("room packets: %s" % json.dumps(stats.get("packets") if isinstance(stats, dict)
                                              else stats))

    async def _grown(self, n):
        r = await self.inbound()
        return r if r and r["framesDecoded"] >= n else None


class SingleLayerTest(VideoTestBase):
    async def test_single_layer_vp8_reaches_chromium(self):
        await self.run_scenario(self._single())

    async def _single(self):
        await self.join_page("B")
        t_a = time.monotonic()
        a = await self.join_page("A", publishVideo=True, simulcast=False,
                                 videoConstraints=CAPTURE, videoCodec="VP8")
        vid = video_sections(await self.js_until(
            "A", "sfu.client.pc.localDescription && sfu.client.pc.localDescription.sdp",
            what="A's offer"))
        self.assertEqual(len(vid), 1)
        self.assertNotIn("a=simulcast", vid[0])
        self.assertNotIn("a=rid:", vid[0])

        track = await self.video_track(a["sid"])
        self.assertEqual(track["codec"], "VP8")
        await self.js_until("B", "sfu.tFirstFrame !== null", FIRST_FRAME_TIMEOUT,
                            "B decoding A's single-layer video")
        t_first = (await self.js("B", "sfu.tFirstFrame - performance.now()")) / 1000 \
            + time.monotonic() - t_a
        ob = await self.outbound()
        self.assertEqual(list(ob), ["-"], ob)          # one encoding, no rid

        async def same_size():
            r = await self.inbound()
            o = (await self.outbound())["-"]
            return r if r and r["frameWidth"] == o["frameWidth"] > 0 \
                and r["frameHeight"] == o["frameHeight"] else None
        r = await self.until(same_size, 20, "B decoding at A's size")
        self.assertEqual(r["codec"], "video/VP8")
        fd0 = r["framesDecoded"]
        # A quality request on a single-layer track changes nothing.
        q = await self.js("B", "sfu.quality(%s, {quality: 'low'})" % json.dumps(track["track_id"]))
        self.assertEqual(q["ack"]["type"], "ack")
        await asyncio.sleep(2.0)
        # B still decodes what A sends (A's encoder may adapt its own size
        # meanwhile: that is Chromium's, and B follows it).
        r2 = await self.until(same_size, 10, "B decoding at A's size after the request")
        self.assertGreater(r2["framesDecoded"], fd0 + 10)
        self.assert_clean_console()
        print("\nsingle layer: A sends %dx%d, B decodes %dx%d; first frame %.2f s after A's join,"
              " %d frames decoded" % (ob["-"]["frameWidth"], ob["-"]["frameHeight"],
                                      r2["frameWidth"], r2["frameHeight"], t_first,
                                      r2["framesDecoded"]))


# -- a screen share next to the camera ----------------------------------------

# (what A sends and B decodes of each: pagejs.py's SENT_JS and SOURCES_JS)


class ScreenShareTest(VideoTestBase):
    """A publishes its camera (single layer, 640x360) and then shares its
    screen (startScreenShare(): getDisplayMedia(), which the fake devices
    answer with an 800x600 capture without asking); B receives both as two
    video tracks, listed with their sources, and decodes each at the size
    A sends it; A stops sharing and B keeps the camera only."""

    async def test_camera_and_screen_share_reach_chromium(self):
        await self.run_scenario(self._screen())

    async def _screen(self):
        await self.join_page("B")
        a = await self.join_page("A", publishVideo=True, simulcast=False, videoCodec="VP8",
                                 videoConstraints={"width": {"exact": 640},
                                                   "height": {"exact": 360}})
        await self.js("A", "sfu.client.startScreenShare().then(() => true)", timeout=30)
        sdp = await self.js("A", "sfu.client.pc.localDescription.sdp")
        self.assertEqual(len(video_sections(sdp)), 2)
        sid = json.dumps(a["sid"])
        tracks = await self.js_until(
            "B", "(() => { const p = sfu.client.getParticipants().find((x) => x.sid === %s);"
            " const v = p ? p.tracks.filter((t) => t.kind === 'video') : [];"
            " return v.length === 2 ? v : null; })()" % sid, 15, "A's two video tracks at B")
        self.assertEqual(sorted(t["source"] for t in tracks), ["camera", "screen"])
        self.assertNotEqual(tracks[0]["track_id"], tracks[1]["track_id"])

        async def both_decoding():
            st = await self.js("B", SOURCES_JS % sid)
            by = {r["source"]: r for r in st if r["framesDecoded"] > 0}
            return by if set(by) == {"camera", "screen"} else None
        await self.until(both_decoding, FIRST_FRAME_TIMEOUT, "B decoding camera and screen")

        async def sizes_match():
            by = await both_decoding()
            sent = await self.js("A", SENT_JS)
            if not by or not sent["camera"] or not sent["screen"]:
                return None
            size = lambda r: (r["frameWidth"], r["frameHeight"])  # noqa: E731
            ok = all(size(by[src]) == size(sent[src]) for src in ("camera", "screen"))
            return (by, sent) if ok else None
        by0, sent = await self.until(sizes_match, 20, "B decoding each at A's size")
        self.assertNotEqual((sent["camera"]["frameWidth"], sent["camera"]["frameHeight"]),
                            (sent["screen"]["frameWidth"], sent["screen"]["frameHeight"]))
        async def both_grown():
            by = await both_decoding()
            return by if by and all(by[src]["framesDecoded"] > by0[src]["framesDecoded"] + 5
                                    for src in ("camera", "screen")) else None
        by1 = await self.until(both_grown, PLAYS_ON_TIMEOUT, "B decoding 5 more frames of each")
        self.assertNotEqual(by1["camera"]["trackId"], by1["screen"]["trackId"])
        ended_before = await self.js("B", "sfu.log.filter((e) => e.type === 'track-ended').length")

        # A stops sharing: its screen's m-line goes inactive, B's too.
        await self.js("A", "sfu.client.stopScreenShare().then(() => true)")
        await self.js_until(
            "B", "(() => { const p = sfu.client.getParticipants().find((x) => x.sid === %s);"
            " return p && p.tracks.filter((t) => t.kind === 'video').length === 1"
            " && p.tracks.find((t) => t.kind === 'video').source === 'camera'; })()" % sid,
            10, "A's screen share gone at B")
        await self.js_until("B", "sfu.log.filter((e) => e.type === 'track-ended').length > %d"
                            % ended_before, 10, "B's screen track ended")
        cam0 = (await self.js("B", SOURCES_JS % sid))
        await asyncio.sleep(1.0)
        cam1 = (await self.js("B", SOURCES_JS % sid))
        fd = {r["mid"]: r["framesDecoded"] for r in cam0}
        grew = [r for r in cam1 if r["framesDecoded"] > fd.get(r["mid"], 0) + 5]
        self.assertEqual([r["source"] for r in grew], ["camera"])
        self.assert_clean_console()
        print("\nscreen share: B decoded camera %dx%d and screen %dx%d (%d and %d frames)"
              % (by1["camera"]["frameWidth"], by1["camera"]["frameHeight"],
                 by1["screen"]["frameWidth"], by1["screen"]["frameHeight"],
                 by1["camera"]["framesDecoded"], by1["screen"]["framesDecoded"]))


# -- the demo page (web/index.html + demo.js), driven through its UI ---------

# Types room and name into the join form (as a user would), leaving the
# checkboxes as they are.
DEMO_FILL_JS = r"""
((room, name) => {
  const type = (el, value) => {
    el.focus();
    Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set.call(el, value);
    el.dispatchEvent(new InputEvent('input', { bubbles: true, inputType: 'insertText', data: value }));
    el.dispatchEvent(new Event('change', { bubbles: true }));
  };
  type(document.getElementById('room-input'), room);
  type(document.getElementById('name-input'), name);
  return { camera: document.getElementById('camera-input').checked,
           simulcast: document.getElementById('simulcast-input').checked };
})(%s, %s)
"""

DEMO_CLICK_JS = r"""
((id) => {
  const b = document.getElementById(id);
  if (!b || b.closest('[hidden]') || !b.getClientRects().length) throw new Error(id + ' is not shown');
  if (b.disabled) throw new Error(id + ' is disabled');
  b.click();
  return true;
})(%s)
"""

# What the call view shows about video: the camera and screen buttons and
# every tile.
DEMO_VIDEO_JS = r"""
(() => {
  const $ = (id) => document.getElementById(id);
  const shown = (el) => !!el && !el.closest('[hidden]') && el.getClientRects().length > 0;
  return {
    state: $('conn-state').dataset.state,
    error: shown($('error')) ? $('error-text').innerText : null,
    cameraText: $('camera-button-text').innerText.trim(),
    cameraDisabled: $('camera-button').disabled,
    screenText: $('screen-button-text').innerText.trim(),
    videosShown: shown($('videos')),
    tiles: [...document.querySelectorAll('#videos > li')].map((li) => {
      const v = li.querySelector('video');
      return { sid: li.dataset.sid, name: li.querySelector('.tile-name').innerText.trim(),
               local: li.classList.contains('local'), noVideo: li.classList.contains('no-video'),
               paused: li.classList.contains('paused'),
               status: li.querySelector('.tile-status').innerText.trim(),
               quality: li.querySelector('select') ? li.querySelector('select').value : null,
               width: v.videoWidth, height: v.videoHeight, time: v.currentTime,
               playing: !v.paused, shown: shown(li) };
    }),
  };
})()
"""

# Picks a quality in a remote tile's menu as a user would.
DEMO_QUALITY_JS = r"""
((sid, value) => {
  const sel = document.querySelector(`#videos > li[data-sid="${sid}"] select`);
  if (!sel) throw new Error('no quality menu for ' + sid);
  sel.value = value;
  sel.dispatchEvent(new Event('change', { bubbles: true }));
  return sel.value;
})(%s, %s)
"""


class DynacastTest(VideoTestBase):
    """A publishes three layers to B alone. While B takes the top layer, A
    sends q and f (h has no taker); B asks for low: after the server's
    dynacast_stop_ms, A stops encoding h and f and its uplink rate drops;
    B asks for high: A encodes f again within a second (the server's next
    media tick, then the encoder) and B decodes it. A's uplink rates are
    printed. dynacast_stop_ms is 1 s here (3 s by default): the same
    stops, sooner."""

    SFUD_ARGS = ("--dynacast-stop-ms", "1000")

    async def test_publisher_stops_the_layers_nobody_takes(self):
        await self.run_scenario(self._dynacast())

    async def rate(self, seconds):
        """A's uplink (every encoding's bytesSent) over `seconds`, bit/s."""
        o0 = await self.outbound()
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        o1 = await self.outbound()
        sent = sum(o1[r]["bytesSent"] - o0.get(r, {}).get("bytesSent", 0) for r in o1)
        return sent * 8 / (time.monotonic() - t0)

    async def active(self):
        """A's encodings that the page says are active, by rid."""
        return await self.js("A", "Object.fromEntries(sfu.client.pc.getTransceivers()"
                             ".filter((t) => t.sender && t.sender.track && t.sender.track.kind"
                             " === 'video').flatMap((t) => t.sender.getParameters().encodings"
                             ".map((e) => [e.rid, e.active])))")

    async def _dynacast(self):
        await self.join_page("B")
        a = await self.join_page("A", publishVideo=True, simulcast=True, videoConstraints=CAPTURE,
                                 videoCodec="VP8", degradationPreference="maintain-resolution")
        await self.wait_layers(RIDS)
        track_id = (await self.video_track(a["sid"]))["track_id"]
        top = (await self.outbound())["f"]["frameWidth"]

        async def b_on(width):
            r = await self.inbound()
            return r if r and r["frameWidth"] == width else None
        await self.until(lambda: b_on(top), 20, "B decoding the f layer")
        # B alone takes f: h stops (dynacast_stop_ms after the server's first word)
        await self.until(lambda: self.active_is({"q": True, "h": False, "f": True}), 10,
                         "A encoding q and f only")
        watching = await self.rate(4.0)

        await self.js("B", "sfu.quality(%s, {quality: 'low'})" % json.dumps(track_id))
        await self.until(lambda: self.active_is({"q": True, "h": False, "f": False}), 10,
                         "A encoding q only")
        await asyncio.sleep(1.0)
        low_only = await self.rate(4.0)

        t_ask = time.monotonic()
        await self.js("B", "sfu.quality(%s, {quality: 'high'})" % json.dumps(track_id))
        await self.until(lambda: self.active_is({"q": True, "f": True}), 10, "A encoding f again")
        t_on = time.monotonic() - t_ask
        await self.until(lambda: b_on(top), 20, "B decoding the f layer again")
        t_top = time.monotonic() - t_ask
        st = self.room_stats()["packets"]["video"]
        print("\ndynacast: A's uplink %.0f kbit/s with B on f (q+f sent), %.0f kbit/s with B on"
              " q (q only): %.2f; f encoded again %.2f s after B asked, B decoding it after"
              " %.2f s; %d subscribed_layers sent" % (
                  watching / 1000, low_only / 1000, low_only / watching, t_on, t_top,
                  st["dynacast_msgs"]), flush=True)
        self.assertLess(low_only, 0.6 * watching)
        self.assertLess(t_on, 1.5)
        self.assertGreaterEqual(st["dynacast_msgs"], 3)
        self.assert_clean_console()

    async def active_is(self, want):
        act = await self.active()
        return all(act.get(r) == v for r, v in want.items())


class TemporalTestBase(VideoTestBase):
    """A publishes one stream of three temporal layers (scalabilityMode
    L1T3) in `codec`; B asks for high, low, high and decodes all the
    frames, about a quarter of them (the base layer), all again: the
    server drops the upper temporal layers' frames for B alone."""

    async def fps(self, seconds):
        r0 = await self.inbound()
        t0 = await self.page_now()
        await asyncio.sleep(seconds)
        r1 = await self.inbound()
        return (r1["framesDecoded"] - r0["framesDecoded"]) * 1000 / (await self.page_now() - t0)

    async def temporal(self, codec):
        """The scenario; returns the room's video packet counters."""
        await self.join_page("B")
        a = await self.join_page("A", publishVideo=True, simulcast=False, videoCodec=codec,
                                 scalabilityMode="L1T3",
                                 videoConstraints={"width": {"exact": 640},
                                                   "height": {"exact": 360},
                                                   "frameRate": {"ideal": 30}},
                                 degradationPreference="maintain-framerate")
        track_id = (await self.video_track(a["sid"]))["track_id"]

        async def decoding():
            r = await self.inbound()
            return r if r and r["framesDecoded"] > 30 else None
        r = await self.until(decoding, 30, "B decoding A's %s" % codec)
        self.assertEqual(r["codec"], "video/" + codec)
        high = await self.fps(3.0)
        await self.js("B", "sfu.quality(%s, {quality: 'low'})" % json.dumps(track_id))
        await asyncio.sleep(1.0)
        low = await self.fps(3.0)
        await self.js("B", "sfu.quality(%s, {quality: 'high'})" % json.dumps(track_id))
        await asyncio.sleep(1.0)
        again = await self.fps(3.0)
        st = self.room_stats()["packets"]["video"]
        print("\n%s L1T3: B decodes %.1f fps (high), %.1f (low), %.1f (high again);"
              " drop_temporal %d, dd_in %d" % (codec, high, low, again, st["drop_temporal"],
                                               st["dd_in"]), flush=True)
        self.assertGreater(high, 10)
        self.assertLess(low, 0.5 * high)
        self.assertGreater(low, 0.1 * high)   # the base layer still plays
        self.assertGreater(again, 0.75 * high)
        self.assertGreater(st["drop_temporal"], 0)
        self.assert_clean_console()
        return st


class Av1TemporalTest(TemporalTestBase):
    """AV1 L1T3: the temporal ids come from the Dependency Descriptor when
    A sends it, else from the OBU extension headers."""

    async def test_av1_l1t3_frame_rate_per_subscriber(self):
        await self.run_scenario(self.temporal("AV1"))


class H264TemporalTest(TemporalTestBase):
    """H.264 L1T3 (OpenH264 in Chromium): the payload has no temporal id,
    the Dependency Descriptor A sends with it (the server answers it for
    H.264) says each frame's."""

    async def test_h264_l1t3_frame_rate_per_subscriber(self):
        await self.run_scenario(self._h264())

    async def _h264(self):
        st = await self.temporal("H264")
        self.assertGreater(st["dd_in"], 0)
        self.assertEqual(st["dd_bad"], 0)


class E2eeTest(VideoTestBase):
    """End-to-end encryption through the SFU (web/e2ee.js, docs/e2ee.md):
    A (simulcast camera + microphone) and B (a small camera + microphone)
    share a passphrase, C has another. A and B decode each other's video
    and hear each other; C receives the same packets and decodes nothing.
    The SFU, which sees no payload, still finds A's keyframes and layer
    sizes: B switches to A's low layer and back."""

    # samples the audio decoders made from packets (not concealment)
    AUDIO_JS = ("(async () => { let n = 0; (await sfu.client.pc.getStats()).forEach((r)"
                " => { if (r.type === 'inbound-rtp' && r.kind === 'audio')"
                " n += (r.totalSamplesReceived || 0) - (r.concealedSamples || 0); });"
                " return n; })()")

    async def test_encrypted_call_with_a_wrong_key(self):
        await self.run_scenario(self._e2ee())

    async def _e2ee(self):
        key = {"e2ee": "correct horse battery staple"}
        a = await self.join_page("A", client=key, publishAudio=True, publishVideo=True,
                                 simulcast=True, videoConstraints=CAPTURE, videoCodec="VP8",
                                 degradationPreference="maintain-resolution")
        await self.join_page("B", client=key, publishAudio=True, publishVideo=True,
                             simulcast=False, videoConstraints={"width": {"exact": 320},
                                                                "height": {"exact": 240}},
                             videoCodec="VP8")
        await self.wait_layers(RIDS)
        # (after A's layers are up: C, unable to decode, asks for keyframes
        # all along, which holds A's bandwidth estimate back)
        await self.join_page("C", client={"e2ee": "another passphrase"})
        top = (await self.outbound())["f"]["frameWidth"]
        low = (await self.outbound())["q"]["frameWidth"]
        track_id = (await self.video_track(a["sid"]))["track_id"]

        async def decodes(name, width=None):
            r = await self.inbound(name)
            return r if r and r["framesDecoded"] > 0 and (width is None or
                                                          r["frameWidth"] == width) else None
        await self.until(lambda: decodes("B", top), 30, "B decoding A's top layer")
        await self.until(lambda: decodes("A", 320), 30, "A decoding B's camera")
        e0 = {n: await self.js(n, self.AUDIO_JS) for n in "ABC"}
        c0 = await self.js("C", "sfu.inbound()")
        await asyncio.sleep(3.0)
        e1 = {n: await self.js(n, self.AUDIO_JS) for n in "ABC"}
        c1 = await self.js("C", "sfu.inbound()")

        await self.js("B", "sfu.quality(%s, {quality: 'low'})" % json.dumps(track_id))
        t0 = time.monotonic()
        await self.until(lambda: decodes("B", low), 15, "B decoding A's low layer")
        t_low = time.monotonic() - t0
        await self.js("B", "sfu.quality(%s, {quality: 'high'})" % json.dumps(track_id))
        t0 = time.monotonic()
        await self.until(lambda: decodes("B", top), 15, "B decoding A's top layer again")
        t_top = time.monotonic() - t0

        stats = {n: await self.js(n, "sfu.client.e2eeStats") for n in "ABC"}
        room = self.room_stats()["packets"]
        print("\ne2ee: audio samples decoded over 3 s: A %d, B %d, C %d; C received %s video"
              " packets and decoded %s frames; B on A's low layer after %.1f s, top again after"
              " %.1f s; frames: %s; room: keyframes_in %d, layer_switches %d" % (
                  e1["A"] - e0["A"], e1["B"] - e0["B"], e1["C"] - e0["C"],
                  [x["packetsReceived"] for x in c1], [x["framesDecoded"] for x in c1],
                  t_low, t_top, json.dumps(stats), room["video"]["keyframes_in"],
                  room["video"]["layer_switches"]), flush=True)
        # the right key: both ways, video and sound
        self.assertGreater(e1["A"] - e0["A"], 48000)   # of 144,000 in 3 s
        self.assertGreater(e1["B"] - e0["B"], 48000)
        for n in "AB":
            self.assertGreater(stats[n]["encrypted"], 100, stats)
            self.assertGreater(stats[n]["decrypted"], 100, stats)
            self.assertEqual(stats[n]["failed"], 0, stats)
        # the wrong key: the packets come, nothing decodes, nothing is heard
        self.assertEqual(len(c1), 2, c1)
        self.assertTrue(all(x["packetsReceived"] > 0 for x in c1), c1)
        self.assertTrue(all(y["packetsReceived"] > x["packetsReceived"]
                            for x, y in zip(c0, c1)), (c0, c1))
        self.assertEqual([x["framesDecoded"] for x in c1], [0, 0], c1)
        self.assertEqual(stats["C"]["decrypted"], 0, stats)
        self.assertGreater(stats["C"]["failed"], 100, stats)
        self.assertLess(e1["C"] - e0["C"], 4800)
        self.assertGreater(room["video"]["keyframes_in"], 0)


class SvcTest(VideoTestBase):
    """A publishes VP9 with three spatial and three temporal layers in one
    stream (scalabilityMode L3T3_KEY); B asks for low, medium and high and
    decodes the matching resolution each time: the server forwards the
    spatial layers up to the one asked for, ending each picture there."""

    async def test_vp9_l3t3_key_layers_per_subscriber(self):
        await self.run_scenario(self._svc())

    async def _svc(self):
        await self.join_page("B")
        a = await self.join_page("A", publishVideo=True, simulcast=False, videoCodec="VP9",
                                 scalabilityMode="L3T3_KEY", videoConstraints=CAPTURE,
                                 degradationPreference="maintain-resolution")
        track_id = (await self.video_track(a["sid"]))["track_id"]

        async def b_on(width):
            r = await self.inbound()
            return r if r and r["framesDecoded"] > 0 and r["frameWidth"] == width else None
        # Chromium's estimate ramps up before it sends the top spatial layer
        await self.until(lambda: b_on(1280), 45, "B decoding A's 1280-wide layer")
        ob = await self.outbound()
        self.assertEqual(len(ob), 1, ob)   # one stream
        fig = {}
        for quality, width in (("low", 320), ("medium", 640), ("high", 1280)):
            t0 = time.monotonic()
            await self.js("B", "sfu.quality(%s, {quality: %s})" % (json.dumps(track_id),
                                                                  json.dumps(quality)))
            r = await self.until(lambda: b_on(width), 20, "B decoding %d wide (%s)" % (
                width, quality))
            fig[quality] = (round(time.monotonic() - t0, 1), "%dx%d" % (r["frameWidth"],
                                                                        r["frameHeight"]))
        st = self.room_stats()["packets"]["video"]
        codec = (await self.inbound())["codec"]
        print("\nsvc: B decodes (s after asking, size): %s; codec %s; drop_svc %d" % (
            json.dumps(fig), codec, st["drop_svc"]), flush=True)
        self.assertEqual(codec, "video/VP9")
        self.assertGreater(st["drop_svc"], 0)
        self.assert_clean_console()


class Av1SvcTest(VideoTestBase):
    """A publishes AV1 with three spatial and three temporal layers in one
    stream (scalabilityMode L3T3_KEY) and the Dependency Descriptor; B asks
    for low, then high, and decodes the matching resolution: the server
    reads each packet's layers from the descriptor, forwards the spatial
    layers up to the one asked for and tells B's receiver which decode
    targets are active. 960x540 captured: the layers are 240x135,
    480x270 and 960x540 (from 640x360 Chromium sends two spatial layers,
    not three: fewer when the lowest would be too small)."""

    async def test_av1_l3t3_key_layers_per_subscriber(self):
        await self.run_scenario(self._av1_svc())

    async def _av1_svc(self):
        await self.join_page("B")
        a = await self.join_page("A", publishVideo=True, simulcast=False, videoCodec="AV1",
                                 scalabilityMode="L3T3_KEY",
                                 videoConstraints={"width": {"exact": 960},
                                                   "height": {"exact": 540},
                                                   "frameRate": {"ideal": 30}},
                                 degradationPreference="maintain-resolution")
        track_id = (await self.video_track(a["sid"]))["track_id"]

        async def b_on(width):
            r = await self.inbound()
            return r if r and r["framesDecoded"] > 0 and r["frameWidth"] == width else None
        t0 = time.monotonic()
        await self.until(lambda: b_on(960), 25, "B decoding A's 960-wide layer")
        fig = {"first": (round(time.monotonic() - t0, 1), "960")}
        ob = await self.outbound()
        self.assertEqual(len(ob), 1, ob)   # one stream
        for quality, width in (("low", 240), ("medium", 480), ("high", 960)):
            t0 = time.monotonic()
            await self.js("B", "sfu.quality(%s, {quality: %s})" % (json.dumps(track_id),
                                                                  json.dumps(quality)))
            r = await self.until(lambda: b_on(width), 10, "B decoding %d wide (%s)" % (
                width, quality))
            took = round(time.monotonic() - t0, 1)

            # and goes on decoding there: no frame it waits for in vain (a
            # loaded machine's AV1 encoder may be slow: 10 frames, 5 s)
            async def more(r=r, width=width):
                r2 = await b_on(width)
                self.assertIsNotNone(r2, "B left %d wide (%s)" % (width, quality))
                return r2 if r2["framesDecoded"] - r["framesDecoded"] >= 10 else None
            t1 = time.monotonic()
            await self.until(more, 5, "B decoding 10 more frames %d wide (%s)" % (width, quality))
            fig[quality] = (took, "%dx%d" % (r["frameWidth"], r["frameHeight"]),
                            round(time.monotonic() - t1, 1))
        st = self.room_stats()["packets"]["video"]
        r = await self.inbound()
        print("\nav1 L3T3_KEY: B decodes (s after asking, size, s to 10 more frames):"
              " %s; codec %s, %d frames; drop_svc %d, dd_in %d, dd_bad %d, dd_masked %d" % (
                  json.dumps(fig), r["codec"], r["framesDecoded"], st["drop_svc"], st["dd_in"],
                  st["dd_bad"], st["dd_masked"]), flush=True)
        self.assertEqual(r["codec"], "video/AV1")
        self.assertGreater(st["drop_svc"], 0)
        self.assertGreater(st["dd_in"], 0)
        self.assertGreater(st["dd_masked"], 0)
        self.assert_clean_console()


class DemoVideoTest(VideoTestBase):
    """The demo page with video, through its UI only (sfud --dev 1): Alice
    and Bob join room "demo" without cameras; Alice clicks "Turn camera
    on" (a client re-offer adds the camera, simulcast by default); Bob's
    page gets a tile for Alice playing her video; Bob picks Low in the
    tile's menu and the tile's video shrinks to the low layer; Alice turns
    the camera off (Bob's tile shows "no video") and on again (frames
    again, without a new offer); Alice shares her screen (a second tile at
    Bob's, the camera's going on) and stops (that tile goes)."""

    def setUp(self):
        self.browsers = {}
        self.pages = {}
        self.peers = []
        self.sfud = Sfud(ARGS.sfud, ARGS.room, "--web-root", WEB_DIR, "--dev", "1")
        self.addCleanup(self._stop_sfud)
        self.room = {"room_id": "demo"}
        self.origin = "http://127.0.0.1:%d" % self.sfud.port

    def room_stats(self):
        st, j = self.sfud.request("GET", "/v1/rooms/demo")
        return j.get("stats", j) if isinstance(j, dict) else j

    async def shows(self, name, pred, timeout=20.0, what="page state"):
        end = time.monotonic() + timeout
        while True:
            st = await self.js(name, DEMO_VIDEO_JS)
            if pred(st):
                return st
            if time.monotonic() >= end:
                self.fail("timed out (%.0f s) waiting for %s; %s shows:\n%s"
                          % (timeout, what, name, json.dumps(st, indent=1)))
            await asyncio.sleep(0.2)

    async def click(self, name, button):
        await self.js(name, DEMO_CLICK_JS % json.dumps(button))

    async def demo_join(self, name, display):
        page = await self.open_page(name)
        await asyncio.to_thread(page.navigate, self.origin + "/web/")
        boxes = await self.js(name, DEMO_FILL_JS % (json.dumps("demo"), json.dumps(display)))
        self.assertEqual(boxes, {"camera": False, "simulcast": True})   # the defaults
        await self.click(name, "join-button")
        return await self.shows(name, lambda s: s["state"] == "connected" or s["error"],
                                what="%s connected" % name)

    @staticmethod
    def tile(st, name):
        return next((t for t in st["tiles"] if t["name"].startswith(name)), None)

    async def test_demo_camera_tiles_and_quality_menu(self):
        await self.run_scenario(self._demo())

    async def _demo(self):
        st = await self.demo_join("A", "Alice")
        self.assertIsNone(st["error"])
        self.assertEqual((st["cameraText"], st["cameraDisabled"], st["tiles"]),
                         ("Turn camera on", False, []))
        st = await self.demo_join("B", "Bob")
        self.assertIsNone(st["error"])
        self.assertFalse(st["videosShown"])

        # Alice turns her camera on mid-call: her own tile (self view) ...
        t0 = time.monotonic()
        await self.click("A", "camera-button")
        st = await self.shows("A", lambda s: s["cameraText"] == "Turn camera off"
                              and (self.tile(s, "Alice") or {}).get("width", 0) > 0,
                              what="Alice's camera on, self view")
        me = self.tile(st, "Alice")
        self.assertTrue(me["local"])
        self.assertEqual(me["name"], "Alice (you)")
        self.assertIsNone(me["quality"])             # no menu on your own tile
        # ... and Bob's tile for her, playing.
        st = await self.shows("B", lambda s: (self.tile(s, "Alice") or {}).get("width", 0) > 0
                              and not self.tile(s, "Alice")["noVideo"],
                              what="Bob seeing Alice's video")
        t_video = time.monotonic() - t0
        alice = self.tile(st, "Alice")
        self.assertEqual((alice["local"], alice["quality"], alice["paused"]), (False, "auto", False))
        self.assertTrue(alice["playing"] and alice["shown"], alice)
        t1 = alice["time"]

        async def played_on():
            return self.tile(await self.js("B", DEMO_VIDEO_JS), "Alice")["time"] > t1
        await self.until(played_on, PLAYS_ON_TIMEOUT, "Alice's tile playing on")

        # Bob picks Low: the low layer (1280x720 / 4) plays in the tile.
        t2 = time.monotonic()
        self.assertEqual(await self.js("B", DEMO_QUALITY_JS % (json.dumps(alice["sid"]),
                                                               json.dumps("low"))), "low")
        st = await self.shows("B", lambda s: 0 < self.tile(s, "Alice")["width"] <= 320
                              and not self.tile(s, "Alice")["noVideo"],
                              what="Alice's tile on the low layer")
        t_low = time.monotonic() - t2
        low = self.tile(st, "Alice")

        # Alice turns the camera off: her tile goes, Bob's shows "no video".
        await self.click("A", "camera-button")
        st = await self.shows("A", lambda s: s["cameraText"] == "Turn camera on"
                              and not self.tile(s, "Alice"), what="Alice's camera off")
        st = await self.shows("B", lambda s: self.tile(s, "Alice")["noVideo"], timeout=10,
                              what="Bob's tile for Alice showing no video")
        self.assertEqual(self.tile(st, "Alice")["status"], "no video")
        # ... and on again: the same m-line, frames again.
        await self.click("A", "camera-button")
        await self.shows("A", lambda s: s["cameraText"] == "Turn camera off",
                         what="Alice's camera on again")
        st = await self.shows("B", lambda s: not self.tile(s, "Alice")["noVideo"],
                              what="Bob seeing Alice's video again")
        # still Low, without asking again (the first frames after the camera
        # restarts may come from whichever layer's keyframe passed first)
        st = await self.shows("B", lambda s: 0 < self.tile(s, "Alice")["width"] <= 320,
                              what="Alice's tile back on the low layer")

        # Alice shares her screen: a second tile at Bob's, next to her camera;
        # stopping the share takes that tile away.
        await self.click("A", "screen-button")
        await self.shows("A", lambda s: s["screenText"] == "Stop sharing"
                         and (self.tile(s, "Alice (you): screen") or {}).get("width", 0) > 0,
                         what="Alice's screen share, self view")
        st = await self.shows("B", lambda s: (self.tile(s, "Alice: screen") or {}).get("width", 0) > 0
                              and not self.tile(s, "Alice: screen")["noVideo"],
                              what="Bob seeing Alice's screen")
        self.assertEqual(self.tile(st, "Alice: screen")["quality"], "auto")   # its own menu
        self.assertFalse(self.tile(st, "Alice")["noVideo"])                   # the camera goes on
        await self.click("A", "screen-button")
        await self.shows("B", lambda s: not self.tile(s, "Alice: screen") and self.tile(s, "Alice"),
                         timeout=10, what="Alice's screen tile gone at Bob's")

        for name in ("A", "B"):
            self.assertIsNone((await self.js(name, DEMO_VIDEO_JS))["error"], name)
        await self.click("B", "leave-button")
        await self.click("A", "leave-button")
        self.assert_clean_console()
        print("\ndemo page: Bob's tile plays Alice's camera %.2f s after her click"
              " (re-offer); Low selected -> %dx%d in %.2f s"
              % (t_video, low["width"], low["height"], t_low))


if __name__ == "__main__":
    main()

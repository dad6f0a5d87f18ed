#!/usr/bin/env python3
"""A Chromium subscriber's downlink capped and freed (docs/internals/bwe.md).

Topology as in test_impairment.py: sfud inside a network namespace, the
Chromium peers outside, and a `tc tbf` on the namespace's end of the veth
pair caps everything sfud sends (the subscribers' downlink). Chromium A
publishes its fake camera as three simulcast layers (1280x720 at the top);
Chromium B subscribes.

* TransportCcTest: B answers transport-cc, as Chromium does by default:
  the SFU's own estimate of B's downlink (transport-wide feedback) chooses
  B's layer, and probes find the room again once the cap is lifted.
* RembOnlyTest: B's page takes transport-cc out of the SFU's offers before
  answering, so B reports REMB only and the SFU's REMB bound chooses
  (docs/internals/media.md: a REMB that falls under the layer's rate, or
  10 % of what B was sent NACKed or reported lost, steps down at once;
  after 6 s the next layer up is tried).

* ScreenShareCapTest: A publishes its camera (one VP8 layer, 1280x720)
  and shares its screen (the fake display capture); once B decodes both,
  their rates are measured (2 s windows, until the camera costs enough:
  its encoder ramps up) and B's downlink capped at 1.6 x the screen
  share's (the camera must cost more than a third of that: the cap is
  checked to lie under 0.75 x both). B's camera must freeze (no new frame
  for 1 s within 10 s, the room counting a bandwidth pause) and stay
  frozen while the screen share goes on at half its rate or more, with no
  gap over 1.5 s from the cap until the camera is back, which it must be
  within 15 s of the lift. Measured here: camera 470-730, screen
  300-320 kbit/s (cap 480-510); the camera's last frame 0.8-1.0 s after
  the cap, the screen's longest gap 0.1-0.5 s, the camera back 4-10 s
  after the lift.

CapBase's classes: B decodes A's top layer; the downlink is capped at 500 kbit/s; B
must decode a lower layer within 5 s; after 8 s the cap is lifted and B
must decode the top layer again within 15 s. B's page samples its decoded
frame count every 100 ms: no gap between two new frames may exceed 1 s
from the cap to the end (here: 0.2-0.6 s with transport-cc; 0.1-0.5 s
with REMB, up to 1.1 s on a machine loaded by other work: the REMB falls
only once B's queue has grown, about 0.8 s after the cap). Times and the room's counters are printed. With REMB only, B may be
on the top layer again before the cap is lifted: A restarts the layer it
stopped (nobody took it) at a low rate that fits, and the REMB bound
tries it.

Usage: test_bandwidth.py --sfud PATH --room PATH [--logdir DIR]
"""
import asyncio
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_impairment as imp  # noqa: E402
from pagejs import SENT_JS, SOURCES_JS  # noqa: E402
from sfutest import main  # noqa: E402

ARGS = None
CAP_KBIT = 500
DOWN_WITHIN_S = 5.0
CAPPED_S = 8.0
UP_WITHIN_S = 15.0
MAX_GAP_MS = 1000
# ScreenShareCapTest
SETTLE_S = 2.0             # both decoded: settling ...
MEASURE_S = 2.0            # ... then their rates measured, over this long, up to
MEASURE_TRIES = 6          # this many times until the premise below holds
SCREEN_CAP_X = 1.6         # the cap: this times the screen share's rate, ...
CAP_OF_BOTH = 0.75         # ... below this times both (else the camera is too cheap)
PAUSE_WITHIN_S = 10.0      # cap -> B's camera frozen FROZEN_MS
FROZEN_MS = 1000
SCREEN_CAPPED_S = 10.0     # from the cap to its lift
MIN_SCREEN_FPS_X = 0.5     # B's screen frame rate once the camera is paused, at
                           # least this times the rate before the cap
MAX_SCREEN_GAP_MS = 1500   # longest gap on B's screen, cap to the camera's return

# Before the client starts: B's decoded-frame gaps, per video m-line
# (gaps.by[mid]: the longest gap since reset() and when it ended, the page
# time of the last new frame) and over all of them (gaps.max, gaps.at),
# and, for REMB only, the SFU's offers without transport-cc.
GAP_JS = r"""
(() => {
  const g = window.gaps = { max: 0, at: 0, since: null, by: {} };
  g.reset = () => {
    g.max = 0; g.at = 0; g.since = performance.now();
    for (const m of Object.values(g.by)) { m.max = 0; m.at = 0; }
  };
  setInterval(async () => {
    const pc = window.sfu && window.sfu.client.pc;
    if (!pc) return;
    (await pc.getStats()).forEach((r) => {
      if (r.type !== 'inbound-rtp' || r.kind !== 'video') return;
      const now = performance.now(), f = r.framesDecoded || 0;
      const m = g.by[r.mid] || (g.by[r.mid] = { max: 0, at: 0, last: null, frames: -1 });
      if (g.since !== null && m.last !== null) {
        const d = now - Math.max(m.last, g.since);
        if (d > m.max) { m.max = d; m.at = now - g.since; }
        if (d > g.max) { g.max = d; g.at = m.at; }
      }
      if (f > m.frames) {
        m.last = now;
        m.frames = f;
      }
    });
  }, 100);
  return true;
})()
"""

NO_TWCC_JS = r"""
(() => {
  const set = RTCPeerConnection.prototype.setRemoteDescription;
  RTCPeerConnection.prototype.setRemoteDescription = function (d) {
    if (d && d.type === 'offer' && d.sdp)
      d = { type: d.type, sdp: d.sdp.split('\r\n').filter((l) =>
        !/transport-wide-cc|transport-cc/.test(l)).join('\r\n') };
    return set.call(this, d);
  };
  return true;
})()
"""


class CapBase:
    """The scenario; the test classes mix it into VideoTestBase."""
    remb_only = False

    def setUp(self):
        imp.ARGS = ARGS
        super().setUp()

    async def before_join(self, name):
        if name == "B":
            await self.js(name, GAP_JS)
            if self.remb_only:
                await self.js(name, NO_TWCC_JS)

    async def test_cap_then_lift(self):
        await self.run_scenario(self._scenario())

    async def _scenario(self):
        await self.join_page("B")
        await self.join_page("A", publishVideo=True, simulcast=True, videoCodec="VP8",
                             videoConstraints={"width": {"exact": 1280},
                                               "height": {"exact": 720},
                                               "frameRate": {"ideal": 30}},
                             degradationPreference="maintain-resolution")

        async def layers_up():
            ob = (await self.stats("A"))["outbound"]
            return ob if len(ob) == 3 and all(o["framesEncoded"] > 0 and o["frameWidth"] > 0
                                              for o in ob) else None
        ob = await self.until(layers_up, 40, "A sending three layers", 0.2)
        top = max(o["frameWidth"] for o in ob)

        async def on_width(pred):
            i = await self.inbound()
            return i if i and i["framesDecoded"] > 0 and pred(i["frameWidth"]) else None
        await self.until(lambda: on_width(lambda w: w == top), 40,
                         "B decoding the top layer (%d wide)" % top, 0.2)
        await asyncio.sleep(2.0)      # settled on it
        v0 = self.room_stats()["packets"]["video"]
        await self.js("B", "window.gaps.reset()")
        self.ns.set_rate(CAP_KBIT)
        t_cap = time.monotonic()
        low = await self.until(lambda: on_width(lambda w: 0 < w < top), 30,
                               "B below the top layer under a %d kbit/s cap" % CAP_KBIT, 0.1)
        t_down = time.monotonic() - t_cap
        await asyncio.sleep(max(0.0, CAPPED_S - t_down))
        capped = await self.inbound()
        self.ns.set_rate(None)
        t_lift = time.monotonic()
        await self.until(lambda: on_width(lambda w: w == top), 40,
                         "B back on the top layer", 0.1)
        t_up = time.monotonic() - t_lift
        gap, gap_at = await self.js("B", "[window.gaps.max, window.gaps.at]")
        v1 = self.room_stats()["packets"]["video"]
        room = {k: v1[k] - v0.get(k, 0) for k in v1}
        print("\n%s: %d kbit/s cap -> B at %dx%d after %.1f s (%dx%d after %.0f s);"
              " lifted -> top (%d wide) after %.1f s; longest gap between decoded frames"
              " %.0f ms (ending %.1f s after the cap); room: %s" % (
                  "REMB only" if self.remb_only else "transport-cc", CAP_KBIT,
                  low["frameWidth"], low["frameHeight"], t_down, capped["frameWidth"],
                  capped["frameHeight"], CAPPED_S, top, t_up, gap, gap_at / 1000,
                  json.dumps(room)),
              flush=True)
        self.assertLessEqual(t_down, DOWN_WITHIN_S)
        self.assertLessEqual(t_up, UP_WITHIN_S)
        self.assertLessEqual(gap, MAX_GAP_MS)
        if self.remb_only:
            self.assertEqual(room["twcc_in"], 0, room)
        else:
            self.assertGreater(room["twcc_in"], 0, room)
            self.assertGreater(room["probes"], 0, room)
        await self.assert_pages_ok()


class TransportCcTest(CapBase, imp.VideoTestBase):
    remb_only = False


class RembOnlyTest(CapBase, imp.VideoTestBase):
    remb_only = True


class ScreenShareCapTest(CapBase, imp.VideoTestBase):
    """A's camera (one 1280x720 VP8 layer) and screen share to B, whose
    downlink is then capped to carry the screen share but not both: the
    screen share is kept, the camera paused, and back after the cap."""

    async def _scenario(self):
        await self.join_page("B")
        a = await self.join_page("A", publishVideo=True, simulcast=False, videoCodec="VP8",
                                 videoConstraints={"width": {"exact": 1280},
                                                   "height": {"exact": 720},
                                                   "frameRate": {"ideal": 30}},
                                 degradationPreference="maintain-resolution")
        await self.js("A", "sfu.client.startScreenShare().then(() => true)", timeout=30)
        sid = json.dumps(a["sid"])

        async def by_source():
            by = {r["source"]: r for r in await self.js("B", SOURCES_JS % sid) if r["source"]}
            return by if set(by) == {"camera", "screen"} else None

        async def both_decoding():
            by = await by_source()
            return by if by and all(r["framesDecoded"] > 0 for r in by.values()) else None
        await self.until(both_decoding, 30, "B decoding A's camera and screen share", 0.2)
        await asyncio.sleep(SETTLE_S)
        b1, s1, t1 = await by_source(), await self.js("A", SENT_JS), time.monotonic()
        # A's camera encoder ramps up (and slows on a busy machine): the
        # rates are measured until the camera costs enough for the premise
        for _ in range(MEASURE_TRIES):
            b0, s0, t0 = b1, s1, t1
            await asyncio.sleep(MEASURE_S)
            b1, s1, t1 = await by_source(), await self.js("A", SENT_JS), time.monotonic()
            fig = {src: {"kbps": (b1[src]["bytesReceived"] - b0[src]["bytesReceived"]) * 8
                         / (t1 - t0) / 1000,
                         "fps": (b1[src]["framesDecoded"] - b0[src]["framesDecoded"])
                         / (t1 - t0),
                         "sent_kbps": (s1[src]["bytesSent"] - s0[src]["bytesSent"]) * 8
                         / (t1 - t0) / 1000,
                         "size": "%dx%d" % (b1[src]["frameWidth"], b1[src]["frameHeight"])}
                   for src in ("camera", "screen")}
            cap = int(SCREEN_CAP_X * fig["screen"]["kbps"])
            if cap < CAP_OF_BOTH * (fig["screen"]["kbps"] + fig["camera"]["kbps"]):
                break
        mid = {src: b1[src]["mid"] for src in b1}
        print("\nB receives camera %(cs)s at %(ck).0f kbit/s %(cf).1f fps (A sends %(cx).0f),"
              " screen %(ss)s at %(sk).0f kbit/s %(sf).1f fps (A sends %(sx).0f); cap %(cap)d"
              " kbit/s" % {
                  "cs": fig["camera"]["size"], "ck": fig["camera"]["kbps"],
                  "cf": fig["camera"]["fps"], "cx": fig["camera"]["sent_kbps"],
                  "ss": fig["screen"]["size"], "sk": fig["screen"]["kbps"],
                  "sf": fig["screen"]["fps"], "sx": fig["screen"]["sent_kbps"], "cap": cap},
              flush=True)
        # the premise: the cap carries the screen share and leaves the
        # camera well short of what it needs
        self.assertLess(cap, CAP_OF_BOTH * (fig["screen"]["kbps"] + fig["camera"]["kbps"]), fig)

        v0 = self.room_stats()["packets"]["video"]
        await self.js("B", "window.gaps.reset()")
        self.ns.set_rate(cap)
        t_cap = time.monotonic()

        async def camera_frozen():
            g = await self.js("B", "[performance.now(), window.gaps]")
            cam = g[1]["by"][mid["camera"]]
            return g if g[0] - cam["last"] >= FROZEN_MS else None
        g = await self.until(camera_frozen, PAUSE_WITHIN_S, "B's camera paused under the cap",
                             0.2)
        t_frozen = time.monotonic() - t_cap
        t_paused = (g[1]["by"][mid["camera"]]["last"] - g[1]["since"]) / 1000
        v1 = self.room_stats()["packets"]["video"]
        f0, tf0 = await by_source(), time.monotonic()
        await asyncio.sleep(max(0.0, SCREEN_CAPPED_S - (time.monotonic() - t_cap)))
        f1, tf1 = await by_source(), time.monotonic()
        gaps_capped = await self.js("B", "window.gaps")
        self.ns.set_rate(None)
        t_lift = time.monotonic()

        async def camera_back():
            by = await by_source()
            return by if by["camera"]["framesDecoded"] >= f1["camera"]["framesDecoded"] + 5 \
                else None
        await self.until(camera_back, UP_WITHIN_S, "B's camera back after the cap", 0.1)
        t_back = time.monotonic() - t_lift
        gaps = await self.js("B", "window.gaps")
        v2 = self.room_stats()["packets"]["video"]
        room = {k: v2[k] - v0.get(k, 0) for k in v2}
        dt = tf1 - tf0
        screen_fps = (f1["screen"]["framesDecoded"] - f0["screen"]["framesDecoded"]) / dt
        cam_frames = f1["camera"]["framesDecoded"] - f0["camera"]["framesDecoded"]
        scr = gaps_capped["by"][mid["screen"]]
        print("cap %d kbit/s: camera's last frame %.1f s after the cap (seen frozen after"
              " %.1f s, room bw_pauses %d); then over %.1f s screen %.1f fps, camera %d"
              " frames; screen's longest gap %.0f ms (ending %.1f s after the cap), %.0f ms"
              " to the camera's return; lifted -> camera back after %.1f s; room: %s" % (
                  cap, t_paused, t_frozen, v1["bw_pauses"] - v0.get("bw_pauses", 0), dt,
                  screen_fps, cam_frames, scr["max"], scr["at"] / 1000,
                  gaps["by"][mid["screen"]]["max"], t_back, json.dumps(room)), flush=True)
        self.assertGreater(v1["bw_pauses"] - v0.get("bw_pauses", 0), 0, room)
        self.assertLessEqual(cam_frames, 1)
        self.assertGreaterEqual(screen_fps, MIN_SCREEN_FPS_X * fig["screen"]["fps"])
        self.assertLessEqual(gaps["by"][mid["screen"]]["max"], MAX_SCREEN_GAP_MS)
        self.assertGreater(room["twcc_in"], 0, room)
        await self.assert_pages_ok()


if __name__ == "__main__":
    main()

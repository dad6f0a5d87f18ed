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

Each: B decodes A's top layer; the downlink is capped at 500 kbit/s; B
must decode a lower layer within 5 s; after 8 s the cap is lifted and B
must decode the top layer again within 15 s. B's page samples its decoded
frame count every 100 ms: no gap between two new frames may exceed 1 s
from the cap to the end with transport-cc, 1.5 s with REMB (0.4-1.1 s
here: the REMB falls only once B's queue has grown, about 0.8 s after the
cap). Times and the room's counters are printed. With REMB only, B may be
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
from sfutest import main  # noqa: E402

ARGS = None
CAP_KBIT = 500
DOWN_WITHIN_S = 5.0
CAPPED_S = 8.0
UP_WITHIN_S = 15.0
MAX_GAP_MS = {False: 1000, True: 1500}   # by remb_only

# Before the client starts: B's decoded-frame gaps, and, for REMB only,
# the SFU's offers without transport-cc.
GAP_JS = r"""
(() => {
  const g = window.gaps = { max: 0, at: 0, last: null, frames: -1, since: null };
  g.reset = () => { g.max = 0; g.since = performance.now(); };
  const note = (now) => {
    const d = now - Math.max(g.last, g.since);
    if (d > g.max) { g.max = d; g.at = now - g.since; }
  };
  setInterval(async () => {
    const pc = window.sfu && window.sfu.client.pc;
    if (!pc) return;
    (await pc.getStats()).forEach((r) => {
      if (r.type !== 'inbound-rtp' || r.kind !== 'video') return;
      const now = performance.now(), f = r.framesDecoded || 0;
      if (g.since !== null && g.last !== null) note(now);
      if (f > g.frames) {
        g.last = now;
        g.frames = f;
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
        self.assertLessEqual(gap, MAX_GAP_MS[self.remb_only])
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


if __name__ == "__main__":
    main()

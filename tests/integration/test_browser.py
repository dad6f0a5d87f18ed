#!/usr/bin/env python3
"""A real browser in a call: headless Chromium and an aiortc peer in one room.

Chromium (fake devices) loads the demo origin sfud serves under /web/ and
drives web/sfu-client.js directly over CDP (Runtime.evaluate); an aiortc Peer
publishes a 660 Hz sine. Each side must receive and decode the other's audio:
Chromium's getStats() inbound-rtp audio shows packets and energy, the aiortc
peer decodes non-silent frames from "chrome". Then the aiortc peer leaves and
the browser client must drop it from its participants.

Facts about Chromium 156 this test relies on (checked here):

* The fake microphone (media/audio/fake_audio_input_stream.cc) is periodic,
  not continuous: a 20 ms ~400 Hz beep every 500 ms, silence in between. So
  assertions are on energy and on non-silent 20 ms frames, never on a tone.
* With the default getUserMedia constraints its echo canceller (AEC3)
  removes every beep after the first while the page plays the far end's
  tone: the aiortc peer then decodes only silence from "chrome" (packets
  keep arriving). The microphone is therefore opened with
  echoCancellation/noiseSuppression/autoGainControl off (echoCancellation
  alone is what matters).
* Remote audio is decoded only when something plays it: without a sink
  inbound-rtp packetsReceived grows but totalSamplesReceived and
  totalAudioEnergy stay 0. The page attaches each track to an <audio>.

Usage: test_browser.py --sfud PATH --room PATH
(the web directory is ../../web from this script; CHROMIUM=... overrides
the browser binary, see chromium.py)
"""
import argparse
import asyncio
import json
import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
WEB_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "web"))
sys.path.insert(0, HERE)
from sfutest import Sfud  # noqa: E402
from aiortc_peer import Peer, SAMPLES_PER_FRAME, SILENCE_RMS, energy  # noqa: E402
from chromium import Chromium  # noqa: E402

ARGS = None
PY_FREQ = 660
HEARD = 0.01          # tone power of the peer's 0.3-amplitude sine is ~0.045
# The beeps (seen: energy ~1e-2 over 2 s, ~7 non-silent frames a second).
BEEP_ENERGY = 1e-4
BEEP_FRAMES_2S = 3
MIC_CONSTRAINTS = {"echoCancellation": False, "noiseSuppression": False,
                   "autoGainControl": False}

# Installed in the page: builds window.sfu = {client, log, ...} and joins.
# Events are recorded with performance.now() timestamps; a 50 ms getStats()
# poller notes the first inbound audio packet and the first non-zero energy.
JOIN_JS = r"""
(async () => {
  const { SfuClient } = await import('/web/sfu-client.js');
  const client = new SfuClient({ wsUrl: %(ws_url)s });
  const s = window.sfu = { client, log: [], audio: [], tJoin: null,
                           tWelcome: null, tFirstPacket: null, tFirstEnergy: null };
  const note = (type) => (e) => {
    const d = e.detail || {};
    s.log.push({ type, t: performance.now(),
                 identity: d.identity || (d.participant && d.participant.identity) || null,
                 state: d.state || null, reason: d.reason ?? null,
                 error: d.error ? `${d.error.message} (code ${d.error.code})` : null });
  };
  for (const t of ['participant-joined', 'participant-left', 'participant-updated',
                   'connection-state', 'error', 'track', 'track-ended', 'close']) {
    client.addEventListener(t, note(t));
  }
  // Play what arrives, as a page would (and so Chromium pulls the audio).
  client.addEventListener('track', (e) => {
    const a = new Audio();
    a.autoplay = true;
    a.srcObject = e.detail.stream;
    a.play().catch((err) => s.log.push({ type: 'play-error', error: String(err) }));
    s.audio.push(a);
  });
  s.stats = async () => {
    const pc = client.pc;
    if (!pc) return [];
    const out = [];
    (await pc.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'audio') {
        out.push({ mid: r.mid ?? null, ssrc: r.ssrc, packetsReceived: r.packetsReceived || 0,
                   packetsLost: r.packetsLost || 0, bytesReceived: r.bytesReceived || 0,
                   totalAudioEnergy: r.totalAudioEnergy || 0,
                   totalSamplesReceived: r.totalSamplesReceived || 0,
                   audioLevel: r.audioLevel || 0 });
      }
    });
    return out;
  };
  s.poller = setInterval(async () => {
    try {
      const st = await s.stats();
      const now = performance.now();
      if (s.tFirstPacket === null && st.some((r) => r.packetsReceived > 0)) s.tFirstPacket = now;
      if (s.tFirstEnergy === null && st.some((r) => r.totalAudioEnergy > 0)) s.tFirstEnergy = now;
    } catch (err) { /* pc closed meanwhile */ }
  }, 50);
  s.tJoin = performance.now();
  const welcome = await client.join({ room: %(room)s, token: %(token)s, publishAudio: true,
                                            audioConstraints: %(constraints)s });
  s.tWelcome = performance.now();
  return { sid: welcome.participant.sid, identity: welcome.participant.identity,
           others: (welcome.participants || []).map((p) => p.identity) };
})()
"""


def nonsilent_frames(samples):
    """How many 20 ms frames of ``samples`` are not silent (aiortc_peer's
    SILENCE_RMS criterion)."""
    n = len(samples) // SAMPLES_PER_FRAME
    frames = samples[len(samples) - n * SAMPLES_PER_FRAME:].reshape(n, SAMPLES_PER_FRAME)
    return sum(1 for f in frames if energy(f) > SILENCE_RMS ** 2)


class BrowserCallTest(unittest.IsolatedAsyncioTestCase):
    def setUp(self):
        self.browser = None
        self.page = None
        self.peers = []
        self.sfud = Sfud(ARGS.sfud, ARGS.room, "--web-root", WEB_DIR)
        self.addCleanup(self._stop_sfud)
        st, self.room = self.sfud.request("POST", "/v1/rooms", {"name": "browser"})
        self.assertEqual(st, 201, self.room)
        self.ws_url = self.room["ws_url"]
        self.browser = Chromium(extra_args=["--autoplay-policy=no-user-gesture-required"])
        self.addCleanup(self._close_browser)

    def _stop_sfud(self):
        try:
            self.sfud.stop()
        finally:
            self.sfud.proc.stderr.close()
        self.sfud.assert_clean_log()

    def _close_browser(self):
        tmp = self.browser.tmp_dir
        self.browser.close()
        self.assertFalse(os.path.exists(tmp), "chromium temp dir left behind")
        self.assertEqual(self.browser._own_pids(), [], "chromium processes left behind")

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

    # -- Chromium, off the event loop (CDP calls block; aiortc must not) ----

    async def js(self, expression, timeout=15.0):
        return await asyncio.to_thread(self.page.evaluate, expression, True, timeout)

    async def js_until(self, expression, timeout=15.0, what=None):
        """Poll a JS expression until truthy; return its value."""
        end = time.monotonic() + timeout
        while True:
            v = await self.js(expression)
            if v:
                return v
            if time.monotonic() >= end:
                self.fail("timed out (%.0f s) waiting for %s" % (timeout, what or expression))
            await asyncio.sleep(0.1)

    async def until(self, pred, timeout=15.0, what="condition"):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred():
                return
            await asyncio.sleep(0.1)
        self.fail("timed out (%.0f s) waiting for %s" % (timeout, what))

    async def diagnostics(self):
        """Everything useful when a step fails: page log, console, server log."""
        out = ["--- sfud log (last 80 lines) ---", "".join(self.sfud.log[-80:])]
        if self.page is not None:
            try:
                out += ["--- client log ---", json.dumps(await self.js(
                    "window.sfu ? {state: sfu.client.state, log: sfu.log} : null",
                    timeout=5), indent=1)]
                out += ["--- client inbound-rtp ---", json.dumps(await self.js(
                    "window.sfu ? sfu.stats() : null", timeout=5))]
            except Exception as e:     # the page may be gone
                out.append("(page unavailable: %r)" % e)
            out += ["--- chromium console ---"] + [
                "%s: %s" % (c["type"], c["text"]) for c in self.page.console]
        for p in self.peers:
            if p.pc is not None:
                tr = p.pc.getTransceivers()
                dtls = tr[0].sender.transport if tr else None
                out.append("%s: pc %s, ice %s, dtls %s, ice transport %s" % (
                    p.identity, p.pc.connectionState, p.pc.iceConnectionState,
                    dtls and dtls.state, dtls and dtls.transport.state))
            out += ["--- %s ---" % p.identity, repr(p.received_by_source()),
                    "errors=%r violations=%r" % (p.errors, p.violations)]
        return "\n".join(out)

    # -- the test ---------------------------------------------------------

    async def test_chromium_and_aiortc_hear_each_other(self):
        try:
            await self._scenario()
        except BaseException:
            print("\n" + await self.diagnostics(), file=sys.stderr)
            raise

    async def _scenario(self):
        room_id = self.room["room_id"]
        chrome_token, py_token = self.token("chrome"), self.token("py")
        origin = "http://127.0.0.1:%d" % self.sfud.port
        self.page = await asyncio.to_thread(self.browser.open, origin + "/web/index.html")
        self.assertTrue(await self.js("!!document.querySelector('#join-form')"),
                        "the demo page did not load from sfud's /web/")

        # The aiortc peer first, so Chromium's join-to-first-audio is its own
        # (the server re-offers to add py's track after Chromium's offer).
        py = Peer(self.ws_url, room_id, py_token, "py", freq=PY_FREQ)
        self.peers.append(py)
        await py.join()
        # (aiortc 1.4/aioice 0.8 end in "failed" if a Binding request from
        # the server reaches them before their own first check; an ICE-lite
        # server never sends one, so this is asserted, not tolerated.)
        await py.wait_connected()

        t0 = time.monotonic()
        welcome = await self.js(JOIN_JS % {"ws_url": json.dumps(self.ws_url),
                                           "room": json.dumps(room_id),
                                           "token": json.dumps(chrome_token),
                                           "constraints": json.dumps(MIC_CONSTRAINTS)})
        self.assertEqual(welcome["identity"], "chrome")
        self.assertEqual(welcome["others"], ["py"])

        # Chromium's participants state lists py (and itself).
        names = await self.js_until(
            "(() => { const n = sfu.client.getParticipants().map((p) => p.identity).sort();"
            " return n.includes('py') && n; })()", timeout=10, what="py in participants")
        self.assertEqual(names, ["chrome", "py"])
        await self.js_until("sfu.client.state === 'connected'", timeout=15,
                            what="Chromium media connected")

        # Chromium receives and decodes py's audio.
        stats = await self.js_until(
            "sfu.stats().then((st) => st.some((r) => r.packetsReceived > 0"
            " && r.totalAudioEnergy > 0) && st)", timeout=15,
            what="Chromium inbound-rtp audio with packets and energy")
        t_chrome_audio = time.monotonic() - t0
        # ... from py: the track event named it, its stream is py's sid
        track_from = await self.js(
            "sfu.log.filter((e) => e.type === 'track').map((e) => e.identity)")
        self.assertIn("py", track_from)
        self.assertEqual(await self.js("[...sfu.client.remoteStreams.keys()]"), [py.sid])

        # py hears Chromium's beeps: energy and non-silent decoded frames
        # from "chrome", still arriving two seconds later (every beep, not
        # just the first).
        await self.until(lambda: py.audio_energy("chrome", 2.0) > BEEP_ENERGY, timeout=15,
                         what="py hearing chrome")
        t_py_audio = time.monotonic() - t0
        await asyncio.sleep(2.0)         # then judge on two full seconds
        src = next(iter(py.find_sources("chrome")), None)
        self.assertIsNotNone(src, py.received_by_source())
        beep_energy = py.audio_energy("chrome", 2.0)
        beep_frames = nonsilent_frames(src.window(2.0))
        self.assertGreater(beep_energy, BEEP_ENERGY, py.received_by_source())
        self.assertGreaterEqual(beep_frames, BEEP_FRAMES_2S, py.received_by_source())
        # ... and not its own tone coming back through chrome's stream
        own = py.tone_power("chrome", PY_FREQ, 2.0)
        self.assertLess(own, HEARD / 10)

        stats2 = await self.js("sfu.stats()")
        self.assertEqual(len(stats2), 1, stats2)
        self.assertGreater(stats2[0]["packetsReceived"], stats[0]["packetsReceived"])
        self.assertGreater(stats2[0]["totalAudioEnergy"], stats[0]["totalAudioEnergy"])

        timing = await self.js("({welcome: sfu.tWelcome - sfu.tJoin,"
                               " packet: sfu.tFirstPacket && sfu.tFirstPacket - sfu.tJoin,"
                               " energy: sfu.tFirstEnergy && sfu.tFirstEnergy - sfu.tJoin})")
        print("\nChromium join-to-welcome %.3f s, join-to-first-packet %.3f s, "
              "join-to-first-audio (inbound energy > 0, 50 ms polls) %.3f s"
              % (timing["welcome"] / 1000, (timing["packet"] or 0) / 1000,
                 (timing["energy"] or 0) / 1000))
        print("test clock: Chromium audio after %.3f s, py hears chrome after %.3f s"
              % (t_chrome_audio, t_py_audio))
        print("py <- chrome: energy(2 s) %.2e, %d non-silent frames in 2 s (%d/%d in all),"
              " 660 Hz power %.1e; Chromium <- py: %d packets, totalAudioEnergy %.3f"
              % (beep_energy, beep_frames, src.nonsilent_frames, src.frames, own,
                 stats2[0]["packetsReceived"], stats2[0]["totalAudioEnergy"]))

        # py leaves: Chromium emits participant-left and drops it.
        await py.leave()
        left = await self.js_until(
            "sfu.log.find((e) => e.type === 'participant-left' && e.identity === 'py')",
            timeout=10, what="participant-left for py")
        self.assertEqual(left["reason"], "left")
        self.assertEqual(await self.js(
            "sfu.client.getParticipants().map((p) => p.identity)"), ["chrome"])
        errors = await self.js("sfu.log.filter((e) => e.type === 'error' ||"
                               " e.type === 'play-error')")
        self.assertEqual(errors, [])
        self.assertEqual(await self.js("sfu.client.state"), "connected")

        await self.js("(async () => { clearInterval(sfu.poller); await sfu.client.leave();"
                      " return sfu.client.state; })()")
        self.assertEqual(await self.js("sfu.client.state"), "closed")
        bad = [c for c in self.page.console if c["type"] in ("error", "exception")]
        self.assertEqual(bad, [])
        warnings = [l for l in self.sfud.log if "level=warn" in l or "level=error" in l]
        print("sfud warnings/errors during the call: %d" % len(warnings))
        for line in warnings:
            print("  " + line.rstrip())


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--sfud", required=True)
    ap.add_argument("--room", required=True)
    ARGS, rest = ap.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)

#!/usr/bin/env python3
"""A real browser in a call: headless Chromium and an aiortc peer in one room.

Chromium (fake devices) loads the demo origin sfud serves under /web/ and
drives web/sfu-client.js directly over CDP (Runtime.evaluate; the page side
is pagejs.py's); an aiortc Peer publishes a 660 Hz sine. Each side must
receive and decode the other's audio: Chromium's getStats() inbound-rtp
audio shows packets and energy, the aiortc peer decodes non-silent frames
from "chrome". Then the aiortc peer leaves and the browser client must drop
it from its participants.

BrowserRedTest: two Chromium pages and an aiortc peer; Chromium sends Opus
in RED (RFC 2198), the other page gets RED and decodes it, the aiortc peer
(no RED in its answer) gets the primary frames as Opus and hears them.

DemoPageTest drives the demo page itself (web/index.html + demo.js) the
way a user does, against sfud --dev 1: opens "/", types room and name,
clicks Join, the mic toggle and Leave, and asserts on what the page shows
and on what an aiortc peer in the room receives.

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
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WEB_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "web"))
sys.path.insert(0, HERE)
from sfutest import PageCallTest, Sfud, TestCA, main  # noqa: E402
from aiortc_peer import Peer, SAMPLES_PER_FRAME, SILENCE_RMS, energy  # noqa: E402
from chromium import Chromium  # noqa: E402
from pagejs import join_js  # noqa: E402

ARGS = None
PY_FREQ = 660
HEARD = 0.01          # tone power of the peer's 0.3-amplitude sine is ~0.045
# The beeps (seen: energy ~1e-2 over 2 s, ~7 non-silent frames a second).
BEEP_ENERGY = 1e-4
BEEP_FRAMES_2S = 3


def nonsilent_frames(samples):
    """How many 20 ms frames of ``samples`` are not silent (aiortc_peer's
    SILENCE_RMS criterion)."""
    n = len(samples) // SAMPLES_PER_FRAME
    frames = samples[len(samples) - n * SAMPLES_PER_FRAME:].reshape(n, SAMPLES_PER_FRAME)
    return sum(1 for f in frames if energy(f) > SILENCE_RMS ** 2)


def beep_onsets(samples, min_gap_frames=10):
    """How many separate beeps start in ``samples``: silent -> non-silent
    transitions between 20 ms frames (a non-silent first frame counts), at
    least ``min_gap_frames`` after the previous one (the fake microphone
    beeps every 500 ms = 25 frames)."""
    n = len(samples) // SAMPLES_PER_FRAME
    frames = samples[len(samples) - n * SAMPLES_PER_FRAME:].reshape(n, SAMPLES_PER_FRAME)
    loud = [energy(f) > SILENCE_RMS ** 2 for f in frames]
    onsets, last = 0, None
    for i, x in enumerate(loud):
        if x and (i == 0 or not loud[i - 1]) and (last is None or i - last >= min_gap_frames):
            onsets, last = onsets + 1, i
    return onsets


class BrowserTestBase(PageCallTest):
    """sfud (serving web/) and a headless Chromium, both torn down in
    cleanups; aiortc peers in self.peers are closed and checked after each
    test. With TLS = True sfud serves HTTPS/WSS with a certificate from a
    throwaway CA that Chromium and the aiortc peers trust (and nothing
    else does)."""
    SFUD_ARGS = ("--web-root", WEB_DIR)
    TLS = False

    def setUp(self):
        self.browser = None
        self.page = None
        self.peers = []
        tls, ca, self.ws_options = None, None, {}
        if self.TLS:
            d = tempfile.mkdtemp(prefix="sfu-test-ca-")
            self.addCleanup(shutil.rmtree, d, True)
            ca = TestCA(d)
            tls = (*ca.issue("sfud"), ca.pem)
        self.sfud = Sfud(ARGS.sfud, ARGS.room, *self.SFUD_ARGS, tls=tls)
        self.addCleanup(self.sfud.stop_and_check)
        if self.TLS:
            self.ws_options = {"ssl": self.sfud.ssl_context()}
        self.origin = "%s://127.0.0.1:%d" % ("https" if self.TLS else "http", self.sfud.port)
        self.browser = Chromium(extra_args=["--autoplay-policy=no-user-gesture-required"],
                                ca_file=ca.pem if ca else None)
        self.addCleanup(self.close_browser, self.browser)

    async def asyncTearDown(self):
        await super().asyncTearDown()
        self.assert_peers_clean()

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


class BrowserCallTest(BrowserTestBase):
    def setUp(self):
        super().setUp()
        self.room = self.new_room("browser")
        self.ws_url = self.room["ws_url"]

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
        self.page = await asyncio.to_thread(self.browser.open, self.origin + "/web/index.html")
        self.assertTrue(await self.js("!!document.querySelector('#join-form')"),
                        "the demo page did not load from sfud's /web/")
        self.assertEqual(await self.js("location.protocol"), "https:" if self.TLS else "http:")
        self.assertTrue(self.ws_url.startswith("wss://" if self.TLS else "ws://"), self.ws_url)

        # The aiortc peer first, so Chromium's join-to-first-audio is its own
        # (the server re-offers to add py's track after Chromium's offer).
        py = Peer(self.ws_url, room_id, py_token, "py", freq=PY_FREQ, ws_options=self.ws_options)
        self.peers.append(py)
        await py.join()
        # (aiortc 1.4/aioice 0.8 end in "failed" if a Binding request from
        # the server reaches them before their own first check; an ICE-lite
        # server never sends one, so this is asserted, not tolerated.)
        await py.wait_connected()

        t0 = time.monotonic()
        welcome = await self.js(join_js(self.ws_url, room_id, chrome_token))
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


# -- the demo page (web/index.html + demo.js) driven as a user would --------

# What the demo page shows, read from the DOM: visibility, texts, classes.
DEMO_STATE_JS = r"""
(() => {
  const $ = (id) => document.getElementById(id);
  const shown = (el) => !!el && !el.closest('[hidden]') && el.getClientRects().length > 0;
  const text = (el) => (el ? el.innerText : '').replace(/\s+/g, ' ').trim();
  const mic = $('mic-button');
  return {
    path: location.pathname,
    joinShown: shown($('join-view')), callShown: shown($('call-view')),
    formBusy: $('join-form').getAttribute('aria-busy'),
    room: text($('room-name')), state: $('conn-state').dataset.state,
    stateText: text($('conn-state')), count: text($('participant-count')),
    participants: [...document.querySelectorAll('#participants > li')].map((li) => ({
      text: text(li), you: text(li.querySelector('.you')),
      name: li.querySelector('.p-name')?.firstChild?.textContent ?? null,
      identity: li.dataset.identity, sid: li.dataset.sid,
      speaking: li.classList.contains('speaking'),
      speakingLabel: text(li.querySelector('.speaking-label')),
      muted: li.classList.contains('muted'),
      mic: li.querySelector('.mic-state')?.dataset.state ?? null,
      micTitle: li.querySelector('.mic-state')?.title ?? null })),
    micShown: shown(mic), micText: text($('mic-button-text')), micDisabled: mic.disabled,
    micMutedClass: mic.classList.contains('is-muted'),
    micIcon: mic.querySelector('use').getAttribute('href'), micNote: text($('mic-note')),
    leaveShown: shown($('leave-button')),
    error: shown($('error')) ? text($('error-text')) : null, formError: text($('form-error')),
    audio: [...$('audio-sink').querySelectorAll('audio')].map((a) => ({
      sid: a.dataset.sid, paused: a.paused, currentTime: a.currentTime,
      tracks: a.srcObject ? a.srcObject.getAudioTracks().map((t) => t.readyState) : [] })),
  };
})()
"""

# Types into the join form like a user: focus, set the value, fire
# input/change; leaves "Join with my microphone" as it is (checked).
FILL_JOIN_FORM_JS = r"""
(() => {
  const type = (el, value) => {
    el.focus();
    Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set.call(el, value);
    el.dispatchEvent(new InputEvent('input', { bubbles: true, inputType: 'insertText', data: value }));
    el.dispatchEvent(new Event('change', { bubbles: true }));
  };
  type(document.getElementById('room-input'), %(room)s);
  type(document.getElementById('name-input'), %(name)s);
  return { room: document.getElementById('room-input').value,
           name: document.getElementById('name-input').value,
           mic: document.getElementById('mic-input').checked };
})()
"""

# A user's click on a visible, enabled button (by id).
CLICK_JS = r"""
((id) => {
  const b = document.getElementById(id);
  if (!b || b.closest('[hidden]') || !b.getClientRects().length) throw new Error(id + ' is not shown');
  if (b.disabled) throw new Error(id + ' is disabled');
  b.click();
  return true;
})(%s)
"""


class BrowserRedTest(BrowserTestBase):
    """Opus RED (RFC 2198) from Chromium: the server answers Chromium's
    red/48000/2 first, so "a" sends RED. A second page "b" kept RED in its
    answer and must get it (inbound-rtp codec audio/red) and decode it
    (totalSamplesReceived and energy growing); the aiortc peer "py" answers
    Opus only and must get the primary blocks as plain Opus and decode a's
    beeps. A few seconds of audio."""

    def setUp(self):
        super().setUp()
        self.room = self.new_room("red")
        self.ws_url = self.room["ws_url"]
        self.pages = {}

    async def on(self, name, expression, timeout=15.0):
        return await asyncio.to_thread(self.pages[name].evaluate, expression, True, timeout)

    async def test_chromium_red_reaches_chromium_as_red_and_aiortc_as_opus(self):
        try:
            await self._scenario()
        except BaseException:
            print("\n" + await self.diagnostics(), file=sys.stderr)
            for name in self.pages:
                self.page = self.pages[name]
                print("--- page %s ---\n%s" % (name, await self.diagnostics()), file=sys.stderr)
            raise

    async def _scenario(self):
        room_id = self.room["room_id"]
        py = Peer(self.ws_url, room_id, self.token("py"), "py", freq=PY_FREQ)
        self.peers.append(py)
        await py.join()
        await py.wait_connected()
        self.sids = {}
        for name in ("a", "b"):
            self.pages[name] = self.page = await asyncio.to_thread(
                self.browser.open, self.origin + "/web/index.html")
            welcome = await self.on(name, join_js(self.ws_url, room_id, self.token(name)))
            self.sids[name] = welcome["sid"]
        # the server's answer to a lists RED first: Chromium sends RED
        local = await self.on("a", "sfu.client.pc.currentRemoteDescription.sdp")
        audio = next(l for l in local.split("\r\n") if l.startswith("m=audio"))
        red_pt = next(l.split()[0].split(":")[1] for l in local.split("\r\n")
                      if l.startswith("a=rtpmap:") and "red/48000/2" in l)
        self.assertEqual(audio.split()[3], red_pt, audio)
        # b receives a's audio as RED and decodes it. Chromium's getStats()
        # names Opus as the codec of a RED stream; what shows the RED is its
        # jitter buffer splitting each packet into its blocks and discarding
        # the redundant copy of a frame it already has (packetsDiscarded
        # follows packetsReceived), which a plain Opus stream (py's) never
        # shows on a clean loopback.
        first = await self.until(self._red_stats, timeout=15, what="b decoding a's RED")
        await asyncio.sleep(2.0)
        later = {r["ssrc"]: r for r in await self.on("b", "sfu.stats()")}
        for r in first:
            now = later[r["ssrc"]]
            self.assertGreater(now["totalSamplesReceived"], r["totalSamplesReceived"] + 48000)
            self.assertGreater(now["totalAudioEnergy"], r["totalAudioEnergy"])
            self.assertGreater(now["packetsDiscarded"], now["packetsReceived"] // 2, now)
        st, j = self.sfud.request("GET", "/v1/rooms/%s" % room_id)
        stats = j.get("stats", j)
        audio = stats["packets"]["audio"]
        self.assertGreater(audio["red_in"], 100, stats)
        self.assertGreater(audio["red_out"], 100, stats)
        self.assertEqual(stats["packets"]["drop_malformed"], 0, stats)

        # py gets plain Opus (its answer has no RED) and hears a's beeps
        await self.until(lambda: py.audio_energy("a", 2.0) > BEEP_ENERGY, timeout=15,
                         what="py hearing a")
        src = next(iter(py.find_sources("a")), None)
        self.assertIsNotNone(src, py.received_by_source())
        self.assertGreaterEqual(nonsilent_frames(src.window(2.0)), BEEP_FRAMES_2S,
                                py.received_by_source())
        b_a = later[first[0]["ssrc"]]
        print("\nb <- a (RED, getStats codec %s): %d packets, %d discarded, %d samples;"
              " py <- a (Opus): %d frames, %d non-silent; room red_in %d red_out %d"
              % (b_a["codec"], b_a["packetsReceived"], b_a["packetsDiscarded"],
                 b_a["totalSamplesReceived"], src.frames, src.nonsilent_frames,
                 audio["red_in"], audio["red_out"]))

    async def _red_stats(self):
        """b's inbound audio from a (the track of a's stream), once it has
        packets and energy."""
        track = await self.on("b", "(() => { const s = sfu.client.remoteStreams.get(%s);"
                                   " return s && s.getAudioTracks().length ?"
                                   " s.getAudioTracks()[0].id : null; })()"
                                   % json.dumps(self.sids["a"]))
        st = await self.on("b", "sfu.stats()")
        got = [r for r in st if track and r["track"] == track and r["packetsReceived"] > 50
               and r["totalAudioEnergy"] > 0]
        return got or None


class BrowserRelayTest(BrowserTestBase):
    """Chromium served by a relay of the room (docs/internals/relay.md): the
    origin takes one publisher (relay_threshold 1), so the page, joining
    second, lands on the room's one relay. The relay is killed: the page's
    client is closed with 4016 and joins again by itself (web/sfu-client.js
    `rejoining`/`rejoined`), this time on the origin, and hears the aiortc
    peer again."""
    SFUD_ARGS = ("--web-root", WEB_DIR, "--relay-threshold", "1", "--max-relays", "1")

    async def test_chromium_on_a_killed_relay_joins_again_by_itself(self):
        try:
            await self._scenario()
        except BaseException:
            print("\n" + await self.diagnostics(), file=sys.stderr)
            raise

    def relays(self, room_id):
        return self.sfud.request("GET", "/v1/rooms/%s/relays" % room_id)[1]

    async def _scenario(self):
        room = self.new_room("relayed")
        room_id, ws_url = room["room_id"], room["ws_url"]
        st, j = self.sfud.request("POST", "/v1/rooms/%s/relays" % room_id, {})
        self.assertEqual(st, 201, j)
        await self.until(lambda: [x for x in self.relays(room_id) if x["state"] == "running"],
                         what="the relay running")
        py = Peer(ws_url, room_id, self.token("py", room), "py", freq=PY_FREQ)
        self.peers.append(py)
        await py.join()
        self.page = await asyncio.to_thread(self.browser.open, self.origin + "/web/index.html")
        await self.js(join_js(ws_url, room_id, self.token("chrome", room)))
        await self.until(lambda: [x for x in self.relays(room_id) if x["participants"] == 1],
                         what="chrome on the relay")
        hears = ("sfu.stats().then((st) => st.some((r) => r.packetsReceived > 0"
                 " && r.totalAudioEnergy > 0))")
        await self.js_until(hears, timeout=15, what="Chromium hears py through the relay")

        pid = self.relays(room_id)[0]["pid"]
        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        await self.js_until("sfu.log.some((e) => e.type === 'rejoined')", timeout=15,
                            what="the client joined again")
        await self.js_until(hears, timeout=15, what="Chromium hears py again")
        took = time.monotonic() - t0
        print("relay killed: Chromium joined again and hears py after %.2f s" % took)
        events = await self.js("sfu.log.map((e) => e.type)")
        self.assertIn("rejoining", events)
        self.assertEqual(await self.js("sfu.client.state"), "connected")
        self.assertLess(took, 10)
        # the room went on: py never left, and sees chrome again
        await self.until(lambda: "chrome" in py.identities.values(), what="py sees chrome")
        # (sfud counts what the room and its new relay tell it, a moment later)
        await self.until(lambda: self.sfud.request("GET", "/v1/rooms/" + room_id)[1]
                         ["participants"] == 2, what="the room counting 2 participants")


class BrowserCallOverTlsTest(BrowserCallTest):
    """The same call with sfud on HTTPS/WSS (tls_cert_file, tls_key_file):
    Chromium loads the page from https:// as a secure context, trusting
    the test CA from its NSS database, and joins over wss://."""
    TLS = True


class DemoPageTest(BrowserTestBase):
    """The demo page end to end against the real server, through its UI only.

    sfud runs with --dev 1 (POST /dev/join) and serves web/. An aiortc Peer
    "py" (660 Hz, token from POST /dev/join without the API key) is in room
    "demo"; Chromium opens the origin's "/", types room and name, clicks
    Join, and the test asserts on what the page shows (participants list,
    the .speaking highlight from the server's speaking events, the mic
    button's label/state) and on what py gets from the server.

    demo.js opens the microphone with the default getUserMedia constraints
    (echo cancellation on). Measured here: the fake device's first beep gets
    through, then AEC3 (while the page plays py's tone) suppresses the beeps
    for ~1-7 s, after which they arrive steadily (~400 Hz, every 500 ms).
    So the test waits (bounded, 25 s) for 4 s of steady beeps before muting,
    which also makes "muted => silence" a real before/after comparison. (So
    no getStats fallback is needed: py's decoded audio is asserted on.)
    """
    SFUD_ARGS = ("--web-root", WEB_DIR, "--dev", "1")
    ROOM = "demo"
    NAME = "Chrome User"

    def dev_join(self, identity, name=None):
        body = {"room": self.ROOM, "identity": identity}
        if name is not None:
            body["name"] = name
        st, j = self.sfud.request("POST", "/dev/join", body, auth=False)
        self.assertIn(st, (200, 201), j)
        for k in ("token", "room_id", "ws_url"):
            self.assertIsInstance(j.get(k), str, j)
        return j

    async def state(self):
        return await self.js(DEMO_STATE_JS)

    async def state_until(self, pred, timeout=15.0, what="page state"):
        """Poll the page's shown state until pred(state) is truthy."""
        end = time.monotonic() + timeout
        while True:
            st = await self.state()
            if pred(st):
                return st
            if time.monotonic() >= end:
                self.fail("timed out (%.0f s) waiting for %s; page shows:\n%s"
                          % (timeout, what, json.dumps(st, indent=1)))
            await asyncio.sleep(0.1)

    async def click(self, button_id):
        await self.js(CLICK_JS % json.dumps(button_id))

    @staticmethod
    def row(st, name):
        return next((p for p in st["participants"] if p["name"] == name), None)

    async def diagnostics(self):
        out = [await super().diagnostics()]
        if self.page is not None:
            try:
                out += ["--- demo page shows ---", json.dumps(await self.js(
                    "document.getElementById('join-form') ? %s : location.href"
                    % DEMO_STATE_JS, timeout=5), indent=1)]
            except Exception as e:
                out.append("(page unavailable: %r)" % e)
        for p in self.peers:
            out += ["--- %s events ---" % p.identity] + [
                json.dumps(m)[:300] for _, m in p.events
                if m.get("type") not in ("pong", "answer", "offer", "candidate")]
        return "\n".join(out)

    async def test_demo_page_join_talk_mute_and_speaking(self):
        try:
            await self._demo_scenario()
        except BaseException:
            print("\n" + await self.diagnostics(), file=sys.stderr)
            raise

    async def _demo_scenario(self):
        origin = self.origin
        timings = {}

        # py joins "demo" with a token from the development route.
        grant = self.dev_join("py", "py")
        py = Peer(grant["ws_url"], grant["room_id"], grant["token"], "py", freq=PY_FREQ,
                  ws_options=self.ws_options)
        self.peers.append(py)
        await py.join()
        await py.wait_connected()

        # The browser opens the origin; "/" redirects to the demo page.
        self.page = await asyncio.to_thread(self.browser.open, origin + "/")
        self.assertEqual(await self.js("location.href"), origin + "/web/")
        shown = await self.state_until(lambda s: s["joinShown"] and not s["callShown"],
                                       timeout=10, what="the join form")
        self.assertEqual(await self.js("document.title"), "Voice room — sfud demo")
        self.assertIsNone(shown["error"])

        # Type room and name, click Join.
        filled = await self.js(FILL_JOIN_FORM_JS % {"room": json.dumps(self.ROOM),
                                                    "name": json.dumps(self.NAME)})
        self.assertEqual(filled, {"room": self.ROOM, "name": self.NAME, "mic": True})
        mark = py.mark()
        t0 = time.monotonic()
        await self.click("join-button")

        # The call view: room "demo", connected, py and me in the list.
        def in_call(s):
            return (s["callShown"] and not s["joinShown"] and s["state"] == "connected"
                    and self.row(s, "py") and s["error"] is None)
        shown = await self.state_until(
            lambda s: in_call(s) or s["error"], timeout=20, what="the call view, connected")
        self.assertIsNone(shown["error"], shown)
        timings["connected"] = time.monotonic() - t0
        self.assertEqual(shown["room"], self.ROOM)
        self.assertEqual(shown["stateText"], "Connected")
        self.assertEqual(shown["count"], "(2)")
        self.assertEqual([p["name"] for p in shown["participants"]], [self.NAME, "py"])
        me, them = shown["participants"]
        self.assertEqual(me["you"], "(you)")
        self.assertEqual(me["text"].split(",")[0].strip(), "CU Chrome User (you)")
        self.assertRegex(me["identity"], r"^chrome-user-[0-9a-f]{6}$")
        self.assertEqual(them["identity"], "py")
        self.assertEqual(them["sid"], py.sid)
        self.assertEqual(them["mic"], "on")
        self.assertTrue(shown["micShown"] and shown["leaveShown"])
        self.assertFalse(shown["micDisabled"])
        self.assertEqual(shown["micText"], "Mute microphone")
        self.assertFalse(shown["micMutedClass"])
        chrome_id, chrome_sid = me["identity"], me["sid"]
        # py was told about the newcomer, under the name typed in the form
        joined = await py.wait_event(
            "participant_joined", lambda m: m["participant"]["identity"] == chrome_id,
            timeout=5, since=mark)
        self.assertEqual(joined["participant"].get("name"), self.NAME)
        self.assertEqual(joined["participant"]["sid"], chrome_sid)

        # py's continuous tone: the server's speaking events highlight it.
        shown = await self.state_until(
            lambda s: (self.row(s, "py") or {}).get("speaking"), timeout=10,
            what="py highlighted as speaking")
        timings["py_speaking"] = time.monotonic() - t0
        # (", " before it is visually hidden, for screen readers)
        self.assertEqual(self.row(shown, "py")["speakingLabel"].lstrip(", "), "speaking")
        self.assertIn("speaking", self.row(shown, "py")["text"])

        # The page plays py's stream (one <audio> for py's sid, playing).
        shown = await self.state_until(
            lambda s: any(a["sid"] == py.sid and not a["paused"] and a["currentTime"] > 0
                          for a in s["audio"]), timeout=10, what="py's audio playing")
        self.assertEqual([a["sid"] for a in shown["audio"]], [py.sid])
        t_audio = shown["audio"][0]["currentTime"]
        await asyncio.sleep(0.5)
        self.assertGreater((await self.state())["audio"][0]["currentTime"], t_audio)

        # py hears the Chrome participant: steady beeps (energy, and at least
        # 7 of the fake microphone's 8 beeps in the last 4 s: past the first
        # beep(s) AEC lets through and its suppression phase), and not its
        # own tone coming back.
        def steady_beeps():
            srcs = py.find_sources(chrome_id)
            return srcs and py.audio_energy(chrome_id, 2.0) > BEEP_ENERGY and \
                beep_onsets(srcs[0].window(4.0)) >= 7
        await self.until(steady_beeps, timeout=25, what="py hearing steady beeps from chrome")
        timings["py_hears_chrome"] = time.monotonic() - t0
        src = py.find_sources(chrome_id)[0]
        timings["py_first_beep"] = src.first_audio_t - t0
        before = {"energy": py.audio_energy(chrome_id, 2.0),
                  "nonsilent": nonsilent_frames(src.window(2.0)),
                  "beeps": beep_onsets(src.window(4.0)),
                  "own_tone": py.tone_power(chrome_id, PY_FREQ, 2.0)}
        self.assertGreaterEqual(before["nonsilent"], BEEP_FRAMES_2S, before)
        self.assertLess(before["own_tone"], HEARD / 10)

        # Click the mic toggle: the page shows muted, py gets the update.
        mark = py.mark()
        t1 = time.monotonic()
        await self.click("mic-button")
        shown = await self.state_until(
            lambda s: s["micText"] == "Unmute microphone" and not s["micDisabled"],
            timeout=10, what="the mic button to show 'Unmute microphone'")
        self.assertTrue(shown["micMutedClass"])
        self.assertEqual(shown["micIcon"], "#icon-mic-off")
        self.assertEqual(shown["micNote"], "Your microphone is off.")
        mine = self.row(shown, self.NAME)
        self.assertTrue(mine["muted"])
        self.assertEqual((mine["mic"], mine["micTitle"]), ("off", "microphone off"))
        self.assertIn("microphone off", mine["text"])
        upd = await py.wait_event(
            "participant_updated", lambda m: m["participant"]["identity"] == chrome_id
            and m["participant"].get("muted") is True, timeout=5, since=mark)
        timings["mute_seen_by_py"] = time.monotonic() - t1
        self.assertEqual(upd["participant"]["sid"], chrome_sid)
        self.assertTrue(all(t.get("muted") for t in upd["participant"].get("tracks", [])), upd)
        # ... and py now gets silence from chrome while packets keep coming.
        await asyncio.sleep(1.0)
        frames = src.frames
        await asyncio.sleep(2.0)
        after = {"energy": py.audio_energy(chrome_id, 2.0),
                 "nonsilent": nonsilent_frames(src.window(2.0)),
                 "frames_2s": src.frames - frames}
        after["beeps"] = beep_onsets(src.window(2.0))
        self.assertEqual((after["nonsilent"], after["beeps"]), (0, 0), (before, after))
        self.assertLess(after["energy"], BEEP_ENERGY / 100, (before, after))
        self.assertGreater(after["frames_2s"], 50, after)     # ~100 expected
        # py is still shown (and still speaking), nothing went wrong
        shown = await self.state()
        self.assertTrue(self.row(shown, "py")["speaking"], shown)
        self.assertIsNone(shown["error"])
        self.assertEqual(shown["state"], "connected")

        # Click Leave: py gets participant_left, the page is back to the form.
        mark = py.mark()
        t2 = time.monotonic()
        await self.click("leave-button")
        left = await py.wait_event(
            "participant_left", lambda m: m.get("identity") == chrome_id,
            timeout=10, since=mark)
        timings["leave_seen_by_py"] = time.monotonic() - t2
        self.assertEqual(left.get("reason"), "left")
        self.assertEqual(left.get("sid"), chrome_sid)
        shown = await self.state_until(lambda s: s["joinShown"] and not s["callShown"],
                                       timeout=10, what="the join form again")
        self.assertEqual(shown["audio"], [])
        self.assertIsNone(shown["error"])
        self.assertEqual(shown["formBusy"], "false")
        self.assertEqual(py.pc.connectionState, "connected")

        bad = [c for c in self.page.console if c["type"] in ("error", "exception")]
        self.assertEqual(bad, [])
        print("\ndemo page: connected %.2f s after Join, py shown speaking at %.2f s;"
              " py hears chrome's first beep at %.2f s, steady beeps at %.2f s (AEC on);"
              " mute seen by py %.3f s after the click, leave %.3f s"
              % (timings["connected"], timings["py_speaking"], timings["py_first_beep"],
                 timings["py_hears_chrome"], timings["mute_seen_by_py"],
                 timings["leave_seen_by_py"]))
        print("py <- chrome before mute: energy(2 s) %.1e, %d beeps in 4 s, %d non-silent"
              " frames in 2 s, 660 Hz %.1e; after mute: energy %.1e, %d non-silent of %d frames in 2 s"
              % (before["energy"], before["beeps"], before["nonsilent"], before["own_tone"],
                 after["energy"], after["nonsilent"], after["frames_2s"]))


class DemoPageOverTlsTest(DemoPageTest):
    """The demo page from an HTTPS origin (sfud with tls_cert_file; the
    page's /dev/join grant and its WebSocket are https:// and wss://)."""
    TLS = True


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Chromium on another "machine" reconnects on its own (web/sfu-client.js).

Chromium runs in a network namespace of its own (tests/integration/
netns.py), joined to the root one by a veth pair: it reaches sfud over
HTTPS/WSS at the root end's address, with a certificate from a throwaway
CA it trusts -- the demo origin served to another host, as a secure
context. An aiortc peer in the root namespace publishes a 660 Hz tone.

* The signaling socket dies with no close frame (its TCP connection is
  killed with `ss -K` inside the namespace): the client resumes by itself;
  the peer sees no participant_left/joined, audio flows both ways
  throughout, and the time to `reconnected` is printed.
* The client moves to a new address (the namespace's address is replaced:
  the old path is dead): the client restarts ICE by itself, without
  renegotiating its tracks, and audio comes back; the gap in what Chromium
  receives is measured and printed.

Usage: test_reconnect_browser.py --sfud PATH --room PATH
"""
import asyncio
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WEB_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "web"))
sys.path.insert(0, HERE)
from sfutest import PageCallTest, Sfud, TestCA, main  # noqa: E402
from aiortc_peer import Peer  # noqa: E402
from chromium import CdpError, Chromium  # noqa: E402
from netns import new_namespace  # noqa: E402
from pagejs import join_js  # noqa: E402

ARGS = None
PY_FREQ = 660
BEEP_ENERGY = 1e-4


class ReconnectTest(PageCallTest):
    UNTIL_S = 20.0

    def setUp(self):
        self.ns = new_namespace("sfurec")
        self.addCleanup(self.ns.close)
        d = tempfile.mkdtemp(prefix="sfu-rec-test-")
        self.addCleanup(shutil.rmtree, d, True)
        ca = TestCA(d)
        # the root end of the veth: sfud's HTTPS and media address
        self.sfud = Sfud(ARGS.sfud, ARGS.room, "--web-root", WEB_DIR,
                         "--rtc-addresses", self.ns.outer, listen_host=self.ns.outer,
                         tls=(*ca.issue("sfud", ips=(self.ns.outer,)), ca.pem))
        self.addCleanup(self.sfud.stop)
        self.origin = "https://%s:%d" % (self.ns.outer, self.sfud.port)
        self.browser = self.in_ns(lambda: Chromium(
            extra_args=["--autoplay-policy=no-user-gesture-required"], ca_file=ca.pem,
            prefix=self.ns.exec_prefix()))
        self.addCleanup(lambda: self.in_ns(self.browser.close))
        self.room = self.new_room("reconnect")
        self.peers = []

    def in_ns(self, fn):
        """fn() with this thread inside the namespace (DevTools listens on
        the namespace's loopback); sockets it opens stay there."""
        with self.ns.entered():
            return fn()

    async def timeout_details(self):
        return "; client log %s" % await self.js("JSON.stringify(sfu.log.slice(-20))")

    async def packets_in(self):
        st = await self.js("sfu.stats()")
        return sum(r["packetsReceived"] for r in st)

    async def call(self):
        """Chromium (in the namespace) and py (root) hearing each other."""
        self.page = await asyncio.to_thread(self.in_ns, lambda: self.browser.open())
        for attempt in range(3):
            # (a namespace's fresh network may still be "changing" for
            # Chromium: its first load can fail with ERR_NETWORK_CHANGED)
            try:
                await asyncio.to_thread(self.page.navigate, self.origin + "/web/index.html")
                break
            except CdpError as e:
                if "ERR_NETWORK_CHANGED" not in str(e) or attempt == 2:
                    raise
                await asyncio.sleep(0.5)
        self.assertEqual(await self.js("location.protocol"), "https:")
        self.assertTrue(await self.js("window.isSecureContext"))
        py = Peer(self.room["ws_url"], self.room["room_id"], self.token("py"), "py",
                  freq=PY_FREQ, host_addresses=[self.ns.outer],
                  ws_options={"ssl": self.sfud.ssl_context()})
        self.peers.append(py)
        await py.join()
        await py.wait_connected()
        await self.js(join_js(self.room["ws_url"], self.room["room_id"], self.token("chrome")))
        await self.js_until("sfu.client.state === 'connected'", what="Chromium connected")
        await self.js_until("sfu.stats().then((st) => st.some((r) => r.totalAudioEnergy > 0))",
                            what="Chromium hears py")
        await py.wait_until(lambda: py.audio_energy("chrome", 2.0) > BEEP_ENERGY, timeout=20,
                            what="py hears chrome")
        return py

    async def test_dropped_signaling_socket_resumes(self):
        py = await self.call()
        since = py.mark()
        before = await self.packets_in()
        # Chromium's WebSocket to sfud, killed from inside its namespace
        t0 = time.monotonic()
        r = self.ns.run("ss", "-K", "-tn", "state", "established",
                        "dst", "%s:%d" % (self.ns.outer, self.sfud.port))
        self.assertIn(str(self.sfud.port), r.stdout, "no socket killed: " + r.stdout)
        ev = await self.js_until(
            "sfu.log.find((e) => e.type === 'reconnected') || null", what="reconnected")
        t_back = time.monotonic() - t0
        # media went on: Chromium kept receiving py, py kept hearing Chromium
        await asyncio.sleep(1.0)
        self.assertGreater(await self.packets_in(), before)
        self.assertGreater(py.audio_energy("chrome", 1.0), BEEP_ENERGY)
        self.assertEqual([m for m in py.events_of("participant_left", since)], [])
        self.assertEqual([m for m in py.events_of("participant_joined", since)], [])
        self.assertEqual(self.sfud.metric("sfu_ws_resumes_total"), 1)
        self.assertEqual(await self.js("sfu.client.state"), "connected")
        self.assertTrue(await self.js("sfu.log.some((e) => e.type === 'reconnecting')"))
        print("\nsignaling socket killed -> 'reconnected' after %.3f s (test clock)" % t_back)

    async def test_new_address_restarts_ice(self):
        py = await self.call()
        since = py.mark()
        tracks = await self.js("sfu.log.filter((e) => e.type === 'track').length")
        # the namespace's address changes: Chromium's host candidate dies
        # (deleting the primary address deletes its secondaries: del, then add)
        new = self.ns.inner.rsplit(".", 1)[0] + ".3"
        page_t0 = await self.js("performance.now()")
        t0 = time.monotonic()
        self.ns.run("ip", "addr", "del", self.ns.inner + "/24", "dev", self.ns.inner_dev)
        self.ns.run("ip", "addr", "add", new + "/24", "dev", self.ns.inner_dev)
        # packets from py stop arriving, then come back over the new path
        last, stalled_at, back_at = await self.packets_in(), None, None
        while time.monotonic() - t0 < 30 and back_at is None:
            await asyncio.sleep(0.1)
            n = await self.packets_in()
            now = time.monotonic() - t0
            if n == last and stalled_at is None:
                stalled_at = now
            elif n > last and stalled_at is not None:
                back_at = now
            last = n
        self.assertIsNotNone(back_at, "audio did not come back: %s" %
                             await self.js("JSON.stringify(sfu.log.slice(-12))"))
        self.assertTrue(await self.js("sfu.log.some((e) => e.type === 'ice-restart')"))
        await py.wait_until(lambda: py.audio_energy("chrome", 1.0) > BEEP_ENERGY, timeout=15,
                            what="py hears chrome again")
        # ICE only: no track came or went, nobody left or joined
        self.assertEqual(await self.js("sfu.log.filter((e) => e.type === 'track').length"),
                         tracks)
        self.assertEqual(py.events_of("participant_left", since), [])
        # the signaling socket died with the old address: resumed on a new one
        self.assertEqual(self.sfud.metric("sfu_ws_resumes_total"), 1)
        pair = await self.js(
            "sfu.client.pc.getStats().then((st) => { let out = null; st.forEach((r) => {"
            " if (r.type === 'local-candidate') out = out || []; if (r.type === 'local-candidate')"
            " out.push(r.address); }); return out; })")
        self.assertIn(new, pair or [], pair)
        steps = await self.js("sfu.log.filter((e) => e.t > %f).map((e) => [e.type, e.state,"
                              " Math.round(e.t - %f)])" % (page_t0, page_t0))
        print("\naddress changed -> inbound audio stalled after %.1f s, back %.1f s after the "
              "change (%.1f s without audio; 0.1 s polls); client steps (ms after): %s" %
              (stalled_at or 0, back_at, back_at - (stalled_at or 0), steps))


if __name__ == "__main__":
    main()

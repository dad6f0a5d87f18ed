#!/usr/bin/env python3
"""ICE over TCP (RFC 6544, RFC 4571 framing): clients whose UDP is blocked
reach the room through its passive TCP candidates.

Topology (netns.py; the test creates and deletes everything):

    [root]                                  ── veth ──  [ns "cli"]
    sfud + rooms, HTTP and media on `outer`              Chromium, sfu-replay
    (10.77.S.1): UDP and TCP                             (10.77.S.2): UDP dropped
    aiortc peer (UDP, ICE over UDP only)                 both ways (iptables)

The clients' namespace drops every UDP packet in and out (`iptables -A
OUTPUT -p udp -j DROP`, and INPUT), so their only way to the room's media
is TCP; aiortc, in the root namespace, calls over UDP as usual (aioice has
no ICE-TCP), so each test's call mixes both transports in one room.

Tests:

* Chromium (web/sfu-client.js, in the namespace) and an aiortc peer hear
  each other; Chromium's selected candidate pair is TCP on both ends
  (getStats: local candidate protocol "tcp", tcpType "active"; remote
  "tcp" at the room's address), aiortc's is host/host over UDP, and the
  room counts one TCP pair selected (stats.ice_tcp).
* sfu-replay (libnice, --ice-tcp: UDP and TCP candidates, so it falls back
  by itself) joins the aiortc peer's room with a token and publishes a
  440 Hz tone: aiortc hears it, sfu-replay receives aiortc's audio, and the
  room's stats show its pair selected over TCP while it is there.

Skips without network namespaces or iptables.

Usage: test_icetcp.py --sfud PATH --room PATH --replay PATH [--logdir DIR]
"""
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WEB_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "web"))
sys.path.insert(0, HERE)
from sfutest import PageCallTest, Sfud, main  # noqa: E402
from netns import new_namespace  # noqa: E402
from pagejs import STATE_JS, join_js  # noqa: E402

ARGS = None
TAG = "sfuitcp"
PY_FREQ = 660
REPLAY_FREQ = 440
HEARD = 0.01                       # tone power of aiortc's 0.3-amplitude sine: ~0.045
BEEP_ENERGY = 1e-4
# What Chromium's selected ICE pair reports (pagejs.py: sfu.pair()).
PAIR_FIELDS = {"state": "pair.state", "localProtocol": "local.protocol",
               "localType": "local.candidateType", "tcpType": "local.tcpType",
               "remoteProtocol": "remote.protocol", "remoteType": "remote.candidateType",
               "remoteAddress": "remote.address", "remotePort": "remote.port"}


class IceTcpTest(PageCallTest):
    UNTIL_S = 20.0
    POLL_S = 0.2

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="sfu-icetcp-test-")
        cls.ns = cls.sfud = None
        try:
            cls.ns = new_namespace(TAG)
            for chain in ("OUTPUT", "INPUT"):
                cls.ns.run("iptables", "-A", chain, "-p", "udp", "-j", "DROP")
            cls.sfud = Sfud(ARGS.sfud, ARGS.room, "--rtc-addresses", cls.ns.outer,
                            "--web-root", WEB_DIR, listen_host=cls.ns.outer)
        except BaseException:
            cls._tear_down()
            raise

    @classmethod
    def tearDownClass(cls):
        cls._tear_down()

    @classmethod
    def _tear_down(cls):
        problems = []
        if cls.sfud is not None:
            try:
                cls.sfud.stop_and_check(ARGS.logdir and os.path.join(ARGS.logdir,
                                                                     "icetcp.sfud.log"))
            except Exception as e:
                problems.append("sfud: %r" % e)
        if cls.ns is not None:
            cls.ns.close()
            if cls.ns.exists():
                problems.append("namespace %s left behind" % cls.ns.name)
        shutil.rmtree(cls.tmp, ignore_errors=True)
        if problems:
            raise AssertionError("; ".join(problems))

    def setUp(self):
        self.peers = []
        self.browser = self.page = None
        self.room = self.new_room(self._testMethodName)
        self.ws_url = self.room["ws_url"]

    async def asyncTearDown(self):
        await super().asyncTearDown()
        if self.browser is not None:
            with self.ns.entered():
                self.close_browser(self.browser)
        self.assert_peers_clean()

    def ice_tcp(self):
        """The room's ICE-TCP counters, from its latest heartbeat ({} if
        the room reports none)."""
        st, r = self.sfud.request("GET", "/v1/rooms/" + self.room["room_id"])
        return ((r.get("stats") or {}).get("ice_tcp") or {}) if st == 200 else {}

    async def timeout_details(self):
        return "\n" + await self.diagnostics()

    async def diagnostics(self):
        return "\n".join(["--- sfud (last 30 lines) ---", "".join(self.sfud.log[-30:]),
                          "room ice_tcp: %s" % json.dumps(self.ice_tcp())]
                         + await self.call_state(STATE_JS, console=20))

    async def aiortc_peer(self):
        """The peer on the other side: root namespace, UDP, a 660 Hz tone."""
        from aiortc_peer import Peer
        py = Peer(self.ws_url, self.room["room_id"], self.token("py"), "py", freq=PY_FREQ,
                  host_addresses=[self.ns.outer])
        self.peers.append(py)
        await py.join()
        await py.wait_connected(30)
        self.assertEqual(py.selected_candidate_types(), [("host", "host")])
        return py

    # -- tests -----------------------------------------------------------------

    def test_1_udp_is_blocked_in_the_clients_namespace(self):
        rules = self.ns.run("iptables", "-S").stdout
        self.assertIn("-A OUTPUT -p udp -j DROP", rules)
        self.assertIn("-A INPUT -p udp -j DROP", rules)

    async def test_2_chromium_over_tcp_and_aiortc_over_udp(self):
        from chromium import Chromium
        py = await self.aiortc_peer()
        origin = "http://%s:%d" % (self.ns.outer, self.sfud.port)
        t0 = time.monotonic()
        with self.ns.entered():   # its DevTools port is on the namespace's loopback
            # (getUserMedia wants a secure context: this origin is made one)
            self.browser = Chromium(
                extra_args=["--autoplay-policy=no-user-gesture-required",
                            "--unsafely-treat-insecure-origin-as-secure=" + origin],
                prefix=self.ns.exec_prefix())
            self.page = self.browser.open(origin + "/web/index.html")
        await self.js(join_js(self.ws_url, self.room["room_id"], self.token("chrome"),
                              pair_fields=PAIR_FIELDS))
        await self.until(lambda: py.audio_energy("chrome", 2.0) > BEEP_ENERGY,
                         what="aiortc hears chrome")
        await self.until(self.page_hears, what="chrome hears aiortc")
        pair = await self.js("sfu.pair()")
        self.assertEqual(pair["state"], "succeeded", pair)
        self.assertEqual(pair["localProtocol"], "tcp", pair)
        self.assertEqual(pair["tcpType"], "active", pair)
        self.assertEqual(pair["remoteProtocol"], "tcp", pair)
        self.assertEqual(pair["remoteType"], "host", pair)
        self.assertEqual(pair["remoteAddress"], self.ns.outer, pair)
        self.assertEqual(py.selected_candidate_types(), [("host", "host")])  # still UDP
        tcp = await self.until(lambda: (lambda t: t if t.get("selected") == 1 and
                                        min(t["rx_frames"], t["tx_frames"]) > 50 else None)(
            self.ice_tcp()), what="the room's TCP pair in its stats, media over it")
        self.assertGreaterEqual(tcp["accepted"], 1, tcp)
        self.assertEqual(tcp["close_framing"] + tcp["tx_drop_full"], 0, tcp)
        print("\nChromium over ICE-TCP, aiortc over UDP: both hear each other %.1f s after "
              "Chromium started; Chromium's pair %s; room ice_tcp %s"
              % (time.monotonic() - t0, pair, json.dumps(tcp)), flush=True)

    async def test_3_sfu_replay_over_tcp_and_aiortc_over_udp(self):
        if not ARGS.replay:
            self.skipTest("no --replay")
        py = await self.aiortc_peer()
        out = os.path.join(self.tmp, "replay.json")
        t0 = time.monotonic()
        # 6 s of sending: aiortc hears the tone 1-3 s after sfu-replay starts
        # (connecting included), and sfu-replay gets ~350 of aiortc's
        # packets (over 100 are required)
        proc = await asyncio.create_subprocess_exec(
            *self.ns.exec_prefix(), os.path.abspath(ARGS.replay),
            "--token", self.token("replay"), "--ws-url", self.ws_url,
            "--room", self.room["room_id"], "--address", self.ns.inner, "--ice-tcp",
            "--tone", str(REPLAY_FREQ), "--duration", "6", "--json", out,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        try:
            await self.until(lambda: py.tone_power("replay", REPLAY_FREQ, 1.0) > HEARD or
                             proc.returncode is not None,
                             timeout=25, what="aiortc hears sfu-replay's tone")
            if proc.returncode is not None:   # it gave up early
                _, err = await proc.communicate()
                self.fail("sfu-replay exited %d before aiortc heard it:\n%s\n%s"
                          % (proc.returncode, err.decode(errors="replace")[-3000:],
                             await self.diagnostics()))
            heard_s = time.monotonic() - t0
            # what aiortc hears is the tone itself, not a distorted one
            purity = py.tone_power("replay", REPLAY_FREQ, 1.0) / py.audio_energy("replay", 1.0)
            tcp = await self.until(lambda: (lambda t: t if t.get("selected") == 1 else None)(
                self.ice_tcp()), what="sfu-replay's pair on TCP in the room's stats")
            _, err = await asyncio.wait_for(proc.communicate(), 40)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        self.assertEqual(proc.returncode, 0, "sfu-replay: exit %s\n%s\n%s"
                         % (proc.returncode, err.decode(errors="replace")[-3000:],
                            await self.diagnostics()))
        with open(out) as f:
            summary = json.load(f)
        part = summary["clients"][0]
        # RTP of no track of sfu-replay's own: aiortc's tone, ~50 packets/s
        if not part["connected"] or part["unknown_received"] <= 100:
            self.fail("sfu-replay heard too little: %s\n%s" % (part, await self.diagnostics()))
        self.assertGreater(purity, 0.8)
        self.assertGreaterEqual(tcp["selections"], 1, tcp)
        self.assertEqual(tcp["close_framing"] + tcp["tx_drop_full"], 0, tcp)
        print("\nsfu-replay over ICE-TCP (libnice), aiortc over UDP: aiortc heard the tone "
              "%.1f s after sfu-replay started (%.0f%% of its power at %d Hz), sfu-replay "
              "received %d of aiortc's packets; room ice_tcp %s"
              % (heard_s, 100 * purity, REPLAY_FREQ, part["unknown_received"], json.dumps(tcp)),
              flush=True)


if __name__ == "__main__":
    main(replay="optional")

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
import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
WEB_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "web"))
sys.path.insert(0, HERE)
from sfutest import Sfud  # noqa: E402
from netns import NetNS, Unavailable  # noqa: E402
from test_impairment import sweep_stale_namespaces  # noqa: E402

ARGS = None
TAG = "sfuitcp"
PY_FREQ = 660
REPLAY_FREQ = 440
HEARD = 0.01                       # tone power of aiortc's 0.3-amplitude sine: ~0.045
BEEP_ENERGY = 1e-4
MIC = {"echoCancellation": False, "noiseSuppression": False, "autoGainControl": False}

# In the page: an SfuClient playing what arrives; sfu.stats() gives the
# inbound audio and the selected ICE pair's candidates.
JOIN_JS = r"""
(async () => {
  const { SfuClient } = await import('/web/sfu-client.js');
  const client = new SfuClient({ wsUrl: %(ws_url)s });
  const s = window.sfu = { client, audio: [], log: [] };
  for (const t of ['connection-state', 'error', 'close']) {
    client.addEventListener(t, (e) => s.log.push({ t, state: e.detail.state || null,
      error: e.detail.error ? String(e.detail.error.message) : null }));
  }
  client.addEventListener('track', (e) => {
    const a = new Audio();
    a.autoplay = true;
    a.srcObject = e.detail.stream;
    a.play().catch(() => {});
    s.audio.push(a);
  });
  s.stats = async () => {
    const out = { packets: 0, energy: 0, pair: null };
    const pc = client.pc;
    if (!pc) return out;
    const all = new Map();
    (await pc.getStats()).forEach((r) => all.set(r.id, r));
    for (const r of all.values()) {
      if (r.type === 'inbound-rtp' && r.kind === 'audio') {
        out.packets += r.packetsReceived || 0;
        out.energy += r.totalAudioEnergy || 0;
      }
      if (r.type === 'transport' && r.selectedCandidatePairId) {
        const p = all.get(r.selectedCandidatePairId);
        const l = p && all.get(p.localCandidateId);
        const rm = p && all.get(p.remoteCandidateId);
        out.pair = { state: p && p.state, localProtocol: l && l.protocol,
                     localType: l && l.candidateType, tcpType: l && l.tcpType,
                     remoteProtocol: rm && rm.protocol, remoteType: rm && rm.candidateType,
                     remoteAddress: rm && rm.address, remotePort: rm && rm.port };
      }
    }
    return out;
  };
  const welcome = await client.join({ room: %(room)s, token: %(token)s, publishAudio: true,
                                      audioConstraints: %(mic)s });
  return { sid: welcome.participant.sid };
})()
"""


class IceTcpTest(unittest.IsolatedAsyncioTestCase):

    @classmethod
    def setUpClass(cls):
        sweep_stale_namespaces(TAG)
        cls.tmp = tempfile.mkdtemp(prefix="sfu-icetcp-test-")
        cls.ns = cls.sfud = None
        try:
            try:
                cls.ns = NetNS(TAG)
            except Unavailable as e:
                raise unittest.SkipTest(str(e))
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
                cls.sfud.stop()
                cls.sfud.assert_clean_log()
            except Exception as e:
                problems.append("sfud: %r" % e)
            finally:
                cls.sfud.proc.stderr.close()
                if ARGS.logdir:
                    with open(os.path.join(ARGS.logdir, "icetcp.sfud.log"), "w") as f:
                        f.writelines(cls.sfud.log)
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
        st, self.room = self.sfud.request("POST", "/v1/rooms", {"name": self._testMethodName})
        self.assertEqual(st, 201, self.room)
        self.ws_url = self.room["ws_url"]

    async def asyncTearDown(self):
        for p in self.peers:
            await p.close()
        if self.browser is not None:
            tmp = self.browser.tmp_dir
            with self.ns.entered():
                self.browser.close()
            self.assertFalse(os.path.exists(tmp), "chromium temp dir left behind")
            self.assertEqual(self.browser._own_pids(), [], "chromium processes left behind")
        for p in self.peers:
            self.assertEqual(p.errors, [], p.identity)
            self.assertEqual(p.violations, [], p.identity)

    def token(self, identity):
        st, j = self.sfud.request("POST", "/v1/rooms/%s/tokens" % self.room["room_id"],
                                  {"identity": identity})
        self.assertEqual(st, 201, j)
        return j["token"]

    def ice_tcp(self):
        """The room's ICE-TCP counters, from its latest heartbeat ({} if
        the room reports none)."""
        st, r = self.sfud.request("GET", "/v1/rooms/" + self.room["room_id"])
        return ((r.get("stats") or {}).get("ice_tcp") or {}) if st == 200 else {}

    async def until(self, pred, timeout=20.0, what="condition"):
        end = time.monotonic() + timeout
        while True:
            v = pred()
            if asyncio.iscoroutine(v):
                v = await v
            if v:
                return v
            if time.monotonic() >= end:
                self.fail("timed out (%.0f s) waiting for %s\n%s"
                          % (timeout, what, await self.diagnostics()))
            await asyncio.sleep(0.2)

    async def diagnostics(self):
        out = ["--- sfud (last 30 lines) ---", "".join(self.sfud.log[-30:]),
               "room ice_tcp: %s" % json.dumps(self.ice_tcp())]
        if self.page is not None:
            try:
                out.append(json.dumps(await self.js(
                    "window.sfu ? (async () => ({state: sfu.client.state, log: sfu.log,"
                    " stats: await sfu.stats()}))() : null", timeout=5)))
            except Exception as e:
                out.append("(page: %r)" % e)
            out += ["%s: %s" % (c["type"], c["text"]) for c in self.page.console[-20:]]
        for p in self.peers:
            out.append("%s: pc %s, pairs %r, heard %r" % (
                p.identity, p.pc and p.pc.connectionState,
                p.selected_candidate_types() if p.pc else None, p.received_by_source()))
        return "\n".join(out)

    async def js(self, expression, timeout=15.0):
        return await asyncio.to_thread(self.page.evaluate, expression, True, timeout)

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
        await self.js(JOIN_JS % {
            "ws_url": json.dumps(self.ws_url), "room": json.dumps(self.room["room_id"]),
            "token": json.dumps(self.token("chrome")), "mic": json.dumps(MIC)})
        await self.until(lambda: py.audio_energy("chrome", 2.0) > BEEP_ENERGY,
                         what="aiortc hears chrome")
        await self.until(self._chrome_hears, what="chrome hears aiortc")
        pair = (await self.js("sfu.stats()"))["pair"]
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

    async def _chrome_hears(self):
        st = await self.js("sfu.stats()")
        return st["packets"] > 50 and st["energy"] > 0

    async def test_3_sfu_replay_over_tcp_and_aiortc_over_udp(self):
        if not ARGS.replay:
            self.skipTest("no --replay")
        py = await self.aiortc_peer()
        out = os.path.join(self.tmp, "replay.json")
        t0 = time.monotonic()
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
        self.assertGreaterEqual(tcp["selections"], 1, tcp)
        self.assertEqual(tcp["close_framing"] + tcp["tx_drop_full"], 0, tcp)
        print("\nsfu-replay over ICE-TCP (libnice), aiortc over UDP: aiortc heard the tone "
              "%.1f s after sfu-replay started, sfu-replay received %d of aiortc's packets; "
              "room ice_tcp %s" % (heard_s, part["unknown_received"], json.dumps(tcp)),
              flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--sfud", required=True)
    ap.add_argument("--room", required=True)
    ap.add_argument("--replay", default=None)
    ap.add_argument("--logdir", default=None)
    ARGS, rest = ap.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)

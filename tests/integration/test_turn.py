#!/usr/bin/env python3
"""Calls through a real TURN server: coturn, ephemeral credentials from sfud.

Topology (netns.py; the test creates and deletes everything):

    root ── veth ── [ns "sfu"]                          [ns "cli"]
                     sfud + rooms, media on `rtc`        aiortc, Chromium
                     (10.77.S.2)                         (10.77.C.2)
                     coturn: listens on `edge` ── veth ── the clients' only link
                     (10.77.C.1): TURN 3478 udp/tcp, TLS 443
                     relays from `rtc`

The clients' namespace has one link, to the SFU's namespace, and no route
beyond its /24 (10.77.C.0/24): they reach sfud's HTTP/WebSocket and coturn
on `edge`, but not the room's media address `rtc` (asserted: a UDP
datagram to it fails with "network unreachable"). sfud listens on `edge`
too (signaling); its rooms bind only `rtc`, so every media packet has to
be relayed by coturn. The test's own thread works inside the clients'
namespace (NetNS.entered(): aiortc's sockets, the API and DevTools
connections), and Chromium runs there (`ip netns exec`).

coturn is started by scripts/coturn.sh (which execs turnserver: the test
stops it by PID) with use-auth-secret, a TLS listener on 443 with a
certificate from a throwaway CA (the clients trust that CA: aiortc through
SSL_CERT_FILE, Chromium through its profile's NSS database -- Chromium
checks TURN servers' certificates), relaying to the room's address only,
its config, log and database in a temp dir. sfud gets the settings the
script prints: turn_urls = turn:EDGE:3478?transport=udp,
turn:EDGE:3478?transport=tcp, turns:EDGE:443?transport=tcp and the secret.

Tests:

* no route: the client namespace has no route to `rtc`; a UDP datagram to
  it fails (ENETUNREACH), and so does one to the room's own media port
  during each call below.
* credentials: a TURN Allocate (aioice's TURN client over TCP) succeeds with
  the credentials of a welcome and with ones computed here independently
  (base64 HMAC-SHA1 of "<expiry>:<identity>"); coturn answers 401 to an
  expired username and to a forged credential.
* calls: Chromium (web/sfu-client.js, iceTransportPolicy "relay") and an
  aiortc peer in one room, each taking its TURN server from the welcome;
  first with UDP to coturn blocked in the clients' namespace (Chromium
  relays over TURN/TCP; aiortc is given the TCP URL), then with TCP port
  3478 blocked too (both over TURN/TLS on 443). Each side hears the other
  (aiortc decodes Chromium's beeps; Chromium's inbound audio carries
  energy), and both selected ICE pairs use a relay candidate of the
  expected protocol.
* the C client: sfu-replay (libnice) in the clients' namespace with
  --relay-only: a capture reaches a listener intact through TURN, first
  with UDP open, then with UDP to coturn blocked (TURN/TCP); coturn's log
  shows the listener's allocation relaying (libnice has no TURN over TLS).

Skips if network namespaces, iptables or coturn (`turnserver`, Debian
`coturn`) are missing.

Usage: test_turn.py --sfud PATH --room PATH [--replay PATH] [--logdir DIR]
"""
import asyncio
import base64
import errno
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
WEB_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "web"))
sys.path.insert(0, HERE)
from sfutest import PageCallTest, Sfud, TestCA, main, pid_alive  # noqa: E402
from netns import new_namespace  # noqa: E402
from pagejs import STATE_JS, join_js  # noqa: E402

ARGS = None
TAG = "sfuturn"
SECRET = "turn-secret-0123456789abcdef"
TURN_PORT = 3478
TLS_PORT = 443                     # as in production (docs/deploying.md)
PY_FREQ = 660
HEARD = 0.01                       # tone power of aiortc's 0.3-amplitude sine: ~0.045
# Chromium relays everything; what its selected ICE pair reports (pagejs.py).
RTC_CONFIG = {"iceTransportPolicy": "relay"}
PAIR_FIELDS = {"state": "pair.state", "local": "local.candidateType",
               "relayProtocol": "local.relayProtocol", "url": "local.url",
               "remote": "remote.candidateType", "remoteAddress": "remote.address"}


def turn_credentials(identity, expiry, secret=SECRET):
    """The TURN REST API pair, computed here independently of sfud."""
    user = "%d:%s" % (expiry, identity)
    mac = hmac.new(secret.encode(), user.encode(), hashlib.sha1).digest()
    return user, base64.b64encode(mac).decode()


class Coturn:
    """scripts/coturn.sh in a namespace, with its config, certificate, log
    and database in `directory`; the sfud settings it prints are read back
    (turn_urls, turn_secret). The script execs turnserver, so the process
    is turnserver's and is stopped by its PID."""

    def __init__(self, directory, ns, edge, relay, cert, key):
        os.makedirs(directory)
        self.dir = directory
        self.log = os.path.join(directory, "turn.log")
        self.edge = edge
        self.out = os.path.join(directory, "coturn.out")
        with open(self.out, "w") as out:
            self.proc = subprocess.Popen(
                [*ns.exec_prefix(), os.path.join(HERE, "..", "..", "scripts", "coturn.sh"),
                 "--dir", directory, "--secret", SECRET, "--listen-ip", edge,
                 "--relay-ip", relay, "--peer", relay, "--port", str(TURN_PORT),
                 "--tls-port", str(TLS_PORT), "--cert", cert, "--key", key,
                 "--realm", "sfu.test", "--verbose"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        end = time.monotonic() + 10
        while not self._accepts(TURN_PORT) or not self._accepts(TLS_PORT):
            if self.proc.poll() is not None or time.monotonic() > end:
                self.stop()
                raise RuntimeError("coturn did not start:\n" + self.log_text())
            time.sleep(0.05)
        self.settings = {}
        with open(self.out) as f:
            for line in f:
                k, eq, v = line.partition(" = ")
                if eq and not k.startswith("#"):
                    self.settings[k.strip()] = v.strip()

    def _accepts(self, port):
        """A TCP connection to the edge address (from the calling thread's
        namespace, the clients')."""
        try:
            socket.create_connection((self.edge, port), timeout=1).close()
            return True
        except OSError:
            return False

    def log_text(self, tail=6000):
        text = ""
        for path in (self.out, self.log):
            try:
                with open(path, errors="replace") as f:
                    text += f.read()
            except OSError:
                pass
        return text[-tail:] if tail else text

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class TurnTest(PageCallTest):
    UNTIL_S = 20.0
    POLL_S = 0.2

    @classmethod
    def setUpClass(cls):
        if shutil.which("turnserver") is None:
            raise unittest.SkipTest("turnserver not installed (Debian coturn: scripts/deps.sh"
                                    " --test)")
        cls.tmp = tempfile.mkdtemp(prefix="sfu-turn-test-")
        cls.sfu_ns = cls.cli_ns = cls.coturn = cls.sfud = None
        cls._enter = None
        try:
            cls._set_up()
        except BaseException:
            cls._tear_down()
            raise

    @classmethod
    def _set_up(cls):
        cls.sfu_ns = new_namespace(TAG)
        cls.cli_ns = new_namespace(TAG, peer=cls.sfu_ns)
        cls.rtc = cls.sfu_ns.inner            # the room's media address
        cls.edge = cls.cli_ns.outer           # sfud's HTTP and coturn, for clients
        cls.client_ip = cls.cli_ns.inner
        # From here on this thread lives in the clients' namespace.
        cls._enter = cls.cli_ns.entered()
        cls._enter.__enter__()
        ca = TestCA(cls.tmp)
        cls.ca_pem = ca.pem
        cert, key = ca.issue("coturn", dns=("turn.sfu.test",), ips=(cls.edge,))
        cls.coturn = Coturn(os.path.join(cls.tmp, "coturn"), cls.sfu_ns, cls.edge, cls.rtc,
                            cert, key)
        cls.turn_urls = ["turn:%s:%d?transport=udp" % (cls.edge, TURN_PORT),
                         "turn:%s:%d?transport=tcp" % (cls.edge, TURN_PORT),
                         "turns:%s:%d?transport=tcp" % (cls.edge, TLS_PORT)]
        # sfud takes the settings the script printed
        assert cls.coturn.settings.get("turn_urls") == ",".join(cls.turn_urls), \
            cls.coturn.settings
        assert cls.coturn.settings.get("turn_secret") == SECRET, cls.coturn.settings
        cls.sfud = Sfud(ARGS.sfud, ARGS.room, "--rtc-addresses", cls.rtc,
                        "--web-root", WEB_DIR, "--turn-urls", cls.coturn.settings["turn_urls"],
                        "--turn-secret", cls.coturn.settings["turn_secret"],
                        "--turn-ttl-s", "600", listen_host=cls.edge,
                        prefix=cls.sfu_ns.exec_prefix())

    @classmethod
    def tearDownClass(cls):
        cls._tear_down()

    @classmethod
    def _tear_down(cls):
        """Everything goes, whatever fails on the way; then the failures."""
        problems = []
        if cls.sfud is not None:
            try:
                cls.sfud.stop_and_check(ARGS.logdir and os.path.join(ARGS.logdir,
                                                                     "turn.sfud.log"))
            except Exception as e:
                problems.append("sfud: %r" % e)
        if cls.coturn is not None:
            if ARGS.logdir:
                with open(os.path.join(ARGS.logdir, "turn.coturn.log"), "w") as f:
                    f.write(cls.coturn.log_text(tail=None))
            cls.coturn.stop()
            if pid_alive(cls.coturn.proc.pid):
                problems.append("coturn still running")
        if cls._enter is not None:
            cls._enter.__exit__(None, None, None)
        for ns in (cls.cli_ns, cls.sfu_ns):
            if ns is not None:
                ns.close()
                if ns.exists():
                    problems.append("namespace %s left behind" % ns.name)
        shutil.rmtree(cls.tmp, ignore_errors=True)
        if problems:
            raise AssertionError("; ".join(problems))

    def setUp(self):
        self.peers = []
        self.browser = self.page = None
        self.room = self.new_room(self._testMethodName)
        self.ws_url = self.room["ws_url"]
        self.assertIn(self.edge, self.ws_url)
        self.addCleanup(self._unblock)

    async def asyncTearDown(self):
        await super().asyncTearDown()
        if self.browser is not None:
            self.close_browser(self.browser)
        self.assert_peers_clean()

    # -- the clients' network ------------------------------------------------

    def _block(self, proto, port):
        """Drops what clients send to coturn's `port` over `proto`."""
        self.cli_ns.run("iptables", "-A", "OUTPUT", "-p", proto, "-d", self.edge,
                        "--dport", str(port), "-j", "DROP")

    def _unblock(self):
        self.cli_ns.run("iptables", "-F", "OUTPUT")

    def rtc_port(self):
        """The UDP port of the room's media socket, from its answer's
        candidates (read off a host candidate in an aiortc peer's SDP)."""
        for p in self.peers:
            sdp = p.pc.remoteDescription.sdp if p.pc and p.pc.remoteDescription else ""
            for line in sdp.splitlines():
                parts = line.split()
                if line.startswith("a=candidate:") and len(parts) > 5 and parts[4] == self.rtc:
                    return int(parts[5])
        return None

    # -- tests -----------------------------------------------------------------

    def assert_no_direct_path(self, port):
        """A UDP datagram (a STUN Binding request's header) from the
        clients' namespace to the room's media address cannot leave."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            with self.assertRaises(OSError) as cm:
                s.sendto(b"\x00\x01\x00\x00\x21\x12\xa4\x42" + os.urandom(12),
                         (self.rtc, port))
            self.assertEqual(cm.exception.errno, errno.ENETUNREACH)

    def test_1_clients_have_no_route_to_the_media_address(self):
        r = self.cli_ns.run("ip", "route", "get", self.rtc, check=False)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("unreachable", r.stderr.lower())
        self.assert_no_direct_path(9)

    async def test_2_coturn_refuses_expired_and_forged_credentials(self):
        import aioice.stun
        import aioice.turn
        from aiortc_peer import Peer

        async def allocate(user, password, transport="tcp"):
            """The relayed address, or the STUN error code of the failure."""
            try:
                t, _ = await asyncio.wait_for(aioice.turn.create_turn_endpoint(
                    asyncio.DatagramProtocol, server_addr=(self.edge, TURN_PORT),
                    username=user, password=password, transport=transport), 10)
            except aioice.stun.TransactionFailed as e:
                return e.response.attributes["ERROR-CODE"][0]
            addr = t.get_extra_info("sockname")
            t.close()
            return addr

        # what a welcome carries works, over UDP and TCP
        p = Peer(self.ws_url, self.room["room_id"], self.token("alice"), "alice", freq=None,
                 host_addresses=[self.client_ip])
        self.peers.append(p)
        welcome = await p.join(negotiate=False)
        servers = welcome.get("ice_servers")
        self.assertEqual(len(servers), 1, welcome)
        self.assertEqual(servers[0]["urls"], self.turn_urls)
        user, cred = servers[0]["username"], servers[0]["credential"]
        expiry, ident = user.split(":", 1)
        self.assertEqual(ident, "alice")
        self.assertAlmostEqual(int(expiry), time.time() + 600, delta=30)
        self.assertEqual(turn_credentials("alice", int(expiry)), (user, cred))
        for transport in ("udp", "tcp"):
            addr = await allocate(user, cred, transport)
            self.assertIsInstance(addr, tuple, "%s: %r" % (transport, addr))
            self.assertEqual(addr[0], self.rtc)   # relayed from the SFU side
        # computed here, still valid: accepted
        self.assertIsInstance(await allocate(*turn_credentials("bob", int(time.time()) + 60)),
                              tuple)
        # expired a minute ago: refused
        self.assertEqual(await allocate(*turn_credentials("bob", int(time.time()) - 60)), 401)
        # forged: the right form, the wrong key
        self.assertEqual(await allocate(*turn_credentials("bob", int(time.time()) + 600,
                                                          "not-the-secret-0123456789")), 401)
        # someone else's credential under a username of one's own
        self.assertEqual(await allocate("%d:mallory" % (int(time.time()) + 600), cred), 401)

    async def test_3_chromium_and_aiortc_over_turn_tcp(self):
        # (TLS blocked too: with both open, Chromium may settle on either)
        self._block("udp", TURN_PORT)
        self._block("tcp", TLS_PORT)
        await self.call("tcp")

    async def test_4_chromium_and_aiortc_over_turn_tls(self):
        self._block("udp", TURN_PORT)
        self._block("tcp", TURN_PORT)
        await self.call("tls")

    def test_5_the_c_client_over_turn_udp_and_tcp(self):
        """sfu-replay (libnice, tools/client) in the clients' namespace,
        relay only: a capture reaches a listener intact through TURN/UDP,
        then, with UDP to coturn blocked, through TURN/TCP."""
        if not ARGS.replay:
            self.skipTest("no --replay")
        capture = os.path.join(HERE, "..", "data", "pcaps", "gst-opus-tone-stereo.pcap")
        for kind in ("udp", "tcp"):
            if kind == "tcp":
                self._block("udp", TURN_PORT)
            mark = len(self.coturn.log_text(tail=None))
            out = os.path.join(self.tmp, "replay-%s.json" % kind)
            p = subprocess.run([*self.cli_ns.exec_prefix(), os.path.abspath(ARGS.replay),
                                "--server", "http://%s:%d" % (self.edge, self.sfud.port),
                                "--api-key", self.sfud.api_key, "--address", self.client_ip,
                                "--relay-only", "-n", "2", "--speed", "4", "--expect-intact",
                                "--json", out, capture],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, "sfu-replay over TURN/%s: exit %d\n%s\n%s"
                             % (kind, p.returncode, p.stderr[-3000:],
                                self.coturn.log_text()[-2000:]))
            with open(out) as f:
                summary = json.load(f)
            # coturn relayed it: the listener's allocation bound a channel
            # to the room's address; over TCP (closed when sfu-replay
            # exits, unlike UDP's) it also counted the packets from the room
            def relayed():
                log = self.coturn.log_text(tail=None)[mark:]
                return log, max([int(m.group(1)) for m in re.finditer(
                    r"peer usage: realm=<sfu\.test>, username=<\d+:listener>, rp=(\d+)", log)],
                    default=0)
            end = time.monotonic() + 5
            while kind == "tcp" and relayed()[1] < summary["received"] and time.monotonic() < end:
                time.sleep(0.1)
            log, n = relayed()
            self.assertRegex(log, r"user <\d+:listener>: incoming packet CHANNEL_BIND processed, "
                             "success")
            if kind == "tcp":
                self.assertGreaterEqual(n, summary["received"], log[-3000:])
            print("\nC client over TURN/%s: %d packets received intact%s" % (
                kind, summary["received"],
                ", %d relayed to the listener" % n if kind == "tcp" else ""), flush=True)

    # -- a call through TURN ------------------------------------------------

    async def timeout_details(self):
        return "\n" + await self.diagnostics()

    async def diagnostics(self):
        return "\n".join(["--- sfud (last 40 lines) ---", "".join(self.sfud.log[-40:]),
                          "--- coturn (end) ---", self.coturn.log_text()[-3000:]]
                         + await self.call_state(STATE_JS, console=30))

    async def call(self, kind):
        """Chromium (relay only) and aiortc (the TURN URL of `kind`) in one
        room, with the clients' network as the caller set it."""
        from aiortc_peer import Peer
        from chromium import Chromium
        os.environ["SSL_CERT_FILE"] = self.ca_pem      # aiortc's TLS to coturn
        self.addCleanup(os.environ.pop, "SSL_CERT_FILE", None)
        origin = "http://%s:%d" % (self.edge, self.sfud.port)
        # (getUserMedia wants a secure context: loopback is one, the edge
        # address is made one)
        self.browser = Chromium(extra_args=["--autoplay-policy=no-user-gesture-required",
                                            "--unsafely-treat-insecure-origin-as-secure=" + origin],
                                ca_file=self.ca_pem, prefix=self.cli_ns.exec_prefix())
        self.page = await asyncio.to_thread(self.browser.open, origin + "/web/index.html")
        t0 = time.monotonic()
        joined = await self.js(join_js(self.ws_url, self.room["room_id"], self.token("chrome"),
                                       rtc_config=RTC_CONFIG, pair_fields=PAIR_FIELDS))
        self.assertEqual(joined["ice_servers"][0]["urls"], self.turn_urls)
        self.assertEqual(joined["rtc"]["iceServers"][0]["username"],
                         joined["ice_servers"][0]["username"])
        py = Peer(self.ws_url, self.room["room_id"], self.token("py"), "py", freq=PY_FREQ,
                  host_addresses=[self.client_ip], turn=kind)
        self.peers.append(py)
        await py.join()
        await py.wait_connected(20)
        port = self.rtc_port()
        self.assertIsNotNone(port, "no host candidate of the room in the answer")
        self.assert_no_direct_path(port)      # the room's own socket, directly: no
        self.assertEqual([k for k, _ in py.selected_candidate_types()], ["relay"],
                         "aiortc's selected pair")
        # aiortc hears Chromium's beeps; Chromium's audio carries aiortc's tone
        await self.until(lambda: py.audio_energy("chrome", 2.0) > 1e-4, what="aiortc hears chrome")
        await self.until(self.page_hears, what="chrome hears aiortc")
        # (Chromium shows the selected pair "in-progress" while one of its
        # consent checks is out: ask again for a few seconds)
        for _ in range(20):
            pair = await self.js("sfu.pair()")
            if pair["state"] == "succeeded":
                break
            await asyncio.sleep(0.25)
        self.assertEqual(pair["state"], "succeeded", pair)
        self.assertEqual(pair["local"], "relay", pair)
        self.assertEqual(pair["relayProtocol"], kind, pair)
        self.assertEqual(pair["remoteAddress"], self.rtc, pair)
        print("\n%s: both hear each other %.1f s after Chromium's join; Chromium %s, aiortc %s"
              % (kind, time.monotonic() - t0, pair, py.selected_candidate_types()), flush=True)


if __name__ == "__main__":
    main(replay="optional")

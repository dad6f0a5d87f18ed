#!/usr/bin/env python3
"""IPv6: sfud and its rooms on ::1, and dual-stack rooms.

* IPv6 only: sfud listens on ::1 (HTTP API and WebSocket: its ws_url is
  ws://[::1]:PORT/v1/rtc) with rtc_addresses ::1. Two aiortc peers that
  gather ::1 only hear each other's tones over a selected pair of IPv6
  addresses (the room's candidate written without brackets); then
  sfu-replay, the C client (libnice), creates a room and joins it over
  IPv6 with --address ::1: its tone reaches its listener intact.
* Dual stack: rtc_addresses 127.0.0.1,::1; a peer that gathers 127.0.0.1
  only and one that gathers ::1 only hear each other, each over a pair of
  its own family. Again with rtc_announced_address 127.0.0.1 (as behind a
  1:1 IPv4 NAT; on loopback the address itself): the announced address
  replaces the IPv4 candidate's only, the IPv6 peer still gets ::1.
* Addresses a room could not use stop sfud at startup with a message that
  names them.

aioice gathers from every interface and leaves out ::1 and 127.0.0.1;
aiortc_peer.Peer(host_addresses=...) replaces that list (process-wide, so
peers of different families join one after the other).

Usage: test_ipv6.py --sfud PATH --room PATH --replay PATH
"""
import asyncio
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sfutest import Sfud, main  # noqa: E402
from aiortc_peer import Peer  # noqa: E402

ARGS = None
HEARD = 0.01      # tone power of a clearly audible 0.3-amplitude tone is ~0.045
SILENT = 0.0005


def family(host):
    return ipaddress.ip_address(host).version


def selected_pair(peer):
    """(local host, remote host) of the pair aioice nominated, or None."""
    for t in peer.pc.getTransceivers():
        tr = t.sender.transport
        conn = getattr(getattr(tr, "transport", None), "_connection", None)
        pair = conn._nominated.get(1) if conn is not None else None
        if pair is not None:
            return pair.local_candidate.host, pair.remote_candidate.host
    return None


def server_candidates(peer, transport="udp"):
    """The host addresses of the candidates of `transport` in the room's
    answer (each address has a UDP one, and a TCP one for ICE-TCP)."""
    out = []
    for line in peer.pc.remoteDescription.sdp.splitlines():
        if line.startswith("a=candidate:") and line.split()[2].lower() == transport:
            out.append(line.split()[4])
    return out


def have_ipv6():
    import socket
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@unittest.skipUnless(have_ipv6(), "no IPv6 loopback (::1) on this host")
class Ipv6Test(unittest.IsolatedAsyncioTestCase):
    def setUp(self):
        self.sfud = None
        self.peers = []

    def start(self, *extra, listen_host=None):
        self.sfud = Sfud(ARGS.sfud, ARGS.room, *extra, listen_host=listen_host)
        st, self.room = self.sfud.request("POST", "/v1/rooms", {"name": "v6"})
        self.assertEqual(st, 201, self.room)

    async def asyncTearDown(self):
        for p in self.peers:
            await p.close()
        for p in self.peers:
            self.assertEqual(p.errors, [], p.identity)
            self.assertEqual(p.violations, [], p.identity)

    def tearDown(self):
        if self.sfud is None:
            return
        self.sfud.stop()
        with open(os.path.join(ARGS.logdir, "ipv6." + self._testMethodName + ".log"), "w") as f:
            f.writelines(self.sfud.log)
        self.sfud.assert_clean_log()

    def peer(self, identity, freq, host):
        st, tok = self.sfud.request("POST", "/v1/rooms/%s/tokens" % self.room["room_id"],
                                    {"identity": identity})
        self.assertEqual(st, 201, tok)
        p = Peer(self.room["ws_url"], self.room["room_id"], tok["token"], identity, freq=freq,
                 host_addresses=[host])
        self.peers.append(p)
        return p

    async def until(self, pred, timeout=15.0, what="condition"):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred():
                return
            await asyncio.sleep(0.1)
        self.fail("timed out waiting for " + what)

    async def call(self, hosts):
        """Peers gathering hosts[0] and hosts[1] join in turn and must hear
        each other, each over a pair of its own family at both ends."""
        a = self.peer("alice", 440, hosts[0])
        await a.join()
        b = self.peer("bob", 660, hosts[1])
        await b.join()
        for p in (a, b):
            await p.wait_connected()
        await self.until(lambda: a.tone_power("bob", 660, 1.0) > HEARD and
                         b.tone_power("alice", 440, 1.0) > HEARD, what="both heard")
        await asyncio.sleep(2)
        self.assertGreater(a.tone_power("bob", 660, 2.0), HEARD)
        self.assertGreater(b.tone_power("alice", 440, 2.0), HEARD)
        self.assertLess(a.tone_power("bob", 440, 2.0), SILENT)  # only bob's own tone
        for p, host in ((a, hosts[0]), (b, hosts[1])):
            pair = selected_pair(p)
            self.assertIsNotNone(pair, p.identity)
            self.assertEqual(pair[0], host, (p.identity, pair))
            self.assertEqual(family(pair[1]), family(host), (p.identity, pair))
        st, r = self.sfud.request("GET", "/v1/rooms/" + self.room["room_id"])
        self.assertEqual(st, 200, r)
        stats = r.get("stats") or {}
        self.assertGreater(stats["packets"]["rtp_out"], 0)
        return a, b

    async def test_ipv6_only_call_and_c_client(self):
        self.start("--rtc-addresses", "::1", listen_host="::1")
        self.assertTrue(self.room["ws_url"].startswith("ws://[::1]:"), self.room)
        # The room's own capture (sfu/room/recorder.c) takes IPv6 peers too:
        # it writes made-up IPv4 5-tuples, no peer address.
        path = "/v1/rooms/%s/capture" % self.room["room_id"]
        st, cap = self.sfud.request("POST", path, {"action": "start", "max_mib": 10})
        self.assertEqual(st, 202, cap)
        a, b = await self.call(["::1", "::1"])
        # The room's candidate: its ::1 socket, no brackets, nothing else.
        self.assertEqual(server_candidates(a), ["::1"])
        self.assertEqual(server_candidates(a, "tcp"), ["::1"])
        self.assertEqual(selected_pair(a)[1], "::1")
        st, _ = self.sfud.request("POST", path, {"action": "stop"})
        self.assertEqual(st, 202)

        def stopped():
            st, r = self.sfud.request("GET", "/v1/rooms/" + self.room["room_id"])
            c = (r.get("stats") or {}).get("capture")
            return c if c and not c["active"] else None
        await self.until(stopped, what="capture stopped")
        self.assertGreater(stopped()["packets"], 100)  # both tones, two seconds and more

        # sfu-replay over IPv6: API, WebSocket, ICE (libnice), DTLS, SRTP.
        tmp = tempfile.mkdtemp(prefix="sfu-ipv6-")
        self.addCleanup(shutil.rmtree, tmp, True)
        out = os.path.join(tmp, "summary.json")
        cmd = [ARGS.replay, "--server", "http://[::1]:%d" % self.sfud.port,
               "--api-key", self.sfud.api_key, "--address", "::1", "--room", "v6-replay",
               "-n", "2", "--tone", "440", "--duration", "3", "--expect-intact",
               "--json", out]
        proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.PIPE)
        try:  # awaited, so that the aiortc peers keep running meanwhile
            _, err = await asyncio.wait_for(proc.communicate(), 120)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        self.assertEqual(proc.returncode, 0, "sfu-replay: exit %d\n%s" % (proc.returncode,
                                                                          err.decode()))
        with open(out) as f:
            s = json.load(f)
        self.assertTrue(s["ok"], s.get("failure"))
        self.assertEqual(len(s["clients"]), 2)
        for c in s["clients"]:
            self.assertTrue(c["connected"], c)
            self.assertEqual(c["self_received"], 0, c)
        st = s["streams"][0]
        self.assertGreater(st["sent"], 100)  # 3 s of 20 ms frames
        self.assertEqual(st["received"], st["sent"] - st["missed_at_start"])
        self.assertEqual(st["lost"], 0)
        # an address that is none is refused before anything starts
        p = subprocess.run([ARGS.replay, "--server", "http://[::1]:%d" % self.sfud.port,
                            "--address", "[::1]", "--tone", "440"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--address: '[::1]'", p.stderr)

    async def test_dual_stack_room_ipv4_and_ipv6_peers(self):
        self.start("--rtc-addresses", "127.0.0.1,::1")
        a, b = await self.call(["127.0.0.1", "::1"])
        self.assertEqual(server_candidates(a), ["127.0.0.1", "::1"])
        self.assertEqual(server_candidates(a, "tcp"), ["127.0.0.1", "::1"])

    async def test_dual_stack_announced_ipv4_leaves_ipv6_candidate(self):
        self.start("--rtc-addresses", "127.0.0.1,::1", "--rtc-announced-address", "127.0.0.1")
        a, b = await self.call(["127.0.0.1", "::1"])
        self.assertEqual(server_candidates(b), ["127.0.0.1", "::1"])

    def test_bad_rtc_addresses_stop_sfud_at_startup(self):
        cases = [
            (["--rtc-addresses", "127.0.0.1,[::1]"], "rtc_addresses: '[::1]' is in brackets"),
            (["--rtc-addresses", "fe80::1%lo"], "rtc_addresses: 'fe80::1%lo' has a scope"),
            (["--rtc-addresses", "::"], "rtc_addresses: '::' is unspecified"),
            (["--rtc-addresses", "localhost"], "'localhost' is not an IPv4 or IPv6 address"),
            (["--rtc-addresses", "127.0.0.1,192.0.2.77"],
             "'192.0.2.77': Cannot assign requested address"),
            (["--rtc-addresses", "::1", "--rtc-announced-address", "203.0.113.5"],
             "'203.0.113.5' is IPv4 but no rtc_addresses entry is"),
        ]
        data = tempfile.mkdtemp(prefix="sfu-ipv6-data-")
        self.addCleanup(shutil.rmtree, data, True)
        for args, words in cases:
            with self.subTest(args=args):
                p = subprocess.run([ARGS.sfud, "--listen-port", "0", "--api-key", "test-key",
                                    "--room-binary", ARGS.room, "--data-dir", data, *args],
                                   capture_output=True, text=True, timeout=10)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(words, p.stderr)
                self.assertNotIn("listening on", p.stderr)


if __name__ == "__main__":
    main(replay="required", logdir=os.environ.get("TMPDIR", "/tmp"))

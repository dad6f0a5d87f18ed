#!/usr/bin/env python3
"""sfu-replay: real captures through real calls.

Every capture in tests/data/pcaps goes through a 3-participant room: the
publisher's packets must reach the other two intact (payload for payload),
none come back to it, nothing is lost on loopback; what the receivers got,
written to a pcap, replays to the same result. Also: a room's own capture
(POST /v1/rooms/{id}/capture) replays, a scenario with tones, late joins,
leaves and mutes tells who was heard, and bad captures are refused clearly.

Usage: test_replay.py --sfud PATH --room PATH --replay PATH
"""
import concurrent.futures
import json
import os
import struct
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sfutest import Sfud, main  # noqa: E402

ARGS = None
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "pcaps")

# Packets of the one RTP stream of each capture (tests/data/pcaps/README.md,
# checked by unit.capture).
CAPTURES = {
    "gst-opus-speech-dtx.pcap": ("opus", 557),
    "gst-opus-tone-stereo.pcap": ("opus", 501),
    "membrane-input_vp8.pcap": ("VP8", 410),
    "str0m-vp8.pcap": ("VP8", 104),
    "str0m-h264.pcap": ("H264", 298),
    "str0m-vp9.pcap": ("VP9", 316),
    "str0m-av1.pcap": ("AV1", 201),
}


def pcap_bytes(records, linktype=1):
    """A classic pcap file of `records` (bytes of whole frames)."""
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)
    for i, frame in enumerate(records):
        out += struct.pack("<IIII", 1700000000 + i, 0, len(frame), len(frame)) + frame
    return out


def udp_frame(payload, sport=5000, dport=5004):
    """Ethernet + IPv4 + UDP around `payload` (checksums left 0)."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                     bytes([127, 0, 0, 1]), bytes([127, 0, 0, 2]))
    return b"\0" * 12 + b"\x08\x00" + ip + udp


class ReplayTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sfud = Sfud(ARGS.sfud, ARGS.room, "--max-participants", "300")
        cls.tmp = tempfile.mkdtemp(prefix="sfu-replay-test-")

    @classmethod
    def tearDownClass(cls):
        cls.sfud.kill()

    def replay(self, *args, expect_rc=0, timeout=180, summary="summary.json"):
        out = os.path.join(self.tmp, summary)
        if os.path.exists(out):
            os.unlink(out)
        cmd = [ARGS.replay, "--server", "http://127.0.0.1:%d" % self.sfud.port,
               "--api-key", self.sfud.api_key, "--json", out, *args]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        self.assertEqual(p.returncode, expect_rc,
                         "sfu-replay %s: exit %d\n%s" % (" ".join(args), p.returncode, p.stderr))
        if expect_rc == 2:
            return p.stderr
        with open(out) as f:
            return json.load(f)

    def assert_intact(self, s, codec, packets):
        self.assertTrue(s["ok"], s.get("failure"))
        self.assertEqual(len(s["streams"]), 1)
        st = s["streams"][0]
        self.assertEqual(st["codec"], codec)
        # every packet of the capture sent, but those a keyframe request
        # skipped (the room asks for one when a packet never comes: a
        # capture with gaps in its sequence numbers)
        self.assertEqual(st["sent"] + st.get("keyframe_skipped", 0), packets)
        self.assertEqual(st["receivers"], 2)
        self.assertEqual(st["received"], 2 * st["sent"])
        for k in ("lost", "missed_at_start", "duplicated", "corrupt"):
            self.assertEqual(st[k], 0, k)
        for c in s["clients"]:
            self.assertTrue(c["connected"], c)
            self.assertEqual(c["self_received"], 0, c)
            self.assertEqual(c["unknown_received"], 0, c)
        self.assertGreater(st["latency_us"]["n"], 0)

    def test_every_capture_arrives_intact_and_its_recording_replays(self):
        # The captures go at once, each in its own room (sfu-replay's,
        # replay-PID) through its own room process: a replay mostly waits
        # (for its connections, the capture's timing, its drain), and
        # loopback loses nothing either way. Judged one by one afterwards.
        def both(name, codec):
            rec = os.path.join(self.tmp, name + ".out.pcap")
            s = self.replay("-n", "3", "--speed", "8", "--expect-intact", "--record", rec,
                            os.path.join(DATA, name), summary=name + ".json")
            # The recording holds each receiver's copy (dst port 30000 +
            # its index); the first listener is index 1.
            s2 = self.replay("-n", "3", "--speed", "8", "--expect-intact", "--port", "30001",
                             "--codec", "%d=%s" % (self.first_pt(rec), codec), rec,
                             summary=name + ".rec.json")
            return s, s2
        with concurrent.futures.ThreadPoolExecutor(len(CAPTURES)) as pool:
            runs = {name: pool.submit(both, name, codec)
                    for name, (codec, _) in CAPTURES.items()}
        for name, (codec, packets) in CAPTURES.items():
            with self.subTest(capture=name):
                s, s2 = runs[name].result()
                self.assert_intact(s, codec, packets)
                print("%-28s %s %4d packets -> 2 receivers intact, latency p50 %d us p99 %d us"
                      % (name, codec, packets, s["latency_us"]["p50"], s["latency_us"]["p99"]))
                self.assert_intact(s2, codec, s["streams"][0]["sent"])  # what arrived

    def first_pt(self, path):
        out = subprocess.run([ARGS.replay, "--list", path], capture_output=True, text=True,
                             check=True).stdout
        return int(out.split(" pt ")[1].split()[0])

    def test_room_capture_replays(self):
        name = "captured-room"
        st, r = self.sfud.request("POST", "/v1/rooms", {"name": name})
        self.assertEqual(st, 201, r)
        st, c = self.sfud.request("POST", "/v1/rooms/%s/capture" % name,
                                  {"action": "start", "max_mib": 10})
        self.assertEqual(st, 202, c)
        self.assertTrue(c["file"].endswith(".pcap"), c)
        s = self.replay("-n", "3", "--room", name, "--speed", "8", "--expect-intact",
                        os.path.join(DATA, "gst-opus-tone-stereo.pcap"))
        self.assert_intact(s, "opus", 501)
        st, c2 = self.sfud.request("POST", "/v1/rooms/%s/capture" % name, {"action": "stop"})
        self.assertEqual(st, 202, c2)

        def stopped():
            st, room = self.sfud.request("GET", "/v1/rooms/%s" % name)
            cap = (room.get("stats") or {}).get("capture") or room.get("capture")
            return cap if cap and not cap["active"] else None
        from sfutest import wait_for
        cap = wait_for(stopped, 10, what="capture stopped")
        self.assertEqual(cap["file"], c["file"])
        self.assertGreaterEqual(cap["packets"], 501)  # the publisher's RTP, and RTCP
        s = self.replay("-n", "3", "--speed", "8", "--expect-intact", "--codec", "111=opus",
                        c["file"])
        self.assert_intact(s, "opus", 501)
        self.sfud.request("DELETE", "/v1/rooms/%s" % name)

    def test_joins_an_existing_room_with_a_given_token(self):
        st, room = self.sfud.request("POST", "/v1/rooms", {"name": "given-token"})
        self.assertEqual(st, 201, room)
        st, tok = self.sfud.request("POST", "/v1/rooms/given-token/tokens", {"identity": "rep"})
        self.assertEqual(st, 201, tok)
        s = self.replay("--token", tok["token"], "--ws-url", room["ws_url"], "--room",
                        room["room_id"], "--speed", "8", os.path.join(DATA, "str0m-vp8.pcap"))
        self.assertEqual(s["participants"], 1)
        self.assertEqual(s["clients"][0]["identity"], "pub0")
        self.assertTrue(s["clients"][0]["connected"])
        self.assertEqual(s["sent"], 104)
        st, r = self.sfud.request("GET", "/v1/rooms/given-token")
        self.assertEqual(r["stats"]["packets"]["rtp_in"], 104)  # all of it reached the room
        self.assertEqual(r["state"], "running")  # joined, not created: left running
        self.sfud.request("DELETE", "/v1/rooms/given-token")

    def test_capture_request_errors(self):
        st, r = self.sfud.request("POST", "/v1/rooms", {"name": "cap-errors"})
        self.assertEqual(st, 201, r)
        for body, code in (({}, "missing_field"), ({"action": "go"}, "invalid_field"),
                           ({"action": "start", "max_mib": 0}, "invalid_field"),
                           ({"action": "start", "extra": 1}, "unknown_field")):
            st, e = self.sfud.request("POST", "/v1/rooms/cap-errors/capture", body)
            self.assertEqual(st, 400, (body, e))
            self.assertEqual(e["error"]["code"], code, (body, e))
        st, e = self.sfud.request("POST", "/v1/rooms/nope/capture", {"action": "start"})
        self.assertEqual(st, 404, e)
        st, e = self.sfud.request("GET", "/v1/rooms/cap-errors/capture")
        self.assertEqual(st, 405, e)
        self.sfud.request("DELETE", "/v1/rooms/cap-errors")

    def test_scenario_joins_leaves_mutes_and_who_was_heard(self):
        scen = {
            "duration_s": 6,
            "participants": [
                {"name": "alice", "publish": [{"tone": 440}], "mute": [[2, 3]]},
                {"name": "bob", "publish": [{"tone": 880}], "join_s": 1, "leave_s": 4},
                {"name": "carol"},
            ],
            "expect": {"max_loss": 0},
        }
        path = os.path.join(self.tmp, "scenario.json")
        with open(path, "w") as f:
            json.dump(scen, f)
        s = self.replay("--scenario", path, "--decode", timeout=120)
        self.assertTrue(s["ok"], s.get("failure"))
        streams = {st["participant"]: st for st in s["streams"]}
        alice, bob = streams["alice"], streams["bob"]
        # alice sent 6 s of 20 ms frames but for her 1 s of mute
        self.assertTrue(230 <= alice["sent"] <= 260, alice["sent"])
        self.assertEqual(alice["receivers"], 2)  # bob and carol
        self.assertEqual(alice["lost"], 0)
        # bob published from his media being up (some 0.5 s after joining
        # at 1 s) until he left at 4 s, to alice and carol
        self.assertTrue(100 <= bob["sent"] <= 155, bob["sent"])
        self.assertEqual(bob["receivers"], 2)
        self.assertEqual(bob["received"], 2 * bob["sent"] - bob["missed_at_start"])
        self.assertEqual(bob["lost"], 0)
        # carol heard both tones: levels are RFC 6464 -dBov, 127 = silence
        heard = {(st["participant"], lv["receiver"]): lv["level"]
                 for st in s["streams"] for lv in st.get("levels", [])}
        self.assertLess(heard[("alice", "carol")], 30, heard)
        self.assertLess(heard[("bob", "carol")], 30, heard)
        self.assertNotIn(("alice", "alice"), heard)

    def test_bad_captures_are_refused_clearly(self):
        rtp = bytes([0x80, 111, 0, 1, 0, 0, 0, 0, 0x11, 0x22, 0x33, 0x44]) + b"\xf8\xff\xfe"
        cases = {
            "empty.pcap": (pcap_bytes([]), "empty capture"),
            "garbage.pcap": (os.urandom(300), "not a pcap or pcapng file"),
            "dns.pcap": (pcap_bytes([udp_frame(b"\x12\x34\x01\x00\x00\x01" + b"\0" * 20, 53, 53)]),
                         "no RTP stream"),
            "truncated.pcap": (pcap_bytes([udp_frame(rtp)] * 3)[:-10], "middle of record"),
        }
        for name, (data, words) in cases.items():
            with self.subTest(capture=name):
                path = os.path.join(self.tmp, name)
                with open(path, "wb") as f:
                    f.write(data)
                err = self.replay("-n", "3", path, expect_rc=2, timeout=30)
                self.assertIn(words, err)
                self.assertNotIn("AddressSanitizer", err)
        # the stream selection names what is not there
        err = self.replay("-n", "3", "--ssrc", "0x1", os.path.join(DATA, "str0m-vp8.pcap"),
                          expect_rc=2, timeout=30)
        self.assertIn("no RTP stream matches", err)
        err = self.replay("-n", "3", os.path.join(self.tmp, "missing.pcap"), expect_rc=2,
                          timeout=30)
        self.assertIn("missing.pcap", err)


if __name__ == "__main__":
    main(replay="required")

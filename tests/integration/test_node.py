#!/usr/bin/env python3
"""sfud + real room processes over HTTP: lifecycle, crash isolation, errors.

Usage: test_node.py --sfud PATH --room PATH
"""
import base64
import hashlib
import hmac
import json
import os
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sfutest import Sfud, main, pid_alive, wait_for  # noqa: E402

ARGS = None


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class NodeLifecycle(unittest.TestCase):
    def setUp(self):
        self.sfud = Sfud(ARGS.sfud, ARGS.room)

    def tearDown(self):
        self.sfud.kill()
        self.sfud.assert_clean_log()

    def create(self, **body):
        st, j = self.sfud.request("POST", "/v1/rooms", body)
        self.assertEqual(st, 201, j)
        return j

    def test_twenty_rooms_survive_one_sigkill_and_leave_no_process(self):
        s = self.sfud
        rooms = [self.create(name="r%d" % i) for i in range(20)]
        pids = [r["pid"] for r in rooms]
        self.assertEqual(len(set(pids)), 20)
        self.assertEqual(s.children(), sorted(pids))
        for r in rooms:
            self.assertTrue(r["room_id"].startswith("rm_"))
            self.assertTrue(r["ws_url"].startswith("ws://127.0.0.1:"))
        wait_for(lambda: all(s.request("GET", "/v1/rooms/" + r["room_id"])[1]
                             ["state"] == "running" for r in rooms),
                 what="20 rooms running")

        victim = rooms[7]
        os.kill(victim["pid"], signal.SIGKILL)
        st, j = wait_for(lambda: (lambda r: r if r[1]["state"] == "crashed"
                                  else None)(s.request(
                                      "GET", "/v1/rooms/" + victim["room_id"])),
                         what="crash reported")
        self.assertEqual(j["exit"]["signal"], signal.SIGKILL)
        self.assertEqual(j["end_reason"], "signal 9")
        self.assertEqual(s.metric("sfu_room_crashes_total"), 1)
        self.assertEqual(s.metric("sfu_rooms"), 19)
        self.assertEqual(s.metric("sfu_rooms_crashed_listed"), 1)
        self.assertTrue(any("room crashed" in l and victim["room_id"] in l
                            for l in s.log))

        # The other 19 keep answering heartbeats: their IPC counters grow.
        others = [r for r in rooms if r is not victim]
        before = {r["room_id"]: s.request("GET", "/v1/rooms/" + r["room_id"])[1]
                  ["ipc"]["messages_in"] for r in others}
        time.sleep(0.7)
        for r in others:
            st, j = s.request("GET", "/v1/rooms/" + r["room_id"])
            self.assertEqual(st, 200)
            self.assertEqual(j["state"], "running")
            self.assertGreater(j["ipc"]["messages_in"], before[r["room_id"]])
            self.assertTrue(pid_alive(r["pid"]))
        st, j = s.request("GET", "/v1/rooms")
        states = sorted(x["state"] for x in j["rooms"])
        self.assertEqual(states, ["crashed"] + ["running"] * 19)

        # A crashed room takes no tokens.
        st, j = s.request("POST", "/v1/rooms/%s/tokens" % victim["room_id"],
                          {"identity": "late"})
        self.assertEqual((st, j["error"]["code"]), (409, "room_not_running"))

        for r in others:
            st, j = s.request("DELETE", "/v1/rooms/" + r["room_id"])
            self.assertEqual(st, 202)
            self.assertEqual(j["state"], "closing")
        st, j = s.request("DELETE", "/v1/rooms/" + victim["room_id"])
        self.assertEqual((st, j["state"]), (200, "crashed"))
        wait_for(lambda: s.children() == [], what="all room processes reaped")
        for r in rooms:  # their exits reach sfud just after the processes go
            st, j = wait_for(lambda: (lambda x: x if x[0] == 404 else None)(
                s.request("GET", "/v1/rooms/" + r["room_id"])), what="room unlisted")
            self.assertEqual(j["error"]["code"], "room_not_found")
        self.assertEqual(s.metric("sfu_rooms_finished_total"), 19)
        self.assertEqual(s.metric("sfu_rooms"), 0)
        self.assertEqual(s.metric("sfu_room_spawn_seconds_count"), 20)

    def test_zygote_death_is_reported_and_rooms_come_back(self):
        s = self.sfud
        z = s.zygote()
        self.assertIsNotNone(z)
        rooms = [self.create() for _ in range(3)]
        wait_for(lambda: all(s.request("GET", "/v1/rooms/" + r["room_id"])[1]["state"]
                             == "running" for r in rooms), what="rooms running")
        time.sleep(1.1)  # a zygote that dies right after its start is not restarted
        os.kill(z, signal.SIGKILL)
        for r in rooms:
            st, j = wait_for(lambda: (lambda x: x if x[1]["state"] == "crashed" else None)(
                s.request("GET", "/v1/rooms/" + r["room_id"])), what="crash reported")
            self.assertEqual(j["end_reason"], "zygote_died")
            # (the crash can be reported while the room is still on its way out)
            wait_for(lambda: not pid_alive(r["pid"]), what="room process gone")
        self.assertEqual(s.metric("sfu_room_crashes_total"), 3)
        z2 = wait_for(s.zygote, what="zygote restarted")
        self.assertNotEqual(z2, z)
        r = self.create()
        wait_for(lambda: s.request("GET", "/v1/rooms/" + r["room_id"])[1]["state"] == "running",
                 what="new room running")
        self.assertEqual(s.children(), [r["pid"]])

    def test_rooms_are_exec_d_when_the_zygote_is_off(self):
        s = Sfud(ARGS.sfud, ARGS.room, "--zygote", "0")
        try:
            self.assertIsNone(s.zygote())
            st, r = s.request("POST", "/v1/rooms", {})
            self.assertEqual(st, 201)
            wait_for(lambda: s.request("GET", "/v1/rooms/" + r["room_id"])[1]["state"]
                     == "running", what="exec'd room running")
            self.assertEqual(s.children(), [r["pid"]])
            os.kill(r["pid"], signal.SIGKILL)
            wait_for(lambda: s.request("GET", "/v1/rooms/" + r["room_id"])[1]["state"]
                     == "crashed", what="crash reported")
        finally:
            self.assertEqual(s.stop(), 0)
            s.assert_clean_log()

    def test_delete_reaps_the_process(self):
        s = self.sfud
        r = self.create()
        self.assertTrue(pid_alive(r["pid"]))
        st, _ = s.request("DELETE", "/v1/rooms/" + r["room_id"])
        self.assertEqual(st, 202)
        wait_for(lambda: not pid_alive(r["pid"]), what="room process gone")
        wait_for(lambda: s.request("GET", "/v1/rooms/" + r["room_id"])[0] == 404,
                 what="room unlisted")
        self.assertTrue(any("room ended (deleted)" in l for l in s.log))

    def test_empty_room_ends_after_its_timeout(self):
        s = self.sfud
        r = self.create(empty_timeout_s=1)
        keep = self.create()
        wait_for(lambda: s.request("GET", "/v1/rooms/" + r["room_id"])[0] == 404,
                 timeout=5, what="empty room ended")
        self.assertFalse(pid_alive(r["pid"]))
        self.assertTrue(pid_alive(keep["pid"]))
        self.assertEqual(s.metric("sfu_room_crashes_total"), 0)
        wait_for(lambda: any("room ended (empty_timeout)" in l for l in s.log),
                 what="its line in the log (read by another thread)")

    def test_sigterm_closes_rooms_and_exits_cleanly(self):
        s = self.sfud
        pids = [self.create()["pid"] for _ in range(5)]
        self.assertEqual(s.stop(signal.SIGTERM), 0)
        for p in pids:
            self.assertFalse(pid_alive(p))
        self.assertTrue(any("all rooms closed" in l for l in s.log))

    def test_rooms_outlive_a_killed_sfud_for_their_grace_only(self):
        # (test_crash.py: a restarted sfud takes them over)
        for grace, alive in ((1, True), (0, False)):
            self.sfud.kill()
            self.sfud = s = Sfud(ARGS.sfud, ARGS.room, "--room-orphan-grace-s", str(grace))
            pids = [self.create()["pid"] for _ in range(3)]
            s.crash()
            time.sleep(0.3)
            self.assertEqual([pid_alive(p) for p in pids], [alive] * 3, "grace %d" % grace)
            wait_for(lambda: not any(pid_alive(p) for p in pids), timeout=5,
                     what="orphaned rooms to exit (grace %d s)" % grace)
            wait_for(lambda: s.zygote() is None or not pid_alive(s.zygote()), timeout=5,
                     what="the zygote to follow its rooms")

    def test_unresponsive_room_is_killed_and_reported(self):
        s = self.sfud
        r = self.create()
        wait_for(lambda: s.request("GET", "/v1/rooms/" + r["room_id"])[1]
                 ["state"] == "running", what="running")
        os.kill(r["pid"], signal.SIGSTOP)  # alive but silent
        st, j = wait_for(lambda: (lambda x: x if x[1]["state"] == "crashed"
                                  else None)(s.request(
                                      "GET", "/v1/rooms/" + r["room_id"])),
                         timeout=8, what="heartbeat kill")
        self.assertEqual(j["end_reason"], "unresponsive")
        self.assertEqual(s.metric("sfu_room_heartbeat_kills_total"), 1)


class NodeApi(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sfud = Sfud(ARGS.sfud, ARGS.room, "--max-rooms", "3",
                        "--max-body-bytes", "4096")

    @classmethod
    def tearDownClass(cls):
        assert cls.sfud.stop() == 0
        cls.sfud.assert_clean_log()

    def err(self, method, path, body=None, status=None, code=None, **kw):
        st, j = self.sfud.request(method, path, body, **kw)
        self.assertEqual(st, status, j)
        self.assertEqual(j["error"]["code"], code, j)
        self.assertTrue(j["error"]["message"])
        return j

    def test_auth_is_required_on_v1_routes(self):
        self.err("GET", "/v1/rooms", auth=False, status=401, code="unauthorized")
        self.err("GET", "/v1/rooms", auth="wrong-key", status=401, code="unauthorized")
        self.err("GET", "/v1/node", auth="test-key-and-more", status=401,
                 code="unauthorized")
        st, _ = self.sfud.request("GET", "/healthz", auth=False)
        self.assertEqual(st, 200)

    def test_bad_bodies_get_json_errors(self):
        s = self.sfud
        self.err("POST", "/v1/rooms", raw=b"{not json", status=400, code="invalid_json")
        self.err("POST", "/v1/rooms", raw=b"\xff\xfe{}", status=400, code="invalid_json")
        self.err("POST", "/v1/rooms", raw=b"[]", status=400, code="invalid_json")
        j = self.err("POST", "/v1/rooms", {"max_participants": "ten"}, status=400,
                     code="invalid_field")
        self.assertIn("max_participants", j["error"]["message"])
        self.err("POST", "/v1/rooms", {"colour": "red"}, status=400, code="unknown_field")
        self.err("POST", "/v1/rooms", raw=b'{"name":"' + b"x" * 5000 + b'"}',
                 status=413, code="payload_too_large")
        deep = b"[" * 5000 + b"]" * 5000
        self.err("POST", "/v1/rooms", raw=b'{"metadata":' + deep[:4000] + b"}",
                 status=400, code="invalid_json")
        self.assertEqual(s.request("GET", "/healthz", auth=False)[0], 200)

    def test_unknown_routes_and_methods(self):
        self.err("GET", "/v1/nope", status=404, code="not_found")
        self.err("GET", "/nope", status=404, code="not_found", auth=False)
        self.err("GET", "/v1/rooms/rm_doesnotexist", status=404, code="room_not_found")
        self.err("PUT", "/v1/rooms", status=405, code="method_not_allowed")
        self.err("GET", "/v1/node/drain", status=405, code="method_not_allowed")
        self.err("POST", "/v1/rooms/rm_x/whatever", status=404, code="room_not_found")

    def test_tokens_carry_the_documented_claims(self):
        s = self.sfud
        st, room = s.request("POST", "/v1/rooms", {"name": "tok-room"})
        self.assertEqual(st, 201)
        st, j = s.request("POST", "/v1/rooms/%s/tokens" % room["room_id"],
                          {"identity": "alice", "name": "Alice", "ttl_s": 120,
                           "grants": {"publish": False}})
        self.assertEqual(st, 201, j)
        h, p, sig = j["token"].split(".")
        want = hmac.new(s.token_secret.encode(), (h + "." + p).encode(),
                        hashlib.sha256).digest()
        self.assertEqual(b64url_decode(sig), want)
        self.assertEqual(json.loads(b64url_decode(h))["alg"], "HS256")
        claims = json.loads(b64url_decode(p))
        self.assertEqual(claims["room"], room["room_id"])
        self.assertEqual(claims["sub"], "alice")
        self.assertEqual(claims["name"], "Alice")
        self.assertEqual(claims["exp"] - claims["iat"], 120)
        self.assertFalse(claims["grants"]["publish"])
        self.assertTrue(claims["grants"]["subscribe"])
        self.assertEqual(j["expires_at"], claims["exp"])
        # The room is also reachable by its name.
        st, j2 = s.request("POST", "/v1/rooms/tok-room/tokens", {"identity": "bob"})
        self.assertEqual(st, 201)
        self.err("POST", "/v1/rooms", {"name": "tok-room"}, status=409, code="name_in_use")
        self.err("POST", "/v1/rooms/%s/tokens" % room["room_id"], {"identity": "a b"},
                 status=400, code="invalid_field")
        s.request("DELETE", "/v1/rooms/" + room["room_id"])
        wait_for(lambda: s.request("GET", "/v1/rooms/" + room["room_id"])[0] == 404)

    def test_capacity_and_drain(self):
        s = self.sfud
        made = []
        for _ in range(3):
            st, j = s.request("POST", "/v1/rooms", {})
            self.assertEqual(st, 201)
            made.append(j)
        self.err("POST", "/v1/rooms", {}, status=503, code="at_capacity")
        for r in made:
            s.request("DELETE", "/v1/rooms/" + r["room_id"])
        wait_for(lambda: s.metric("sfu_rooms") == 0)
        st, j = s.request("POST", "/v1/node/drain")
        self.assertEqual((st, j["draining"]), (200, True))
        self.err("POST", "/v1/rooms", {}, status=503, code="draining")
        st, node = s.request("GET", "/v1/node")
        self.assertTrue(node["draining"])
        self.assertEqual(node["capacity"]["max_rooms"], 3)
        self.assertIn("OpenSSL", node["srtp"])
        st, j = s.request("POST", "/v1/node/drain", {"draining": False})
        self.assertFalse(j["draining"])
        st, j = s.request("POST", "/v1/rooms", {})
        self.assertEqual(st, 201)
        s.request("DELETE", "/v1/rooms/" + j["room_id"])

    def test_malformed_http_is_refused_and_node_survives(self):
        s = self.sfud
        junk = [b"GARBAGE\r\n\r\n",
                b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
                b"POST /v1/rooms HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n",
                b"\x00\x01\x02\x03" * 64,
                b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
                b"POST /v1/rooms HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]
        for blob in junk:
            c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
            try:
                c.sendall(blob)
                c.shutdown(socket.SHUT_WR)
                reply = c.recv(4096)
            except (ConnectionResetError, BrokenPipeError):
                reply = b""
            finally:
                c.close()
            if reply:
                status = int(reply.split(b" ")[1])
                self.assertTrue(400 <= status < 500, (blob[:40], reply[:80]))
        # Half-open connection left hanging does not block others.
        idle = socket.create_connection(("127.0.0.1", s.port))
        idle.sendall(b"POST /v1/rooms HTTP/1.1\r\nContent-Length: 10\r\n\r\n{")
        self.assertEqual(s.request("GET", "/healthz", auth=False)[0], 200)
        idle.close()
        self.assertIsNone(s.proc.poll())

    def test_metrics_are_prometheus_text(self):
        st, text = self.sfud.request("GET", "/metrics", auth=False)
        self.assertEqual(st, 200)
        for name in ("sfu_rooms", "sfu_participants", "sfu_room_crashes_total",
                     "sfu_room_spawn_seconds_bucket", "sfu_http_requests_total"):
            self.assertIn(name, text)


class DemoPage(unittest.TestCase):
    def test_root_redirects_to_the_demo_page_which_is_served(self):
        web = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "web")
        s = Sfud(ARGS.sfud, ARGS.room, "--web-root", web, "--dev", "1")
        try:
            conn = __import__("http.client").client.HTTPConnection("127.0.0.1", s.port)
            conn.request("GET", "/")
            r = conn.getresponse()
            r.read()
            self.assertEqual((r.status, r.getheader("Location")), (302, "/web/"))
            st, page = s.request("GET", "/web/", auth=False)
            self.assertEqual(st, 200)
            self.assertIn("demo.js", page)
            st, js = s.request("GET", "/web/sfu-client.js", auth=False)
            self.assertEqual(st, 200)
            self.assertIn("class SfuClient", js)
            st, j = s.request("POST", "/dev/join", {"room": "hall", "identity": "u1"}, auth=False)
            self.assertEqual(st, 201, j)
            self.assertTrue(j["token"] and j["room_id"].startswith("rm_"))
        finally:
            self.assertEqual(s.stop(), 0)
        plain = Sfud(ARGS.sfud, ARGS.room)  # without --dev the route does not exist
        try:
            st, j = plain.request("POST", "/dev/join", {"room": "hall", "identity": "u1"},
                                  auth=False)
            self.assertEqual(st, 404)
        finally:
            plain.stop()


class Binary(unittest.TestCase):
    def test_version_names_openssl_backed_srtp(self):
        import subprocess
        out = subprocess.run([ARGS.sfud, "--version"], capture_output=True,
                             text=True, check=True).stdout
        self.assertIn("libsrtp2 2.5.0", out)
        self.assertIn("crypto backend OpenSSL", out)

    def test_bad_flag_exits_2_with_message(self):
        import subprocess
        p = subprocess.run([ARGS.sfud, "--listen-port", "nope"], capture_output=True,
                           text=True)
        self.assertEqual(p.returncode, 2)
        self.assertIn("listen_port", p.stderr)


class RoomChannel(unittest.TestCase):
    """sfu-room on its own, its IPC channel (fd 3) held by the test."""

    def frames(self, sock, buf):
        """The whole frames in buf (bytes read so far), and the rest."""
        out = []
        while len(buf) >= 4:
            n = int.from_bytes(buf[:4], "big")
            if len(buf) < 4 + n:
                break
            out.append(json.loads(buf[4:4 + n]))
            buf = buf[4 + n:]
        return out, buf

    def asked_while_not_reading(self, n, then=None):
        """A room process asked for n stats (about 1 KiB each) while the
        test reads nothing, then sent `then`; returns every message it sent
        after `ready` (read until it closes its channel, or, without
        `then`, until the n replies are in; or until it is quiet for 5 s)
        and its exit status (None: still running, killed)."""
        import subprocess
        import tempfile
        ours, theirs = socket.socketpair()
        log = tempfile.TemporaryFile()
        self.addCleanup(log.close)
        room = subprocess.Popen(
            [ARGS.room, "--room-id", "RM_channel", "--parent-timeout-ms", "60000"],
            pass_fds=(3, theirs.fileno()), stderr=log,  # 3: becomes theirs
            preexec_fn=lambda fd=theirs.fileno(): os.dup2(fd, 3))
        theirs.close()
        status = None
        try:
            buf = b""
            got = []
            while not any(m.get("type") == "ready" for m in got):
                buf += ours.recv(65536)
                more, buf = self.frames(ours, buf)
                got += more
            for m in [{"type": "stats"}] * n + ([then] if then else []):
                body = json.dumps(m).encode()
                ours.sendall(len(body).to_bytes(4, "big") + body)
            ours.settimeout(5)
            got = []
            end = time.monotonic() + 30
            replies = 0
            while time.monotonic() < end and (then or replies < n):
                try:
                    data = ours.recv(1 << 20)
                except socket.timeout:
                    break  # nothing more comes
                if not data:
                    break  # the room closed its channel
                buf += data
                more, buf = self.frames(ours, buf)
                got += more
                replies += sum(m.get("type") == "stats" for m in more)
            status = room.wait(timeout=10) if then else None
        finally:
            if room.poll() is None:
                room.kill()
                room.wait(timeout=10)
            ours.close()
        log.seek(0)
        dropped = log.read().count(b"IPC send failed")
        self.assertEqual(dropped, 0, "the room dropped %d messages" % dropped)
        return got, status

    def test_a_parent_that_falls_behind_loses_no_message(self):
        """More replies than the channel's 8 MiB write queue holds, asked
        while the test reads nothing: every one arrives, in order, once the
        test reads (the room holds them until the channel drains)."""
        n = 16000  # 16 MiB and more
        got, _ = self.asked_while_not_reading(n)
        stats = [m for m in got if m.get("type") == "stats"]
        self.assertEqual(len(stats), n)
        ipc = stats[-1]["ipc"]
        self.assertGreater(ipc["waited"], 0, ipc)  # the queue was full at some point
        self.assertEqual(ipc["dropped"], 0, ipc)

    def test_a_room_that_ends_behind_sends_what_it_held_first(self):
        """Told to shut down while 16 MiB of replies wait for the drain, the
        room still sends every one, then `closing`, and exits 0."""
        n = 16000
        got, status = self.asked_while_not_reading(n, {"type": "shutdown"})
        self.assertEqual(status, 0)
        self.assertEqual(len([m for m in got if m.get("type") == "stats"]), n)
        self.assertEqual(got[-1].get("type"), "closing", got[-1])


if __name__ == "__main__":
    main()

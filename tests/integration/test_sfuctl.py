#!/usr/bin/env python3
"""sfuctl against a real sfud.

A whole session driven by sfuctl: a room created, a token minted with
which sfu-replay joins, the participant seen in `rooms show`, server-muted
(the room lists the mute), kicked (gone from the room, sfu-replay closed
with 4012), the journal read back with `events tail`, the room closed.
Errors: a wrong key (exit 3, the API's 401 JSON on stderr), an unknown room
(exit 3, 404), a draining node (exit 4, 503), an unreachable node (exit 2),
bad command lines (exit 1 with the usage). `--json` output parsed
throughout; `load` runs short sfu-replay runs.

Usage: test_sfuctl.py --sfud PATH --room PATH --replay PATH
(sfuctl is the binary next to sfu-replay, as `sfuctl load` expects.)
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sfutest import Sfud, main, wait_for  # noqa: E402

ARGS = None


class SfuctlTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sfud = Sfud(ARGS.sfud, ARGS.room)
        cls.url = "http://127.0.0.1:%d" % cls.sfud.port
        cls.tool = os.path.join(os.path.dirname(os.path.abspath(ARGS.replay)), "sfuctl")
        cls.tmp = tempfile.mkdtemp(prefix="sfu-sfuctl-test-")

    @classmethod
    def tearDownClass(cls):
        cls.sfud.stop_and_check()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def ctl(self, *args, rc=0, env=None, key=True, timeout=30):
        """Runs sfuctl with --url (and --key unless key is False) first;
        checks its exit status; returns the CompletedProcess."""
        pre = ["--url", self.url] + (["--key", self.sfud.api_key] if key else [])
        e = dict(os.environ)
        e.pop("SFU_URL", None)
        e.pop("SFU_API_KEY", None)
        e.update(env or {})
        p = subprocess.run([self.tool, *pre, *args], capture_output=True, text=True,
                           timeout=timeout, env=e)
        self.assertEqual(p.returncode, rc, "sfuctl %s: exit %d\nstdout: %s\nstderr: %s"
                         % (" ".join(args), p.returncode, p.stdout, p.stderr))
        return p

    def ctl_json(self, *args):
        return json.loads(self.ctl("--json", *args).stdout)

    def test_a_whole_session(self):
        room = self.ctl_json("rooms", "create", "standup", "--max-participants", "4",
                             "--empty-timeout", "2m", "--metadata", '{"team":"core"}')
        rid = room["room_id"]
        self.assertEqual((room["name"], room["max_participants"], room["empty_timeout_s"],
                          room["metadata"]), ("standup", 4, 120, {"team": "core"}))
        listed = self.ctl("rooms", "list").stdout
        self.assertRegex(listed, r"(?m)^ROOM_ID +NAME +STATE")
        self.assertRegex(listed, r"(?m)^%s +standup +(starting|running) +0/4" % rid)

        token = self.ctl("token", "standup", "alice", "--ttl", "10m").stdout.strip()
        self.assertEqual(token.count("."), 2, token)  # a JWT, alone on stdout
        minted = self.ctl_json("token", "standup", "bob", "--grants", "subscribe")
        self.assertEqual(minted["room_id"], rid)
        self.assertAlmostEqual(minted["expires_at"] - time.time(), 3600, delta=30)

        summary = os.path.join(self.tmp, "alice.json")
        replay = subprocess.Popen(
            [ARGS.replay, "--token", token, "--ws-url", room["ws_url"], "--room", rid,
             "--tone", "440", "--duration", "5", "--json", summary],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            def joined():
                people = self.ctl_json("rooms", "show", "standup")["people"]
                return [p["identity"] for p in people] == ["alice"]
            wait_for(joined, timeout=15, step=0.2, what="alice in the room")
            shown = self.ctl("rooms", "show", rid).stdout
            self.assertRegex(shown, r"(?m)^state: +running")
            self.assertRegex(shown, r"(?m)^  alice +PA_\w+ +no$")

            out = self.ctl("participants", "mute", "standup", "alice").stdout
            self.assertIn("alice server-muted in room " + rid, out)
            wait_for(lambda: self.ctl_json("rooms", "show", "standup")["moderation"]
                     ["server_muted"] == ["alice"], timeout=5, what="the mute listed")
            self.assertRegex(self.ctl("rooms", "show", "standup").stdout,
                             r"(?m)^  alice +PA_\w+ +yes$")

            kicked = self.ctl_json("participants", "kick", "standup", "alice")
            self.assertEqual(kicked, {"room_id": rid, "identity": "alice", "action": "kick"})
            wait_for(lambda: self.ctl_json("rooms", "show", "standup")["people"] == [],
                     timeout=10, step=0.2, what="alice gone")
            _, err = replay.communicate(timeout=30)
        finally:
            if replay.poll() is None:
                replay.kill()
                replay.wait()
        self.assertIn("session ended", err)
        self.assertIn("4012 kicked", err)
        with open(summary) as f:
            self.assertEqual([c["close_code"] for c in json.load(f)["clients"]], [4012])
        self.assertIn("kicks: 1", self.ctl("rooms", "show", "standup").stdout)

        # the journal: one JSON record a line, then as text
        lines = self.ctl("--json", "events", "tail", "--last", "100").stdout.splitlines()
        recs = [json.loads(l) for l in lines]
        mine = [(r["type"], r.get("participant"), r.get("reason")) for r in recs
                if r.get("room_id") == rid]
        self.assertIn(("participant_joined", "alice", None), mine)
        self.assertIn(("participant_left", "alice", "kicked"), mine)
        seqs = [r["seq"] for r in recs]
        self.assertEqual(seqs, sorted(seqs))
        after = self.ctl("events", "tail", "--after", str(seqs[-2])).stdout.splitlines()
        self.assertEqual(len(after), 1, after)
        self.assertTrue(after[0].startswith("%d " % seqs[-1]), after)

        closed = self.ctl_json("rooms", "close", "standup")
        self.assertEqual((closed["room_id"], closed["state"]), (rid, "closing"))
        def gone():
            p = subprocess.run([self.tool, "--url", self.url, "--key", self.sfud.api_key,
                                "rooms", "show", rid], capture_output=True, text=True)
            return p.returncode == 3 and "room_not_found" in p.stderr
        wait_for(gone, timeout=10, step=0.2, what="the room gone (404)")
        self.assertEqual(self.ctl("rooms", "list").stdout, "no rooms\n")

    def test_errors_and_exit_codes(self):
        # a wrong key: 401, exit 3, the API's JSON on stderr
        p = self.ctl("--key", "wrong-key", "rooms", "list", rc=3, key=False)
        self.assertIn("HTTP 401", p.stderr)
        self.assertIn('"code":"unauthorized"', p.stderr)
        self.assertEqual(p.stdout, "")
        p = self.ctl("--json", "rooms", "list", rc=3, key=False)
        self.assertEqual(json.loads(p.stderr)["error"]["code"], "unauthorized")
        # an unknown room: 404, exit 3
        p = self.ctl("rooms", "show", "no-such-room", rc=3)
        self.assertIn("HTTP 404", p.stderr)
        self.assertIn("room_not_found", p.stderr)
        p = self.ctl("--json", "participants", "kick", "no-such-room", "alice", rc=3)
        self.assertEqual(json.loads(p.stderr)["error"]["code"], "room_not_found")
        # a draining node: 503, exit 4; then back
        self.addCleanup(self.sfud.request, "POST", "/v1/node/drain", {"draining": False})
        self.assertTrue(self.ctl_json("node", "drain")["draining"])
        p = self.ctl("rooms", "create", rc=4)
        self.assertIn("HTTP 503", p.stderr)
        self.assertIn("draining", p.stderr)
        self.assertIn("accepting rooms again", self.ctl("node", "drain", "--off").stdout)
        # no node there: exit 2
        p = subprocess.run([self.tool, "--url", "http://127.0.0.1:1", "node", "status"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("cannot reach http://127.0.0.1:1", p.stderr)
        # bad command lines: exit 1, the message and the usage on stderr
        p = self.ctl("rooms", "frobnicate", rc=1)
        self.assertIn("unknown command 'rooms frobnicate'", p.stderr)
        self.assertIn("usage: sfuctl rooms COMMAND", p.stderr)
        p = self.ctl("token", "standup", rc=1)
        self.assertIn("token: missing arguments (ROOM IDENTITY)", p.stderr)
        self.assertIn("usage: sfuctl token ROOM IDENTITY [options]", p.stderr)
        self.assertIn("--ttl DURATION", p.stderr)
        p = self.ctl("token", "standup", "alice", "--ttl", "soon", rc=1)
        self.assertIn("--ttl: 'soon' is not a duration", p.stderr)
        p = self.ctl("rooms", "list", "--bogus", rc=1)
        self.assertIn("rooms list: unknown option '--bogus'", p.stderr)
        self.assertEqual(self.ctl(rc=1, key=False).stdout, "")
        # help and version: exit 0, on stdout
        p = self.ctl("--help")
        for cmd in ("rooms create", "participants kick", "events tail", "load", "exit status"):
            self.assertIn(cmd, p.stdout)
        p = self.ctl("participants", "ban", "--help")
        self.assertIn("usage: sfuctl participants ban ROOM IDENTITY [options]", p.stdout)
        self.assertIn("--reason TEXT", p.stdout)
        self.assertEqual(self.ctl("help", "fleet").stdout, self.ctl("fleet", "-h").stdout)
        self.assertRegex(self.ctl("--version").stdout, r"^sfuctl \d+\.\d+\.\d+\n$")
        # the environment gives the URL and the key
        p = subprocess.run([self.tool, "--json", "node", "status"], capture_output=True,
                           text=True, timeout=30,
                           env={**os.environ, "SFU_URL": self.url + "/",
                                "SFU_API_KEY": self.sfud.api_key})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertFalse(json.loads(p.stdout)["draining"])
        self.assertIn("fleet:         none", self.ctl("node", "status").stdout)
        # a node alone has no fleet: 404 no_fleet
        p = self.ctl("--json", "fleet", rc=3)
        self.assertEqual(json.loads(p.stderr)["error"]["code"], "no_fleet")

    def test_load_runs_replay_scenarios(self):
        scenario = os.path.join(self.tmp, "duet.json")
        with open(scenario, "w") as f:
            json.dump({"room": "duet", "duration_s": 1.5,
                       "participants": [{"name": "singer", "publish": [{"tone": 440}]},
                                        {"name": "listener"}],
                       "expect": {"intact": True}}, f)
        out = self.ctl("--json", "load", scenario, timeout=60).stdout.splitlines()
        self.assertEqual(len(out), 1, out)
        s = json.loads(out[0])
        self.assertTrue(s["ok"], s)
        self.assertEqual(s["participants"], 2)
        self.assertGreater(s["received"], 0)
        self.assertEqual(s["lost"], 0)
        # words after -- go to sfu-replay; a line of results for people
        out = self.ctl("load", "--", "-n", "2", "--tone", "440", "--duration", "1",
                       timeout=60).stdout
        self.assertRegex(out, r"^sfu-replay: ok: 2 participants in 1 rooms, .* 0 lost")
        # a run that cannot start: exit 5, sfu-replay's own message on stderr
        p = self.ctl("load", os.path.join(self.tmp, "missing.json"), rc=5, timeout=60)
        self.assertIn("missing.json", p.stderr)
        self.assertIn("sfu-replay ended with status 2", p.stderr)
        # sfu-replay not where it is said to be
        p = self.ctl("load", scenario, "--replay", "/nonexistent/sfu-replay", rc=5)
        self.assertIn("cannot run /nonexistent/sfu-replay", p.stderr)


if __name__ == "__main__":
    main(replay="required")

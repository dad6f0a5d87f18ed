#!/usr/bin/env python3
"""One call spread over relay processes (docs/internals/relay.md), with
aiortc peers on loopback: speakers on the room's own process, listeners on
its relays, each publishing its own tone and telling by Goertzel power who
it hears.

Usage: test_relay.py --sfud PATH --room PATH [--replay PATH]
"""
import asyncio
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sfutest import CallTest, Receiver, main  # noqa: E402
from aiortc_peer import Peer, PeerClosed  # noqa: E402
from etcd import FleetCallTest  # noqa: E402
from test_video_aiortc import PatternPeer  # noqa: E402

ARGS = None
HEARD = 0.01


def audience_token(sfud, room_id, identity):
    """A token of `identity` for the room that may subscribe only."""
    st, j = sfud.request("POST", "/v1/rooms/%s/tokens" % room_id,
                         {"identity": identity, "grants": {"publish": False, "subscribe": True}})
    assert st == 201, j
    return j["token"]


class RelayTest(CallTest):
    PEER = Peer

    def setUp(self):
        self.rcv = Receiver()
        self.addCleanup(self.rcv.close)
        # the origin takes publishers while it serves fewer than 2
        self.start_sfud(ARGS.sfud, ARGS.room, "--relay-threshold", "2", "--max-relays", "3",
                        "--webhook-url", self.rcv.url, "--webhook-secret", Receiver.SECRET,
                        "--usage-interval-s", "2")
        self.room = self.new_room("stage")
        self.peers = []

    async def timeout_details(self):
        """The room's and its relays' counters, and what each peer got."""
        try:
            j = self.room_json()
        except Exception as e:  # noqa: BLE001 -- a detail, not the failure
            return "\n(room: %s)" % e
        return "\nroom: %s\nrelays: %s\npeers: %s" % (
            j.get("stats", {}).get("packets"), j.get("relays"),
            {p.identity: {s.mid: len(s.window(5.0)) for s in p.sources.values()}
             for p in self.peers})

    def room_json(self):
        st, j = self.sfud.request("GET", "/v1/rooms/" + self.room["room_id"])
        self.assertEqual(st, 200, j)
        return j

    def add_relays(self, n):
        ids = []
        for _ in range(n):
            st, j = self.sfud.request("POST", "/v1/rooms/%s/relays" % self.room["room_id"], {})
            self.assertEqual(st, 201, j)
            ids.append(j["relay_id"])
        return ids

    def listener(self, identity):
        """A listener (its token may not publish: sfud places it on a
        relay), in self.peers, not joined yet."""
        p = Peer(self.room["ws_url"], self.room["room_id"],
                 audience_token(self.sfud, self.room["room_id"], identity), identity)
        self.peers.append(p)
        return p

    async def relays_running(self, n):
        return await self.until(
            lambda: (lambda r: r if len([x for x in r if x["state"] == "running"]) == n else None)(
                self.room_json()["relays"]), what="%d relays running" % n)

    async def test_speakers_on_the_origin_listeners_on_two_relays_hear_each_other(self):
        relays = self.add_relays(2)
        await self.relays_running(2)
        a = self.peer(self.room, "alice", freq=440)
        b = self.peer(self.room, "bob", freq=660)
        await a.join()
        await b.join()
        # c may publish but lands on a relay (the origin has 2); d, e only listen
        c = self.peer(self.room, "carol", freq=880)
        d, e = self.listener("dave"), self.listener("erin")
        await c.join()
        await c.mute(True)
        await d.join()
        await e.join()
        await self.until(lambda: sum(x["participants"] for x in self.room_json()["relays"]) == 3,
                         what="carol, dave and erin on the relays")
        on_relays = [x["participants"] for x in self.room_json()["relays"]]
        self.assertTrue(all(n >= 1 for n in on_relays), on_relays)  # both relays serve someone
        self.assertEqual(self.room_json()["participants"], 5)

        for who in (c, d, e):
            await self.until(lambda: who.tone_power("alice", 440, 1.0) > HEARD
                             and who.tone_power("bob", 660, 1.0) > HEARD,
                             what="%s hears both speakers" % who.identity)
        await self.until(lambda: a.tone_power("bob", 660, 1.0) > HEARD, what="alice hears bob")
        # dave and erin are an audience: alice, on the origin, is told how
        # many (from the relays' counts), never who
        await a.wait_event("audience", lambda m: m["count"] == 2, timeout=10)
        named = [m for m in a.events_of("participant_joined")
                 if m["participant"]["identity"] in ("dave", "erin")]
        self.assertEqual(named, [])

        # carol, on a relay, unmutes and speaks: everyone hears her
        await c.mute(False)
        for who in (a, b, d, e):
            await self.until(lambda: who.tone_power("carol", 880, 1.0) > HEARD,
                             what="%s hears carol" % who.identity)

        # every process forwards once per link, and the API shows the relays
        # (the stats are each process's last report, a second old at most)
        j = await self.until(lambda: (lambda j: j if all(
            x.get("packets", {}).get("relay_in", 0) > 100 for x in j["relays"])
            and j["stats"]["packets"]["relay_out"] > 200 else None)(self.room_json()),
            what="relay packet counters")
        self.assertEqual(sorted(x["relay_id"] for x in j["relays"]), sorted(relays))
        links = j["stats"]["links"]
        self.assertEqual(len(links), 2)
        self.assertTrue(all(l["up"] for l in links), links)
        self.assert_peers_clean()

    async def test_a_killed_relay_is_left_and_rejoined_others_lose_nothing_usage_once(self):
        (rid,) = self.add_relays(1)
        await self.relays_running(1)
        a = self.peer(self.room, "alice", freq=440)
        b = self.peer(self.room, "bob", freq=660)
        await a.join()
        await b.join()
        d = self.listener("dave")
        await d.join()
        await self.until(lambda: d.tone_power("alice", 440, 1.0) > HEARD
                         and a.tone_power("bob", 660, 1.0) > HEARD, what="dave hears alice")
        # what alice gets from bob, on the origin, while the relay dies
        from_bob = a.find_sources("bob")[0]
        gaps, frames = from_bob.pts_gaps, from_bob.frames
        pid = [x for x in self.room_json()["relays"] if x["relay_id"] == rid][0]["pid"]
        os.kill(pid, signal.SIGKILL)
        # its listeners are told to join again; alice loses nothing
        await d.wait_closed(10)
        self.assertEqual(d.close_code, 4016)
        d2 = self.listener("dave")
        t0 = time.monotonic()
        await d2.join()
        await self.until(lambda: d2.tone_power("alice", 440, 1.0) > HEARD,
                         what="dave hears alice again")
        self.assertLess(time.monotonic() - t0, 10)
        self.assertEqual(self.room_json()["state"], "running")
        # nobody else lost a packet: alice's stream from bob went on unbroken
        await asyncio.sleep(1.0)
        self.assertGreater(from_bob.frames - frames, 50)
        self.assertEqual(from_bob.pts_gaps, gaps)
        # usage: each participant-second once, dave's two sessions apart
        await a.leave()
        await b.leave()
        await d2.leave()
        self.sfud.request("DELETE", "/v1/rooms/" + self.room["room_id"])
        recs = await self.until(lambda: (lambda r: r if r and r[-1]["type"] == "room_finished"
                                         else None)(self.rcv.records()),
                                timeout=15, what="room_finished")
        ids = [r["id"] for r in recs]
        self.assertEqual(len(ids), len(set(ids)))
        fin = recs[-1]
        conn = {}
        for r in recs:
            if r["type"] == "usage":
                conn[r["participant"]] = conn.get(r["participant"], 0) + r["ms"]["connected"]
        self.assertEqual(fin["ms"]["connected"], sum(conn.values()))
        self.assertEqual(set(conn), {"alice", "bob", "dave"})
        self.assertEqual(fin["participants"], 4)  # alice, bob, dave twice
        left = [r for r in recs if r["type"] == "participant_left" and r["participant"] == "dave"]
        self.assertEqual(len(left), 2)
        self.assertEqual(left[0]["reason"], "room_crashed")
        self.assertTrue(all(r["room_id"] == self.room["room_id"] for r in recs), recs[:3])

    async def test_a_closed_relay_tells_its_clients_to_join_again(self):
        (rid,) = self.add_relays(1)
        await self.relays_running(1)
        d = self.listener("dave")
        await d.join()
        await self.until(lambda: self.room_json()["relays"][0]["participants"] == 1,
                         what="dave on the relay")
        st, j = self.sfud.request("DELETE", "/v1/rooms/%s/relays/%s" % (self.room["room_id"], rid))
        self.assertEqual(st, 202, j)
        await d.wait_closed(10)
        self.assertEqual((d.close_code, d.close_reason), (4016, "relay gone: join again"))
        self.assertEqual(self.room_json()["state"], "running")

    async def test_a_relay_started_after_a_server_mute_keeps_it(self):
        st, j = self.sfud.request("POST", "/v1/rooms/%s/participants/carol/mute"
                                  % self.room["room_id"], {"muted": True})
        self.assertEqual(st, 202, j)
        self.add_relays(1)
        await self.relays_running(1)
        a = self.peer(self.room, "alice", freq=440)
        b = self.peer(self.room, "bob", freq=660)
        await a.join()
        await b.join()
        c = self.peer(self.room, "carol", freq=880)  # the origin has 2: on the relay
        await c.join()
        await self.until(lambda: self.room_json()["relays"][0]["participants"] == 1,
                         what="carol on the relay")
        self.assertTrue(c.welcome["participant"]["server_muted"], c.welcome)
        await asyncio.sleep(1.0)
        self.assertLess(a.tone_power("carol", 880, 1.0), HEARD)  # muted: nothing forwarded

    async def test_the_c_client_joins_again_when_its_relay_ends(self):
        """sfu-replay (tools/client): a listener on a relay that is deleted
        gets 4016, joins again by itself (on the origin now) and hears the
        tone to the end."""
        import json
        import subprocess
        import tempfile
        if not ARGS.replay:
            self.skipTest("needs --replay")
        (rid,) = self.add_relays(1)
        await self.relays_running(1)
        tmp = tempfile.mkdtemp()
        scen = os.path.join(tmp, "scenario.json")
        with open(scen, "w") as f:
            json.dump({"room": "stage", "duration_s": 8, "loops": 0, "participants": [
                {"name": "speaker", "publish": [{"tone": 440}]},
                {"name": "aud", "audience": True}]}, f)
        summary = os.path.join(tmp, "summary.json")
        with open(os.path.join(tmp, "err"), "w") as err:
            proc = subprocess.Popen([os.path.abspath(ARGS.replay), "--server", "http://127.0.0.1:%d" % self.sfud.port,
                                     "--api-key", self.sfud.api_key, "--scenario", scen,
                                     "--json", summary], stdout=subprocess.DEVNULL, stderr=err)
        try:
            await self.until(lambda: [x["participants"] for x in self.room_json()["relays"]]
                             == [1], what="the listener on the relay", timeout=20)
            await asyncio.sleep(2)
            st, j = self.sfud.request("DELETE", "/v1/rooms/%s/relays/%s"
                                      % (self.room["room_id"], rid))
            self.assertEqual(st, 202, j)
            rc = await asyncio.to_thread(proc.wait, 60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        with open(os.path.join(tmp, "err")) as f:
            err = f.read()
        self.assertEqual(rc, 0, err)
        with open(summary) as f:
            out = json.load(f)
        aud = next(c for c in out["clients"] if c["identity"].startswith("aud"))
        self.assertEqual((aud["rejoins"], aud["close_code"]), (1, 0), (aud, err[-3000:]))
        (stream,) = out["streams"]
        # what it missed while joining again is lost; the rest arrived
        self.assertGreater(stream["received"], stream["sent"] * 0.6, stream)
        self.assertIn("joining again", err)

    async def test_relays_api_refuses_what_it_cannot_do(self):
        st, j = self.sfud.request("POST", "/v1/rooms/rm_0000000000000000/relays", {})
        self.assertEqual(st, 404, j)
        ids = self.add_relays(3)
        st, j = self.sfud.request("POST", "/v1/rooms/%s/relays" % self.room["room_id"], {})
        self.assertEqual((st, j["error"]["code"]), (409, "too_many_relays"))
        st, j = self.sfud.request("DELETE", "/v1/rooms/%s/relays/rl_nope" % self.room["room_id"])
        self.assertEqual((st, j["error"]["code"]), (404, "relay_not_found"))
        st, j = self.sfud.request("PUT", "/v1/rooms/%s/relays" % self.room["room_id"], {})
        self.assertEqual(st, 405, j)
        st, j = self.sfud.request("DELETE", "/v1/rooms/%s/relays/%s" % (self.room["room_id"], ids[0]))
        self.assertEqual((st, j["state"]), (202, "closing"))
        def closed():    # (one look at the room: the relay may go between two)
            mine = [x for x in self.room_json()["relays"] if x["relay_id"] == ids[0]]
            return not mine or mine[0]["state"] != "running"
        await self.until(closed, what="relay closed")
        # relays are not rooms
        st, rooms = self.sfud.request("GET", "/v1/rooms")
        self.assertEqual([r["room_id"] for r in rooms["rooms"]], [self.room["room_id"]])
        st, j = self.sfud.request("GET", "/v1/rooms/" + ids[1])
        self.assertEqual(st, 404, j)
        # the room ends: its relays end with it
        self.sfud.request("DELETE", "/v1/rooms/" + self.room["room_id"])
        await self.until(lambda: self.sfud.children() == [], what="room and relays gone")

    async def test_a_room_spreads_by_itself_past_the_threshold(self):
        self.assertEqual(self.room_json()["relays"], [])
        a = self.peer(self.room, "alice", freq=440)
        b = self.peer(self.room, "bob", freq=660)
        await a.join()
        await b.join()
        # the origin serves 2 = relay_threshold: the next join adds a relay
        d = self.listener("dave")
        await d.join()
        await self.relays_running(1)
        e = self.listener("erin")
        await e.join()
        await self.until(lambda: sum(x["participants"] for x in self.room_json()["relays"]) == 1,
                         what="erin on the new relay")
        await self.until(lambda: e.tone_power("alice", 440, 1.0) > HEARD
                         and e.tone_power("bob", 660, 1.0) > HEARD, what="erin hears both")
        # the room shrinks to erin (1 <= half of what one process fewer
        # holds): the relay it started folds back, erin is told to join
        # again and lands on the origin, where a new speaker finds her
        for p in (a, b, d):
            await p.leave()
        await e.wait_closed(10)
        self.assertEqual(e.close_code, 4016, e.close_reason)
        await self.until(lambda: all(x["state"] != "running" for x in self.room_json()["relays"]),
                         what="the relay folded")
        again = Peer(self.room["ws_url"], self.room["room_id"], e.token, "erin")
        self.peers.append(again)
        await again.join()
        f = self.peer(self.room, "frank", freq=880)
        await f.join()
        await self.until(lambda: again.tone_power("frank", 880, 1.0) > HEARD,
                         what="erin, on the origin again, hears frank")
        j = self.room_json()
        self.assertEqual((j["participants"], [x for x in j["relays"] if x["state"] == "running"]),
                         (2, []), j)


class RemoteRelayTest(FleetCallTest):
    """A relay of a room on another node of the fleet (docs/internals/relay.md,
    "Relays on other nodes"): two sfud nodes around a real etcd; the room
    and its speakers on node a, a relay on node b and a listener joining it
    at b's signaling URL."""
    PEER = Peer

    async def test_a_listener_on_a_relay_of_another_node_hears_and_speaks(self):
        a, b = self.start_node("a"), self.start_node("b")
        self.sfud = a
        st, room = a.request("POST", "/v1/rooms", {"name": "far", "node": "a"})
        self.assertEqual(st, 201, room)
        rid = room["room_id"]
        st, relay = await asyncio.to_thread(a.request, "POST", "/v1/rooms/%s/relays" % rid,
                                            {"node": "b"})
        self.assertEqual(st, 201, relay)
        self.assertEqual(relay["node"], "b")
        self.assertEqual(relay["ws_url"], "ws://127.0.0.1:%d/v1/rtc" % b.port)
        listed = a.request("GET", "/v1/rooms/%s/relays" % rid)[1]
        self.assertIn(relay["relay_id"], [x["relay_id"] for x in listed])

        alice = self.peer(room, "alice", freq=440)
        await alice.join()
        # carol joins the room at b's signaling URL (a token minted on a)
        carol = Peer(relay["ws_url"], rid, self.token("carol", room), "carol", freq=880)
        self.peers.append(carol)
        await carol.join()
        await carol.mute(True)
        await self.until(lambda: carol.tone_power("alice", 440, 1.0) > HEARD,
                         what="carol, on node b, hears alice on node a")
        await carol.mute(False)
        await self.until(lambda: alice.tone_power("carol", 880, 1.0) > HEARD,
                         what="alice hears carol")
        # carol's socket drops: she resumes her session on b's relay
        carol.drop_signaling()
        resumed = await carol.resume()
        self.assertEqual(resumed["type"], "resumed")
        await carol.mute(True)  # the resumed session carries her messages
        await alice.wait_event("participant_updated",
                               lambda m: m["participant"]["identity"] == "carol"
                               and m["participant"]["muted"], timeout=10)
        await carol.mute(False)
        j = a.request("GET", "/v1/rooms/" + rid)[1]
        self.assertTrue(any(l["up"] for l in j["stats"]["links"]), j["stats"]["links"])
        # b runs no room: it passes the request to a, which lists b's relay
        st, jb = b.request("GET", "/v1/rooms/" + rid)
        self.assertEqual((st, jb["room_id"]), (200, rid), jb)
        self.assertIn({"relay_id": relay["relay_id"], "node": "b", "ws_url": relay["ws_url"]},
                      jb["relays"])

        self.assert_peers_clean()
        # the room ends on a: its relay on b ends, and carol's call with it
        a.request("DELETE", "/v1/rooms/" + rid)
        await carol.wait_closed(10)
        self.assertEqual(carol.close_code, 4010)
        await self.until(lambda: b.children() == [], what="the relay on b gone")

    async def test_two_relays_here_one_on_another_node_audio_and_video(self):
        """The room forced to 2 relays on its node and 1 on another: a
        speaker and a camera on the origin, a listener on every relay; each
        hears the speaker, the speaker hears the listener of the other node,
        and the viewer there decodes the camera, its keyframe request
        answered by the publisher."""
        a = self.start_node("a")
        self.start_node("b")
        self.sfud = a
        st, room = a.request("POST", "/v1/rooms", {"name": "wide", "node": "a"})
        self.assertEqual(st, 201, room)
        rid = room["room_id"]
        for body in ({}, {}, {"node": "b"}):
            st, j = await asyncio.to_thread(a.request, "POST", "/v1/rooms/%s/relays" % rid, body)
            self.assertEqual(st, 201, j)
        far = j
        await self.until(lambda: len([x for x in a.request("GET", "/v1/rooms/%s/relays" % rid)[1]
                                      if x.get("state") == "running"]) == 2,
                         what="the two relays of node a running")
        alice = self.peer(room, "alice", freq=440)
        cam = PatternPeer(room["ws_url"], rid, self.token("cam", room), "cam")
        self.peers.append(cam)
        await alice.join()
        await cam.join()
        near = []
        for who in ("dave", "erin"):  # audience: the two relays of node a, in turn
            near.append(Peer(room["ws_url"], rid, audience_token(a, rid, who), who))
        self.peers += near
        carol = Peer(far["ws_url"], rid, self.token("carol", room), "carol", freq=880)
        viewer = PatternPeer(far["ws_url"], rid, audience_token(a, rid, "viewer"), "viewer",
                           video=False)
        self.peers += [carol, viewer]
        for p in near + [carol, viewer]:
            await p.join()
        relays = {x["relay_id"]: x for x in a.request("GET", "/v1/rooms/%s/relays" % rid)[1]}
        await self.until(lambda: all(x.get("participants") == 1 for x in a.request(
            "GET", "/v1/rooms/%s/relays" % rid)[1] if "state" in x), what="one on each relay")
        for who in near + [carol]:
            await self.until(lambda: who.tone_power("alice", 440, 1.0) > HEARD,
                             what="%s hears alice" % who.identity)
        await self.until(lambda: alice.tone_power("carol", 880, 1.0) > HEARD,
                         what="alice hears carol")
        await viewer.wait_until(lambda: len(viewer.video_frames) > 10, timeout=20,
                                what="the viewer on node b decodes the camera")
        keyframes = lambda: a.request("GET", "/v1/rooms/" + rid)[1]["stats"]["packets"]["video"]
        await asyncio.sleep(1.0)  # past the throttle of the subscription's own request
        before = keyframes()["keyframes_in"]
        receiver = next(t.receiver for t in viewer.pc.getTransceivers()
                        if t.receiver.track and t.receiver.track.kind == "video")
        await receiver._send_rtcp_pli(viewer.subscriber_ssrc())
        await self.until(lambda: keyframes()["keyframes_in"] > before,
                         what="a keyframe for the viewer's PLI")
        self.assertEqual(len(relays), 3)
        self.assert_peers_clean()

    async def test_moderation_reaches_a_relay_of_another_node(self):
        """Kicks, bans and server mutes made on the room's node apply on its
        relay on another node: to who is there, and to joins there later,
        including those made before the relay started."""
        a, b = self.start_node("a"), self.start_node("b")
        self.sfud = a
        st, room = a.request("POST", "/v1/rooms", {"name": "modfar", "node": "a"})
        self.assertEqual(st, 201, room)
        rid = room["room_id"]
        path = "/v1/rooms/%s/participants/" % rid
        st, j = a.request("POST", path + "carol/mute", {"muted": True})  # before the relay
        self.assertEqual(st, 202, j)
        st, relay = await asyncio.to_thread(a.request, "POST", "/v1/rooms/%s/relays" % rid,
                                            {"node": "b"})
        self.assertEqual(st, 201, relay)
        alice = self.peer(room, "alice", freq=440)
        await alice.join()
        carol = Peer(relay["ws_url"], rid, self.token("carol", room), "carol", freq=880)
        dave = Peer(relay["ws_url"], rid, audience_token(a, rid, "dave"), "dave")
        self.peers += [carol, dave]
        await carol.join()
        await dave.join()
        self.assertTrue(carol.welcome["participant"]["server_muted"], carol.welcome)
        self.assertEqual(carol.welcome["room"]["room_id"], rid)  # the room's, not the relay's
        await self.until(lambda: dave.tone_power("alice", 440, 1.0) > HEARD,
                         what="dave, on node b, hears alice")
        # unmuted from a: carol hears of it on b, and alice hears her
        mark = carol.mark()
        st, j = a.request("POST", path + "carol/mute", {"muted": False})
        self.assertEqual(st, 202, j)
        await carol.wait_event("participant_updated", lambda m: m["participant"]["identity"]
                               == "carol" and not m["participant"]["server_muted"],
                               timeout=10, since=mark)
        await self.until(lambda: alice.tone_power("carol", 880, 1.0) > HEARD,
                         what="alice hears carol once unmuted")
        # dave kicked on a: closed on b, and his token refused there
        st, j = a.request("DELETE", path + "dave")
        self.assertEqual(st, 202, j)
        await dave.wait_closed(10)
        self.assertEqual(dave.close_code, 4012)
        again = Peer(relay["ws_url"], rid, dave.token, "dave")
        self.peers.append(again)
        with self.assertRaises(PeerClosed) as e:
            await again.join()
        self.assertEqual(e.exception.code, 4012, e.exception)
        # carol banned on a: closed on b; b's relay keeps the ban
        st, j = a.request("POST", path + "carol/ban", {"reason": "spam"})
        self.assertEqual(st, 202, j)
        await carol.wait_closed(10)
        self.assertEqual(carol.close_code, 4012)
        await self.until(lambda: any("ban carol" in l for l in b.log),
                         what="the ban recorded on b")

    async def test_relays_on_other_nodes_refused_alone_or_unknown(self):
        a = self.start_node("a")
        self.sfud = a
        st, room = a.request("POST", "/v1/rooms", {"name": "x", "node": "a"})
        self.assertEqual(st, 201, room)
        st, j = await asyncio.to_thread(a.request, "POST", "/v1/rooms/%s/relays" % room["room_id"],
                                        {"node": "nowhere"})
        self.assertEqual((st, j["error"]["code"]), (404, "node_not_found"), j)
        st, j = a.request("POST", "/v1/rooms/%s/relays" % room["room_id"], {"nod": "b"})
        self.assertEqual((st, j["error"]["code"]), (400, "invalid_body"), j)
        st, j = a.request("POST", "/v1/node/links/rl_0000000000000000",
                          {"type": "link_msg", "room_id": room["room_id"]})
        self.assertEqual((st, j["error"]["code"]), (404, "link_not_found"), j)
        st, j = a.request("POST", "/v1/node/relays", {"room_id": "rm_x"})
        self.assertEqual((st, j["error"]["code"]), (400, "invalid_body"), j)


if __name__ == "__main__":
    main(replay="optional")

#!/usr/bin/env python3
"""Moderation that sticks, against a real sfud and room: kicks deny-list
the kicked token and older ones, bans refuse an identity until unbanned,
server mutes outlive the session, and every bound answers as documented
(docs/api.md, docs/signaling.md).

The clients are plain WebSockets that join and read: no media is needed
to see who gets in (welcome) and who is refused (close 4012).

Usage: test_moderation.py --sfud PATH --room PATH
"""
import asyncio
import http.client
import json
import os
import sys
import time
import unittest

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sfutest import Sfud, main, wait_for  # noqa: E402

ARGS = None
KICKED = 4012


async def until(pred, timeout=5.0, what="condition"):
    """wait_for() for coroutines: the loop keeps reading the sockets."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


class Client:
    """One signaling WebSocket: join, then keep every message it gets."""

    def __init__(self, ws_url, room, token):
        self.ws_url, self.room, self.token = ws_url, room, token
        self.ws = None
        self.msgs = []
        self.welcome = None
        self._reader = None

    async def join(self, timeout=5.0):
        """The welcome, or None if the server closed instead (then
        self.close() gives the code and reason)."""
        self.ws = await websockets.connect(self.ws_url, ping_interval=None,
                                           open_timeout=timeout)
        await self.ws.send(json.dumps({"type": "join", "id": 1, "v": 1,
                                       "room": self.room, "token": self.token}))
        try:
            first = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        except websockets.ConnectionClosed:
            return None
        self.msgs.append(first)
        if first.get("type") == "welcome":
            self.welcome = first
        self._reader = asyncio.ensure_future(self._read())
        return self.welcome

    async def _read(self):
        try:
            async for text in self.ws:
                self.msgs.append(json.loads(text))
        except websockets.ConnectionClosed:
            pass

    async def closed(self, timeout=5.0):
        """(code, reason) once the server has closed the socket."""
        await asyncio.wait_for(self.ws.wait_closed(), timeout)
        return self.ws.close_code, self.ws.close_reason

    def seen(self, type_, identity):
        return [m for m in self.msgs if m.get("type") == type_ and
                (m.get("participant") or {}).get("identity", m.get("identity")) == identity]

    async def leave(self):
        if self.ws and not self.ws.closed:
            await self.ws.close()
        if self._reader:
            await self._reader


class Api:
    """Many API calls over one keep-alive connection (bounds need thousands)."""

    def __init__(self, sfud):
        self.sfud = sfud
        self.conn = http.client.HTTPConnection("127.0.0.1", sfud.port, timeout=10)

    def request(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        self.conn.request(method, path, body=data,
                          headers={"Authorization": "Bearer " + self.sfud.api_key})
        r = self.conn.getresponse()
        return r.status, json.loads(r.read() or b"null")

    def close(self):
        self.conn.close()


class Moderation(unittest.IsolatedAsyncioTestCase):
    def setUp(self):
        self.sfud = Sfud(ARGS.sfud, ARGS.room)
        st, self.room = self.sfud.request("POST", "/v1/rooms", {"name": "mod"})
        self.assertEqual(st, 201, self.room)
        self.rid = self.room["room_id"]
        self.ws_url = self.room["ws_url"]
        wait_for(lambda: self.sfud.request("GET", "/v1/rooms/" + self.rid)[1]["state"]
                 == "running", what="room running")
        self.clients = []

    async def asyncTearDown(self):
        for c in self.clients:
            await c.leave()

    def tearDown(self):
        self.assertEqual(self.sfud.stop(), 0)
        self.sfud.assert_clean_log()

    # --- helpers ----------------------------------------------------------

    def token(self, identity, room=None):
        st, j = self.sfud.request("POST", "/v1/rooms/%s/tokens" % (room or self.rid),
                                  {"identity": identity})
        self.assertEqual(st, 201, j)
        return j["token"]

    def participant(self, identity, action=None, method="POST", body=None, room=None):
        path = "/v1/rooms/%s/participants/%s" % (room or self.rid, identity)
        if action:
            path += "/" + action
        return self.sfud.request(method, path, body)

    def moderation(self):
        st, j = self.sfud.request("GET", "/v1/rooms/" + self.rid)
        self.assertEqual(st, 200, j)
        self.assertIn("moderation", j, "GET /v1/rooms/{id} has no moderation view")
        return j["moderation"]

    async def join(self, token):
        c = Client(self.ws_url, self.rid, token)
        self.clients.append(c)
        await c.join()
        return c

    async def refused(self, token, reason):
        c = await self.join(token)
        self.assertIsNone(c.welcome, "a refused identity was welcomed: %r" % c.welcome)
        self.assertEqual(await c.closed(), (KICKED, reason))

    @staticmethod
    async def next_second():
        """Tokens count whole seconds: one minted in the second of a kick
        is 'issued before or at the kick' (docs/api.md)."""
        await asyncio.sleep(int(time.time()) + 1.05 - time.time())

    def api_error(self, st_j, status, code):
        st, j = st_j
        self.assertEqual((st, j["error"]["code"]), (status, code), j)
        self.assertTrue(j["error"]["message"])

    # --- kick -------------------------------------------------------------

    async def test_kicked_token_is_refused_and_a_token_minted_after_works(self):
        bob = await self.join(self.token("bob"))
        self.assertIsNotNone(bob.welcome)
        t1 = self.token("alice")
        t_before = self.token("alice")  # minted before the kick, never used
        alice = await self.join(t1)
        self.assertIsNotNone(alice.welcome)
        await until(lambda: bob.seen("participant_joined", "alice"), what="bob sees alice")

        st, j = self.participant("alice", method="DELETE")
        self.assertEqual((st, j["action"]), (202, "kick"), j)
        self.assertEqual(await alice.closed(), (KICKED, "kicked"))
        await until(lambda: bob.seen("participant_left", "alice"), what="bob sees alice go")

        # The same token, and an older one, are refused by sfud; the room never
        # hears of them (bob sees no join).
        await self.refused(t1, "kicked")
        await self.refused(t_before, "kicked")
        await asyncio.sleep(0.3)
        self.assertEqual(len(bob.seen("participant_joined", "alice")), 1)
        m = self.moderation()
        self.assertEqual((m["kicks"], m["deny_list"], m["joins_refused"]), (1, 1, 2), m)
        self.assertTrue(any("alice refused by room" in l for l in self.sfud.log))

        # A token minted after the kick: the control plane let it back in.
        await self.next_second()
        again = await self.join(self.token("alice"))
        self.assertIsNotNone(again.welcome, "a token minted after the kick was refused")
        await until(lambda: len(bob.seen("participant_joined", "alice")) == 2,
                 what="bob sees alice again")

    # --- ban --------------------------------------------------------------

    async def test_ban_refuses_every_token_until_unban(self):
        alice = await self.join(self.token("alice"))
        self.assertIsNotNone(alice.welcome)
        st, j = self.participant("alice", "ban", body={"reason": "spam"})
        self.assertEqual((st, j.get("action")), (202, "ban"), j)
        self.assertEqual(await alice.closed(), (KICKED, "kicked"))
        bans = self.moderation()["bans"]
        self.assertEqual([(b["identity"], b["reason"]) for b in bans], [("alice", "spam")])
        self.assertGreater(bans[0]["banned_at_ms"], 0)

        await self.next_second()
        fresh = self.token("alice")  # minted after the ban: still refused
        await self.refused(fresh, "banned")
        # An identity not in the room can be banned ahead of time.
        st, _ = self.participant("mallory", "ban")
        self.assertEqual(st, 202)
        await self.refused(self.token("mallory"), "banned")
        self.assertEqual(sorted(b["identity"] for b in self.moderation()["bans"]),
                         ["alice", "mallory"])

        st, j = self.participant("alice", "ban", method="DELETE")
        self.assertEqual((st, j["action"]), (200, "unban"), j)
        self.api_error(self.participant("alice", "ban", method="DELETE"), 404, "not_banned")
        self.assertEqual([b["identity"] for b in self.moderation()["bans"]], ["mallory"])
        # Unbanned: a token minted after the ban gets in ...
        back = await self.join(fresh)
        self.assertIsNotNone(back.welcome, "an unbanned identity was refused")
        # ... and mallory is still out.
        await self.refused(self.token("mallory"), "banned")

    # --- server mute ------------------------------------------------------

    async def test_server_mute_survives_leave_and_applies_before_join(self):
        alice = await self.join(self.token("alice"))
        self.assertFalse(alice.welcome["participant"].get("server_muted"))
        st, j = self.participant("alice", "mute", body={"muted": True})
        self.assertEqual(st, 202, j)
        await until(lambda: any(m["participant"]["server_muted"]
                             for m in alice.seen("participant_updated", "alice")),
                 what="alice told she is muted")
        await alice.leave()
        again = await self.join(self.token("alice"))
        self.assertTrue(again.welcome["participant"].get("server_muted"),
                        "server mute lost across leave and rejoin: %r" % again.welcome)

        st, _ = self.participant("carol", "mute", body={"muted": True})  # not in the room
        self.assertEqual(st, 202)
        carol = await self.join(self.token("carol"))
        self.assertTrue(carol.welcome["participant"].get("server_muted"),
                        "a mute before the join did not apply")
        await until(lambda: any(m["participant"]["server_muted"]
                             for m in again.seen("participant_joined", "carol")),
                 what="others see carol join muted")
        self.assertEqual(sorted(self.moderation()["server_muted"]), ["alice", "carol"])
        st, _ = self.participant("carol", "mute", body={"muted": False})
        self.assertEqual(st, 202)
        self.assertEqual(self.moderation()["server_muted"], ["alice"])

    # --- bounds and errors -----------------------------------------------------

    async def test_bounds_and_errors_answer_as_documented(self):
        err = self.api_error
        err(self.participant("a%20b", "ban"), 400, "invalid_field")
        err(self.participant("x" * 65, "ban"), 400, "invalid_field")
        err(self.participant("alice", "ban", room="rm_doesnotexist"), 404, "room_not_found")
        err(self.participant("alice", "ban", body={"reason": 5}), 400, "invalid_field")
        err(self.participant("alice", "ban", body={"reason": "r" * 201}), 400, "invalid_field")
        err(self.participant("alice", "ban", body={"why": "x"}), 400, "unknown_field")
        err(self.participant("alice", "ban", method="GET"), 405, "method_not_allowed")
        err(self.participant("alice", "ban", method="DELETE"), 404, "not_banned")
        self.assertEqual(self.participant("alice", "ban", body={"reason": "r" * 200})[0], 202)
        self.assertEqual(self.participant("alice", "ban", method="DELETE")[0], 200)

        api = Api(self.sfud)
        base = "/v1/rooms/%s/participants/" % self.rid
        try:
            for i in range(1000):
                st, j = api.request("POST", base + "u%d/ban" % i)
                self.assertEqual(st, 202, j)
            self.api_error(api.request("POST", base + "u1000/ban"), 409, "too_many_bans")
            self.assertEqual(api.request("POST", base + "u7/ban", {"reason": "again"})[0], 202)
            self.assertEqual(api.request("DELETE", base + "u0/ban")[0], 200)
            self.assertEqual(api.request("POST", base + "u1000/ban")[0], 202)

            for i in range(1000):
                st, j = api.request("POST", base + "m%d/mute" % i, {"muted": True})
                self.assertEqual(st, 202, j)
            self.api_error(api.request("POST", base + "m1000/mute", {"muted": True}),
                           409, "too_many_mutes")
            self.assertEqual(api.request("POST", base + "m5/mute", {"muted": True})[0], 202)
            self.assertEqual(api.request("POST", base + "m5/mute", {"muted": False})[0], 202)
            self.assertEqual(api.request("POST", base + "m1000/mute", {"muted": True})[0], 202)

            m = self.moderation()
            self.assertEqual((len(m["bans"]), len(m["server_muted"])), (1000, 1000))

            # In another room, 10,000 kicks fill the deny list; the next one
            # is not refused: it drops the entry whose token expires first
            # (none has expired yet).
            st, other = self.sfud.request("POST", "/v1/rooms", {"name": "kicks"})
            self.assertEqual(st, 201)
            kbase = "/v1/rooms/%s/participants/" % other["room_id"]
            for i in range(10000):
                st, j = api.request("DELETE", kbase + "k%d" % i)
                self.assertEqual(st, 202, j)
            st, j = api.request("DELETE", kbase + "k0")  # again: the same entry
            self.assertEqual(st, 202, j)
            m = api.request("GET", "/v1/rooms/" + other["room_id"])[1]["moderation"]
            self.assertEqual((m["kicks"], m["deny_list"], m["deny_list_evicted"]),
                             (10001, 10000, 0), m)
            self.assertEqual(api.request("DELETE", kbase + "k10000")[0], 202)
            m = api.request("GET", "/v1/rooms/" + other["room_id"])[1]["moderation"]
            self.assertEqual((m["deny_list"], m["deny_list_evicted"]), (10000, 1), m)
            await until(lambda: any("deny list full" in l for l in self.sfud.log),
                        what="the eviction logged")
        finally:
            api.close()


if __name__ == "__main__":
    main()

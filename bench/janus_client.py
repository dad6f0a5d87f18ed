"""A Janus VideoRoom participant over Janus's HTTP REST API, with aiortc.

Used by bench/janus_compare.py to put the same load on Janus 1.1.x that
tests/integration/aiortc_peer.py puts on sfud. Standard library plus
Debian's python3-aiortc; the tone track and the SDP parser are
aiortc_peer's.

    api = JanusApi("10.77.20.2", 8088)
    room = await create_room(api, 10)          # audio only, Opus
    p = JanusParticipant(api, room, "p00", freq=400, host="10.77.20.1")
    await p.publish()                          # session, handle, join, offer
    await p.subscribe([other.feed_id, ...])    # one PeerConnection, all feeds
    ...
    await p.close()

The REST API (Janus docs, "The REST, HTTP/HTTPS API"): POST /janus creates
a session; POST /janus/<session> attaches a plugin handle or sends a
keepalive; POST /janus/<session>/<handle> sends a plugin message, answered
at once ("success" with plugindata: room creation) or with "ack" and later
an "event" carrying the same transaction, which a long poll (GET
/janus/<session>?maxev=N) delivers. A session is kept alive by a keepalive
every KEEPALIVE_S (Janus drops it after 60 s of silence).

Each participant, as Janus 1.x's multistream VideoRoom demo
(mvideoroomtest.js) does it: a publisher handle (join as publisher, then "publish" with
aiortc's offer, Janus answers) and, once the others publish, one
subscriber handle subscribed to all their feeds in one PeerConnection (join
as subscriber with a list of streams, Janus offers, "start" with aiortc's
answer). That is two PeerConnections per participant, Janus's own design;
sfud uses one. (The older demo gives each subscriber a handle and a
PeerConnection per feed: nine per participant here.)
"""
import asyncio
import itertools
import json
import os
import sys
from typing import Any, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from aiortc import RTCPeerConnection, RTCSessionDescription  # noqa: E402
from aiortc.mediastreams import MediaStreamError  # noqa: E402
from aiortc_peer import SineTrack, parse_mlines, use_host_addresses  # noqa: E402

KEEPALIVE_S = 25.0
PLUGIN = "janus.plugin.videoroom"


class JanusError(Exception):
    """Janus answered with an error, or not as the API says."""


# --------------------------------------------------------------------------
# HTTP: one request per connection (Connection: close), JSON both ways


async def http_json(host: str, port: int, method: str, path: str,
                    body: Optional[Dict[str, Any]] = None, timeout: float = 10.0) -> Any:
    """The JSON body of Janus's answer to one HTTP request."""
    data = json.dumps(body).encode() if body is not None else b""
    head = (f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n")

    async def exchange():
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(head.encode() + data)
            await writer.drain()
            return await reader.read()
        finally:
            writer.close()

    raw = await asyncio.wait_for(exchange(), timeout)
    header, _, payload = raw.partition(b"\r\n\r\n")
    lines = header.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    if any(l.lower().replace(" ", "") == "transfer-encoding:chunked" for l in lines[1:]):
        payload = dechunk(payload)
    if status != 200:
        raise JanusError(f"{method} {path}: HTTP {status}: {payload[:200]!r}")
    return json.loads(payload)


def dechunk(payload: bytes) -> bytes:
    """The body of a chunked transfer encoding (RFC 9112 §7.1)."""
    out = b""
    while payload:
        size, _, rest = payload.partition(b"\r\n")
        n = int(size.split(b";")[0], 16)
        if n == 0:
            break
        out += rest[:n]
        payload = rest[n + 2:]
    return out


class JanusApi:
    """Janus's REST endpoint at http://host:port/janus."""

    def __init__(self, host: str, port: int = 8088):
        self.host = host
        self.port = port
        self._tx = itertools.count(1)

    def transaction(self) -> str:
        return "t%d" % next(self._tx)

    async def post(self, path: str, body: Dict[str, Any], timeout: float = 10.0) -> Any:
        body = dict(body, transaction=body.get("transaction") or self.transaction())
        return await http_json(self.host, self.port, "POST", "/janus" + path, body, timeout)

    async def get(self, path: str, timeout: float) -> Any:
        return await http_json(self.host, self.port, "GET", "/janus" + path, None, timeout)

    async def info(self) -> Dict[str, Any]:
        """GET /janus/info: the server's name, version, plugins."""
        return await self.get("/info", 10.0)


# --------------------------------------------------------------------------
# Session and handles


class JanusSession:
    """One Janus session: its handles' messages and the long poll that
    delivers their events. `events` keeps every event (time, message) that
    no request waited for (publisher lists, webrtcup, media, hangup)."""

    def __init__(self, api: JanusApi):
        self.api = api
        self.id: Optional[int] = None
        self.events: List[Tuple[float, Dict[str, Any]]] = []
        self.errors: List[str] = []
        self._waiting: Dict[str, asyncio.Future] = {}
        self._new_event = asyncio.Event()   # replaced after every event
        self._tasks: List[asyncio.Task] = []
        self._closed = False

    async def create(self) -> None:
        r = await self.api.post("", {"janus": "create"})
        if r.get("janus") != "success":
            raise JanusError(f"create session: {r!r}")
        self.id = r["data"]["id"]
        self._tasks += [asyncio.ensure_future(self._poll()),
                        asyncio.ensure_future(self._keepalive())]

    async def attach(self, plugin: str = PLUGIN) -> int:
        """A new handle on `plugin`; returns its id."""
        r = await self.api.post(f"/{self.id}", {"janus": "attach", "plugin": plugin})
        if r.get("janus") != "success":
            raise JanusError(f"attach {plugin}: {r!r}")
        return r["data"]["id"]

    async def message(self, handle: int, body: Dict[str, Any],
                      jsep: Optional[Dict[str, str]] = None,
                      timeout: float = 20.0) -> Tuple[Dict[str, Any], Optional[Dict[str, Any]]]:
        """Send a plugin message; returns (plugin data, jsep) of its answer,
        synchronous ("success") or the event it announced with "ack". A
        plugin-level error raises JanusError."""
        tx = self.api.transaction()
        msg: Dict[str, Any] = {"janus": "message", "body": body, "transaction": tx}
        if jsep is not None:
            msg["jsep"] = jsep
        fut = asyncio.get_running_loop().create_future()
        self._waiting[tx] = fut
        try:
            r = await self.api.post(f"/{self.id}/{handle}", msg)
            if r.get("janus") == "ack":
                r = await asyncio.wait_for(fut, timeout)
            elif r.get("janus") != "success":
                raise JanusError(f"{body.get('request')}: {r!r}")
        except asyncio.TimeoutError:
            raise JanusError(f"{body.get('request')}: no event in {timeout:g} s") from None
        finally:
            self._waiting.pop(tx, None)
        data = (r.get("plugindata") or {}).get("data") or {}
        if "error" in data or "error_code" in data:
            raise JanusError(f"{body.get('request')}: {data!r}")
        return data, r.get("jsep")

    async def _poll(self) -> None:
        """The long poll: every event of the session, to its waiter or to
        `events`."""
        loop = asyncio.get_running_loop()
        while not self._closed:
            try:
                batch = await self.api.get(f"/{self.id}?maxev=20", timeout=60.0)
            except asyncio.CancelledError:
                raise
            except Exception as e:          # noted; the caller checks errors
                if not self._closed:
                    self.errors.append(f"long poll: {e!r}")
                    await asyncio.sleep(1.0)
                continue
            for ev in batch if isinstance(batch, list) else [batch]:
                if ev.get("janus") == "keepalive":
                    continue
                fut = self._waiting.get(ev.get("transaction"))
                if fut is not None and not fut.done() and ev.get("janus") != "ack":
                    fut.set_result(ev)
                else:
                    self.events.append((loop.time(), ev))
                    self._new_event.set()
                    self._new_event = asyncio.Event()

    async def wait_event(self, kind: str, sender: int, timeout: float = 20.0) -> Dict[str, Any]:
        """The first event of `kind` ("webrtcup", "hangup"...) from handle
        `sender`, already arrived or yet to come."""
        end = asyncio.get_running_loop().time() + timeout
        while True:
            for _, ev in self.events:
                if ev.get("janus") == kind and ev.get("sender") == sender:
                    return ev
            left = end - asyncio.get_running_loop().time()
            if left <= 0:
                raise JanusError(f"no {kind} event from handle {sender} in {timeout:g} s")
            try:
                await asyncio.wait_for(self._new_event.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def _keepalive(self) -> None:
        while not self._closed:
            await asyncio.sleep(KEEPALIVE_S)
            try:
                await self.api.post(f"/{self.id}", {"janus": "keepalive"})
            except Exception as e:
                self.errors.append(f"keepalive: {e!r}")

    async def destroy(self) -> None:
        """Ends the session (and its handles) on the server. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.id is not None:
            try:
                await self.api.post(f"/{self.id}", {"janus": "destroy"}, timeout=5.0)
            except Exception:
                pass                        # Janus may be gone already


async def create_room(api: JanusApi, publishers: int) -> int:
    """A VideoRoom for `publishers` audio-only publishers in Opus; returns
    its number. The session that created it is destroyed (the room stays)."""
    s = JanusSession(api)
    await s.create()
    try:
        h = await s.attach()
        data, _ = await s.message(h, {"request": "create", "publishers": publishers,
                                      "audiocodec": "opus",
                                      "permanent": False, "is_private": False,
                                      "notify_joining": False})
        if data.get("videoroom") != "created":
            raise JanusError(f"create room: {data!r}")
        return data["room"]
    finally:
        await s.destroy()


# --------------------------------------------------------------------------
# The participant


class JanusParticipant:
    """One participant of `room`: publishes a tone of `freq` Hz (aiortc's
    Opus, with RFC 6464 levels) and, after subscribe(), receives the feeds
    it names. ICE gathers `host` only.

    After publish(): `feed_id` (Janus's id of the publisher) and `ssrc`
    (the RTP SSRC it sends). After subscribe(): `ssrc_sources`, the SSRC
    of each stream Janus sends it -> the feed id it carries."""

    def __init__(self, api: JanusApi, room: int, display: str, freq: float, host: str):
        self.api = api
        self.room = room
        self.display = display
        self.freq = freq
        self.host = host
        self.session = JanusSession(api)
        self.pub_pc: Optional[RTCPeerConnection] = None
        self.sub_pc: Optional[RTCPeerConnection] = None
        self.track: Optional[SineTrack] = None
        self.feed_id: Optional[int] = None
        self.private_id: Optional[int] = None
        self.ssrc: Optional[int] = None
        self.ssrc_sources: Dict[int, int] = {}
        self._drains: List[asyncio.Task] = []

    def _pc(self) -> RTCPeerConnection:
        use_host_addresses([self.host])
        return RTCPeerConnection()

    async def publish(self) -> None:
        """Session, publisher handle, join, and the offer/answer of the
        tone; returns once Janus reports the PeerConnection up (from then
        on others can subscribe to the feed)."""
        await self.session.create()
        handle = await self.session.attach()
        data, _ = await self.session.message(handle, {
            "request": "join", "ptype": "publisher", "room": self.room,
            "display": self.display})
        if data.get("videoroom") != "joined":
            raise JanusError(f"join as publisher: {data!r}")
        self.feed_id, self.private_id = data["id"], data.get("private_id")
        self.pub_pc = self._pc()
        self.track = SineTrack(self.freq)
        sender = self.pub_pc.addTrack(self.track)
        next(t for t in self.pub_pc.getTransceivers()
             if t.sender is sender).direction = "sendonly"
        self.ssrc = sender._ssrc
        await self.pub_pc.setLocalDescription(await self.pub_pc.createOffer())
        data, jsep = await self.session.message(
            handle, {"request": "publish", "audio": True, "video": False},
            {"type": "offer", "sdp": self.pub_pc.localDescription.sdp})
        if jsep is None or jsep.get("type") != "answer":
            raise JanusError(f"publish: no answer: {data!r}")
        await self.pub_pc.setRemoteDescription(RTCSessionDescription(jsep["sdp"], "answer"))
        await self.session.wait_event("webrtcup", handle)

    async def subscribe(self, feeds: List[int]) -> None:
        """One subscriber handle and PeerConnection receiving every feed of
        `feeds` (Janus offers, aiortc answers)."""
        handle = await self.session.attach()
        body: Dict[str, Any] = {"request": "join", "ptype": "subscriber", "room": self.room,
                                "streams": [{"feed": f} for f in feeds]}
        if self.private_id is not None:
            body["private_id"] = self.private_id
        data, jsep = await self.session.message(handle, body)
        if data.get("videoroom") != "attached" or jsep is None:
            raise JanusError(f"join as subscriber: {data!r}")
        mids = {s.get("mid"): s.get("feed_id") for s in data.get("streams") or []}
        for ml in parse_mlines(jsep["sdp"]):
            for ssrc in ml["ssrcs"]:
                if mids.get(ml["mid"]) is not None:
                    self.ssrc_sources[ssrc] = mids[ml["mid"]]
        self.sub_pc = self._pc()
        self.sub_pc.on("track", lambda t: self._drains.append(asyncio.ensure_future(drain(t))))
        await self.sub_pc.setRemoteDescription(RTCSessionDescription(jsep["sdp"], "offer"))
        await self.sub_pc.setLocalDescription(await self.sub_pc.createAnswer())
        data, _ = await self.session.message(
            handle, {"request": "start"},
            {"type": "answer", "sdp": self.sub_pc.localDescription.sdp})
        if data.get("started") != "ok":
            raise JanusError(f"start: {data!r}")

    def errors(self) -> List[str]:
        return list(self.session.errors)

    async def close(self) -> None:
        """PeerConnections, then the session. Idempotent."""
        for pc in (self.sub_pc, self.pub_pc):
            if pc is not None:
                await pc.close()
        if self.track is not None:
            self.track.stop()
        await asyncio.gather(*self._drains, return_exceptions=True)
        await self.session.destroy()


async def drain(track) -> None:
    """Reads a received track's decoded frames until it ends (aiortc
    queues them without bound otherwise)."""
    try:
        while True:
            await track.recv()
    except MediaStreamError:
        pass

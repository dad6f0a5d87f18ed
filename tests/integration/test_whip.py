#!/usr/bin/env python3
"""WHIP (RFC 9725) and WHEP into and out of a room (docs/whip.md), against a
real sfud and room processes.

* An aiortc WHIP publisher (a 880 Hz Opus tone and a VP8 video, offered
  sendonly over HTTP) is heard by an aiortc listener joined over the
  WebSocket: it sees the publisher join and publish both tracks, and
  decodes the tone from its Opus.
* An aiortc WHEP viewer (recvonly audio + video, one offer) decodes the
  same publisher's tone and video frames.
* GStreamer's simple-whip-client (Debian's `whip-client`, webrtcbin: a
  max-bundle offer with bundle-only m-lines) publishes a 660 Hz Opus tone
  and a 320x240 VP8 test picture: the listener hears the tone and decodes
  the picture at that size; on SIGINT the client DELETEs its session and
  the listener sees it leave.
* Headless Chromium, a WHEP viewer with the page JS of docs/whip.md
  (recvonly audio + video, the join token in Authorization), decodes an
  aiortc WHIP publisher's video at 640x480 and hears its 880 Hz tone (an
  analyser's loudest bin); that publisher DELETEs its session and the
  page's m-lines carry the next publisher: its 660 Hz tone, frames still
  decoded. The page DELETEs its own session.
* PATCH: trickled candidates 204, new credentials an ICE restart (200, a
  fragment with the room's new credentials); DELETE: the others see the
  publisher leave.
* Errors: no or bad token 401, another room's token 403, unknown room
  404, wrong content type 415, malformed SDP 400, unknown session 404,
  GET 405; CORS preflight.

Usage: test_whip.py --sfud PATH --room PATH
(the web directory sfud serves is ../../web from this script; CHROMIUM=...
overrides the browser binary, see chromium.py)
"""
import asyncio
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aiortc_peer import (Peer, VideoPeer, SineTrack, frame_to_mono, tone_power,  # noqa: E402
                         use_host_addresses)
from chromium import Chromium  # noqa: E402
from netns import new_namespace  # noqa: E402
from sfutest import PageCallTest, main  # noqa: E402

ARGS = None
HERE = os.path.dirname(os.path.abspath(__file__))
WEB_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "web"))
TONE = 880.0
SECOND_TONE = 660.0
# aiortc's VideoStreamTrack: 640x480 frames at 30 fps
AIORTC_W, AIORTC_H = 640, 480
WHIP_CLIENT_TONE = 660.0
WHIP_CLIENT_W, WHIP_CLIENT_H = 320, 240

# Debian 12's whip-client links libsoup 2.4, and libnice (which webrtcbin's
# ICE goes through) links gupnp-igd, hence gupnp and libsoup 3: libsoup 3's
# constructor aborts the process when it finds libsoup 2's symbols. This
# stand-in for libgupnp-igd-1.0.so.4, found first on LD_LIBRARY_PATH, has
# the four functions libnice calls and no UPnP: libnice then gathers
# without port mappings (as with its "upnp" property off), and libsoup 3 is
# never loaded.
GUPNP_IGD_STAND_IN = """
void *gupnp_simple_igd_thread_new(void) { return 0; }
unsigned long gupnp_simple_igd_get_type(void) { return 80; /* G_TYPE_OBJECT */ }
void gupnp_simple_igd_add_port(void) {}
void gupnp_simple_igd_remove_port_local(void) {}
"""


class HttpClient:
    """Plain HTTP to sfud, every header of the answer kept."""

    def __init__(self, sfud):
        self.sfud = sfud

    def call(self, method, path, body=b"", headers=None):
        conn = http.client.HTTPConnection(self.sfud.host, self.sfud.port, timeout=15)
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        hdrs["link*"] = r.headers.get_all("Link") or []
        conn.close()
        return r.status, hdrs, data.decode(errors="replace")

    async def acall(self, *a, **kw):
        return await asyncio.to_thread(self.call, *a, **kw)


# A WHEP viewer in a page, as docs/whip.md shows it: one recvonly audio and
# one recvonly video transceiver, the offer POSTed with a join token. The
# audio goes to an <audio> (Chromium decodes remote audio only when it
# plays) and to an analyser whose loudest bin is the frequency heard.
WHEP_PAGE_JS = """
(async (url, token) => {
  const pc = new RTCPeerConnection();
  const w = window.whep = {pc, tracks: [], peakHz: 0};
  pc.addTransceiver('audio', {direction: 'recvonly'});
  pc.addTransceiver('video', {direction: 'recvonly'});
  const stream = new MediaStream();
  const ctx = new AudioContext();
  pc.ontrack = (e) => {
    w.tracks.push(e.track.kind);
    stream.addTrack(e.track);
    if (e.track.kind !== 'audio') return;
    const an = ctx.createAnalyser();
    an.fftSize = 8192;
    ctx.createMediaStreamSource(new MediaStream([e.track])).connect(an);
    const bins = new Float32Array(an.frequencyBinCount);
    w.poll = setInterval(() => {
      an.getFloatFrequencyData(bins);
      let best = 0;
      for (let i = 1; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
      w.peakHz = bins[best] > -90 ? best * ctx.sampleRate / an.fftSize : 0;
    }, 100);
  };
  for (const tag of ['video', 'audio']) {
    const el = document.createElement(tag);
    el.autoplay = true;
    el.muted = tag === 'video';
    el.srcObject = stream;
    document.body.appendChild(el);
  }
  await ctx.resume();
  await pc.setLocalDescription();
  w.offer = pc.localDescription.sdp;
  const r = await fetch(url, {method: 'POST', body: w.offer, headers: {
    'Content-Type': 'application/sdp', 'Authorization': 'Bearer ' + token}});
  w.answer = await r.text();
  w.location = r.headers.get('Location');
  if (r.status === 201) await pc.setRemoteDescription({type: 'answer', sdp: w.answer});
  return {status: r.status, location: w.location, answer: w.answer, offer: w.offer};
})(%s, %s)
"""

# What the page's WHEP viewer received: inbound-rtp per kind.
WHEP_STATS_JS = """
(async () => {
  const out = {state: whep.pc.connectionState, tracks: whep.tracks, peakHz: whep.peakHz};
  (await whep.pc.getStats()).forEach((r) => {
    if (r.type !== 'inbound-rtp') return;
    out[r.kind] = {packets: r.packetsReceived, lost: r.packetsLost,
                   framesDecoded: r.framesDecoded, width: r.frameWidth,
                   height: r.frameHeight, energy: r.totalAudioEnergy,
                   codec: r.codecId, nacks: r.nackCount, plis: r.pliCount};
  });
  return out;
})()
"""


class WhipTest(PageCallTest):
    PEER = Peer

    def setUp(self):
        use_host_addresses(["127.0.0.1"])
        self.peers = []
        self.pcs = []
        self.start_sfud(ARGS.sfud, ARGS.room, "--web-root", WEB_DIR)
        self.http = HttpClient(self.sfud)
        self.room = self.new_room("whip-%d" % int(time.time() * 1000))

    async def asyncTearDown(self):
        await super().asyncTearDown()
        for pc in self.pcs:
            await pc.close()

    async def publish(self, identity, path=None, freq=TONE):
        """An aiortc WHIP publisher of a `freq` tone and a video: (pc,
        status, headers, body)."""
        pc = RTCPeerConnection()
        self.pcs.append(pc)
        pc.addTransceiver(SineTrack(freq), direction="sendonly")
        pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        st, h, body = await self.http.acall(
            "POST", path or "/whip/%s" % self.room["room_id"], pc.localDescription.sdp.encode(),
            {"Content-Type": "application/sdp",
             "Authorization": "Bearer " + self.token(identity)})
        if st == 201:
            await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
        return pc, st, h, body

    async def test_whip_publisher_heard_and_whep_viewer_receives(self):
        listener = self.peer(self.room, "listener")
        await listener.join()
        pc, st, h, answer = await self.publish("whip-pub")
        self.assertEqual(st, 201, answer)
        self.assertTrue(h["content-type"].startswith("application/sdp"))
        self.assertRegex(h["location"], r"^/whip/%s/[0-9a-f]{32}$" % self.room["room_id"])
        self.assertIn("etag", h)
        self.assertEqual(h["access-control-allow-origin"], "*")
        self.assertIn("a=ice-lite", answer)
        self.assertEqual(len(re.findall(r"^a=recvonly", answer, re.M)), 2, answer)

        # the listener sees a participant that joined and published audio and video
        def tracks():
            for _, m in reversed(listener.events):
                if m.get("type") in ("participant_joined", "participant_updated") and \
                        m["participant"]["identity"] == "whip-pub":
                    return sorted(t["kind"] for t in m["participant"]["tracks"])
            return []
        await self.until(lambda: tracks() == ["audio", "video"], what="the WHIP tracks published")
        # and decodes its Opus to the tone
        await self.until(lambda: listener.heard(TONE, 1.0), what="the WHIP publisher's tone")
        rs = listener.received_by_source(2.0)
        self.assertTrue([k for k, v in rs.items() if v["identity"] == "whip-pub"
                         and v["nonsilent_frames"] > 0], rs)

        # a WHEP viewer: one offer, recvonly audio + video
        viewer = RTCPeerConnection()
        self.pcs.append(viewer)
        viewer.addTransceiver("audio", direction="recvonly")
        viewer.addTransceiver("video", direction="recvonly")
        got = {"audio": [], "video": 0}

        async def record(track):
            while True:
                try:
                    f = await track.recv()
                except Exception:
                    return
                if track.kind == "audio":
                    got["audio"].append(frame_to_mono(f))
                    got["audio"] = got["audio"][-50:]
                else:
                    got["video"] += 1
        tasks = []
        viewer.on("track", lambda t: tasks.append(asyncio.ensure_future(record(t))))
        await viewer.setLocalDescription(await viewer.createOffer())
        st, wh, wanswer = await self.http.acall(
            "POST", "/v1/whep/%s" % self.room["room_id"], viewer.localDescription.sdp.encode(),
            {"Content-Type": "application/sdp",
             "Authorization": "Bearer " + self.token("whep-viewer")})
        self.assertEqual(st, 201, wanswer)
        self.assertRegex(wh["location"], r"^/v1/whep/%s/[0-9a-f]{32}$" % self.room["room_id"])
        self.assertEqual(len(re.findall(r"^a=sendonly", wanswer, re.M)), 2, wanswer)
        await viewer.setRemoteDescription(RTCSessionDescription(wanswer, "answer"))

        def viewer_hears():
            if len(got["audio"]) < 25:
                return False
            return tone_power(np.concatenate(got["audio"][-25:]), TONE) > 0.005
        await self.until(viewer_hears, what="the WHEP viewer hearing the tone")
        await self.until(lambda: got["video"] > 10, what="10 video frames at the WHEP viewer")
        # the viewer is audience: nobody is told of it by name
        self.assertFalse([m for _, m in listener.events if m.get("type") == "participant_joined"
                          and m["participant"]["identity"] == "whep-viewer"])

        # PATCH: a trickled candidate is 204; new credentials restart ICE
        loc = h["location"]
        st, _, body = await self.http.acall(
            "PATCH", loc, b"a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\n",
            {"Content-Type": "application/trickle-ice-sdpfrag", "If-Match": "*"})
        self.assertEqual(st, 204, body)
        st, ph, frag = await self.http.acall(
            "PATCH", loc, b"a=ice-ufrag:Nw1x\r\na=ice-pwd:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
            {"Content-Type": "application/trickle-ice-sdpfrag", "If-Match": h["etag"]})
        self.assertEqual(st, 200, frag)
        self.assertTrue(ph["content-type"].startswith("application/trickle-ice-sdpfrag"))
        old_ufrag = re.search(r"a=ice-ufrag:(\S+)", answer).group(1)
        new_ufrag = re.search(r"a=ice-ufrag:(\S+)", frag).group(1)
        self.assertNotEqual(old_ufrag, new_ufrag)
        self.assertIn("a=candidate:", frag)
        self.assertNotEqual(ph["etag"], h["etag"])
        st, _, body = await self.http.acall(
            "PATCH", loc, b"a=end-of-candidates\r\n",
            {"Content-Type": "application/trickle-ice-sdpfrag", "If-Match": h["etag"]})
        self.assertEqual(st, 412, body)  # the ETag changed with the restart
        st, _, body = await self.http.acall("PATCH", loc, b"x", {"Content-Type": "text/plain"})
        self.assertEqual(st, 415, body)

        # DELETE: the publisher leaves the room
        st, _, body = await self.http.acall("DELETE", loc)
        self.assertEqual(st, 200, body)
        await self.until(lambda: [m for _, m in listener.events
                                  if m.get("type") == "participant_left"
                                  and m.get("identity") == "whip-pub"],
                         what="participant_left for the WHIP publisher")
        st, _, body = await self.http.acall("DELETE", loc)
        self.assertEqual(st, 404, body)
        st, _, body = await self.http.acall("DELETE", wh["location"])
        self.assertEqual(st, 200, body)
        for t in tasks:
            t.cancel()
        self.assert_peers_clean()

    async def test_whep_viewer_in_chromium(self):
        """Headless Chromium as a WHEP viewer (the page JS of docs/whip.md)
        of an aiortc WHIP publisher: its video decoded at the size
        published, its tone heard at its frequency. When that publisher
        leaves, the viewer's m-lines carry the next one: its tone, and
        frames still decoded (one stream to the decoder). DELETE from the
        page."""
        pc, st, h, body = await self.publish("whip-pub")
        self.assertEqual(st, 201, body)
        _, st, _, body = await self.publish("whip-pub2", freq=SECOND_TONE)
        self.assertEqual(st, 201, body)
        browser = Chromium(extra_args=["--autoplay-policy=no-user-gesture-required"])
        self.addCleanup(self.close_browser, browser)
        origin = "http://%s:%d" % (self.sfud.host, self.sfud.port)
        self.page = await asyncio.to_thread(browser.open, origin + "/web/index.html")
        try:
            r = await self.js(WHEP_PAGE_JS % (
                json.dumps("/whep/%s" % self.room["room_id"]),
                json.dumps(self.token("chrome-viewer"))))
            self.assertEqual(r["status"], 201, r)
            self.assertRegex(r["location"], r"^/whep/%s/[0-9a-f]{32}$" % self.room["room_id"])
            await self.js_until("whep.pc.connectionState === 'connected'",
                                what="Chromium's WHEP connection")
            st = await self.until(lambda: self.whep_stats(
                lambda s: s.get("video", {}).get("framesDecoded", 0) > 30),
                what="30 video frames decoded in Chromium")
            self.assertEqual((st["video"]["width"], st["video"]["height"]),
                             (AIORTC_W, AIORTC_H), st)
            st = await self.until(lambda: self.whep_stats(
                lambda s: s.get("audio", {}).get("energy", 0) > 0
                and abs(s["peakHz"] - TONE) < 20), what="Chromium hearing the tone")
            self.assertEqual(sorted(st["tracks"]), ["audio", "video"], st)
            # the followed publisher leaves: the next one's tone, more frames
            frames = st["video"]["framesDecoded"]
            stt, _, body = await self.http.acall("DELETE", h["location"])
            self.assertEqual(stt, 200, body)
            st = await self.until(lambda: self.whep_stats(
                lambda s: abs(s["peakHz"] - SECOND_TONE) < 20
                and s["video"]["framesDecoded"] > frames + 30),
                what="Chromium hearing and seeing the next publisher")
            self.assertEqual((st["video"]["width"], st["video"]["height"]),
                             (AIORTC_W, AIORTC_H), st)
            # the page leaves: DELETE on its Location
            self.assertEqual(await self.js(
                "fetch(whep.location, {method: 'DELETE'}).then((r) => r.status)"), 200)
            stt, _, body = await self.http.acall("DELETE", r["location"])
            self.assertEqual(stt, 404, body)
        except BaseException:
            print("\n--- page ---\n%s\n--- console ---\n%s\n--- sfud ---\n%s" % (
                json.dumps(await self.js("window.whep ? {offer: whep.offer, answer: whep.answer,"
                                         " state: whep.pc.connectionState} : null", timeout=5),
                           indent=1),
                "\n".join("%s: %s" % (c["type"], c["text"]) for c in self.page.console),
                "".join(self.sfud.log[-40:])), file=sys.stderr)
            raise

    async def whep_stats(self, pred):
        st = await self.js(WHEP_STATS_JS)
        return st if pred(st) else None

    def whip_client_env(self):
        """The environment whip-client runs in: the gupnp-igd stand-in
        first on LD_LIBRARY_PATH, and a GStreamer registry of its own over
        only the plugins its pipelines need (a fresh scan of a few plugins,
        nothing shared with the user's registry)."""
        tmp = tempfile.mkdtemp(prefix="whip-client-")
        self.addCleanup(shutil.rmtree, tmp, True)
        src = os.path.join(tmp, "gupnp-igd-stand-in.c")
        with open(src, "w") as f:
            f.write(GUPNP_IGD_STAND_IN)
        subprocess.run(["cc", "-shared", "-fPIC", "-o",
                        os.path.join(tmp, "libgupnp-igd-1.0.so.4"), src], check=True)
        sysdir = next((d for d in
                       [os.path.join("/usr/lib", a, "gstreamer-1.0") for a in
                        sorted(os.listdir("/usr/lib"))] + ["/usr/lib/gstreamer-1.0"]
                       if os.path.exists(os.path.join(d, "libgstcoreelements.so"))), None)
        self.assertIsNotNone(sysdir, "no GStreamer plugins (scripts/deps.sh --test)")
        plugins = os.path.join(tmp, "plugins")
        os.mkdir(plugins)
        for name in ("coreelements", "audiotestsrc", "videotestsrc", "audioconvert",
                     "audioresample", "videoconvertscale", "opus", "vpx", "rtp",
                     "rtpmanager", "webrtc", "nice", "dtls", "srtp", "sctp"):
            so = os.path.join(sysdir, "libgst%s.so" % name)
            if os.path.exists(so):
                os.symlink(so, os.path.join(plugins, os.path.basename(so)))
        # libnice gathers no loopback candidates: on a host whose only
        # address is loopback, the root end of a veth pair gives it one
        # (from which its checks reach the room on 127.0.0.1)
        if not subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"],
                              stdout=subprocess.PIPE, text=True).stdout.strip():
            self.addCleanup(new_namespace("sfuwhip").close)
        env = dict(os.environ)
        env.update(LD_LIBRARY_PATH=tmp, GST_REGISTRY_1_0=os.path.join(tmp, "registry.bin"),
                   GST_PLUGIN_SYSTEM_PATH_1_0=plugins, GST_PLUGIN_PATH_1_0="",
                   GST_REGISTRY_FORK="no")
        return env, tmp

    async def test_simple_whip_client_heard_and_seen(self):
        """GStreamer's simple-whip-client (webrtcbin) publishes an Opus tone
        and a VP8 test picture; a WebSocket listener hears the tone's
        frequency and decodes the picture at the size published."""
        whip_client = shutil.which("whip-client")
        self.assertIsNotNone(whip_client, "no whip-client (scripts/deps.sh --test)")
        listener = VideoPeer(self.room["ws_url"], self.room["room_id"],
                                 self.token("listener"), "listener")
        self.peers.append(listener)
        await listener.join()
        env, tmp = self.whip_client_env()
        audio = ("audiotestsrc is-live=true wave=sine freq=%d ! audioconvert ! audioresample"
                 " ! queue ! opusenc ! rtpopuspay pt=111 ssrc=1111 ! queue"
                 " ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111"
                 % WHIP_CLIENT_TONE)
        video = ("videotestsrc is-live=true pattern=ball"
                 " ! video/x-raw,width=%d,height=%d,framerate=15/1 ! videoconvert ! queue"
                 " ! vp8enc deadline=1 ! rtpvp8pay pt=96 ssrc=2222 ! queue"
                 " ! application/x-rtp,media=video,encoding-name=VP8,payload=96"
                 % (WHIP_CLIENT_W, WHIP_CLIENT_H))
        log_path = os.path.join(tmp, "whip-client.log")
        log = open(log_path, "wb")
        self.addCleanup(log.close)
        proc = subprocess.Popen(
            [whip_client, "-u", "http://%s:%d/whip/%s" % (self.sfud.host, self.sfud.port,
                                                           self.room["room_id"]),
             "-t", self.token("gst-pub"), "-n", "-o", "-l", "7", "-A", audio, "-V", video],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp)

        def stop():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.addCleanup(stop)

        def client_log():
            with open(log_path, "rb") as f:
                return f.read().decode(errors="replace")[-3000:]

        async def alive_until(pred, what):
            def check():
                if proc.poll() is not None:
                    self.fail("whip-client exited (%s):\n%s" % (proc.returncode, client_log()))
                return pred()
            try:
                return await self.until(check, what=what)
            except AssertionError as e:
                raise AssertionError("%s\nwhip-client:\n%s" % (e, client_log())) from None

        def tracks():
            for _, m in reversed(listener.events):
                if m.get("type") in ("participant_joined", "participant_updated") and \
                        m["participant"]["identity"] == "gst-pub":
                    return sorted(t["kind"] for t in m["participant"]["tracks"])
            return []
        await alive_until(lambda: tracks() == ["audio", "video"], "whip-client's tracks")
        await alive_until(lambda: listener.heard(WHIP_CLIENT_TONE, 1.0), "whip-client's tone")
        self.assertFalse(listener.heard(TONE, 1.0))
        await alive_until(lambda: len(listener.video_frames) > 10, "10 frames of whip-client")
        self.assertEqual(listener.video_frames[-1][1:], (WHIP_CLIENT_W, WHIP_CLIENT_H))

        # SIGINT: whip-client DELETEs its session and the publisher leaves
        proc.send_signal(signal.SIGINT)
        await self.until(lambda: [m for _, m in listener.events
                                  if m.get("type") == "participant_left"
                                  and m.get("identity") == "gst-pub"],
                         what="participant_left for whip-client")
        self.assert_peers_clean()

    async def test_errors(self):
        rid = self.room["room_id"]
        offer = ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
                 "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n"
                 "a=sendonly\r\na=rtcp-mux\r\na=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n"
                 "a=fingerprint:sha-256 " + ":".join(["AB"] * 32) + "\r\na=setup:actpass\r\n"
                 "a=rtpmap:111 opus/48000/2\r\n").encode()
        sdp = {"Content-Type": "application/sdp"}
        good = dict(sdp, Authorization="Bearer " + self.token("err-pub"))
        st, h, body = await self.http.acall("POST", "/whip/" + rid, offer, sdp)
        self.assertEqual(st, 401, body)
        self.assertIn("www-authenticate", h)
        st, _, body = await self.http.acall("POST", "/whip/" + rid, offer,
                                            dict(sdp, Authorization="Bearer nope.nope.nope"))
        self.assertEqual(st, 401, body)
        self.assertEqual(json.loads(body)["error"]["code"], "unauthorized")
        other = self.new_room("other-%d" % int(time.time() * 1000))
        st, _, body = await self.http.acall("POST", "/whip/" + other["room_id"], offer, good)
        self.assertEqual(st, 403, body)
        st, _, body = await self.http.acall("POST", "/whip/rm_0000000000000000", offer, good)
        self.assertEqual(st, 404, body)
        st, _, body = await self.http.acall("POST", "/whip/" + rid, offer,
                                            dict(good, **{"Content-Type": "application/json"}))
        self.assertEqual(st, 415, body)
        st, _, body = await self.http.acall("POST", "/whip/" + rid, b"v=0\r\nm=audio x\r\n", good)
        self.assertEqual(st, 400, body)
        self.assertEqual(json.loads(body)["error"]["code"], "bad_sdp")
        st, _, body = await self.http.acall("GET", "/whip/" + rid)
        self.assertEqual(st, 405, body)
        st, _, body = await self.http.acall("DELETE", "/whip/%s/%s" % (rid, "0" * 32))
        self.assertEqual(st, 404, body)
        st, h, body = await self.http.acall("OPTIONS", "/whip/" + rid, b"",
                                            {"Origin": "http://example.com",
                                             "Access-Control-Request-Method": "POST"})
        self.assertEqual(st, 204, body)
        self.assertEqual(h["access-control-allow-origin"], "*")
        self.assertIn("POST", h["access-control-allow-methods"])
        self.assertIn("Authorization", h["access-control-allow-headers"])
        # an offer the room refuses (no BUNDLE for two m-lines, no DTLS) never joins
        st, _, body = await self.http.acall("POST", "/whip/" + rid, offer.replace(
            b"a=fingerprint", b"a=x-fingerprint"), good)
        self.assertEqual(st, 400, body)
        st, room = self.sfud.request("GET", "/v1/rooms/" + rid)
        self.assertEqual(room["participants"], 0, room)


if __name__ == "__main__":
    main()

"""pagejs.py -- the page side of the Chromium tests: the JavaScript that joins
a call with web/sfu-client.js and reports what the page receives.

    from pagejs import join_js
    welcome = await self.js(join_js(ws_url, room_id, token))   # {sid, ...}
    await self.js("sfu.stats()")    # [{packetsReceived, totalAudioEnergy, ...}]
    await self.js("sfu.pair()")     # the selected ICE pair: the pair_fields asked for

join_js() gives one expression for Runtime.evaluate (chromium.py's
Page.evaluate, awaiting the promise) that installs `window.sfu` in a page
of sfud's /web/ origin and joins, publishing the microphone:

* sfu.client: the SfuClient, built with `rtc_config` merged over its
  RTCConfiguration defaults (e.g. {"iceTransportPolicy": "relay"});
* sfu.log: the client's events, each {type, t (performance.now()),
  identity, state, reason, error}, and {type: 'play-error'} when an
  <audio> refuses to play;
* sfu.audio: one playing <audio> per remote track (Chromium decodes remote
  audio only when something plays it: test_browser.py's notes);
* sfu.stats(): one record per inbound audio RTP stream (with `codec`, the
  mimeType its getStats() codec names: Chromium 156 names Opus for a RED
  stream too, the codec of the blocks it decodes);
* sfu.pair(): the selected candidate pair (null before one is), with one
  entry per `pair_fields` item: name -> "pair.<stat>", "local.<stat>" or
  "remote.<stat>" of the RTCIceCandidatePairStats or its local or remote
  RTCIceCandidateStats (null where missing);
* sfu.tJoin, tWelcome: join() called and answered; tFirstPacket,
  tFirstEnergy: when a 50 ms getStats() poller (sfu.poller) first saw an
  inbound audio packet, and energy.

The join resolves to {sid, identity, others (identities in the welcome),
ice_servers (the welcome's, or null), rtc (the client's RTCConfiguration
after the welcome)}.

The video pages (test_video.py, test_impairment.py) have join scripts of
their own; what they share is here:

* VIDEO_STATS_JS, a fragment of their join scripts (`s` the page's
  window.sfu, `client` its SfuClient): sfu.inbound() and sfu.outbound(),
  one record per video RTP stream received or sent, with its `mid`;
* with `sfu.videos` ({mid, trackId} per remote video, from the client's
  track events): SENT_JS (in a publisher's page: its camera's and its
  screen share's outbound records) and SOURCES_JS % sid (in a
  subscriber's page: the inbound records of the videos of participant
  `sid`, each with its trackId and source).
"""
import json

# getUserMedia constraints: Chromium's echo canceller removes its fake
# microphone's beeps while the page plays the far end (test_browser.py).
MIC = {"echoCancellation": False, "noiseSuppression": False, "autoGainControl": False}

JOIN_JS = r"""
(async () => {
  const { SfuClient } = await import('/web/sfu-client.js');
  const client = new SfuClient({ wsUrl: %(ws_url)s, rtcConfig: %(rtc_config)s });
  const s = window.sfu = { client, log: [], audio: [], tJoin: null,
                           tWelcome: null, tFirstPacket: null, tFirstEnergy: null };
  const note = (type) => (e) => {
    const d = e.detail || {};
    s.log.push({ type, t: performance.now(),
                 identity: d.identity || (d.participant && d.participant.identity) || null,
                 state: d.state || null, reason: d.reason ?? null,
                 error: d.error ? `${d.error.message} (code ${d.error.code})` : null });
  };
  for (const t of ['participant-joined', 'participant-left', 'participant-updated',
                   'connection-state', 'error', 'track', 'track-ended', 'close',
                   'reconnecting', 'reconnected', 'ice-restart', 'migrating', 'migrated',
                   'migrate-aborted', 'rejoining', 'rejoined']) {
    client.addEventListener(t, note(t));
  }
  // Play what arrives, as a page would (and so Chromium pulls the audio).
  client.addEventListener('track', (e) => {
    const a = new Audio();
    a.autoplay = true;
    a.srcObject = e.detail.stream;
    a.play().catch((err) => s.log.push({ type: 'play-error', error: String(err) }));
    s.audio.push(a);
  });
  s.stats = async () => {
    const pc = client.pc;
    if (!pc) return [];
    const out = [];
    const all = await pc.getStats();
    all.forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'audio') {
        const codec = r.codecId && all.get(r.codecId);
        out.push({ mid: r.mid ?? null, ssrc: r.ssrc, track: r.trackIdentifier ?? null,
                   codec: codec ? codec.mimeType : null,
                   packetsReceived: r.packetsReceived || 0,
                   packetsLost: r.packetsLost || 0, bytesReceived: r.bytesReceived || 0,
                   packetsDiscarded: r.packetsDiscarded || 0,
                   totalAudioEnergy: r.totalAudioEnergy || 0,
                   totalSamplesReceived: r.totalSamplesReceived || 0,
                   audioLevel: r.audioLevel || 0 });
      }
    });
    return out;
  };
  s.pair = async () => {
    const pc = client.pc;
    if (!pc) return null;
    const all = new Map();
    (await pc.getStats()).forEach((r) => all.set(r.id, r));
    let out = null;
    for (const r of all.values()) {
      if (r.type !== 'transport' || !r.selectedCandidatePairId) continue;
      const pair = all.get(r.selectedCandidatePairId);
      const of = { pair, local: pair && all.get(pair.localCandidateId),
                   remote: pair && all.get(pair.remoteCandidateId) };
      out = {};
      for (const [name, path] of Object.entries(%(pair_fields)s)) {
        const [which, field] = path.split('.');
        out[name] = of[which] ? of[which][field] ?? null : null;
      }
    }
    return out;
  };
  s.poller = setInterval(async () => {
    try {
      const st = await s.stats();
      const now = performance.now();
      if (s.tFirstPacket === null && st.some((r) => r.packetsReceived > 0)) s.tFirstPacket = now;
      if (s.tFirstEnergy === null && st.some((r) => r.totalAudioEnergy > 0)) s.tFirstEnergy = now;
    } catch (err) { /* pc closed meanwhile */ }
  }, 50);
  s.tJoin = performance.now();
  const welcome = await client.join({ room: %(room)s, token: %(token)s, publishAudio: true,
                                      audioConstraints: %(mic)s });
  s.tWelcome = performance.now();
  return { sid: welcome.participant.sid, identity: welcome.participant.identity,
           others: (welcome.participants || []).map((p) => p.identity),
           ice_servers: welcome.ice_servers || null, rtc: client.rtcConfig };
})()
"""

# For diagnostics: the client's state, its log, what it receives, its pair.
STATE_JS = ("window.sfu ? (async () => ({state: sfu.client.state, log: sfu.log,"
            " stats: await sfu.stats(), pair: await sfu.pair()}))() : null")


def join_js(ws_url, room, token, mic=MIC, rtc_config=None, pair_fields=None):
    """The expression that installs window.sfu and joins `room` (its id) with
    `token`; rtc_config: RTCConfiguration entries over the client's own;
    pair_fields: {name: "pair.<stat>" | "local.<stat>" | "remote.<stat>"},
    what sfu.pair() reports."""
    for path in (pair_fields or {}).values():
        if path.split(".")[0] not in ("pair", "local", "remote") or path.count(".") != 1:
            raise ValueError("pair field %r: not pair.X, local.X or remote.X" % path)
    return JOIN_JS % {"ws_url": json.dumps(ws_url), "room": json.dumps(room),
                      "token": json.dumps(token), "mic": json.dumps(mic),
                      "rtc_config": json.dumps(rtc_config or {}),
                      "pair_fields": json.dumps(pair_fields or {})}


VIDEO_STATS_JS = r"""
  const codecOf = (all, r) => {
    const c = r.codecId && all.get(r.codecId);
    return c ? c.mimeType : null;
  };
  s.inbound = async () => {
    const pc = client.pc;
    if (!pc) return [];
    const all = await pc.getStats();
    const out = [];
    all.forEach((r) => {
      if (r.type !== 'inbound-rtp' || r.kind !== 'video') return;
      out.push({ mid: r.mid ?? null, ssrc: r.ssrc, codec: codecOf(all, r),
                 framesDecoded: r.framesDecoded || 0, framesReceived: r.framesReceived || 0,
                 keyFramesDecoded: r.keyFramesDecoded || 0, framesDropped: r.framesDropped || 0,
                 frameWidth: r.frameWidth || 0, frameHeight: r.frameHeight || 0,
                 packetsReceived: r.packetsReceived || 0, packetsLost: r.packetsLost || 0,
                 bytesReceived: r.bytesReceived || 0, nackCount: r.nackCount || 0,
                 pliCount: r.pliCount || 0, firCount: r.firCount || 0,
                 freezeCount: r.freezeCount || 0,
                 totalFreezesDuration: r.totalFreezesDuration || 0,
                 framesPerSecond: r.framesPerSecond || 0,
                 decoder: r.decoderImplementation || null });
    });
    return out;
  };
  s.outbound = async () => {
    const pc = client.pc;
    if (!pc) return [];
    const all = await pc.getStats();
    const out = [];
    all.forEach((r) => {
      if (r.type !== 'outbound-rtp' || r.kind !== 'video') return;
      out.push({ rid: r.rid ?? null, ssrc: r.ssrc, mid: r.mid ?? null, codec: codecOf(all, r),
                 active: r.active ?? null, frameWidth: r.frameWidth || 0,
                 frameHeight: r.frameHeight || 0, framesEncoded: r.framesEncoded || 0,
                 keyFramesEncoded: r.keyFramesEncoded || 0, framesSent: r.framesSent || 0,
                 framesPerSecond: r.framesPerSecond || 0, packetsSent: r.packetsSent || 0,
                 bytesSent: r.bytesSent || 0, targetBitrate: r.targetBitrate || 0,
                 qualityLimitationReason: r.qualityLimitationReason || null,
                 pliCount: r.pliCount || 0, firCount: r.firCount || 0,
                 nackCount: r.nackCount || 0, encoder: r.encoderImplementation || null });
    });
    out.sort((a, b) => String(a.rid).localeCompare(String(b.rid)));
    return out;
  };
"""

# In a publisher's page: the sizes (and all outbound stats) it sends its
# camera and its screen share at (by the mid of each one's transceiver).
SENT_JS = r"""
(async () => {
  const c = sfu.client, pc = c.pc, out = await sfu.outbound();
  const mid = (track) => (pc.getTransceivers().find((t) => t.sender.track === track) || {}).mid;
  const cm = mid(c.cameraTrack), sm = mid(c.screenTrack);
  return { camera: out.find((r) => r.mid === cm) || null, screen: out.find((r) => r.mid === sm) || null };
})()
"""

# In a subscriber's page: per inbound video, its stats with the source of
# its track (`% sid`: the publisher's sid, JSON).
SOURCES_JS = r"""
(async () => {
  const st = await sfu.inbound();
  const p = sfu.client.getParticipants().find((x) => x.sid === %s);
  return st.map((r) => {
    const v = sfu.videos.find((x) => x.mid === r.mid);
    const t = p && v && p.tracks.find((x) => x.track_id === v.trackId);
    return { ...r, trackId: v ? v.trackId : null, source: t ? t.source : null };
  });
})()
"""

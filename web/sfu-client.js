// sfu-client.js — a small browser client for the sfud SFU (voice and video).
//
// Implements the client side of docs/signaling.md (protocol version 1): one
// WebSocket for signaling, one RTCPeerConnection (unified plan, BUNDLE,
// rtcp-mux) for media -- two of each while the room moves to another node.
// Plain ES module, no dependencies:
//
//   import { SfuClient } from './sfu-client.js';
//   const client = new SfuClient({ wsUrl: 'ws://127.0.0.1:7880/v1/rtc' });
//   client.addEventListener('track', (e) => {
//     const { kind, stream, track } = e.detail;
//     if (kind === 'audio') {
//       const audio = new Audio(); audio.autoplay = true; audio.srcObject = stream;
//     } else {
//       videoEl.srcObject = new MediaStream([track]);   // e.detail.trackId names it
//     }
//   });
//   client.addEventListener('participants', (e) => render(e.detail.participants));
//   const welcome = await client.join({ room, token, publishAudio: true,
//                                       publishVideo: true, simulcast: true });
//   await client.setMicMuted(true);
//   await client.setVideoQuality(trackId, { quality: 'low' });  // others' video
//   await client.stopCamera();          // and client.publishCamera() again
//   await client.startScreenShare();    // getDisplayMedia(); stopScreenShare()
//   await client.leave();
//
// Events (all CustomEvent; the payload is in `event.detail`):
//   participants        {participants: [Participant]}  whenever the list or
//                       any participant's state changes (includes yourself,
//                       with isLocal: true)
//   participant-joined  {participant}
//   participant-left    {participant, sid, identity, reason}
//   participant-updated {participant}
//   speaking            {speakers: Set<identity>, levels: Map<identity, 0..1>}
//   audience            {count}  members of the call whose tokens may not
//                       publish (yourself included if you are one): they
//                       are counted, never listed one by one
//                       (`client.audience`; signaling.md "Audience")
//   track               {sid, identity, participant, kind, source, trackId,
//                       track, stream, transceiver, replaces}  a remote track
//                       arrived; the stream is the publisher's (stream.id =
//                       its sid, the same stream for its audio and its
//                       video); trackId is the server's track id (a=msid),
//                       what setVideoQuality takes; source: 'camera' or
//                       'screen' (a screen share: its own track, its own
//                       layer choice); replaces: null, or after
//                       a move the track (same sid and trackId) it takes
//                       over from
//   track-ended         {sid, identity, participant, kind, source, trackId, track, stream}
//   local-video         {track, stream}  your camera started (track) or
//                       stopped (track: null)
//   local-screen        {track, stream}  your screen share started (track)
//                       or stopped (track: null; also when the browser's
//                       own "stop sharing" ended it)
//   connection-state    {state, code?, reason?}  state: 'new' | 'connecting'
//                       (socket/join) | 'joined' (welcome, media not up yet)
//                       | 'connected' | 'disconnected' (media interrupted,
//                       may recover) | 'reconnecting' (signaling socket
//                       lost; resuming) | 'failed' | 'closed'
//   reconnecting        {code}  the signaling socket dropped; resuming the
//                       session (media goes on meanwhile)
//   reconnected         {attempts, ms}  the session resumed: same sid, the
//                       others saw nothing
//   rejoining           {code, reason}  the relay process serving this
//                       client ended (close 4016: docs/internals/relay.md);
//                       the client joins again with the same token and
//                       what it published (state goes 'closed', then
//                       'connecting' as for a first join; a new sid)
//   rejoined            {attempts, ms, welcome}  joined again
//   ice-restart         {}  the media path broke; ICE restarts (new ufrag)
//   migrating           {wsUrl, room}  the room is moving to another node:
//                       a second socket and connection are being set up
//                       there; the old connection plays meanwhile
//   migrated            {wsUrl, ms}  the room runs on the new node: its
//                       connection carries the call, the old one is closed
//                       (each remote track came again as a `track` event
//                       first, same sid and trackId, with `replaces`); ms
//                       since `migrating`
//   migrate-aborted     {reason, local}  the move failed (local: this
//                       client could not reach the new node); the client
//                       stays where it is
//   error               {error}  (error.code: a protocol error code string
//                       such as 'bad_sdp', or a numeric WebSocket close code)
//   close               {code, reason}  the signaling socket closed
//
// A Participant is {sid, identity, name, muted, server_muted, speaking,
// tracks: [{track_id, kind, muted?, codec?, source?}], isLocal}; a video
// track is {track_id, kind: 'video', codec: 'VP8' | 'VP9' | 'H264' | 'AV1',
// source: 'camera' | 'screen'}.
//
// Publishing audio: the microphone must be acquired before the first offer:
// pass `publishAudio: true` to join(), or call publishMicrophone() before
// join(). publishMicrophone() after the first offer rejects with code
// 'renegotiation_unsupported'.
//
// Publishing video: publishCamera() before join() (or join({publishVideo:
// true})) puts the camera in the first offer; after it, publishCamera()
// adds the camera with a client re-offer (signaling.md §3). By default it
// sends three simulcast encodings, listed low to high resolution as the
// server expects (SIMULCAST_ENCODINGS); `simulcast: false` sends one.
// stopCamera() stops the capture and sends nothing (the m-line stays; the
// others keep the last frame); publishCamera() again resumes on it without
// renegotiating.
//
// Sharing the screen: startScreenShare() publishes a second video track
// (getDisplayMedia(), or a MediaStreamTrack you pass) on its own m-line,
// marked as the screen in the offer's `sources` (signaling.md "Screen
// share"); stopScreenShare() makes that m-line inactive in a re-offer, and
// the others see the track go. A later startScreenShare() reuses the
// m-line (a new track id). One encoding by default (`simulcast: true`
// sends SIMULCAST_ENCODINGS).
//
// Receiving video: each other participant's camera arrives as its own
// track (one simulcast layer at a time, chosen by the server). Ask for a
// layer or pause it with setVideoQuality(trackId, {quality, maxHeight,
// paused}); with no request the server sends the best layer the link
// carries.
//
// Moving to another node (docs/signaling.md): on `migrate` the client opens
// a second socket to the new node, resumes its session there and makes a
// second RTCPeerConnection with the same local tracks, while it keeps
// playing the old one (make-before-break). On `migrated` it switches: every
// remote track of the new connection is announced with a `track` event
// (same sid and trackId as before, `replaces` the old track; attach it as
// you attached the old one), then the old connection is closed without
// `track-ended` events for the tracks that were replaced. During the move
// mute, leave and setVideoQuality go to both nodes, and the connection
// state is the old connection's. Reconnects resume on the new node from
// then on; `wsUrl` names it.

import { E2ee } from './e2ee.js';

const REQUEST_TIMEOUT_MS = 10000;
const PING_INTERVAL_MS = 10000;
const MAX_GLARE_RETRIES = 5;
const REPLY_TYPES = new Set(['welcome', 'resumed', 'answer', 'pong', 'ack', 'error']);
// Resume: a socket that drops (no close frame: 1006; or the server's
// going-away/restart codes) is reopened with backoff, doubling from
// RESUME_FIRST_MS to RESUME_MAX_MS with jitter, within the server's grace.
const RESUMABLE_CLOSES = new Set([1001, 1006, 1011, 1012]);
const RESUME_FIRST_MS = 250;
const RESUME_MAX_MS = 4000;
// ICE restart when the media path stays 'disconnected' this long, or fails,
// or -- sooner than the browser notices -- when nothing at all has arrived
// on the transport for MEDIA_STALL_MS after media was flowing (at least
// MEDIA_FLOWING_BPS): a call's inbound RTP/RTCP does not pause that long.
const ICE_RESTART_AFTER_MS = 1000;
const MEDIA_WATCH_MS = 250;
const MEDIA_STALL_MS = 1250;
const MEDIA_FLOWING_BPS = 2000;
// A move (migrate): how long at least the client tries to reach the new
// node (its resume grace when longer); how long it waits for the old node
// to close the old socket after `migrated` before closing it itself.
const MIGRATE_OPEN_MS = 10000;
const OLD_SOCKET_CLOSE_MS = 5000;
// Joining again after 4016 (the relay serving us ended): attempts, backed
// off as resumes are.
const REJOIN_TRIES = 5;

/** Default camera capture: 720p, which the three layers below divide. */
export const CAMERA_CONSTRAINTS = Object.freeze({
  width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 },
});

/**
 * Default simulcast encodings, LOW to HIGH resolution: the server takes the
 * first rid as the lowest layer until it has seen each layer's keyframe
 * size (docs/signaling.md, Video). At 1280x720: 320x180, 640x360, 1280x720.
 */
export const SIMULCAST_ENCODINGS = Object.freeze([
  Object.freeze({ rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000 }),
  Object.freeze({ rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 }),
  Object.freeze({ rid: 'f', maxBitrate: 1500000 }),
]);

const QUALITIES = new Set(['low', 'medium', 'high']);

/** Error with a `.code` (string protocol code or numeric close code). */
export class SfuError extends Error {
  constructor(message, { code, reason, cause } = {}) {
    super(message, cause ? { cause } : undefined);
    this.name = 'SfuError';
    this.code = code;
    if (reason !== undefined) this.reason = reason;
  }
}

/** Human-readable meaning of the close codes in docs/signaling.md. */
export const CLOSE_CODES = Object.freeze({
  1000: 'left',
  1006: 'connection lost',
  4000: 'bad request',
  4001: 'invalid token',
  4002: 'token expired',
  4003: 'token is for another room',
  4004: 'room not found',
  4005: 'room full',
  4008: 'join timeout',
  4009: 'replaced by a new session',
  4010: 'room closed',
  4011: 'room crashed',
  4012: 'kicked',
  4013: 'heartbeat timeout',
  4014: 'resume failed',
  4015: 'room migrated',
  4016: 'relay gone: join again',
});

export class SfuClient extends EventTarget {
  /**
   * @param {object} opts
   * @param {string} opts.wsUrl      signaling URL (the API's `ws_url`)
   * @param {RTCConfiguration} [opts.rtcConfig]  merged over the defaults.
   *        ICE servers: the SFU is ICE-lite with host candidates, and when
   *        the node has TURN configured its `welcome` carries
   *        `ice_servers` (TURN URLs with credentials minted for this join),
   *        which the RTCPeerConnection uses. An `iceServers` given here
   *        replaces them; `iceTransportPolicy: 'relay'` sends everything
   *        through TURN.
   * @param {boolean} [opts.trickle=true]  send local ICE candidates as
   *        `candidate` messages; false waits for gathering and puts them in
   *        the SDP instead
   * @param {string} [opts.e2ee]  a passphrase: every frame sent is
   *        encrypted under a key derived from it and the room id, every
   *        frame received decrypted (web/e2ee.js, docs/e2ee.md); the camera
   *        is sent in VP8. Frames that do not decrypt are dropped.
   */
  constructor({ wsUrl, rtcConfig = {}, trickle = true, e2ee } = {}) {
    super();
    if (!wsUrl) throw new TypeError('SfuClient: wsUrl is required');
    this.wsUrl = wsUrl;
    this.rtcConfig = {
      iceServers: [],
      bundlePolicy: 'max-bundle',
      rtcpMuxPolicy: 'require',
      ...rtcConfig,
    };
    this._e2eePassphrase = e2ee || null;
    this._e2ee = e2ee ? new E2ee() : null;
    this._e2eeAttached = new WeakSet(); // senders and receivers transformed
    if (e2ee) this.rtcConfig.encodedInsertableStreams = true;
    this._ownIceServers = 'iceServers' in rtcConfig; // else the welcome's
    this.trickle = trickle;

    // The signaling socket and the connection negotiated over it (`ws`,
    // `pc` and `remoteStreams` are this link's); while the room moves to
    // another node, _mig is the second link, to the new node.
    this._link = newLink(wsUrl);
    this._mig = null;
    this.state = 'new';
    this.localParticipant = null;   // {sid, identity, name, ...}
    this.room = null;               // {room_id, name}
    this.participants = new Map();  // sid -> Participant
    this.audience = 0;              // the audience count (not in participants)
    this.speakers = new Set();

    this._micTrack = null;
    this._micStream = null;
    this._micMuted = false;
    this._camTrack = null;          // the camera track being sent, if any
    this._camStream = null;
    this._camOpts = null;           // {simulcast, encodings, codec, degradationPreference,
                                    //  scalabilityMode}
    this._camPublished = false;     // a camera m-line was offered (it stays)
    this._camOwned = false;         // we opened it (stopCamera stops it)
    this._scrTrack = null;          // the screen share being sent, if any
    this._scrStream = null;
    this._scrOwned = false;         // we captured it (stopScreenShare stops it)
    this._scrOpts = null;           // {simulcast, encodings}
    this._offered = false;          // the first client offer has been made
    this._nextId = 1;
    this._pending = new Map();      // request id -> {resolve, reject, timer, type, ws}
    this._pingTimer = null;
    this._closed = false;
    this._roomId = null;            // what resume names
    this._leaving = false;
    this._iceTimer = null;          // pending ICE restart after 'disconnected'
    this._iceRestartWanted = false; // a restart waits for the socket
    this._socketFresh = false;      // the socket was just (re)opened for it
    this._mediaWatch = null;        // interval: inbound transport bytes
  }

  /** The signaling socket (null when not joined). */
  get ws() { return this._link.ws; }
  set ws(ws) { this._link.ws = ws; }

  /** The RTCPeerConnection that carries the call (null when not joined). */
  get pc() { return this._link.pc; }
  set pc(pc) { this._link.pc = pc; }

  /** sid -> MediaStream of the others' tracks on the connection that plays. */
  get remoteStreams() { return this._link.streams; }

  /** True while the room moves to another node (between migrating and migrated). */
  get migrating() { return !!this._mig; }

  get _reconnecting() { return this._link.reconnecting; }

  // ---------------------------------------------------------------- public

  /** Participants (including yourself) as an array of copies. */
  getParticipants() {
    return [...this.participants.values()].map(copyParticipant);
  }

  /**
   * Open the socket, send `join`, then make the first offer.
   * Resolves with the `welcome` message. Rejects with an SfuError whose
   * `.code` / `.reason` are the WebSocket close code and reason when the
   * server refuses (see CLOSE_CODES), or with the getUserMedia error when
   * `publishAudio` / `publishVideo` is set and the device cannot be opened.
   * `publishVideo`, `videoConstraints`, `simulcast`, `videoEncodings`,
   * `videoCodec`, `degradationPreference` and `scalabilityMode` are
   * publishCamera()'s options.
   */
  async join({ room, token, publishAudio = false, audioConstraints, publishVideo = false,
    videoConstraints, simulcast, videoEncodings, videoCodec, degradationPreference,
    scalabilityMode } = {}) {
    if (this.ws) throw new SfuError('already joined or joining', { code: 'invalid_state' });
    if (!room || !token) throw new TypeError('join: room and token are required');
    if (this._e2ee && !this._e2ee.key) await this._e2ee.setPassphrase(this._e2eePassphrase, room);
    if (publishAudio && !this._micTrack) await this.publishMicrophone(audioConstraints);
    if (publishVideo && !this._camTrack) {
      await this.publishCamera({ constraints: videoConstraints, simulcast,
        encodings: videoEncodings, codec: videoCodec, degradationPreference, scalabilityMode });
    }

    this._closed = false;
    this._leaving = false;
    this._joinArgs = { room, token, audioConstraints, videoConstraints, simulcast,
      videoEncodings, videoCodec, degradationPreference };
    this._link = newLink(this.wsUrl);
    this._setState('connecting');
    const ws = new WebSocket(this.wsUrl);
    this.ws = ws;

    let welcome;
    try {
      welcome = await this._joinSocket(ws, room, token);
    } catch (err) {
      if (this.ws === ws) {
        if (ws.readyState === WebSocket.CONNECTING || ws.readyState === WebSocket.OPEN) {
          ws.close(1000, 'join failed');
        }
        this._teardown({ code: err.code, reason: err.reason });
      }
      throw err;
    }

    this._onWelcome(welcome);
    this._pingTimer = setInterval(() => {
      // (both sockets while the room moves: each node times out its own)
      for (const link of this._links()) {
        if (!isOpen(link.ws) || !link.joined || link.reconnecting) continue;
        this._request({ type: 'ping' }, REQUEST_TIMEOUT_MS, link.ws).catch(() => {});
      }
    }, PING_INTERVAL_MS);

    // First negotiation: our offer right after welcome (signaling.md §1).
    this._enqueue(() => this._negotiate()).catch((err) => this._emitError(err));
    if (this._micMuted) this._sendMute(true).catch((err) => this._emitError(err));
    return welcome;
  }

  _joinSocket(ws, room, token) {
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (err) => {
        if (settled) return;
        settled = true;
        reject(err);
      };
      ws.addEventListener('open', () => {
        this._request({ type: 'join', v: 1, room, token }).then(
          (msg) => { if (!settled) { settled = true; resolve(msg); } },
          (err) => fail(err));
      });
      this._listen(ws, this._link, (ev) => {
        const what = CLOSE_CODES[ev.code] || 'connection closed';
        fail(new SfuError(`join refused: ${ev.reason || what} (close code ${ev.code})`,
          { code: ev.code, reason: ev.reason }));
      });
    });
  }

  /**
   * Routes a socket's messages and its close while it is its link's socket
   * and the link is in use (the current one, or a move's new one).
   */
  _listen(ws, link, onClose) {
    ws.addEventListener('message', (ev) => {
      if (link.ws === ws && !link.dead) this._onMessage(ev, link);
    });
    ws.addEventListener('close', (ev) => {
      onClose(ev);
      this._rejectPending(ev.code, ev.reason, ws);
      if (link.ws === ws) this._onLinkClose(ev, link);
    });
    // 'error' is always followed by 'close', which carries the details.
  }

  /**
   * The signaling socket dropped while joined: reopen it and send `resume`
   * with the last resume token, with backoff, until the server's grace is
   * over. The peer connection is left alone, so media goes on. A refusal
   * (4014: token used, expired, or the session ended) or the end of the
   * grace closes the client as a drop would have before.
   *
   * The same for a move's new link (`link`, not the current one): its
   * first connection to the new node (`dropCode` 'migrate': the token came
   * in `migrate`), or its socket dropped before the move completed. That
   * one says nothing to the app but 'migrate-aborted' if it fails.
   */
  async _resume(dropCode, replace = false, link = this._link) {
    const old = replace ? link.ws : null;   // still open, maybe dead: the server replaces it
    const first = !link.joined;              // a move's first connection to the new node
    link.reconnecting = true;
    if (link === this._link) {
      this._setState('reconnecting', { code: dropCode });
      this._emit('reconnecting', { code: dropCode });
    }
    const graceMs = first ? Math.max(link.graceMs, MIGRATE_OPEN_MS) : link.graceMs;
    const t0 = performance.now();
    let delay = RESUME_FIRST_MS, attempts = 0, last = { code: dropCode, reason: 'connection lost' };
    while (!this._closed && !link.dead && performance.now() - t0 < graceMs) {
      attempts++;
      let ws;
      try {
        ws = new WebSocket(link.wsUrl);
      } catch (err) {      // a malformed URL (from a migrate message)
        last = { code: 'bad_url', reason: err.message };
        break;
      }
      link.ws = ws;
      try {
        const msg = await new Promise((resolve, reject) => {
          ws.addEventListener('open', () => {
            this._request({ type: 'resume', v: 1, room: link.roomId,
              resume_token: link.resumeToken }, REQUEST_TIMEOUT_MS, ws).then(resolve, reject);
          });
          this._listen(ws, link, (ev) => reject(new SfuError(`resume: closed (${ev.code})`,
            { code: ev.code, reason: ev.reason })));
        });
        if (this._closed || link.dead || link.ws !== ws) {
          // the client or this link ended meanwhile (left, moved away)
          if (link.ws === ws && isOpen(ws)) ws.close(1000, 'not needed');
          return;
        }
        link.resumeToken = msg.resume_token || null;
        if (msg.resume_grace_s) link.graceMs = msg.resume_grace_s * 1000;
        link.reconnecting = false;
        link.joined = true;
        if (old) try { old.close(1000, 'replaced'); } catch { /* already gone */ }
        if (first) {
          this._onMigrationResumed(link, msg);
          return;
        }
        if (link !== this._link) return;   // a move's link, back: nothing to tell
        this._setState(this.pc && this.pc.connectionState === 'connected' ? 'connected' : 'joined');
        this._emit('reconnected', { attempts, ms: Math.round(performance.now() - t0) });
        if (this._iceRestartWanted) {
          this._socketFresh = true;
          this._restartIce();
        }
        return;
      } catch (err) {
        last = { code: err.code, reason: err.reason || err.message };
        if ((err.code === 4014 || err.code === 4015) && link === this._link && this._mig) {
          // The old node let the session go while the room was moving: the
          // move completed (its `migrated` went with the dropped socket).
          link.reconnecting = false;
          this._completeMigration();
          return;
        }
        if (err.code === 4014 || this._closed) break;   // nothing to resume
      }
      await sleep(delay / 2 + Math.random() * delay / 2);
      delay = Math.min(delay * 2, RESUME_MAX_MS);
    }
    link.reconnecting = false;
    if (this._closed || link.dead) return;
    if (link !== this._link) {
      this._dropMigration(link, `could not reach the new node: ${last.reason}`);
      return;
    }
    this._emitError(new SfuError(`disconnected: could not resume (${last.reason})`,
      { code: last.code, reason: last.reason }));
    this._teardown(last);
  }

  /**
   * Acquire the microphone and publish it. Must happen before the first
   * offer (i.e. before or during join()). Resolves with the track.
   */
  async publishMicrophone(constraints = true) {
    if (this._micTrack) return this._micTrack;
    if (this._offered) {
      throw new SfuError('publishing after the first offer is not part of signaling protocol v1; '
        + 'use join({publishAudio: true})', { code: 'renegotiation_unsupported' });
    }
    const stream = await navigator.mediaDevices.getUserMedia({ audio: constraints, video: false });
    const track = stream.getAudioTracks()[0];
    if (this._offered) {   // join() raced ahead while the prompt was open
      stream.getTracks().forEach((t) => t.stop());
      throw new SfuError('the first offer was already sent', { code: 'renegotiation_unsupported' });
    }
    this._micStream = stream;
    this._micTrack = track;
    track.enabled = !this._micMuted;
    return track;
  }

  /** The published microphone track, if any. */
  get micTrack() { return this._micTrack; }
  get micMuted() { return this._micMuted; }

  /**
   * Open the camera and publish it (or resume it after stopCamera()).
   * Before the first offer the camera goes into it; after, it is added with
   * a client re-offer (queued behind any SDP exchange in progress), and the
   * promise resolves once the server answered. Resolves with the track.
   *
   * @param {object} [opts]
   * @param {MediaTrackConstraints} [opts.constraints=CAMERA_CONSTRAINTS]
   * @param {boolean} [opts.simulcast=true]  send opts.encodings (default
   *        SIMULCAST_ENCODINGS, low to high) instead of one encoding
   * @param {RTCRtpEncodingParameters[]} [opts.encodings]
   * @param {string} [opts.codec]  'VP8' (default order: the browser's),
   *        'VP9', 'H264' or 'AV1': put first in the offer; the server takes
   *        the first one it forwards
   * @param {string} [opts.degradationPreference]  e.g. 'maintain-resolution'
   *        (keeps each layer's size when the CPU or network is short)
   * @param {string} [opts.scalabilityMode]  one encoding with SVC layers
   *        instead of simulcast, e.g. 'L3T3_KEY' with codec 'VP9' or 'AV1'
   *        (AV1's layers reach the server in the Dependency Descriptor,
   *        which Chromium offers): the server forwards each subscriber the
   *        spatial layers its quality asks for; 'L1T3' the frame rate
   *        (VP8, AV1, and H.264, whose temporal layers only the descriptor
   *        says)
   *        (docs/signaling.md, "Video")
   * @param {MediaStreamTrack} [opts.track]  send this track instead of
   *        opening the camera (e.g. a canvas capture); not stopped by
   *        stopCamera()
   */
  async publishCamera({ constraints, simulcast = true, encodings, codec,
    degradationPreference, scalabilityMode, track: given } = {}) {
    if (this._camTrack) return this._camTrack;
    let stream;
    let track = given;
    if (track) {
      stream = new MediaStream([track]);
    } else {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: false, video: constraints || CAMERA_CONSTRAINTS });
      track = stream.getVideoTracks()[0];
    }
    if (this._camTrack) {   // a concurrent call won
      if (!given) stream.getTracks().forEach((t) => t.stop());
      return this._camTrack;
    }
    this._camTrack = track;
    this._camStream = stream;
    this._camOwned = !given;
    if (!this._camOpts) {
      this._camOpts = {
        simulcast: simulcast !== false && !scalabilityMode,
        encodings: (encodings || SIMULCAST_ENCODINGS).map((e) => ({ ...e })),
        codec, degradationPreference, scalabilityMode,
      };
    }
    this._emit('local-video', { track, stream });
    // On every connection that is negotiated (two while the room moves).
    const waits = [];
    for (const link of this._links()) {
      if (!link.pc) continue;
      const tr = link.camTransceiver;
      let done;
      if (tr && tr.sender) {
        // Resume on the m-line we already have: same encodings, no new offer.
        done = tr.sender.replaceTrack(track);
      } else if (link.publishing) {
        done = this._enqueue(async () => {
          if (link.camTransceiver || !this._camTrack) return;
          this._addCameraTransceiver(link);
          await this._negotiate(0, link);
        }, link);
      } else {
        continue;   // its first offer, still to come, will carry the camera
      }
      waits.push(link === this._link ? done
        : done.catch((err) => console.warn('sfu-client: camera on the new node', err)));
    }
    await Promise.all(waits);
    return track;
  }

  /**
   * Stop the camera: the capture ends and nothing is sent on its m-line
   * (which stays negotiated, so publishCamera() resumes without a new
   * offer). Subscribers keep the last frame they decoded.
   */
  async stopCamera() {
    const track = this._camTrack;
    const stream = this._camStream;
    if (!track) return;
    this._camTrack = this._camStream = null;
    for (const link of this._links()) {
      const tr = link.camTransceiver;
      if (tr && tr.sender && link.pc) {
        try { await tr.sender.replaceTrack(null); } catch { /* connection closing */ }
      }
    }
    if (this._camOwned) stream.getTracks().forEach((t) => t.stop());
    this._emit('local-video', { track: null, stream: null });
  }

  /** The camera track being sent, if any, and its stream (local preview). */
  get cameraTrack() { return this._camTrack; }
  get cameraStream() { return this._camStream; }

  /**
   * Share the screen: a second video track, published with a client
   * re-offer once joined (or in the first offer before it). Resolves with
   * the track once the server answered.
   *
   * @param {object} [opts]
   * @param {MediaStreamTrack} [opts.track]  share this track instead of
   *        asking getDisplayMedia() (e.g. a canvas capture); not stopped by
   *        stopScreenShare()
   * @param {MediaTrackConstraints|boolean} [opts.constraints=true]  for getDisplayMedia()
   * @param {boolean} [opts.simulcast=false]  send opts.encodings (default
   *        SIMULCAST_ENCODINGS) instead of one encoding
   * @param {RTCRtpEncodingParameters[]} [opts.encodings]
   */
  async startScreenShare({ track: given, constraints = true, simulcast = false, encodings } = {}) {
    if (this._scrTrack) return this._scrTrack;
    let track = given;
    let stream;
    if (track) {
      stream = new MediaStream([track]);
    } else {
      if (!navigator.mediaDevices?.getDisplayMedia) {
        throw new SfuError('this browser cannot capture the screen', { code: 'unsupported' });
      }
      stream = await navigator.mediaDevices.getDisplayMedia({ video: constraints, audio: false });
      track = stream.getVideoTracks()[0];
    }
    if (this._scrTrack) {   // a concurrent call won
      if (!given) stream.getTracks().forEach((t) => t.stop());
      return this._scrTrack;
    }
    this._scrTrack = track;
    this._scrStream = stream;
    this._scrOwned = !given;
    this._scrOpts = {
      simulcast: !!simulcast,
      encodings: (encodings || SIMULCAST_ENCODINGS).map((e) => ({ ...e })),
    };
    // The browser's own "stop sharing" ends the track.
    track.addEventListener('ended', () => {
      if (this._scrTrack === track) this.stopScreenShare().catch((err) => this._emitError(err));
    });
    this._emit('local-screen', { track, stream });
    const waits = [];
    for (const link of this._links()) {
      if (!link.pc || !link.publishing) continue;   // a first offer to come carries it
      const done = this._enqueue(async () => {
        if (this._scrTrack !== track) return;
        await this._setScreenTransceiver(link, track);
        await this._negotiate(0, link);
      }, link);
      waits.push(link === this._link ? done
        : done.catch((err) => console.warn('sfu-client: screen share on the new node', err)));
    }
    await Promise.all(waits);
    return track;
  }

  /**
   * Stop sharing the screen: the screen's m-line goes inactive in a
   * re-offer, and the others see the track go. Resolves once the server
   * answered.
   */
  async stopScreenShare() {
    const track = this._scrTrack;
    const stream = this._scrStream;
    if (!track) return;
    this._scrTrack = this._scrStream = null;
    const waits = [];
    for (const link of this._links()) {
      const tr = link.scrTransceiver;
      if (!tr || !link.pc) continue;
      const done = this._enqueue(async () => {
        if (this._scrTrack || link.scrTransceiver !== tr || !link.pc) return;
        try { await tr.sender.replaceTrack(null); } catch { /* connection closing */ }
        tr.direction = 'inactive';
        await this._negotiate(0, link);
      }, link);
      waits.push(done.catch((err) => console.warn('sfu-client: stopping the screen share', err)));
    }
    if (this._scrOwned) stream.getTracks().forEach((t) => t.stop());
    this._emit('local-screen', { track: null, stream: null });
    await Promise.all(waits);
  }

  /** The screen share being sent, if any, and its stream (local preview). */
  get screenTrack() { return this._scrTrack; }
  get screenStream() { return this._scrStream; }

  /**
   * Choose what the server sends you of one of the others' video tracks
   * (`video_quality`). Any of: `quality` 'low' | 'medium' | 'high' (the
   * highest simulcast layer you want), `maxHeight` (pixels, 0 = no bound),
   * `paused` (true: the server stops sending it; false: resumes at a
   * keyframe). Omitted fields keep their previous value. Resolves with the
   * `ack`; rejects with code 'not_found' if no such video is sent to you.
   */
  async setVideoQuality(trackId, { quality, maxHeight, paused } = {}) {
    if (!trackId) throw new TypeError('setVideoQuality: a track id is required');
    const msg = { type: 'video_quality', track_id: String(trackId) };
    if (quality !== undefined) {
      if (!QUALITIES.has(quality)) throw new TypeError(`setVideoQuality: bad quality ${quality}`);
      msg.quality = quality;
    }
    if (maxHeight !== undefined) msg.max_height = Math.max(0, Math.min(8192, Math.round(maxHeight)));
    if (paused !== undefined) msg.paused = !!paused;
    const mig = this._mig;
    if (mig && isOpen(mig.ws) && mig.joined && !mig.reconnecting) {
      // (the new node takes the choices over, but one made during the move
      // may not have reached it: tell it too; it may not know the track yet)
      this._request(msg, REQUEST_TIMEOUT_MS, mig.ws).catch(() => {});
    }
    return this._request(msg);
  }

  /**
   * The id of a participant's published video track of this source
   * ('camera' or 'screen'), from its track list.
   */
  videoTrackIdOf(sid, source = 'camera') {
    const p = this.participants.get(sid);
    const t = p && p.tracks.find((x) => x.kind === 'video' && (x.source || 'camera') === source);
    return t ? t.track_id : undefined;
  }

  /**
   * Mute or unmute your microphone: disables the track locally (silence)
   * and tells the server (`mute`), which others see as participant_updated.
   * Resolves once the server acknowledged (immediately when not joined).
   */
  async setMicMuted(muted) {
    muted = !!muted;
    this._micMuted = muted;
    if (this._micTrack) this._micTrack.enabled = !muted;
    const me = this.localParticipant && this.participants.get(this.localParticipant.sid);
    if (me) {
      me.muted = muted;
      me.tracks = me.tracks.map((t) => ({ ...t, muted }));
      this._emit('participant-updated', { participant: copyParticipant(me) });
      this._emitParticipants();
    }
    if (this._isJoined()) await this._sendMute(muted);
  }

  /** Send `leave`, wait (briefly) for the server to close, release media. */
  async leave() {
    this._leaving = true;   // the close that follows is not a drop
    const mig = this._mig;
    if (mig && isOpen(mig.ws) && mig.joined) {
      // the room is moving: the new node hears it too (signaling.md)
      try { mig.ws.send(JSON.stringify({ type: 'leave' })); } catch { /* closing anyway */ }
    }
    const ws = this.ws;
    if (ws && ws.readyState === WebSocket.OPEN) {
      const closed = new Promise((resolve) => ws.addEventListener('close', resolve, { once: true }));
      try { ws.send(JSON.stringify({ type: 'leave' })); } catch { /* closing anyway */ }
      await Promise.race([closed, sleep(2000)]);
    }
    if (ws && ws.readyState !== WebSocket.CLOSED) ws.close(1000, 'leave');
    this._teardown({ code: 1000, reason: 'left' });
  }

  // ------------------------------------------------------------ signaling

  _isJoined() {
    return !!(this.ws && this.ws.readyState === WebSocket.OPEN && this.localParticipant);
  }

  /** The links in use: the current one, and a move's new one. */
  _links() {
    return this._mig ? [this._link, this._mig] : [this._link];
  }

  _send(msg, ws = this.ws) {
    if (!isOpen(ws)) {
      throw new SfuError('signaling socket is not open', { code: 'not_connected' });
    }
    ws.send(JSON.stringify(msg));
  }

  /**
   * Send a request with a fresh id on `ws` (the current socket unless
   * told); resolves with the reply, rejects on `error` or when that socket
   * closes first.
   */
  _request(msg, timeoutMs = REQUEST_TIMEOUT_MS, ws = this.ws) {
    const id = this._nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new SfuError(`${msg.type}: no reply within ${timeoutMs} ms`, { code: 'timeout' }));
      }, timeoutMs);
      this._pending.set(id, { resolve, reject, timer, type: msg.type, ws });
      try {
        this._send({ ...msg, id }, ws);
      } catch (err) {
        clearTimeout(timer);
        this._pending.delete(id);
        reject(err);
      }
    });
  }

  /**
   * `mute`; while the room moves, on both sockets (signaling.md): the new
   * node must know it too. Resolves with the first acknowledgement.
   */
  _sendMute(muted) {
    const sent = [this._request({ type: 'mute', muted })];
    const mig = this._mig;
    if (mig && isOpen(mig.ws) && mig.joined && !mig.reconnecting) {
      mig.mutedSent = muted;
      sent.push(this._request({ type: 'mute', muted }, REQUEST_TIMEOUT_MS, mig.ws));
    }
    if (sent.length === 1) return sent[0];
    return Promise.any(sent).catch((all) => { throw all.errors[0]; });
  }

  _onMessage(ev, link) {
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch {
      this._emitError(new SfuError('server sent a frame that is not JSON', { code: 'bad_message' }));
      return;
    }
    if (!msg || typeof msg !== 'object') return;

    // Replies to our requests echo our id.
    let replyId = REPLY_TYPES.has(msg.type) && msg.id != null && this._pending.has(msg.id)
      ? msg.id : undefined;
    if (replyId === undefined && msg.type === 'welcome') {
      // Tolerate a welcome that does not echo the id: it answers the join.
      for (const [id, p] of this._pending) if (p.type === 'join') { replyId = id; break; }
    }
    if (replyId !== undefined) {
      const p = this._pending.get(replyId);
      this._pending.delete(replyId);
      clearTimeout(p.timer);
      if (msg.type === 'error') {
        p.reject(new SfuError(`${p.type}: ${msg.message || msg.code}`, { code: msg.code }));
      } else {
        p.resolve(msg);
      }
      return;
    }

    // `link` is the current one, or a move's new one: what concerns its
    // connection goes to that connection; what the call shows comes from
    // both nodes while both run it (the same participants), except speaking,
    // which the node that plays says.
    const current = link === this._link;
    switch (msg.type) {
      case 'offer':
        this._enqueue(() => this._onServerOffer(msg, link), link)
          .catch((err) => this._linkError(link, err));
        break;
      case 'candidate':
        this._enqueue(() => this._onRemoteCandidate(msg.candidate, link), link)
          .catch((err) => console.warn('sfu-client: remote candidate', err));
        break;
      case 'participant_joined':
        // (the new node knows everyone already: a join it reports for a
        // known sid is an update)
        if (!current && msg.participant && this.participants.has(msg.participant.sid)) {
          this._onParticipantUpdated(msg.participant);
        } else {
          this._onParticipantJoined(msg.participant);
        }
        break;
      case 'participant_updated':
        this._onParticipantUpdated(msg.participant);
        break;
      case 'participant_left':
        this._onParticipantLeft(msg);
        break;
      case 'speaking':
        if (current) this._onSpeaking(msg.speakers || []);
        break;
      case 'audience':
        if (current) this._onAudience(msg.count);
        break;
      case 'subscribed_layers':
        this._onSubscribedLayers(msg, link);
        break;
      case 'migrate':
        if (current) this._onMigrate(msg);
        break;
      case 'migrated':
        if (current) this._completeMigration();
        break;
      case 'migrate_abort':
        if (current) this._abortMigration(msg.reason);
        break;
      case 'error':
        this._linkError(link, new SfuError(msg.message || msg.code, { code: msg.code }));
        break;
      default:
        // Unknown or late replies (e.g. a pong after its timeout): ignore,
        // so newer servers can add messages.
        break;
    }
  }

  /**
   * Dynacast: the server says which layers of one of our videos anyone
   * receives (docs/signaling.md, "Dynacast"). The others stop being
   * encoded (RTCRtpSender encodings `active: false`) until it asks again.
   */
  _onSubscribedLayers(msg, link) {
    const tr = link.pc && link.pc.getTransceivers().find((t) => t.mid === msg.mid);
    if (!tr || !tr.sender || !tr.sender.track) return;
    const params = tr.sender.getParameters();
    if (!params.encodings || !params.encodings.length) return;
    const rids = Array.isArray(msg.rids) ? msg.rids : [];
    let changed = false;
    for (const enc of params.encodings) {
      const on = enc.rid ? rids.includes(enc.rid) : msg.active === true;
      if (enc.active !== on) {
        enc.active = on;
        changed = true;
      }
    }
    if (!changed) return;
    tr.sender.setParameters(params).catch((err) => console.warn('sfu-client: subscribed layers', err));
    this._emit('subscribed-layers', { trackId: msg.track_id, mid: msg.mid, rids, active: msg.active === true });
  }

  /** Counters of end-to-end encryption (web/e2ee.js), null without it. */
  get e2eeStats() { return this._e2ee ? { ...this._e2ee.stats } : null; }

  /** Every sending transceiver's frames through the encryption, once. */
  _e2eeSenders(pc) {
    if (!this._e2ee) return;
    for (const tr of pc.getTransceivers()) {
      if (!tr.sender || this._e2eeAttached.has(tr.sender) || !tr.direction.startsWith('send')) continue;
      this._e2eeAttached.add(tr.sender);
      this._e2ee.attachSender(tr.sender, tr.receiver.track.kind);
    }
  }

  /** An error about a link: the app's if the link plays, else logged. */
  _linkError(link, err) {
    if (link === this._link) this._emitError(err);
    else console.warn('sfu-client: on the new node:', err);
  }

  /** Rejects the requests waiting for a reply on `ws` (all without it). */
  _rejectPending(code, reason, ws) {
    for (const [id, p] of this._pending) {
      if (ws && p.ws !== ws) continue;
      this._pending.delete(id);
      clearTimeout(p.timer);
      p.reject(new SfuError(`${p.type}: socket closed (${code})`, { code, reason }));
    }
  }

  /** A link's socket closed (its pending requests are rejected already). */
  _onLinkClose(ev, link) {
    if (this._closed || link.dead || link.reconnecting) return;
    if (link !== this._link) {
      // A move's new socket, before the move completed: resume it on the
      // new node as a dropped socket; a refusal ends the move for us.
      if (this._leaving) return;
      if (link.joined && link.resumeToken && RESUMABLE_CLOSES.has(ev.code)) {
        this._resume(ev.code, false, link);
      } else {
        const what = ev.reason || CLOSE_CODES[ev.code] || 'connection closed';
        this._dropMigration(link, `the new node closed the socket: ${what} (close code ${ev.code})`);
      }
      return;
    }
    // 4015 comes right after `migrated`: should that have been lost, the
    // close says the same.
    if (ev.code === 4015 && this._completeMigration()) return;
    const wasJoined = !!this.localParticipant;
    if (wasJoined && !this._leaving && link.resumeToken && RESUMABLE_CLOSES.has(ev.code)) {
      this._resume(ev.code);
      return;
    }
    if (wasJoined && !this._leaving && ev.code === 4016) {
      this._rejoin(ev);
      return;
    }
    this._emit('close', { code: ev.code, reason: ev.reason });
    if (wasJoined && ev.code !== 1000) {
      const what = ev.reason || CLOSE_CODES[ev.code] || 'connection closed';
      this._emitError(new SfuError(`disconnected: ${what} (close code ${ev.code})`,
        { code: ev.code, reason: ev.reason }));
    }
    this._teardown({ code: ev.code, reason: ev.reason });
  }

  /**
   * The relay process serving us ended (4016): the room goes on. Tear this
   * session down and join again with the same token, publishing what we
   * published; sfud places us anew (docs/internals/relay.md).
   */
  async _rejoin(ev) {
    const args = { ...this._joinArgs, publishAudio: !!this._micTrack,
      publishVideo: !!this._camTrack && this._camOwned && !!this._camOpts };
    if (this._camOpts) Object.assign(args, { simulcast: this._camOpts.simulcast,
      videoEncodings: this._camOpts.encodings, videoCodec: this._camOpts.codec,
      degradationPreference: this._camOpts.degradationPreference,
      scalabilityMode: this._camOpts.scalabilityMode });
    const muted = this._micMuted;
    this._emit('rejoining', { code: ev.code, reason: ev.reason });
    this._teardown({ code: ev.code, reason: ev.reason });
    const t0 = performance.now();
    let delay = RESUME_FIRST_MS, last = { code: ev.code, reason: ev.reason };
    for (let attempt = 1; attempt <= REJOIN_TRIES; attempt++) {
      if (this._leaving) return;
      try {
        this._micMuted = muted;
        const welcome = await this.join(args);
        this._emit('rejoined', { attempts: attempt, ms: Math.round(performance.now() - t0),
          welcome });
        return;
      } catch (err) {
        last = { code: err.code, reason: err.reason || err.message };
        // refused for good: the room is gone, the token expired, kicked, ...
        if (typeof err.code === 'number' && err.code >= 4000 && err.code !== 4016) break;
      }
      await sleep(delay / 2 + Math.random() * delay / 2);
      delay = Math.min(delay * 2, RESUME_MAX_MS);
    }
    this._emitError(new SfuError(`disconnected: could not join again (${last.reason})`,
      { code: last.code, reason: last.reason }));
  }

  _teardown({ code, reason } = {}) {
    if (this._closed) return;
    this._closed = true;
    clearInterval(this._pingTimer);
    this._pingTimer = null;
    clearTimeout(this._iceTimer);
    this._iceTimer = null;
    clearInterval(this._mediaWatch);
    this._mediaWatch = null;
    const mig = this._mig;
    this._mig = null;
    if (mig) this._closeLink(mig, 'closed');
    const link = this._link;
    link.dead = true;
    link.resumeToken = null;
    this._rejectPending(code, reason);
    if (link.pc) {
      link.pc.onicecandidate = link.pc.ontrack = link.pc.onconnectionstatechange = null;
      link.pc.close();
    }
    link.pc = null;
    if (this._micStream) this._micStream.getTracks().forEach((t) => t.stop());
    this._micStream = this._micTrack = null;
    const hadCamera = !!this._camTrack;
    if (this._camStream && this._camOwned) this._camStream.getTracks().forEach((t) => t.stop());
    this._camStream = this._camTrack = this._camOpts = null;
    this._camPublished = false;
    link.camTransceiver = null;
    const hadScreen = !!this._scrTrack;
    if (this._scrStream && this._scrOwned) this._scrStream.getTracks().forEach((t) => t.stop());
    this._scrStream = this._scrTrack = this._scrOpts = null;
    link.scrTransceiver = null;
    link.ws = null;
    this._offered = false;
    link.sdpSent = false;
    link.remoteCandidates = [];
    link.localCandidates = [];
    link.streams.clear();
    this.participants.clear();
    this.speakers = new Set();
    this.localParticipant = null;
    if (hadCamera) this._emit('local-video', { track: null, stream: null });
    if (hadScreen) this._emit('local-screen', { track: null, stream: null });
    this._setState('closed', { code, reason });
  }

  // -------------------------------------------------------------- migration
  //
  // docs/signaling.md, "Moving to another node": `migrate` on the current
  // socket names the new node; a second link (socket + connection) is set
  // up there while the current one plays; `migrated` makes it the current
  // one, `migrate_abort` drops it.

  _onMigrate(msg) {
    if (this._mig || this._closed || !this.localParticipant) return;   // one move at a time
    if (typeof msg.ws_url !== 'string' || typeof msg.resume_token !== 'string') {
      this._emitError(new SfuError('migrate without ws_url or resume_token', { code: 'bad_message' }));
      return;
    }
    const link = newLink(msg.ws_url);
    link.roomId = msg.room || this._roomId;
    link.resumeToken = msg.resume_token;
    link.graceMs = this._link.graceMs;
    link.mutedSent = this._micMuted;   // the session's mute state moves with it
    link.t0 = performance.now();
    this._mig = link;
    this._emit('migrating', { wsUrl: link.wsUrl, room: link.roomId });
    this._resume('migrate', false, link);
  }

  /**
   * The new node took the session over (`resumed` on the new socket): the
   * second connection, with the same local tracks, offered there.
   */
  _onMigrationResumed(link, msg) {
    const sid = msg.participant && msg.participant.sid;
    if (sid && this.localParticipant && sid !== this.localParticipant.sid) {
      console.warn('sfu-client: the new node resumed another participant', sid);
    }
    this._createPeerConnection(link);
    this._enqueue(() => this._negotiate(0, link), link).catch((err) => this._linkError(link, err));
    if (link.mutedSent !== this._micMuted) {   // changed during the move
      link.mutedSent = this._micMuted;
      this._request({ type: 'mute', muted: this._micMuted }, REQUEST_TIMEOUT_MS, link.ws)
        .catch((err) => this._linkError(link, err));
    }
    // the move completed before the new node answered: it plays already
    if (link === this._link) this._syncConnectionState();
  }

  /**
   * `migrated`: the new link carries the call. Its remote tracks are
   * announced as the old ones were (same sid and trackId), the old
   * connection is closed, and the old socket is left to the old node to
   * close (4015). Returns false when no move was under way.
   */
  _completeMigration() {
    const link = this._mig;
    if (!link) return false;
    this._mig = null;
    const old = this._link;
    this._link = link;
    this.wsUrl = link.wsUrl;   // reconnects go to the new node now
    clearTimeout(this._iceTimer);
    this._iceTimer = null;
    clearInterval(this._mediaWatch);
    this._mediaWatch = null;
    this._iceRestartWanted = false;
    this._socketFresh = false;

    const before = new Map();   // sid|trackId -> the old connection's track
    for (const r of old.tracks) if (r.shown) before.set(trackKey(r), r);
    for (const r of link.tracks) {
      const prev = before.get(trackKey(r));
      before.delete(trackKey(r));
      this._announceTrack(r, prev ? prev.track : null);
    }
    this._closeLink(old, 'migrated', OLD_SOCKET_CLOSE_MS);
    for (const r of before.values()) this._emitTrackEnded(r);   // none on the new node
    this._syncConnectionState();
    this._emit('migrated', { wsUrl: link.wsUrl, ms: Math.round(performance.now() - link.t0) });
    return true;
  }

  /** `migrate_abort`, or the new node out of reach (local): stay. */
  _abortMigration(reason, local = false) {
    const link = this._mig;
    if (!link) return;
    this._mig = null;
    this._closeLink(link, 'migration aborted');
    this._emit('migrate-aborted', { reason: reason || '', local });
    if (this._iceRestartWanted && !this._closed) this._restartIce();   // held back meanwhile
  }

  _dropMigration(link, reason) {
    if (this._mig === link) this._abortMigration(reason, true);
  }

  /**
   * Ends a link that no longer carries the call: its tracks' events
   * detached, its connection closed, its socket closed (a close frame with
   * `reason`) now or, for the old link of a move (`closeAfterMs`), left to
   * the server for that long.
   */
  _closeLink(link, reason, closeAfterMs = 0) {
    link.dead = true;
    link.reconnecting = false;
    for (const r of link.tracks) r.detach();
    link.tracks.clear();
    link.streams.clear();
    const pc = link.pc;
    link.pc = null;
    if (pc) {
      pc.onicecandidate = pc.ontrack = pc.onconnectionstatechange = null;
      pc.close();
    }
    const ws = link.ws;
    if (!ws || ws.readyState === WebSocket.CLOSING || ws.readyState === WebSocket.CLOSED) return;
    const close = () => {
      if (ws.readyState === WebSocket.CONNECTING || ws.readyState === WebSocket.OPEN) {
        ws.close(1000, reason);
      }
    };
    if (closeAfterMs > 0) setTimeout(close, closeAfterMs);
    else close();
  }

  /** The client's state from the current link (after a move). */
  _syncConnectionState() {
    const link = this._link;
    if (link.reconnecting || !link.joined) {
      this._setState('reconnecting');
      return;
    }
    const pc = link.pc;
    const s = pc ? pc.connectionState : 'new';
    if (s === 'connected' || s === 'disconnected' || s === 'failed') this._onConnectionState(pc);
    else this._setState('joined');
  }

  // ---------------------------------------------------------- participants

  _onAudience(count) {
    if (!Number.isInteger(count) || count < 0 || count === this.audience) return;
    this.audience = count;
    this._emit('audience', { count });
  }

  _onWelcome(msg) {
    this._onAudience(msg.audience || 0);
    this.room = msg.room || null;
    this._roomId = (msg.room && msg.room.room_id) || null;
    const link = this._link;
    link.joined = true;
    link.roomId = this._roomId;
    link.resumeToken = msg.resume_token || null;   // absent: the node does not resume
    link.graceMs = (msg.resume_grace_s || 0) * 1000;
    // TURN servers with fresh credentials, when the node has TURN
    // (signaling.md: Joining); used by the connection made below.
    if (!this._ownIceServers) {
      this.rtcConfig.iceServers = (Array.isArray(msg.ice_servers) ? msg.ice_servers : [])
        .filter((s) => s && s.urls)
        .map((s) => ({ urls: s.urls, username: s.username, credential: s.credential }));
    }
    const me = msg.participant || {};
    this.localParticipant = normaliseParticipant({
      ...me, muted: this._micMuted, server_muted: false, speaking: false,
      tracks: me.tracks || [],
    }, true);
    this.participants.clear();
    this.participants.set(this.localParticipant.sid, this.localParticipant);
    for (const p of msg.participants || []) {
      if (!p || !p.sid) continue;
      if (p.sid === this.localParticipant.sid) continue;
      this.participants.set(p.sid, normaliseParticipant(p, false));
    }
    this._createPeerConnection(link);
    this._setState('joined');
    this._emitParticipants();
  }

  _onParticipantJoined(p) {
    if (!p || !p.sid) return;
    const part = normaliseParticipant(p, this.localParticipant && p.sid === this.localParticipant.sid);
    this.participants.set(p.sid, part);
    this._emit('participant-joined', { participant: copyParticipant(part) });
    this._emitParticipants();
  }

  _onParticipantUpdated(p) {
    if (!p) return;
    let part = p.sid && this.participants.get(p.sid);
    if (!part && p.identity) {
      // A replaced session ("same identity joined again") is reported as an
      // update; if it came with a new sid, re-key the entry.
      for (const [sid, q] of this.participants) {
        if (q.identity === p.identity) {
          part = q;
          if (p.sid && p.sid !== sid) {
            this.participants.delete(sid);
            for (const link of this._links()) link.streams.delete(sid);
            this.participants.set(p.sid, part);
          }
          break;
        }
      }
    }
    if (!part) {
      // Unknown participant: treat as a join so the list stays complete.
      if (p.sid) this._onParticipantJoined(p);
      return;
    }
    for (const k of ['sid', 'identity', 'name', 'muted', 'server_muted', 'speaking', 'metadata']) {
      if (p[k] !== undefined) part[k] = p[k];
    }
    if (Array.isArray(p.tracks)) part.tracks = p.tracks.map((t) => ({ ...t }));
    if (part.isLocal) this.localParticipant = part;
    this._emit('participant-updated', { participant: copyParticipant(part) });
    this._emitParticipants();
  }

  _onParticipantLeft(msg) {
    let part = msg.sid && this.participants.get(msg.sid);
    let sid = msg.sid;
    if (!part && msg.identity) {
      for (const [s, q] of this.participants) {
        if (q.identity === msg.identity && !q.isLocal) { part = q; sid = s; break; }
      }
    }
    if (!part) return;
    this.participants.delete(sid);
    for (const link of this._links()) link.streams.delete(sid);
    if (this.speakers.delete(part.identity)) this._emitSpeaking(new Map());
    this._emit('participant-left', {
      participant: copyParticipant(part), sid, identity: part.identity, reason: msg.reason,
    });
    this._emitParticipants();
  }

  _onSpeaking(speakers) {
    const levels = new Map();
    for (const s of speakers) if (s && s.identity) levels.set(s.identity, s.level);
    this.speakers = new Set(levels.keys());
    for (const part of this.participants.values()) part.speaking = this.speakers.has(part.identity);
    this._emitSpeaking(levels);
    this._emitParticipants();
  }

  _emitSpeaking(levels) {
    this._emit('speaking', { speakers: new Set(this.speakers), levels });
  }

  _emitParticipants() {
    this._emit('participants', { participants: this.getParticipants() });
  }

  // ------------------------------------------------------------------ media

  /**
   * The link's RTCPeerConnection. Its state drives the client's once it is
   * the current link's (a move's new connection counts from `migrated`).
   */
  _createPeerConnection(link) {
    const pc = new RTCPeerConnection(this.rtcConfig);
    link.pc = pc;
    pc.onicecandidate = (ev) => this._onLocalCandidate(ev.candidate, link);
    pc.ontrack = (ev) => {
      if (this._e2ee && !this._e2eeAttached.has(ev.receiver)) {
        this._e2eeAttached.add(ev.receiver);
        this._e2ee.attachReceiver(ev.receiver, ev.track.kind);
      }
      this._onTrack(ev, link);
    };
    pc.onconnectionstatechange = () => {
      if (link.pc === pc && link === this._link) this._onConnectionState(pc);
    };
  }

  _onConnectionState(pc) {
    const s = pc.connectionState;
    clearTimeout(this._iceTimer);
    this._iceTimer = null;
    if (s === 'connected') {
      this._iceRestartWanted = false;
      if (!this._mediaWatch) this._watchMedia(pc);
      if (!this._reconnecting) this._setState('connected');
    } else if (s === 'disconnected') {
      // A changed network: give ICE a moment, then restart it.
      if (!this._reconnecting) this._setState('disconnected');
      this._iceTimer = setTimeout(() => this._restartIce(), ICE_RESTART_AFTER_MS);
    } else if (s === 'failed') {
      if (!this._reconnecting) this._setState('failed');
      this._restartIce();
    }
  }

  /**
   * Watches the bytes the transport receives: a path that dies (a new
   * address, a dead interface) shows as a stall long before the browser
   * calls the connection 'disconnected' (seconds more); restart at once.
   */
  _watchMedia(pc) {
    // lastChange: when the byte count last grew; lastFlowing: when it last
    // grew at MEDIA_FLOWING_BPS or more (over one poll). A stall counts only
    // right after media flowed: the trickle of a dying path, or a quiet
    // call's RTCP and consent alone, arm nothing.
    let last = null, lastT = 0, lastChange = 0, lastFlowing = -Infinity;
    this._mediaWatch = setInterval(async () => {
      if (this.pc !== pc || this._closed) return;
      let bytes = 0;
      try {
        (await pc.getStats()).forEach((r) => { if (r.type === 'transport') bytes += r.bytesReceived || 0; });
      } catch { return; }
      const now = performance.now();
      if (last === null || bytes > last) {
        if (last !== null && ((bytes - last) * 1000) / Math.max(1, now - lastT) >= MEDIA_FLOWING_BPS) {
          lastFlowing = now;
        }
        lastChange = now;
      }
      last = bytes;
      lastT = now;
      if (now - lastChange >= MEDIA_STALL_MS && lastChange - lastFlowing <= 4 * MEDIA_WATCH_MS
          && !this._iceRestartWanted) {
        lastFlowing = -Infinity;   // once per stall
        this._restartIce();
      }
    }, MEDIA_WATCH_MS);
  }

  /**
   * ICE restart (signaling.md §3): new local credentials in a client
   * re-offer; the tracks and their m-lines stay as they are. The session
   * is first resumed on a fresh socket (replacing the old one, which the
   * same network change may have killed without a word).
   */
  _restartIce() {
    const pc = this.pc;
    if (!pc || this._closed) return;
    this._iceRestartWanted = true;
    if (this._reconnecting) return;   // after the resume
    // While the room moves, the old connection only has to last until
    // `migrated` (the old node stops sending then, which looks like a
    // broken path); restart if the move is aborted instead.
    if (this._mig) return;
    if (!this._socketFresh && this._link.resumeToken) {
      // The path that broke may have carried the signaling socket too (a
      // new address kills every connection of the old one, silently):
      // take the session over on a fresh socket first, then restart.
      this._resume('network', true);
      return;
    }
    this._socketFresh = false;
    if (!this._isJoined()) return;
    this._emit('ice-restart', {});
    pc.restartIce();
    this._enqueue(() => this._negotiate()).catch((err) => {
      this._emitError(new SfuError(`ICE restart failed: ${err.message}`, { code: 'ice_failed' }));
    });
  }

  _onLocalCandidate(candidate, link) {
    if (!this.trickle) return;
    // An empty candidate string is some browsers' per-generation
    // end-of-candidates; the protocol's end marker is null.
    if (candidate && !candidate.candidate) return;
    const msg = { type: 'candidate', candidate: candidate ? candidate.toJSON() : null };
    if (!link.sdpSent) {
      link.localCandidates.push(msg);
      return;
    }
    try { this._send(msg, link.ws); } catch { /* socket gone */ }
  }

  _flushLocalCandidates(link) {
    link.sdpSent = true;
    const queued = link.localCandidates;
    link.localCandidates = [];
    for (const msg of queued) {
      try { this._send(msg, link.ws); } catch { /* socket gone */ }
    }
  }

  async _onRemoteCandidate(candidate, link) {
    const pc = link.pc;
    if (!pc) return;
    if (!pc.remoteDescription) {
      link.remoteCandidates.push(candidate);
      return;
    }
    await addCandidate(pc, candidate);
  }

  async _drainRemoteCandidates(link) {
    const pc = link.pc;
    const queued = link.remoteCandidates;
    link.remoteCandidates = [];
    for (const c of queued) await addCandidate(pc, c);
  }

  /**
   * Run fn after every SDP operation queued before it on the same link
   * (the current one unless told). Failures that belong to a connection
   * that has ended meanwhile are dropped.
   */
  _enqueue(fn, link = this._link) {
    const run = link.queue.then(async () => {
      const pc = link.pc;
      if (!pc) return undefined;
      try {
        return await fn();
      } catch (err) {
        if (link.pc !== pc) return undefined;
        throw err;
      }
    });
    link.queue = run.catch(() => {});
    return run;
  }

  /**
   * Our offer (signaling.md §1). Runs inside the queue and holds it until
   * the server replies, so a server offer that crosses ours is handled
   * after the reply. On `error` code `glare` (a server offer is outstanding)
   * we roll back; the server's offer, which was sent before the error and
   * is therefore already queued behind us, gets answered; then we offer
   * again (queued after it).
   *
   * The first offer of a link carries the local tracks: the microphone and
   * the camera (a stopped one too: its m-line stays published), or, for a
   * listener, one recvonly audio m-line. A move's new connection offers
   * the same tracks (the same MediaStreamTracks, so the same mute state).
   */
  async _negotiate(attempt = 0, link = this._link) {
    const pc = link.pc;
    if (!pc) return;
    if (!link.publishing) {
      link.publishing = true;
      this._offered = true;
      const camera = !!this._camTrack || this._camPublished;
      if (this._micTrack) {
        const tr = pc.addTransceiver(this._micTrack, { direction: 'sendonly', streams: [this._micStream] });
        // Chromium builds RED before the encoded transform: an encrypted
        // RED payload is nothing the SFU can forward, so plain Opus
        if (this._e2ee && tr.setCodecPreferences && globalThis.RTCRtpSender?.getCapabilities) {
          const codecs = (RTCRtpSender.getCapabilities('audio')?.codecs || [])
            .filter((c) => c.mimeType.toLowerCase() !== 'audio/red');
          try { tr.setCodecPreferences(codecs); } catch (err) { console.warn('sfu-client: no RED', err); }
        }
      }
      if (camera) this._addCameraTransceiver(link);
      if (this._scrTrack) await this._setScreenTransceiver(link, this._scrTrack);
      if (!this._micTrack && !camera && !this._scrTrack) {
        // Listener: no published track, but one recvonly m-line so the
        // offer creates the (bundled) transport.
        pc.addTransceiver('audio', { direction: 'recvonly' });
      }
    }
    this._e2eeSenders(pc);
    await pc.setLocalDescription(await pc.createOffer());
    if (!this.trickle) await waitForGathering(pc);

    let reply;
    try {
      const offer = { type: 'offer', sdp: pc.localDescription.sdp };
      const scr = link.scrTransceiver;
      if (scr && scr.mid != null && scr.direction !== 'inactive') offer.sources = { [scr.mid]: 'screen' };
      const replied = this._request(offer, REQUEST_TIMEOUT_MS, link.ws);
      this._flushLocalCandidates(link);   // trickle only after the offer itself
      reply = await replied;
    } catch (err) {
      if (err.code === 'glare' && link.pc === pc) {
        if (pc.signalingState === 'have-local-offer') {
          await pc.setLocalDescription({ type: 'rollback' });
        }
        if (attempt + 1 >= MAX_GLARE_RETRIES) {
          throw new SfuError(`offer: still glare after ${MAX_GLARE_RETRIES} attempts`, { code: 'glare' });
        }
        // Re-offer after the server's offer (already queued) is answered.
        this._enqueue(() => this._negotiate(attempt + 1, link), link)
          .catch((e) => this._linkError(link, e));
        return;
      }
      throw err;
    }
    if (link.pc !== pc) return;
    if (pc.signalingState !== 'have-local-offer') {
      // Our offer was rolled back meanwhile: this answer is stale; offer again.
      this._enqueue(() => this._negotiate(attempt + 1, link), link)
        .catch((e) => this._linkError(link, e));
      return;
    }
    await pc.setRemoteDescription({ type: 'answer', sdp: reply.sdp });
    await this._drainRemoteCandidates(link);
  }

  /**
   * The camera's sendonly transceiver on a link's connection: simulcast
   * encodings (low to high) or one, the preferred codec first, the
   * degradation preference. With the camera stopped, the m-line without a
   * track (a move's new connection publishes what the old one did).
   */
  _addCameraTransceiver(link) {
    const o = this._camOpts;
    const init = { direction: 'sendonly', streams: this._camStream ? [this._camStream] : [] };
    if (o.simulcast) init.sendEncodings = o.encodings.map((e) => ({ ...e }));
    else if (o.scalabilityMode) init.sendEncodings = [{ scalabilityMode: o.scalabilityMode }];
    const tr = link.pc.addTransceiver(this._camTrack || 'video', init);
    link.camTransceiver = tr;
    this._camPublished = true;
    const codec = this._e2ee ? 'VP8' : o.codec; // e2ee.js knows VP8's frame header
    if (codec && tr.setCodecPreferences && globalThis.RTCRtpReceiver?.getCapabilities) {
      const want = `video/${codec}`.toLowerCase();
      const codecs = RTCRtpReceiver.getCapabilities('video')?.codecs || [];
      const first = codecs.filter((c) => c.mimeType.toLowerCase() === want);
      if (first.length) {
        try {
          tr.setCodecPreferences([...first, ...codecs.filter((c) => !first.includes(c))]);
        } catch (err) {
          console.warn('sfu-client: setCodecPreferences', err);
        }
      }
    }
    if (o.degradationPreference) {
      const params = tr.sender.getParameters();
      params.degradationPreference = o.degradationPreference;
      tr.sender.setParameters(params).catch((err) => console.warn('sfu-client: degradationPreference', err));
    }
    return tr;
  }

  /**
   * The screen share's sendonly transceiver on a link's connection, made
   * at the first share and reused by later ones (a new track on the same
   * m-line, which the offer marks as the screen again).
   */
  async _setScreenTransceiver(link, track) {
    const tr = link.scrTransceiver;
    if (tr) {
      await tr.sender.replaceTrack(track);
      tr.direction = 'sendonly';
      return tr;
    }
    const o = this._scrOpts;
    const init = { direction: 'sendonly', streams: this._scrStream ? [this._scrStream] : [] };
    if (o && o.simulcast) init.sendEncodings = o.encodings.map((e) => ({ ...e }));
    link.scrTransceiver = link.pc.addTransceiver(track, init);
    return link.scrTransceiver;
  }

  /** A server offer (signaling.md §2): answer it, echoing its offer_id. */
  async _onServerOffer(msg, link) {
    const pc = link.pc;
    if (!pc) return;
    if (pc.signalingState === 'have-local-offer') {
      // Polite peer: the server keeps its offer, we drop ours.
      await pc.setLocalDescription({ type: 'rollback' });
    }
    try {
      await pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
    } catch (err) {
      throw new SfuError(`server offer ${msg.offer_id}: ${err.message}`, { code: 'bad_sdp', cause: err });
    }
    await this._drainRemoteCandidates(link);
    this._e2eeSenders(pc);
    await pc.setLocalDescription(await pc.createAnswer());
    if (!this.trickle) await waitForGathering(pc);
    this._send({ type: 'answer', offer_id: msg.offer_id, sdp: pc.localDescription.sdp }, link.ws);
    this._flushLocalCandidates(link);
  }

  /**
   * A remote track on a link's connection. On the current link it is
   * announced at once (`track`); on a move's new link it is kept, and
   * announced when the move completes (_completeMigration).
   */
  _onTrack(ev, link) {
    const track = ev.track;
    // The server sets a=msid:<participant sid> <track id>, so the stream id
    // is the publisher's sid. Fall back to reading the SDP by mid.
    let stream = ev.streams && ev.streams[0];
    const msid = msidForMid(link.pc, ev.transceiver && ev.transceiver.mid);
    const sid = (stream && stream.id) || msid.stream;
    const trackId = msid.track || track.id;
    const kind = track.kind;
    if (!stream) {
      stream = link.streams.get(sid) || new MediaStream();
      stream.addTrack(track);
    }
    if (sid) link.streams.set(sid, stream);

    const rec = { sid, kind, trackId, track, stream, transceiver: ev.transceiver,
      shown: false, detach: null };
    const ended = () => {
      rec.detach();
      link.tracks.delete(rec);
      if (rec.shown) this._emitTrackEnded(rec);
    };
    const onRemove = (e) => { if (e.track === track) ended(); };
    rec.detach = () => {
      track.removeEventListener('ended', ended);
      stream.removeEventListener('removetrack', onRemove);
    };
    track.addEventListener('ended', ended);
    stream.addEventListener('removetrack', onRemove);
    link.tracks.add(rec);
    if (link === this._link) this._announceTrack(rec, null);
  }

  /** `track` for a remote track; `replaces`: the track it takes over from (a move). */
  _announceTrack(rec, replaces) {
    rec.shown = true;
    const part = rec.sid ? this.participants.get(rec.sid) : undefined;
    this._emit('track', {
      sid: rec.sid, identity: part ? part.identity : undefined,
      participant: part ? copyParticipant(part) : null,
      kind: rec.kind, source: sourceOf(part, rec), trackId: rec.trackId, track: rec.track,
      stream: rec.stream, transceiver: rec.transceiver, replaces,
    });
  }

  _emitTrackEnded(rec) {
    const p = this.participants.get(rec.sid);
    this._emit('track-ended', {
      sid: rec.sid, identity: p ? p.identity : undefined, participant: p ? copyParticipant(p) : null,
      kind: rec.kind, source: sourceOf(p, rec), trackId: rec.trackId, track: rec.track,
      stream: rec.stream,
    });
  }

  // ----------------------------------------------------------------- events

  _setState(state, extra = {}) {
    if (this.state === state && state !== 'closed') return;
    if (this.state === 'closed' && state === 'closed') return;
    this.state = state;
    this._emit('connection-state', { state, ...extra });
  }

  _emitError(error) {
    this._emit('error', { error });
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

// ------------------------------------------------------------------ helpers

/**
 * What a remote video shows: the source its publisher's track list gives
 * it (remembered on the record, for when the list no longer has it), else
 * 'camera'; null for audio.
 */
function sourceOf(part, rec) {
  if (rec.kind !== 'video') return null;
  const t = part && part.tracks.find((x) => x.track_id === rec.trackId);
  if (t && t.source) rec.source = t.source;
  return rec.source || 'camera';
}

function normaliseParticipant(p, isLocal) {
  return {
    sid: p.sid,
    identity: p.identity,
    name: p.name ?? p.identity,
    muted: !!p.muted,
    server_muted: !!p.server_muted,
    speaking: !!p.speaking,
    tracks: Array.isArray(p.tracks) ? p.tracks.map((t) => ({ ...t })) : [],
    ...(p.metadata !== undefined ? { metadata: p.metadata } : {}),
    isLocal: !!isLocal,
  };
}

/**
 * A link: one signaling socket and the RTCPeerConnection negotiated over
 * it, with that connection's SDP state. A client has one; while its room
 * moves to another node it has a second, to the new node, until the move
 * completes (the second becomes the one) or is aborted.
 */
function newLink(wsUrl) {
  return {
    wsUrl,
    ws: null,
    pc: null,
    roomId: null,
    resumeToken: null,         // single-use, from welcome / resumed / migrate
    graceMs: 0,
    joined: false,             // the session is on this socket (welcome or resumed)
    reconnecting: false,       // a resume of this link is under way
    dead: false,               // ended: left, moved away from, or a move given up
    queue: Promise.resolve(),  // serialises this connection's SDP/ICE operations
    remoteCandidates: [],      // received before a remote description
    localCandidates: [],       // gathered before our SDP was sent
    sdpSent: false,
    publishing: false,         // the local tracks were added (first offer)
    camTransceiver: null,
    scrTransceiver: null,      // the screen share's, once shared
    streams: new Map(),        // sid -> MediaStream of the others' tracks
    tracks: new Set(),         // the remote tracks: {sid, kind, trackId, track, stream, ...}
    mutedSent: false,          // a move's link: the mute state the new node has
    t0: 0,                     // a move's link: when `migrate` came
  };
}

function trackKey(rec) {
  return `${rec.sid}|${rec.trackId}`;
}

function isOpen(ws) {
  return !!ws && ws.readyState === WebSocket.OPEN;
}

function copyParticipant(p) {
  return { ...p, tracks: p.tracks.map((t) => ({ ...t })) };
}

async function addCandidate(pc, candidate) {
  try {
    // null = end of candidates
    await pc.addIceCandidate(candidate || undefined);
  } catch (err) {
    console.warn('sfu-client: addIceCandidate failed', err, candidate);
  }
}

/**
 * The a=msid of the remote m-section with this mid: {stream, track}, the
 * publisher's participant sid and the server's track id (undefined when
 * absent). Chromium applies the description before it fires ontrack, so
 * remoteDescription is the one that introduced the track.
 */
function msidForMid(pc, mid) {
  const sdp = pc && pc.remoteDescription && pc.remoteDescription.sdp;
  if (!sdp || mid == null) return {};
  for (const section of sdp.split(/\r?\nm=/).slice(1)) {
    if (!new RegExp(`^a=mid:${escapeRe(mid)}\\s*$`, 'm').test(section)) continue;
    const m = /^a=msid:(\S+)(?:[ \t]+(\S+))?/m.exec(section)
      || /^a=ssrc:\d+ msid:(\S+)(?:[ \t]+(\S+))?/m.exec(section);
    if (!m) return {};
    return { stream: m[1] !== '-' ? m[1] : undefined, track: m[2] };
  }
  return {};
}

function escapeRe(s) {
  return String(s).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function waitForGathering(pc, timeoutMs = 5000) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState !== 'complete') return;
      pc.removeEventListener('icegatheringstatechange', done);
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      pc.removeEventListener('icegatheringstatechange', done);
      resolve();
    }, timeoutMs);
    pc.addEventListener('icegatheringstatechange', done);
  });
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

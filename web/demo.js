// demo.js — the sfud demo page (web/index.html), served by sfud at /web/.
//
// Token route (development only). The page gets its join token from the
// same origin:
//
//   POST /dev/join
//   Content-Type: application/json
//   {"room": "standup", "identity": "alice-3f9c0a", "name": "Alice"}
//
//   200/201 {"token": "eyJ…", "room_id": "rm_…", "ws_url": "ws://127.0.0.1:7880/v1/rtc"}
//   4xx/5xx {"error": {"code": "…", "message": "…"}}   (the API's error shape)
//
// sfud answers it only in development mode: it creates the room if no live
// room has that name, then mints a token (publish + subscribe) for the given
// identity, exactly like POST /v1/rooms + POST /v1/rooms/{id}/tokens but
// without the API key. A production deployment never exposes this route;
// its own backend mints tokens with the API key (docs/api.md) and hands them
// to SfuClient.join() directly.
//
// Video. "Join with my camera" (or the camera button during the call)
// publishes the camera, by default as three simulcast encodings; each
// participant with a camera gets a tile. A tile's quality menu sends
// `video_quality` for that participant's track: Auto lets the server pick
// (the best layer the connection carries), Low / Medium / High ask for that
// layer at most. A tile that is scrolled out of view, or the whole page
// when hidden, is paused (`paused: true`) so the server stops sending it.
//
// Screen share. "Share screen" publishes the screen (getDisplayMedia()) as
// a second video track; each screen share, ours and the others', gets a
// tile of its own (keyed "<sid>:screen") with its own quality menu, since
// the server chooses a layer per track.
//
// Moving. When the room moves to another node (docs/signaling.md, "Moving
// to another node"), SfuClient follows it by itself and hands the page the
// new node's tracks through the same `track` events (same sid and track
// id), so the audio elements and tiles switch to them and keep playing; the
// page only says where the call runs now.
//
// TURN. When sfud has TURN configured (docs/deploying.md), the welcome
// carries TURN servers and credentials and SfuClient uses them. Opening the
// page with `?relay=1` sends all media through TURN (iceTransportPolicy
// 'relay'), which shows whether the TURN server works from this network.

import { SfuClient, CLOSE_CODES } from './sfu-client.js';

const $ = (id) => document.getElementById(id);

const ui = {
  error: $('error'),
  errorText: $('error-text'),
  errorDismiss: $('error-dismiss'),
  joinView: $('join-view'),
  form: $('join-form'),
  roomInput: $('room-input'),
  nameInput: $('name-input'),
  micInput: $('mic-input'),
  cameraInput: $('camera-input'),
  simulcastInput: $('simulcast-input'),
  e2eeInput: $('e2ee-input'),
  formError: $('form-error'),
  joinButton: $('join-button'),
  callView: $('call-view'),
  moveNote: $('move-note'),
  roomHeading: $('room-heading'),
  roomName: $('room-name'),
  connState: $('conn-state'),
  micButton: $('mic-button'),
  micButtonText: $('mic-button-text'),
  micNote: $('mic-note'),
  cameraButton: $('camera-button'),
  cameraButtonText: $('camera-button-text'),
  screenButton: $('screen-button'),
  screenButtonText: $('screen-button-text'),
  cameraNote: $('camera-note'),
  videosHeading: $('videos-heading'),
  videos: $('videos'),
  leaveButton: $('leave-button'),
  participants: $('participants'),
  participantCount: $('participant-count'),
  audioSink: $('audio-sink'),
  audioUnlock: $('audio-unlock'),
  audioUnlockButton: $('audio-unlock-button'),
};

const ROOM_RE = /^[A-Za-z0-9_.@:-]{1,64}$/;
const STATE_TEXT = {
  new: 'Not connected',
  connecting: 'Connecting…',
  joined: 'Joined, connecting audio…',
  connected: 'Connected',
  disconnected: 'Connection interrupted…',
  failed: 'Audio connection failed',
  closed: 'Disconnected',
};

let client = null;
let leaving = false;
const audioEls = new Map();   // stream id (participant sid) -> <audio>
const tiles = new Map();      // sid (camera) or sid + ':screen' -> Tile (see video tiles below)
let lastParticipants = [];

// What each quality menu entry asks the server for (video_quality).
const QUALITY_REQUEST = {
  auto: { quality: 'high', maxHeight: 0 },
  low: { quality: 'low', maxHeight: 0 },
  medium: { quality: 'medium', maxHeight: 0 },
  high: { quality: 'high', maxHeight: 0 },
};
const NO_FRAME_MS = 2500;     // a tile with no new frame for this long shows "no video"

// ------------------------------------------------------------------- setup

function init() {
  const params = new URLSearchParams(location.search);
  ui.roomInput.value = params.get('room') || localStorage.getItem('sfu-demo.room') || '';
  ui.nameInput.value = localStorage.getItem('sfu-demo.name') || '';
  (ui.roomInput.value ? ui.nameInput : ui.roomInput).focus();

  ui.form.addEventListener('submit', onJoinSubmit);
  ui.micButton.addEventListener('click', onMicToggle);
  ui.cameraButton.addEventListener('click', onCameraToggle);
  ui.screenButton.addEventListener('click', onScreenToggle);
  ui.cameraInput.addEventListener('change', () => { ui.simulcastInput.disabled = !ui.cameraInput.checked; });
  ui.simulcastInput.disabled = !ui.cameraInput.checked;
  document.addEventListener('visibilitychange', () => { for (const t of tiles.values()) updatePause(t); });
  setInterval(checkFrames, 500);
  ui.leaveButton.addEventListener('click', onLeave);
  ui.errorDismiss.addEventListener('click', hideError);
  ui.audioUnlockButton.addEventListener('click', unlockAudio);
  window.addEventListener('pagehide', () => { if (client) client.leave(); });
}

// -------------------------------------------------------------------- join

async function onJoinSubmit(ev) {
  ev.preventDefault();
  hideError();
  const room = ui.roomInput.value.trim();
  const name = ui.nameInput.value.trim();
  const withMic = ui.micInput.checked;
  const withCamera = ui.cameraInput.checked;

  const problem = !ROOM_RE.test(room)
    ? ['room', 'Room name: 1–64 letters, digits or _ . @ : -']
    : !name ? ['name', 'Please enter your name.']
      : new TextEncoder().encode(name).length > 128 ? ['name', 'Your name is too long.'] : null;
  ui.roomInput.setAttribute('aria-invalid', String(problem?.[0] === 'room'));
  ui.nameInput.setAttribute('aria-invalid', String(problem?.[0] === 'name'));
  ui.formError.textContent = problem ? problem[1] : '';
  if (problem) {
    (problem[0] === 'room' ? ui.roomInput : ui.nameInput).focus();
    return;
  }
  localStorage.setItem('sfu-demo.room', room);
  localStorage.setItem('sfu-demo.name', name);

  setBusy(true);
  try {
    const grant = await fetchDevToken({ room, identity: makeIdentity(name), name });
    const relayOnly = new URLSearchParams(location.search).get('relay') === '1';
    client = new SfuClient({ wsUrl: grant.ws_url || defaultWsUrl(),
      rtcConfig: relayOnly ? { iceTransportPolicy: 'relay' } : {},
      e2ee: ui.e2eeInput.value || undefined });
    wireClient(client);
    if (withMic) {
      try {
        await client.publishMicrophone();
      } catch (err) {
        throw new Error(micErrorText(err), { cause: err });
      }
    }
    if (withCamera) {
      try {
        await client.publishCamera({ simulcast: ui.simulcastInput.checked });
      } catch (err) {
        throw new Error(cameraErrorText(err), { cause: err });
      }
    }
    showCall(room);
    const welcome = await client.join({ room: grant.room_id || room, token: grant.token });
    ui.roomName.textContent = welcome.room?.name || room;
    updateMicButton();
    updateCameraButton();
    updateScreenButton();
  } catch (err) {
    const c = client;
    client = null;
    if (c) await c.leave().catch(() => {});
    clearAudio();
    clearTiles();
    showJoin();
    showError(joinErrorText(err));
  } finally {
    setBusy(false);
  }
}

async function fetchDevToken(body) {
  let resp;
  try {
    resp = await fetch('/dev/join', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
  } catch (err) {
    throw new Error(`Could not reach the server (${err.message}).`);
  }
  let data = null;
  try { data = await resp.json(); } catch { /* not JSON */ }
  if (!resp.ok) {
    const msg = data?.error?.message || data?.error?.code || resp.statusText;
    const hint = resp.status === 404 ? ' Is sfud running in development mode?' : '';
    throw new Error(`Could not get a join token: HTTP ${resp.status} ${msg}.${hint}`);
  }
  if (!data || typeof data.token !== 'string') {
    throw new Error('Could not get a join token: the server answered without a token.');
  }
  return data;
}

/** identity: the name reduced to the allowed characters + a random suffix. */
function makeIdentity(name) {
  const slug = name.normalize('NFKD').replace(/[\u0300-\u036f]/g, '')
    .toLowerCase().replace(/[^a-z0-9_.@:-]+/g, '-').replace(/^-+|-+$/g, '')
    .slice(0, 40) || 'guest';
  const rnd = crypto.getRandomValues(new Uint8Array(3));
  return `${slug}-${[...rnd].map((b) => b.toString(16).padStart(2, '0')).join('')}`;
}

function defaultWsUrl() {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/rtc`;
}

function micErrorText(err) {
  if (!navigator.mediaDevices) {
    return 'Microphone access needs a secure page (https:// or http://localhost).';
  }
  switch (err && err.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'Microphone permission denied. Allow microphone access for this page, '
        + 'or untick “Join with my microphone” to listen only.';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'No microphone found. Connect one, or untick “Join with my microphone” to listen only.';
    case 'NotReadableError':
    case 'AbortError':
      return 'The microphone could not be opened (is another application using it?).';
    default:
      return `Could not open the microphone: ${err?.message || err}`;
  }
}

function cameraErrorText(err) {
  if (!navigator.mediaDevices) {
    return 'Camera access needs a secure page (https:// or http://localhost).';
  }
  switch (err && err.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'Camera permission denied. Allow camera access for this page, '
        + 'or untick “Join with my camera”.';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'No camera found. Connect one, or untick “Join with my camera”.';
    case 'NotReadableError':
    case 'AbortError':
      return 'The camera could not be opened (is another application using it?).';
    default:
      return `Could not start the camera: ${err?.message || err}`;
  }
}

function joinErrorText(err) {
  if (typeof err?.code === 'number') {
    const what = err.reason || CLOSE_CODES[err.code] || 'connection closed';
    return `The server refused to let you join: ${what} (close code ${err.code}).`;
  }
  return err?.message || String(err);
}

// ------------------------------------------------------------------ client

function wireClient(c) {
  c.addEventListener('connection-state', (e) => {
    if (c !== client) return;
    const { state } = e.detail;
    ui.connState.dataset.state = state;
    ui.connState.textContent = STATE_TEXT[state] || state;
  });
  c.addEventListener('participants', (e) => {
    if (c !== client) return;
    renderParticipants(e.detail.participants);
    renderTiles(e.detail.participants);
  });
  c.addEventListener('participant-updated', (e) => {
    if (c === client && e.detail.participant.isLocal) updateMicButton();
  });
  c.addEventListener('participant-left', (e) => {
    removeAudio(e.detail.sid);
    removeTile(e.detail.sid);
    removeTile(screenKey(e.detail.sid));
  });
  c.addEventListener('track', (e) => {
    if (c !== client) return;
    const { kind, source, stream, sid, track, trackId } = e.detail;
    const key = source === 'screen' ? screenKey(sid || stream.id) : sid || stream.id;
    if (kind === 'video') attachVideo(key, track, trackId);
    else attachAudio(stream, sid);
  });
  c.addEventListener('track-ended', (e) => {
    const { stream, sid, kind, source, track } = e.detail;
    if (kind === 'video') {
      const key = source === 'screen' ? screenKey(sid || stream.id) : sid || stream.id;
      const t = tiles.get(key);
      if (t && t.track === track) {
        if (source === 'screen') removeTile(key);   // a share that stopped goes
        else setTileTrack(t, null, t.trackId);
      }
      return;
    }
    if (!stream.getAudioTracks().some((t) => t.readyState === 'live')) removeAudio(sid || stream.id);
  });
  c.addEventListener('local-video', () => {
    if (c !== client) return;
    updateCameraButton();
    renderTiles(lastParticipants);
  });
  c.addEventListener('local-screen', () => {
    if (c !== client) return;
    updateScreenButton();
    renderTiles(lastParticipants);
  });
  c.addEventListener('migrating', () => {
    if (c === client) showMove('moving', 'Moving the call to another node…');
  });
  c.addEventListener('migrated', (e) => {
    if (c !== client) return;
    const node = nodeName(e.detail.wsUrl);
    showMove('moved', `Moved to node ${node}.`, node);
  });
  c.addEventListener('migrate-aborted', (e) => {
    if (c !== client) return;
    const why = e.detail.reason ? ` (${e.detail.reason})` : '';
    showMove('stayed', `The call could not move${why}; it stays on node ${nodeName(c.wsUrl)}.`);
  });
  c.addEventListener('error', (e) => {
    const err = e.detail.error;
    // Socket closes are reported by 'close' (or by join() while joining).
    if (c === client && typeof err?.code !== 'number') showError(err.message || String(err));
  });
  c.addEventListener('close', (e) => {
    // While joining, join() rejects and onJoinSubmit reports it.
    if (c !== client || leaving || !c.localParticipant) return;
    const { code, reason } = e.detail;
    client = null;
    clearAudio();
    clearTiles();
    showJoin();
    if (code !== 1000) {
      const what = reason || CLOSE_CODES[code] || 'connection closed';
      showError(`Disconnected from the room: ${what} (close code ${code}).`);
    }
  });
}

async function onMicToggle() {
  if (!client || !client.micTrack) return;
  const muted = !client.micMuted;
  ui.micButton.disabled = true;
  try {
    await client.setMicMuted(muted);
  } catch (err) {
    showError(`Could not ${muted ? 'mute' : 'unmute'}: ${err.message}`);
  } finally {
    ui.micButton.disabled = false;
    updateMicButton();
  }
}

async function onCameraToggle() {
  const c = client;
  if (!c) return;
  const on = !c.cameraTrack;
  ui.cameraButton.disabled = true;
  ui.cameraNote.textContent = on ? 'Starting your camera…' : '';
  try {
    if (on) await c.publishCamera({ simulcast: ui.simulcastInput.checked });
    else await c.stopCamera();
  } catch (err) {
    if (c === client) showError(on ? cameraErrorText(err) : `Could not stop the camera: ${err.message}`);
  } finally {
    if (c === client) updateCameraButton();
  }
}

async function onScreenToggle() {
  const c = client;
  if (!c) return;
  const on = !c.screenTrack;
  ui.screenButton.disabled = true;
  try {
    if (on) await c.startScreenShare();
    else await c.stopScreenShare();
  } catch (err) {
    // NotAllowedError: the user closed the browser's picker.
    if (c === client && err.name !== 'NotAllowedError') {
      showError(`Could not ${on ? 'share' : 'stop sharing'} the screen: ${err.message}`);
    }
  } finally {
    if (c === client) updateScreenButton();
  }
}

async function onLeave() {
  const c = client;
  if (!c) return;
  leaving = true;
  ui.leaveButton.disabled = true;
  try {
    await c.leave();
  } finally {
    leaving = false;
    client = null;
    ui.leaveButton.disabled = false;
    clearAudio();
    clearTiles();
    showJoin();
  }
}

// ------------------------------------------------------------------- audio

function attachAudio(stream, sid) {
  const key = sid || stream.id;
  let el = audioEls.get(key);
  if (!el) {
    el = document.createElement('audio');
    el.autoplay = true;
    el.dataset.sid = key;
    ui.audioSink.append(el);
    audioEls.set(key, el);
  }
  if (el.srcObject !== stream) el.srcObject = stream;
  el.play().catch((err) => {
    if (err.name === 'NotAllowedError') ui.audioUnlock.hidden = false;
  });
}

function unlockAudio() {
  ui.audioUnlock.hidden = true;
  for (const el of audioEls.values()) {
    el.play().catch(() => { ui.audioUnlock.hidden = false; });
  }
}

function removeAudio(key) {
  const el = audioEls.get(key);
  if (!el) return;
  el.srcObject = null;
  el.remove();
  audioEls.delete(key);
}

function clearAudio() {
  for (const key of [...audioEls.keys()]) removeAudio(key);
  ui.audioUnlock.hidden = true;
}

// ------------------------------------------------------------- video tiles
//
// A Tile is {sid (its key: the participant's sid, or "<sid>:screen"), el,
// video, label, select, status, track, trackId, quality, visible, paused,
// lastFrame, local}: one <li> in #videos with a <video>, the participant's
// name, and (for the others) a quality menu.

const tileObserver = 'IntersectionObserver' in window
  ? new IntersectionObserver((entries) => {
    for (const en of entries) {
      const t = tiles.get(en.target.dataset.sid);
      if (!t) continue;
      t.visible = en.isIntersecting;
      updatePause(t);
    }
  }, { rootMargin: '100px' })
  : null;

function screenKey(sid) { return `${sid}:screen`; }

/** A participant's published video of this source, from its track list. */
function videoOf(p, source) {
  return p.tracks.find((x) => x.kind === 'video' && (x.source || 'camera') === source);
}

/**
 * Tiles for: me while my camera is on or my screen shared, and everyone
 * publishing video -- a camera tile and a screen tile per participant.
 */
function renderTiles(list) {
  lastParticipants = list;
  const c = client;
  const want = new Map();   // key -> {p, source}
  for (const p of list) {
    if (p.isLocal ? !!(c && c.cameraTrack) : !!videoOf(p, 'camera') || (tiles.get(p.sid)?.track)) {
      want.set(p.sid, { p, source: 'camera' });
    }
    if (p.isLocal ? !!(c && c.screenTrack) : !!videoOf(p, 'screen')) {
      want.set(screenKey(p.sid), { p, source: 'screen' });
    }
  }
  for (const key of [...tiles.keys()]) if (!want.has(key)) removeTile(key);
  const sorted = [...want.entries()].sort(([ka, a], [kb, b]) => (b.p.isLocal - a.p.isLocal)
    || String(a.p.name).localeCompare(String(b.p.name)) || ka.localeCompare(kb));
  for (const [key, { p, source }] of sorted) {
    const t = tiles.get(key) || createTile(p, key);
    const name = p.name || p.identity;
    const who = p.isLocal ? `${name} (you)` : name;
    t.label.textContent = source === 'screen' ? `${who}: screen` : who;
    t.el.classList.toggle('speaking', !!p.speaking && source === 'camera');
    t.el.classList.toggle('screen', source === 'screen');
    if (p.isLocal) {
      const track = source === 'screen' ? c.screenTrack : c.cameraTrack;
      if (t.track !== track) setTileTrack(t, track, null);
    } else {
      const v = videoOf(p, source);
      if (v && v.track_id !== t.trackId) t.trackId = v.track_id;
      t.codec = v?.codec || t.codec;
    }
    ui.videos.append(t.el);   // keeps the sorted order
  }
  const any = tiles.size > 0;
  ui.videos.hidden = !any;
  ui.videosHeading.hidden = !any;
}

function createTile(p, key = p.sid) {
  const li = document.createElement('li');
  li.className = 'tile no-video';
  li.dataset.sid = key;
  const video = document.createElement('video');
  video.autoplay = true;
  video.muted = true;          // sound plays through the <audio> elements
  video.playsInline = true;
  const placeholder = document.createElement('span');
  placeholder.className = 'tile-avatar';
  placeholder.setAttribute('aria-hidden', 'true');
  placeholder.textContent = initials(p.name || p.identity);
  const bar = document.createElement('div');
  bar.className = 'tile-bar';
  const label = document.createElement('span');
  label.className = 'tile-name';
  const status = document.createElement('span');
  status.className = 'tile-status';
  bar.append(label, status);
  const t = { sid: key, el: li, video, label, status, select: null, track: null,
    trackId: null, codec: null, quality: 'auto', visible: true, paused: false,
    lastFrame: 0, local: !!p.isLocal };
  if (p.isLocal) {
    li.classList.add('local');
  } else {
    const select = document.createElement('select');
    select.className = 'tile-quality';
    select.setAttribute('aria-label', `Video quality for ${p.name || p.identity}`);
    for (const [value, text] of [['auto', 'Auto'], ['low', 'Low'], ['medium', 'Medium'], ['high', 'High']]) {
      select.append(new Option(text, value));
    }
    select.addEventListener('change', () => onQualityChange(t, select.value));
    bar.append(select);
    t.select = select;
  }
  li.append(video, placeholder, bar);
  const onFrame = () => {
    t.lastFrame = performance.now();
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(onFrame);
  };
  if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(onFrame);
  else video.addEventListener('timeupdate', onFrame);
  tiles.set(key, t);
  if (tileObserver && !t.local) tileObserver.observe(li);
  return t;
}

function setTileTrack(t, track, trackId) {
  t.track = track;
  if (trackId) t.trackId = trackId;
  t.video.srcObject = track ? new MediaStream([track]) : null;
  if (track) t.video.play().catch(() => { /* muted: autoplay is allowed */ });
  t.lastFrame = 0;
  checkFrames();
}

function attachVideo(key, track, trackId) {
  let t = tiles.get(key);
  if (!t) {
    const sid = key.endsWith(':screen') ? key.slice(0, -':screen'.length) : key;
    const p = client && client.participants.get(sid);
    t = createTile(p || { sid, identity: sid, name: sid }, key);
    ui.videos.append(t.el);
    ui.videos.hidden = ui.videosHeading.hidden = false;
  }
  setTileTrack(t, track, trackId);
  if (t.quality !== 'auto') onQualityChange(t, t.quality);
  updatePause(t, true);
}

async function onQualityChange(t, value) {
  t.quality = value;
  if (!client || !t.trackId) return;
  try {
    await client.setVideoQuality(t.trackId, QUALITY_REQUEST[value] || QUALITY_REQUEST.auto);
  } catch (err) {
    // not_found: the track went away meanwhile; the tile goes with it.
    if (err.code !== 'not_found' && client) showError(`Could not change the video quality: ${err.message}`);
  }
}

/** Pause a tile's video while it is out of view or the page is hidden. */
async function updatePause(t, force = false) {
  if (t.local || !t.trackId || !client) return;
  const paused = !(t.visible && document.visibilityState === 'visible');
  if (paused === t.paused && !force) return;
  t.paused = paused;
  t.el.classList.toggle('paused', paused);
  try {
    await client.setVideoQuality(t.trackId, { paused });
  } catch (err) {
    if (err.code !== 'not_found') console.warn('demo: pausing video', err);
  }
}

/** "No video" when a tile has shown no new frame for a while. */
function checkFrames() {
  const now = performance.now();
  for (const t of tiles.values()) {
    const live = !!t.track && t.track.readyState === 'live' && (t.local
      ? true : t.lastFrame > 0 && now - t.lastFrame < NO_FRAME_MS);
    t.el.classList.toggle('no-video', !live);
    t.status.textContent = t.paused ? 'paused' : live ? '' : 'no video';
  }
}

function removeTile(sid) {
  const t = tiles.get(sid);
  if (!t) return;
  if (tileObserver) tileObserver.unobserve(t.el);
  t.video.srcObject = null;
  t.el.remove();
  tiles.delete(sid);
  if (!tiles.size) ui.videos.hidden = ui.videosHeading.hidden = true;
}

function clearTiles() {
  for (const sid of [...tiles.keys()]) removeTile(sid);
  lastParticipants = [];
}

// ---------------------------------------------------------------------- UI

function renderParticipants(list) {
  const sorted = [...list].sort((a, b) => (b.isLocal - a.isLocal)
    || String(a.name).localeCompare(String(b.name)));
  ui.participantCount.textContent = `(${sorted.length})`;
  const items = sorted.map((p) => {
    const li = document.createElement('li');
    li.className = 'participant';
    li.dataset.sid = p.sid;
    li.dataset.identity = p.identity;
    li.classList.toggle('speaking', !!p.speaking);
    li.classList.toggle('muted', !!(p.muted || p.server_muted));

    const avatar = document.createElement('span');
    avatar.className = 'avatar';
    avatar.setAttribute('aria-hidden', 'true');
    avatar.textContent = initials(p.name || p.identity);

    const label = document.createElement('span');
    label.className = 'p-name';
    label.textContent = p.name || p.identity;
    if (p.isLocal) {
      const you = document.createElement('span');
      you.className = 'you';
      you.textContent = ' (you)';
      label.append(you);
    }

    const hasAudio = p.isLocal ? !!(client && client.micTrack)
      : p.tracks.some((t) => t.kind === 'audio') || p.tracks.length === 0;
    const mic = micIcon(p, hasAudio);

    const speaking = document.createElement('span');
    speaking.className = 'speaking-label';
    if (p.speaking) {
      const sep = document.createElement('span');
      sep.className = 'visually-hidden';
      sep.textContent = ', ';
      speaking.append(sep, 'speaking');
    }

    li.append(avatar, label, speaking, mic);
    return li;
  });
  ui.participants.replaceChildren(...items);
}

function micIcon(p, hasAudio) {
  const wrap = document.createElement('span');
  wrap.className = 'mic-state';
  let text;
  let off = true;
  if (p.server_muted) text = 'muted by a moderator';
  else if (!hasAudio) text = 'listening only';
  else if (p.muted) text = 'microphone off';
  else { text = 'microphone on'; off = false; }
  wrap.dataset.state = off ? 'off' : 'on';
  wrap.title = text;
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('class', 'icon');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  const use = document.createElementNS('http://www.w3.org/2000/svg', 'use');
  use.setAttribute('href', off ? '#icon-mic-off' : '#icon-mic');
  svg.append(use);
  const sr = document.createElement('span');
  sr.className = 'visually-hidden';
  sr.textContent = `, ${text}`;
  wrap.append(svg, sr);
  return wrap;
}

function initials(name) {
  const parts = String(name).trim().split(/\s+/).filter(Boolean);
  const first = (w) => [...w][0] || '';
  const s = parts.length > 1 ? first(parts[0]) + first(parts[parts.length - 1]) : first(parts[0] || '?');
  return s.toUpperCase();
}

function updateMicButton() {
  const c = client;
  const hasMic = !!(c && c.micTrack);
  const muted = hasMic && c.micMuted;
  ui.micButton.disabled = !hasMic;
  ui.micButton.classList.toggle('is-muted', !hasMic || muted);
  ui.micButton.querySelector('use').setAttribute('href', hasMic && !muted ? '#icon-mic' : '#icon-mic-off');
  ui.micButtonText.textContent = !hasMic ? 'Listening only' : muted ? 'Unmute microphone' : 'Mute microphone';
  const me = c && c.localParticipant;
  ui.micNote.textContent = me && me.server_muted
    ? 'A moderator muted you: the others cannot hear you.'
    : muted ? 'Your microphone is off.' : '';
}

function updateScreenButton() {
  const c = client;
  const on = !!(c && c.screenTrack);
  ui.screenButton.disabled = !c || !c.localParticipant || !navigator.mediaDevices?.getDisplayMedia;
  ui.screenButton.classList.toggle('is-on', on);
  ui.screenButtonText.textContent = on ? 'Stop sharing' : 'Share screen';
}

function updateCameraButton() {
  const c = client;
  const on = !!(c && c.cameraTrack);
  ui.cameraButton.disabled = !c || !c.localParticipant;
  ui.cameraButton.classList.toggle('is-off', !on);
  ui.cameraButton.querySelector('use').setAttribute('href', on ? '#icon-cam' : '#icon-cam-off');
  ui.cameraButtonText.textContent = on ? 'Turn camera off' : 'Turn camera on';
  ui.cameraNote.textContent = '';
}

function showCall(room) {
  ui.roomName.textContent = room;
  ui.moveNote.textContent = '';
  ui.moveNote.hidden = true;
  delete ui.moveNote.dataset.state;
  delete ui.moveNote.dataset.node;
  ui.participants.replaceChildren();
  ui.participantCount.textContent = '';
  ui.connState.dataset.state = 'connecting';
  ui.connState.textContent = STATE_TEXT.connecting;
  ui.joinView.hidden = true;
  ui.callView.hidden = false;
  updateMicButton();
  updateCameraButton();
  ui.roomHeading.tabIndex = -1;
  ui.roomHeading.focus();
}

function showJoin() {
  ui.callView.hidden = true;
  ui.joinView.hidden = false;
  ui.connState.dataset.state = 'new';
  ui.connState.textContent = STATE_TEXT.new;
  ui.joinButton.focus();
}

/** The node a signaling URL names: its host and port. */
function nodeName(wsUrl) {
  try {
    return new URL(wsUrl).host;
  } catch {
    return String(wsUrl);
  }
}

/** The line that says where the call runs after a move (empty: no move). */
function showMove(state, text, node) {
  ui.moveNote.hidden = false;
  ui.moveNote.dataset.state = state;
  ui.moveNote.textContent = text;
  if (node) ui.moveNote.dataset.node = node;
}

function setBusy(busy) {
  ui.form.setAttribute('aria-busy', String(busy));
  ui.joinButton.disabled = busy;
  ui.joinButton.textContent = busy ? 'Joining…' : 'Join';
  for (const el of ui.form.elements) if (el !== ui.joinButton) el.disabled = busy;
}

function showError(text) {
  ui.errorText.textContent = text;
  ui.error.hidden = false;
}

function hideError() {
  ui.error.hidden = true;
  ui.errorText.textContent = '';
}

init();

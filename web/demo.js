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
  formError: $('form-error'),
  joinButton: $('join-button'),
  callView: $('call-view'),
  roomHeading: $('room-heading'),
  roomName: $('room-name'),
  connState: $('conn-state'),
  micButton: $('mic-button'),
  micButtonText: $('mic-button-text'),
  micNote: $('mic-note'),
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

// ------------------------------------------------------------------- setup

function init() {
  const params = new URLSearchParams(location.search);
  ui.roomInput.value = params.get('room') || localStorage.getItem('sfu-demo.room') || '';
  ui.nameInput.value = localStorage.getItem('sfu-demo.name') || '';
  (ui.roomInput.value ? ui.nameInput : ui.roomInput).focus();

  ui.form.addEventListener('submit', onJoinSubmit);
  ui.micButton.addEventListener('click', onMicToggle);
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
    client = new SfuClient({ wsUrl: grant.ws_url || defaultWsUrl() });
    wireClient(client);
    if (withMic) {
      try {
        await client.publishMicrophone();
      } catch (err) {
        throw new Error(micErrorText(err), { cause: err });
      }
    }
    showCall(room);
    const welcome = await client.join({ room: grant.room_id || room, token: grant.token });
    ui.roomName.textContent = welcome.room?.name || room;
    updateMicButton();
  } catch (err) {
    const c = client;
    client = null;
    if (c) await c.leave().catch(() => {});
    clearAudio();
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
    if (c === client) renderParticipants(e.detail.participants);
  });
  c.addEventListener('participant-updated', (e) => {
    if (c === client && e.detail.participant.isLocal) updateMicButton();
  });
  c.addEventListener('participant-left', (e) => removeAudio(e.detail.sid));
  c.addEventListener('track', (e) => {
    if (c === client) attachAudio(e.detail.stream, e.detail.sid);
  });
  c.addEventListener('track-ended', (e) => {
    const { stream, sid } = e.detail;
    if (!stream.getTracks().some((t) => t.readyState === 'live')) removeAudio(sid || stream.id);
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

function showCall(room) {
  ui.roomName.textContent = room;
  ui.participants.replaceChildren();
  ui.participantCount.textContent = '';
  ui.connState.dataset.state = 'connecting';
  ui.connState.textContent = STATE_TEXT.connecting;
  ui.joinView.hidden = true;
  ui.callView.hidden = false;
  updateMicButton();
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

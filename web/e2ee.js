// e2ee.js -- end-to-end encryption of a call's media in the browser, with
// insertable streams (RTCRtpSender/RTCRtpReceiver.createEncodedStreams()),
// under a key derived from a passphrase the users share and the server
// never sees. docs/e2ee.md says what the SFU can and cannot see.
//
// Each encoded frame becomes
//
//   [clear header | AES-GCM-128(payload, aad = header) | IV (12) | 12]
//
// The header stays in the clear so that the SFU still finds keyframes and
// picture sizes and can switch simulcast layers: the first 10 bytes of a
// VP8 keyframe (frame tag, start code, size), 3 of a VP8 delta frame (the
// frame tag), 1 of an Opus frame (the TOC byte). The RTP payload
// descriptors the SFU reads are written by the packetizer after this
// transform and are not encrypted at all. Only VP8 and Opus are supported:
// other codecs keep other things at the start of a frame.
//
// The key: PBKDF2-SHA-256 (100,000 rounds) of the passphrase, salted with
// the room id, as an AES-GCM 128-bit key. A frame that does not decrypt
// (another key, or not encrypted) is dropped: the decoder sees nothing.

const IV_LEN = 12;
const TAG_LEN = 16;

/** The room's media key from a passphrase (CryptoKey, AES-GCM). */
export async function deriveKey(passphrase, roomId) {
  const enc = new TextEncoder();
  const base = await crypto.subtle.importKey('raw', enc.encode(passphrase), 'PBKDF2', false,
    ['deriveKey']);
  return crypto.subtle.deriveKey(
    { name: 'PBKDF2', salt: enc.encode('sfu-e2ee:' + roomId), iterations: 100000, hash: 'SHA-256' },
    base, { name: 'AES-GCM', length: 128 }, false, ['encrypt', 'decrypt']);
}

/** Bytes left in the clear at the start of a frame of `kind`. */
function clearBytes(kind, frame) {
  if (kind === 'audio') return 1;
  return frame.type === 'key' ? 10 : 3;
}

/**
 * The encryption of one client: its key (null until setPassphrase() is
 * done: frames before are dropped, counted `unkeyed`) and its counters,
 * applied to the encoded streams of each sender and receiver.
 */
export class E2ee {
  constructor() {
    this.key = null;
    this.stats = { encrypted: 0, decrypted: 0, failed: 0, unkeyed: 0 };
  }

  async setPassphrase(passphrase, roomId) {
    this.key = await deriveKey(passphrase, roomId);
  }

  /** Encrypts what `sender` (of `kind`) sends. */
  attachSender(sender, kind) {
    this._pipe(sender.createEncodedStreams(), (frame, out) => this._encrypt(kind, frame, out));
  }

  /** Decrypts what `receiver` (of `kind`) gets. */
  attachReceiver(receiver, kind) {
    this._pipe(receiver.createEncodedStreams(), (frame, out) => this._decrypt(kind, frame, out));
  }

  _pipe({ readable, writable }, fn) {
    readable.pipeThrough(new TransformStream({ transform: fn })).pipeTo(writable)
      .catch((err) => console.warn('e2ee: stream ended', err));
  }

  async _encrypt(kind, frame, out) {
    if (!this.key) {
      this.stats.unkeyed++;
      return;
    }
    const data = new Uint8Array(frame.data);
    const n = Math.min(clearBytes(kind, frame), data.byteLength);
    const iv = crypto.getRandomValues(new Uint8Array(IV_LEN));
    const ct = new Uint8Array(await crypto.subtle.encrypt(
      { name: 'AES-GCM', iv, additionalData: data.subarray(0, n) }, this.key, data.subarray(n)));
    const buf = new Uint8Array(n + ct.byteLength + IV_LEN + 1);
    buf.set(data.subarray(0, n), 0);
    buf.set(ct, n);
    buf.set(iv, n + ct.byteLength);
    buf[buf.byteLength - 1] = IV_LEN;
    frame.data = buf.buffer;
    this.stats.encrypted++;
    out.enqueue(frame);
  }

  async _decrypt(kind, frame, out) {
    const data = new Uint8Array(frame.data);
    const len = data.byteLength;
    const n = clearBytes(kind, frame);
    if (!this.key || len < n + TAG_LEN + IV_LEN + 1 || data[len - 1] !== IV_LEN) {
      this.stats[this.key ? 'failed' : 'unkeyed']++;
      return;
    }
    const iv = data.subarray(len - 1 - IV_LEN, len - 1);
    try {
      const pt = new Uint8Array(await crypto.subtle.decrypt(
        { name: 'AES-GCM', iv, additionalData: data.subarray(0, n) }, this.key,
        data.subarray(n, len - 1 - IV_LEN)));
      const buf = new Uint8Array(n + pt.byteLength);
      buf.set(data.subarray(0, n), 0);
      buf.set(pt, n);
      frame.data = buf.buffer;
      this.stats.decrypted++;
      out.enqueue(frame);
    } catch (err) {
      this.stats.failed++; // another key: dropped, never decoded
    }
  }
}

"""A scriptable WebRTC participant for integration tests, built on aiortc.

It speaks the client protocol of docs/signaling.md over a WebSocket, publishes
a sine tone of its own frequency (so a receiver can tell *who* it hears), and
records every decoded frame it receives, per source, for analysis.

Runs on Debian's interpreter: ``/usr/bin/python3`` with ``python3-aiortc``
(1.4), ``python3-av``, ``python3-numpy`` and ``python3-websockets`` (10.4).

Typical use in a test (see sfutest.py for starting sfud and minting tokens)::

    from aiortc_peer import Peer

    async def scenario(ws_url, room_id, tok_a, tok_b):
        async with Peer(ws_url, room_id, tok_a, "alice", freq=440) as alice, \\
                   Peer(ws_url, room_id, tok_b, "bob", freq=660) as bob:
            await alice.join()                 # welcome + offer/answer done
            await bob.join()
            await alice.wait_connected()
            # wait until alice hears bob's 660 Hz in the last second of audio
            await alice.wait_until(lambda: alice.tone_power("bob", 660, 1.0) > 0.01)
            assert alice.tone_power("bob", 440, 1.0) < 1e-4   # not her own tone
            await bob.mute(True)               # bob now sends silence
            await alice.wait_event("participant_updated",
                                   lambda m: m["participant"]["identity"] == "bob")
            print(alice.received_by_source(), alice.join_to_first_audio_s)

    asyncio.run(scenario(...))

Units of the analysis: samples are normalised to full scale (s16 / 32768).
``audio_energy`` is the mean square of the samples; ``tone_power`` is the mean
square of the sinusoidal component at one frequency (a full-scale sine gives
0.5, the 0.3-amplitude tone a Peer publishes gives 0.045). So
``tone_power / audio_energy`` is the fraction of the energy in that tone.
Windows (``last_s``) are in wall-clock time of arrival: when a source stops
arriving, its recent window empties and its power drops to 0.

What aiortc 1.4 does with ``urn:ietf:params:rtp-hdrext:ssrc-audio-level``
(RFC 6464), read from aiortc/rtcrtpsender.py and aiortc/rtp.py:

* It always offers it for audio (extmap id 2, next to sdes:mid id 1).
* When the extension is in the negotiated parameters (i.e. the answer kept
  it), ``RTCRtpSender._next_encoded_frame`` computes, for *every* frame the
  track returns, ``rtp.compute_audio_level_dbov(frame)`` (RFC 6465 appendix A:
  RMS over the raw frame -> dBov, clamped to -127..0, rounded) and every RTP
  packet carries ``audio_level = (False, -dBov)``: a real level value, but the
  V (voice activity) bit is *always 0*. An SFU must use the level, not the V
  bit. Our 0.3-amplitude sine is -13.5 dBov, sent as level 13; digital
  silence (muted track) is sent as level 127.
* The level is computed on ``frame.planes[0]`` as s16, before the Opus
  encoder, which is right for the s16 frames this module produces.
* If the extmap is not negotiated the sender's HeaderExtensionsMap has no id
  for it and the extension is not written at all. The sender configures its
  map once, from the first negotiated parameters; later renegotiations do not
  change it.
* The receiving side parses the extension but never exposes it.
* Quirk: aiortc takes a transceiver's extensions from the last *remote*
  description, and createOffer() resets them to everything it supports. So
  after a server re-offer that lists ssrc-audio-level, aiortc's sender uses
  it even though aiortc's own answer left it out (seen with an aiortc
  "server" in the self-test) -- if the sender starts after that re-offer.

``send_audio_level=False`` therefore strips that extmap line from every SDP
this peer sends (offer and answers) *and* from every server SDP before aiortc
applies it: no packet then carries the extension, and the SFU has to decode
Opus to tell whether this participant speaks.
"""
import asyncio
import collections
import fractions
import itertools
import json
import logging
import re
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

import aioice.ice
import av
import websockets
from aiortc import (RTCConfiguration, RTCIceServer, RTCPeerConnection,
                    RTCSessionDescription, MediaStreamTrack)
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.sdp import candidate_from_sdp

log = logging.getLogger("aiortc_peer")

SAMPLE_RATE = 48000
PTIME = 0.020
SAMPLES_PER_FRAME = int(SAMPLE_RATE * PTIME)      # 960
TONE_AMPLITUDE = 0.3                              # of full scale
AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
SILENCE_RMS = 0.003          # a frame quieter than -50 dBFS RMS is "silent"
DEFAULT_TONE_THRESHOLD = 0.005   # tone_power of a 0.1-amplitude sine
MAX_WS_MESSAGE = 64 * 1024       # docs/signaling.md: at most 64 KiB a frame


# --------------------------------------------------------------------------
# Errors


class PeerError(Exception):
    """Something went wrong talking to the server."""


class PeerClosed(PeerError):
    """The WebSocket is closed; carries the close code and reason."""

    def __init__(self, code, reason, what="WebSocket closed"):
        super().__init__(f"{what}: close code {code}, reason {reason!r}")
        self.code = code
        self.reason = reason


class JoinRejected(PeerClosed):
    """The server closed the socket instead of sending ``welcome``."""


class ServerError(PeerError):
    """The server replied ``error`` to a request."""

    def __init__(self, msg):
        super().__init__(f"server error {msg.get('code')!r}: {msg.get('message')!r}"
                         f" (reply to id {msg.get('id')!r})")
        self.code = msg.get("code")
        self.msg = msg


# --------------------------------------------------------------------------
# Publishing: a sine tone track


class SineTrack(MediaStreamTrack):
    """An audio track producing a continuous sine: 48 kHz s16 mono, 20 ms frames.

    Paced in real time like aiortc's AudioStreamTrack: the first frame is
    returned at once, frame n at start + n * 20 ms. ``paced=False`` returns
    frames as fast as they are asked for (offline tests). While ``muted`` the
    track returns digital silence and pts keeps advancing.
    """

    kind = "audio"

    def __init__(self, freq: float, amplitude: float = TONE_AMPLITUDE,
                 sample_rate: int = SAMPLE_RATE, ptime: float = PTIME,
                 paced: bool = True):
        super().__init__()
        self.freq = float(freq)
        self.amplitude = amplitude
        self.sample_rate = sample_rate
        self.samples_per_frame = int(round(sample_rate * ptime))
        self.paced = paced
        self.muted = False
        self.frames_sent = 0
        self._time_base = fractions.Fraction(1, sample_rate)
        self._start: Optional[float] = None
        self._pts = 0          # index of the next frame's first sample

    def samples_at(self, start: int, count: int) -> np.ndarray:
        """The tone's s16 samples [start, start + count) of the stream."""
        n = np.arange(start, start + count, dtype=np.float64)
        x = self.amplitude * np.sin(2 * np.pi * self.freq * n / self.sample_rate)
        return np.round(x * 32767).astype(np.int16)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        elif self.paced:
            wait = self._start + self._pts / self.sample_rate - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)

        if self.muted:
            samples = np.zeros(self.samples_per_frame, dtype=np.int16)
        else:
            samples = self.samples_at(self._pts, self.samples_per_frame)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1),
                                           format="s16", layout="mono")
        frame.sample_rate = self.sample_rate
        frame.pts = self._pts
        frame.time_base = self._time_base
        self._pts += self.samples_per_frame
        self.frames_sent += 1
        return frame


# --------------------------------------------------------------------------
# Analysis


def frame_to_mono(frame: av.AudioFrame) -> np.ndarray:
    """Decoded frame -> mono s16 samples (channels averaged)."""
    arr = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if frame.format.is_planar:                     # shape (channels, samples)
        mono = arr.astype(np.float64).mean(axis=0)
    else:                                          # (1, samples*channels)
        mono = arr.reshape(-1, channels).astype(np.float64).mean(axis=1)
    if frame.format.name.startswith("flt") or frame.format.name.startswith("dbl"):
        mono = mono * 32768.0
    return np.clip(np.round(mono), -32768, 32767).astype(np.int16)


def tone_power(samples: np.ndarray, freq: float, rate: int = SAMPLE_RATE,
               block: int = 4800) -> float:
    """Mean power of the ``freq`` component of ``samples`` (s16 or float FS).

    The signal is cut into blocks of ``block`` samples (100 ms at 48 kHz,
    most recent kept), each Hann-windowed and evaluated at exactly ``freq``
    (a single-bin DFT, i.e. what Goertzel computes). The per-block amplitude
    estimate A = 2|X| / sum(w) is turned into the power A^2/2 and averaged
    over blocks, so a tone present half the time gives half its power.
    Hann sidelobes make tones 100+ Hz apart independent of each other.
    """
    x = np.asarray(samples)
    if x.dtype == np.int16:
        x = x.astype(np.float64) / 32768.0
    if len(x) < 480:                   # under 10 ms: nothing meaningful
        return 0.0
    if len(x) < block:
        block = len(x)
    nblocks = len(x) // block
    x = x[len(x) - nblocks * block:].reshape(nblocks, block)
    w = np.hanning(block)
    e = np.exp(-2j * np.pi * freq * np.arange(block) / rate)
    amp = 2.0 * np.abs((x * w) @ e) / w.sum()
    return float(np.mean(amp * amp / 2.0))


def energy(samples: np.ndarray) -> float:
    """Mean square of the samples, full scale = 1.0."""
    x = np.asarray(samples)
    if len(x) == 0:
        return 0.0
    if x.dtype == np.int16:
        x = x.astype(np.float64) / 32768.0
    return float(np.mean(x * x))


class AudioSource:
    """What arrived on one received m-line: counters plus a rolling buffer.

    ``sid``/``track_id`` come from the m-line's ``a=msid`` in the remote SDP;
    the owning Peer resolves sid -> identity.
    """

    def __init__(self, mid: Optional[str], sid: Optional[str] = None,
                 track_id: Optional[str] = None, keep_s: float = 10.0):
        self.mid = mid
        self.sid = sid
        self.track_id = track_id
        self.keep_s = keep_s
        self.rate = SAMPLE_RATE
        self.frames = 0
        self.samples = 0
        self.nonsilent_frames = 0
        self.pts_gaps = 0              # pts discontinuities (lost packets)
        self.first_frame_t: Optional[float] = None
        self.last_frame_t: Optional[float] = None
        self.first_audio_t: Optional[float] = None   # first non-silent frame
        self.last_audio_t: Optional[float] = None
        self.ended = False
        self._next_pts: Optional[int] = None
        self._buf: collections.deque = collections.deque()  # (t, int16 array)
        self._buf_samples = 0

    def add_frame(self, frame: av.AudioFrame, t: Optional[float] = None) -> bool:
        """Record one decoded frame; returns True if it was not silent."""
        if self._next_pts is not None and frame.pts is not None \
                and frame.pts != self._next_pts:
            self.pts_gaps += 1
        if frame.pts is not None:
            self._next_pts = frame.pts + frame.samples
        self.rate = frame.sample_rate or self.rate
        return self.add_samples(frame_to_mono(frame), t)

    def add_samples(self, mono: np.ndarray, t: Optional[float] = None) -> bool:
        """Record mono s16 samples that arrived at monotonic time ``t``."""
        t = time.monotonic() if t is None else t
        mono = np.asarray(mono, dtype=np.int16)
        self.frames += 1
        self.samples += len(mono)
        if self.first_frame_t is None:
            self.first_frame_t = t
        self.last_frame_t = t
        nonsilent = energy(mono) > SILENCE_RMS ** 2
        if nonsilent:
            self.nonsilent_frames += 1
            if self.first_audio_t is None:
                self.first_audio_t = t
            self.last_audio_t = t
        self._buf.append((t, mono))
        self._buf_samples += len(mono)
        # keep keep_s of arrival time, and never much more than keep_s of audio
        limit = int(self.keep_s * self.rate * 1.5)
        while self._buf and (self._buf[0][0] < t - self.keep_s
                             or self._buf_samples - len(self._buf[0][1]) >= limit):
            self._buf_samples -= len(self._buf.popleft()[1])
        return nonsilent

    def window(self, last_s: float, now: Optional[float] = None) -> np.ndarray:
        """Samples that arrived in the last ``last_s`` seconds (at most
        last_s worth of audio, the most recent)."""
        now = time.monotonic() if now is None else now
        parts = [s for (t, s) in self._buf if t >= now - last_s]
        if not parts:
            return np.zeros(0, dtype=np.int16)
        x = np.concatenate(parts)
        return x[-int(last_s * self.rate):]

    def tone_power(self, freq: float, last_s: float = 5.0,
                   now: Optional[float] = None) -> float:
        return tone_power(self.window(last_s, now), freq, self.rate)

    def energy(self, last_s: float = 5.0, now: Optional[float] = None) -> float:
        return energy(self.window(last_s, now))

    def summary(self) -> Dict[str, Any]:
        return {"mid": self.mid, "sid": self.sid, "track_id": self.track_id,
                "frames": self.frames, "samples": self.samples,
                "seconds": self.samples / self.rate,
                "nonsilent_frames": self.nonsilent_frames,
                "pts_gaps": self.pts_gaps, "ended": self.ended,
                "first_frame_t": self.first_frame_t,
                "last_frame_t": self.last_frame_t,
                "first_audio_t": self.first_audio_t,
                "last_audio_t": self.last_audio_t}


# --------------------------------------------------------------------------
# SDP helpers


def strip_audio_level(sdp: str) -> str:
    """Remove the ssrc-audio-level extmap line(s), leaving every other byte."""
    lines = sdp.splitlines(keepends=True)
    pat = re.compile(r"^a=extmap:\d+(/\w+)?\s+" + re.escape(AUDIO_LEVEL_URI) + r"\s*$")
    return "".join(l for l in lines if not pat.match(l.rstrip("\r\n")))


def parse_mlines(sdp: str) -> List[Dict[str, Any]]:
    """Per m-line: index, kind, port, mid, direction, msid (sid, track id), ssrcs."""
    out: List[Dict[str, Any]] = []
    cur: Optional[Dict[str, Any]] = None
    for line in sdp.splitlines():
        if line.startswith("m="):
            bits = line[2:].split()
            cur = {"index": len(out), "kind": bits[0], "port": int(bits[1]),
                   "mid": None, "direction": "sendrecv", "sid": None,
                   "track_id": None, "ssrcs": []}
            out.append(cur)
        elif cur is None or not line.startswith("a="):
            continue
        elif line.startswith("a=mid:"):
            cur["mid"] = line[6:].strip()
        elif line[2:] in ("sendrecv", "sendonly", "recvonly", "inactive"):
            cur["direction"] = line[2:]
        elif line.startswith("a=msid:"):
            bits = line[7:].split()
            cur["sid"] = bits[0]
            cur["track_id"] = bits[1] if len(bits) > 1 else None
        elif line.startswith("a=ssrc:"):
            m = re.match(r"a=ssrc:(\d+)(?:\s+(\S+?)(?::(.*))?)?$", line)
            if m:
                ssrc = int(m.group(1))
                if ssrc not in cur["ssrcs"]:
                    cur["ssrcs"].append(ssrc)
                if m.group(2) == "msid" and m.group(3) and cur["sid"] is None:
                    bits = m.group(3).split()
                    cur["sid"] = bits[0]
                    cur["track_id"] = bits[1] if len(bits) > 1 else None
    return out


def turn_kind(url: str) -> str:
    """"udp", "tcp" or "tls": how a TURN URL reaches its server (RFC 7065:
    turn: is UDP unless ?transport=tcp, turns: is TLS over TCP)."""
    if url.startswith("turns:"):
        return "tls"
    return "tcp" if url.endswith("?transport=tcp") else "udp"


def use_host_addresses(addresses: Optional[List[str]]) -> None:
    """Make aioice gather only these host addresses (it skips 127.0.0.1 by
    default). Global to the process; None leaves aioice alone."""
    if addresses is not None:
        addrs = list(addresses)
        aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: addrs


# --------------------------------------------------------------------------
# The participant


# Every RTP packet a receiver gets, with its arrival time, in its
# ``rtp_log``: losses and gaps are counted on sequence numbers, not on
# decoded audio.
_handle_rtp = RTCRtpReceiver._handle_rtp_packet


async def _logged_rtp(self, packet, arrival_time_ms):
    self.__dict__.setdefault("rtp_log", []).append(
        (time.monotonic(), packet.ssrc, packet.sequence_number))
    return await _handle_rtp(self, packet, arrival_time_ms)


RTCRtpReceiver._handle_rtp_packet = _logged_rtp


def rtp_window(arrivals, start, end):
    """(packets, lost, longest gap in s, when that gap ended) of the main
    SSRC's packets that arrived in [start, end]; the gap counts from `start`
    and to `end` too."""
    inside = [a for a in arrivals if start <= a[0] <= end]
    if not inside:
        return 0, None, end - start, end
    by_ssrc = {}
    for a in inside:
        by_ssrc.setdefault(a[1], []).append(a)
    pkts = max(by_ssrc.values(), key=len)
    ext, seqs = None, set()
    for _, _, seq in pkts:       # unwrap 16-bit sequence numbers
        if ext is None:
            ext = seq
        else:
            d = (seq - (ext & 0xFFFF)) & 0xFFFF
            ext += d - 0x10000 if d >= 0x8000 else d
        seqs.add(ext)
    lost = (max(seqs) - min(seqs) + 1) - len(seqs)
    times = [start] + [a[0] for a in pkts] + [end]
    gap, ended = max((b - a, b) for a, b in zip(times, times[1:]))
    return len(pkts), lost, gap, ended


class Leg:
    """One signaling socket and the peer connection negotiated on it. A
    Peer has one; while it follows its room to another node it has a
    second (``Peer.moving``), which becomes its leg at ``migrated``."""

    def __init__(self, tag: str = ""):
        self.tag = tag                  # prefix of its sources' keys
        self.ws = None
        self.pc: Optional[RTCPeerConnection] = None
        self.remote_mlines: List[Dict[str, Any]] = []
        self.offers: asyncio.Queue = asyncio.Queue()   # server offers
        self.lock = asyncio.Lock()      # one SDP exchange at a time
        self.reader: Optional[asyncio.Task] = None
        self.worker: Optional[asyncio.Task] = None     # answers its offers
        self.pinger: Optional[asyncio.Task] = None
        self.track: Optional[MediaStreamTrack] = None  # what it publishes
        self.resume_token: Optional[str] = None        # from its `resumed`
        self.played_from: Optional[float] = None       # monotonic: when the
        self.played_to: Optional[float] = None         # peer played it


class Peer:
    """One participant: WebSocket signaling + one aiortc RTCPeerConnection.

    ``freq`` (Hz) is the tone it publishes; ``freq=None`` or
    ``publish=False`` makes a listener that offers a single recvonly audio
    m-line. ``send_audio_level=False`` removes the RFC 6464 extmap from every
    SDP it sends. ``ping_interval=None`` disables the 10 s heartbeat (to
    test the server's heartbeat timeout). ``host_addresses`` is what ICE
    gathers (loopback by default). The TURN servers of the ``welcome``
    (docs/signaling.md) go into the RTCConfiguration; aiortc uses one TURN
    URL, the first it supports, so ``turn`` ("udp", "tcp" or "tls") keeps
    only the URLs of that kind.

    State for tests: ``events`` [(monotonic time, msg)] of every server
    message; ``welcome``; ``sid``; ``identities`` sid -> identity;
    ``sources`` mid -> AudioSource; ``remote_mlines`` (parse_mlines of the
    last remote SDP); ``close_code``/``close_reason``; ``errors`` (failures
    in background tasks) and ``violations`` (server behaviour contradicting
    docs/signaling.md); ``join_to_first_audio_s``.

    It follows its room to another node as docs/signaling.md ("Moving to
    another node") says: on ``migrate`` a second socket resumes the session
    there and a second connection publishes a tone of the same frequency;
    at ``migrated`` that leg replaces the first (``moves`` records each
    move, ``legs`` every leg with when it was played; sources of later legs
    are keyed ``<n>:<mid>``). ``follow_moves=False`` ignores ``migrate``
    (a client that never comes). Subclasses that negotiate other tracks do
    not follow moves.
    """

    def __init__(self, ws_url: str, room: str, token: str, identity: str,
                 freq: Optional[float] = None, send_audio_level: bool = True,
                 publish: bool = True, ping_interval: Optional[float] = 10.0,
                 host_addresses: Optional[List[str]] = ("127.0.0.1",),
                 keep_s: float = 10.0, ws_options: Optional[dict] = None,
                 turn: Optional[str] = None, follow_moves: bool = True):
        self.ws_url = ws_url
        self.follow_moves = follow_moves
        self.turn = turn
        self.room = room
        self.token = token
        self.identity = identity
        self.freq = freq
        self.send_audio_level = send_audio_level
        self.publish = publish and freq is not None
        self.ping_interval = ping_interval
        self.host_addresses = host_addresses
        self.keep_s = keep_s
        self.ws_options = dict(ws_options or {})

        self.leg = Leg()
        self.leg.played_from = time.monotonic()
        self.legs: List[Leg] = [self.leg]
        self.moving: Optional[Leg] = None   # the leg to the node we move to
        self.moves: List[Dict[str, Any]] = []
        self.track: Optional[SineTrack] = SineTrack(freq) if self.publish else None

        self.events: List[Tuple[float, Dict[str, Any]]] = []
        self.welcome: Optional[Dict[str, Any]] = None
        self.sid: Optional[str] = None
        self.identities: Dict[str, str] = {}
        self.sources: Dict[str, AudioSource] = {}
        self.local_offer_sdp: Optional[str] = None
        self.server_offers_answered = 0
        self.errors: List[str] = []
        self.violations: List[str] = []
        self.close_code: Optional[int] = None
        self.close_reason: Optional[str] = None
        self.resume_token: Optional[str] = None

        self.join_t: Optional[float] = None
        self.first_audio_t: Optional[float] = None
        self.first_audio_source: Optional[AudioSource] = None

        self._ids = itertools.count(3)   # 1 = join, 2 = first offer
        self._pending: Dict[Any, asyncio.Future] = {}
        # (Python >= 3.10: these bind to the running loop on first use)
        self._new_event = asyncio.Event()   # replaced after every message
        self._closed = asyncio.Event()      # set once the socket is closed
        self._tasks: List[asyncio.Task] = []
        self._record_tasks: List[asyncio.Task] = []
        self._closing = False

    # The current leg's parts, as the rest of this class and its
    # subclasses use them.
    ws = property(lambda self: self.leg.ws,
                  lambda self, v: setattr(self.leg, "ws", v))
    pc = property(lambda self: self.leg.pc,
                  lambda self, v: setattr(self.leg, "pc", v))
    remote_mlines = property(lambda self: self.leg.remote_mlines,
                             lambda self, v: setattr(self.leg, "remote_mlines", v))
    _reader = property(lambda self: self.leg.reader,
                       lambda self, v: setattr(self.leg, "reader", v))
    _neg_lock = property(lambda self: self.leg.lock)

    # ---- context manager ------------------------------------------------

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    # ---- time to first audio --------------------------------------------

    @property
    def join_to_first_audio_s(self) -> Optional[float]:
        """Seconds from the join() call to the first non-silent decoded frame
        from any source; None if nothing audible arrived yet."""
        if self.join_t is None or self.first_audio_t is None:
            return None
        return self.first_audio_t - self.join_t

    # ---- joining --------------------------------------------------------

    async def join(self, timeout: float = 10.0, negotiate: bool = True) -> Dict[str, Any]:
        """Connect, send ``join``, wait for ``welcome``; then (by default)
        offer and apply the answer. Returns the welcome message.

        Raises JoinRejected (with .code/.reason, also on the Peer) if the
        server closes the socket instead of welcoming.
        """
        self.join_t = time.monotonic()
        await self._connect(timeout)
        self.leg.worker = asyncio.ensure_future(self._offer_worker(self.leg))
        try:
            welcome = await self.request(
                {"type": "join", "id": 1, "v": 1, "room": self.room,
                 "token": self.token}, timeout=timeout)
        except PeerClosed as e:
            raise JoinRejected(e.code, e.reason,
                               "server closed the WebSocket instead of welcome") from None
        if welcome.get("type") != "welcome":
            raise PeerError(f"expected welcome, got {welcome!r}")
        if welcome.get("v") != 1:
            self.violations.append(f"welcome without v=1: {welcome!r}")
        self.welcome = welcome
        self.resume_token = welcome.get("resume_token")
        me = welcome.get("participant") or {}
        self.sid = me.get("sid")
        self._note_participant(me)
        for p in welcome.get("participants") or []:
            self._note_participant(p)
        if self.ping_interval:
            self._tasks.append(asyncio.ensure_future(self._ping_loop()))
        if negotiate:
            await self.negotiate(timeout)
        return welcome

    def ice_servers(self) -> List[RTCIceServer]:
        """The welcome's ``ice_servers`` as aiortc takes them (only the
        URLs of kind ``turn`` when it is set)."""
        out = []
        for srv in (self.welcome or {}).get("ice_servers") or []:
            urls = srv.get("urls") or []
            urls = [urls] if isinstance(urls, str) else list(urls)
            if self.turn:
                urls = [u for u in urls if turn_kind(u) == self.turn]
            if urls:
                out.append(RTCIceServer(urls=urls, username=srv.get("username"),
                                        credential=srv.get("credential")))
        return out

    def selected_candidate_types(self) -> List[Tuple[str, str]]:
        """(local, remote) candidate types of the nominated ICE pair of each
        transport (one with BUNDLE; aioice's state: aiortc has no getStats
        for it)."""
        out, seen = [], set()
        for t in self.pc.getTransceivers() if self.pc else []:
            ice = t.receiver.transport.transport
            if id(ice) in seen:
                continue
            seen.add(id(ice))
            pair = ice._connection._nominated.get(1)
            if pair is not None:
                out.append((pair.protocol.local_candidate.type, pair.remote_candidate.type))
        return out

    def _new_pc(self) -> RTCPeerConnection:
        use_host_addresses(self.host_addresses)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=self.ice_servers()))
        pc.on("track", self._on_track)
        return pc

    def _leg_of(self, track) -> Leg:
        """The leg whose connection received ``track``."""
        for leg in (self.leg, self.moving):
            if leg is not None and leg.pc is not None and any(
                    t.receiver.track is track for t in leg.pc.getTransceivers()):
                return leg
        return self.leg

    def _outgoing_sdp(self, sdp: str) -> str:
        return sdp if self.send_audio_level else strip_audio_level(sdp)

    async def negotiate(self, timeout: float = 10.0) -> None:
        """The client's one offer (id 2): publish the tone (sendrecv) or,
        for a listener, a recvonly audio m-line; apply the server's answer."""
        self.leg.track = self.track
        await self._offer(self.leg, 2, timeout)

    async def _offer(self, leg: Leg, id_: int, timeout: float) -> None:
        async with leg.lock:
            if leg.pc is None:
                leg.pc = self._new_pc()
            if leg.track is not None:
                leg.pc.addTrack(leg.track)
            else:
                leg.pc.addTransceiver("audio", direction="recvonly")
            offer = await leg.pc.createOffer()
            await leg.pc.setLocalDescription(
                RTCSessionDescription(self._outgoing_sdp(offer.sdp), "offer"))
            self.local_offer_sdp = leg.pc.localDescription.sdp  # with candidates
            reply = await self.request({"type": "offer", "id": id_,
                                        "sdp": self.local_offer_sdp},
                                       timeout=timeout, ws=leg.ws)
            if reply.get("type") != "answer" or not reply.get("sdp"):
                raise PeerError(f"expected answer to offer, got {reply!r}")
            await self._set_remote(reply["sdp"], "answer", leg)

    async def _set_remote(self, sdp: str, kind: str, leg: Optional[Leg] = None) -> None:
        leg = leg or self.leg
        # Note msids before applying: aiortc emits "track" from inside
        # setRemoteDescription, before pc.remoteDescription is updated.
        leg.remote_mlines = parse_mlines(sdp)
        for ml in leg.remote_mlines:
            src = self.sources.get(leg.tag + ml["mid"])
            if src is not None and ml["sid"]:
                src.sid, src.track_id = ml["sid"], ml["track_id"]
        # Without audio level, hide the extmap from aiortc in what the server
        # sends too: aiortc derives the sender's extensions from the remote
        # *offer* (and not from its own answer), so a server re-offer listing
        # ssrc-audio-level would otherwise turn it back on.
        await leg.pc.setRemoteDescription(
            RTCSessionDescription(self._outgoing_sdp(sdp), kind))

    async def _offer_worker(self, leg: Leg) -> None:
        """Answer a leg's server offers one at a time, in arrival order."""
        while True:
            msg = await leg.offers.get()
            try:
                async with leg.lock:
                    if leg.pc is None:
                        self.violations.append("server offer before the client's offer")
                        leg.pc = self._new_pc()
                    await self._set_remote(msg["sdp"], "offer", leg)
                    answer = await leg.pc.createAnswer()
                    await leg.pc.setLocalDescription(RTCSessionDescription(
                        self._outgoing_sdp(answer.sdp), "answer"))
                    await self.send({"type": "answer", "offer_id": msg.get("offer_id"),
                                     "sdp": leg.pc.localDescription.sdp}, ws=leg.ws)
                    self.server_offers_answered += 1
            except asyncio.CancelledError:
                raise
            except Exception as e:        # noted; tests check peer.errors
                log.exception("%s: answering server offer failed", self.identity)
                self.errors.append(f"answering offer {msg.get('offer_id')}: {e!r}")

    async def _add_candidate(self, c: Dict[str, Any], pc: RTCPeerConnection) -> None:
        text = c.get("candidate") or ""
        if text.startswith("a="):
            text = text[2:]
        if text.startswith("candidate:"):
            text = text[len("candidate:"):]
        if not text.strip():
            return                       # "" is end-of-candidates too
        cand = candidate_from_sdp(text)
        # aiortc only accepts a candidate whose sdpMid names an unbundled
        # transceiver, i.e. the BUNDLE's first one; the server's candidates
        # are for the bundled transport whatever m-line they name.
        tr = [t for t in pc.getTransceivers() if t.mid is not None]
        cand.sdpMid = tr[0].mid if tr else c.get("sdpMid")
        cand.sdpMLineIndex = c.get("sdpMLineIndex", 0)
        await pc.addIceCandidate(cand)

    # ---- receiving media ------------------------------------------------

    def _on_track(self, track) -> None:
        leg = self._leg_of(track)
        mid = next((t.mid for t in leg.pc.getTransceivers()
                    if t.receiver.track is track), None)
        ml = next((m for m in leg.remote_mlines if m["mid"] == mid), {})
        src = AudioSource(mid, ml.get("sid"), ml.get("track_id"), keep_s=self.keep_s)
        key = leg.tag + (mid if mid is not None else f"track:{track.id}")
        self.sources[key] = src
        log.debug("%s: track on mid %s from %s", self.identity, mid, src.sid)
        self._record_tasks.append(asyncio.ensure_future(self._record(track, src)))

    async def _record(self, track, src: AudioSource) -> None:
        try:
            while True:
                frame = await track.recv()
                if src.add_frame(frame) and self.first_audio_t is None:
                    self.first_audio_t = src.last_audio_t
                    self.first_audio_source = src
        except MediaStreamError:
            pass
        finally:
            src.ended = True

    def _note_participant(self, p: Dict[str, Any]) -> None:
        if p.get("sid") and p.get("identity"):
            self.identities[p["sid"]] = p["identity"]

    def source_identity(self, src: AudioSource) -> Optional[str]:
        return self.identities.get(src.sid) if src.sid else None

    def find_sources(self, source) -> List[AudioSource]:
        """Sources matching an identity, a participant sid, a mid or an
        AudioSource (several when an identity rejoined with a new sid)."""
        if isinstance(source, AudioSource):
            return [source]
        return [s for s in self.sources.values()
                if source in (s.mid, s.sid, self.source_identity(s))]

    def tone_power(self, source, freq: float, last_s: float = 5.0) -> float:
        """tone_power() of what arrived from ``source`` in the last seconds
        (the largest if several m-lines match; 0.0 if none)."""
        return max((s.tone_power(freq, last_s) for s in self.find_sources(source)),
                   default=0.0)

    def audio_energy(self, source, last_s: float = 5.0) -> float:
        """Mean square of what arrived from ``source`` in the last seconds."""
        return max((s.energy(last_s) for s in self.find_sources(source)), default=0.0)

    def sources_with_tone(self, freq: float, last_s: float = 5.0,
                          threshold: float = DEFAULT_TONE_THRESHOLD) -> List[AudioSource]:
        return [s for s in self.sources.values()
                if s.tone_power(freq, last_s) >= threshold]

    def heard(self, freq: float, last_s: float = 5.0,
              threshold: float = DEFAULT_TONE_THRESHOLD) -> bool:
        """Did any source carry ``freq`` at >= threshold in the last seconds?"""
        return bool(self.sources_with_tone(freq, last_s, threshold))

    def received_by_source(self, last_s: float = 5.0) -> Dict[str, Dict[str, Any]]:
        """Summary per source, keyed by identity (else sid, else mid; ``#mid``
        appended when several m-lines share a name)."""
        names = [(self.source_identity(s) or s.sid or f"mid:{s.mid}", s)
                 for s in self.sources.values()]
        counts = collections.Counter(n for n, _ in names)
        out = {}
        for name, s in names:
            key = name if counts[name] == 1 else f"{name}#{s.mid}"
            d = s.summary()
            d["identity"] = self.source_identity(s)
            d["energy_last_s"] = s.energy(last_s)
            if self.freq is not None:
                d["own_tone_last_s"] = s.tone_power(self.freq, last_s)
            out[key] = d
        return out

    # ---- signaling ------------------------------------------------------

    async def send(self, msg: Dict[str, Any], ws=None) -> None:
        """Send one message as is (on the current leg's socket, or ``ws``)."""
        ws = ws or self.ws
        if ws is None:
            raise PeerError("not connected")
        try:
            await ws.send(json.dumps(msg))
        except websockets.ConnectionClosed:
            raise PeerClosed(ws.close_code, ws.close_reason) from None

    async def request(self, msg: Dict[str, Any], timeout: float = 10.0,
                      raise_errors: bool = True, ws=None) -> Dict[str, Any]:
        """Send a request and return the reply echoing its id (an id is
        assigned if missing). An ``error`` reply raises ServerError unless
        raise_errors=False; a closed socket raises PeerClosed."""
        msg = dict(msg)
        if "id" not in msg:
            msg["id"] = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[msg["id"]] = fut
        try:
            await self.send(msg, ws)
            reply = await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise PeerError(f"no reply to {msg['type']} id {msg['id']} in {timeout}s") from None
        finally:
            self._pending.pop(msg["id"], None)
        if reply.get("type") == "error" and raise_errors:
            raise ServerError(reply)
        return reply

    async def _read_loop(self, ws) -> None:
        # (a resume or a move may replace self.ws while this socket lives on)
        try:
            async for raw in ws:
                now = time.monotonic()
                if isinstance(raw, bytes):
                    self.violations.append(f"binary frame of {len(raw)} bytes")
                    continue
                if len(raw.encode()) > MAX_WS_MESSAGE:
                    self.violations.append(f"message of {len(raw.encode())} bytes")
                try:
                    msg = json.loads(raw)
                except ValueError:
                    self.violations.append(f"not JSON: {raw[:200]!r}")
                    continue
                if not isinstance(msg, dict) or "type" not in msg:
                    self.violations.append(f"no type: {raw[:200]!r}")
                    continue
                self.events.append((now, msg))
                try:
                    await self._dispatch(msg, ws)
                except Exception as e:
                    log.exception("%s: handling %s", self.identity, msg.get("type"))
                    self.errors.append(f"handling {msg.get('type')}: {e!r}")
                self._new_event.set()
                self._new_event = asyncio.Event()
        except websockets.ConnectionClosed:
            pass
        finally:
            moved = (self.moving is not None and self.moves
                     and self.moves[-1]["t_migrated"] is not None)
            if self.ws is ws and not moved:
                # the current socket closed: wake waiters, fail requests
                # (not the old node's 4015 before the new one resumed us)
                self.close_code = ws.close_code
                self.close_reason = ws.close_reason
                self._closed.set()
                self._new_event.set()
                for fut in self._pending.values():
                    if not fut.done():
                        fut.set_exception(PeerClosed(self.close_code, self.close_reason))

    async def _dispatch(self, msg: Dict[str, Any], ws) -> None:
        t = msg["type"]
        leg = self.moving if self.moving is not None and ws is self.moving.ws else self.leg
        if t in ("welcome", "resumed", "answer", "pong", "ack", "error") and "id" in msg:
            fut = self._pending.get(msg["id"])
            if fut is not None and not fut.done():
                fut.set_result(msg)
        if t == "offer" and "offer_id" in msg:
            # The server may offer right after its answer; only an offer that
            # arrives while our offer's answer has not arrived is glare.
            first = self._pending.get(2)
            if first is not None and not first.done() and leg is self.leg:
                self.violations.append("server offer while the client offer is unanswered")
            leg.offers.put_nowait(msg)
        elif t == "candidate":
            c = msg.get("candidate")
            if c and leg.pc is not None:
                await self._add_candidate(c, leg.pc)
        elif t == "migrate" and leg is self.leg and self.follow_moves:
            if self.moving is None:
                self.moving = Leg(f"{len(self.legs)}:")
                self._tasks.append(asyncio.ensure_future(self._follow(msg, self.moving)))
        elif t == "migrated" and leg is self.leg and self.moving is not None:
            self.moves[-1]["t_migrated"] = time.monotonic()
            if self.moving.resume_token is not None:
                self._switch()
            # else: _follow switches once the new node has resumed us
        elif t == "migrate_abort" and leg is self.leg and self.moving is not None:
            self.moves[-1]["aborted"] = msg.get("reason") or "?"
            leg, self.moving = self.moving, None
            self._tasks.append(asyncio.ensure_future(self._drop_leg(leg)))
        elif t in ("participant_joined", "participant_updated"):
            self._note_participant(msg.get("participant") or {})
        elif t == "participant_left":
            self._note_participant(msg)

    async def _connect(self, timeout: float) -> None:
        """Open the WebSocket and start reading it."""
        self._closed = asyncio.Event()
        self.close_code = self.close_reason = None
        self.ws = await self._open(self.ws_url, timeout)
        self._reader = asyncio.ensure_future(self._read_loop(self.ws))

    async def _open(self, url: str, timeout: float):
        opts = {"ping_interval": None,       # heartbeat is the protocol's ping
                "max_size": 16 * MAX_WS_MESSAGE,   # oversize is a violation, noted
                "open_timeout": timeout}
        opts.update(self.ws_options)
        return await websockets.connect(url, **opts)

    def drop_signaling(self) -> None:
        """Lose the WebSocket the way a network does: the TCP connection
        ends with no close frame (the server sees a drop, not a goodbye).
        Media goes on; resume() takes the session back."""
        self.ws.transport.abort()

    async def resume(self, timeout: float = 10.0,
                     token: Optional[str] = None) -> Dict[str, Any]:
        """Reconnect and take the session over with the last resume token
        (or `token`). Returns ``resumed``; a refusal raises PeerClosed
        (4014 when the token is unknown, used or expired)."""
        if self._reader is not None:
            await asyncio.wait([self._reader], timeout=5)
        await self._connect(timeout)
        reply = await self.request({"type": "resume", "v": 1, "room": self.room,
                                    "resume_token": token or self.resume_token}, timeout)
        if reply.get("type") != "resumed":
            raise PeerError(f"expected resumed, got {reply!r}")
        self.resume_token = reply.get("resume_token")
        if self.ping_interval:
            self._tasks.append(asyncio.ensure_future(self._ping_loop()))
        return reply

    async def _ping_loop(self) -> None:
        while not self._closed.is_set():
            await asyncio.sleep(self.ping_interval)
            try:
                await self.send({"type": "ping", "id": next(self._ids)})
                if self.moving is not None and self.moving.ws is not None:
                    await self.send({"type": "ping", "id": next(self._ids)}, self.moving.ws)
            except PeerError:
                return

    # ---- following the room to another node ----------------------------

    async def _follow(self, msg: Dict[str, Any], leg: Leg, timeout: float = 10.0) -> None:
        """``migrate``: resume the session on the new node on a second
        socket, publish there on a second connection; ``migrated``
        switches to it (even before its connection is up: docs/signaling.md)."""
        move = {"ws_url": msg.get("ws_url"), "t_migrate": time.monotonic(),
                "t_migrated": None, "t_switch": None, "aborted": None}
        self.moves.append(move)
        try:
            leg.ws = await self._open(msg["ws_url"], timeout)
            leg.reader = asyncio.ensure_future(self._read_loop(leg.ws))
            reply = await self.request({"type": "resume", "v": 1, "room": msg.get("room"),
                                        "resume_token": msg.get("resume_token")},
                                       timeout, ws=leg.ws)
            if reply.get("type") != "resumed":
                raise PeerError(f"expected resumed on the new node, got {reply!r}")
            leg.worker = asyncio.ensure_future(self._offer_worker(leg))
            if self.track is not None:
                leg.track = SineTrack(self.track.freq)
                leg.track.muted = self.track.muted
            leg.resume_token = reply.get("resume_token")
            if move["t_migrated"] is not None and self.moving is leg:
                self._switch()
            await self._offer(leg, next(self._ids), timeout)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noted, unless the move was called off
            if leg in (self.leg, self.moving):
                self.errors.append(f"following the move to {move['ws_url']}: {e!r}")

    def _switch(self) -> None:
        """The new leg is the call from now on; the old one is closed (in
        a task of its own: this runs in its socket's reader)."""
        old, leg = self.leg, self.moving
        now = time.monotonic()
        old.played_to = leg.played_from = self.moves[-1]["t_switch"] = now
        self.leg, self.moving = leg, None
        self.legs.append(leg)
        self.ws_url = self.moves[-1]["ws_url"]
        self.resume_token = leg.resume_token
        if old.track is not None:
            self.track = leg.track
        self._tasks.append(asyncio.ensure_future(self._drop_leg(old)))

    async def _drop_leg(self, leg: Leg) -> None:
        for task in (leg.worker,):
            if task is not None:
                task.cancel()
        if leg.pc is not None:
            await leg.pc.close()
        if leg.track is not None:
            leg.track.stop()
        if leg.ws is not None:
            await leg.ws.close()

    def _leg_rtp(self, leg: Leg, identity: str) -> List[Tuple[float, int, int]]:
        """(arrival, ssrc, seq) of every RTP packet from ``identity`` on a leg."""
        out = []
        for t in leg.pc.getTransceivers() if leg.pc else []:
            src = self.sources.get(leg.tag + str(t.mid))
            if src is not None and self.source_identity(src) == identity:
                out += getattr(t.receiver, "rtp_log", [])
        return out

    def played_rtp(self, identity: str) -> List[Tuple[float, int, int]]:
        """The RTP packets from ``identity`` this peer played: each leg's
        while it was the current one."""
        return [a for leg in self.legs for a in self._leg_rtp(leg, identity)
                if leg.played_from <= a[0] < (leg.played_to or float("inf"))]

    def move_figures(self, identity: str, window_s: float = 1.0) -> List[Tuple[float, int]]:
        """For each switch of legs: the longest pause (s) of ``identity``'s
        RTP as played, window_s either side of the switch (within the two
        legs' turns), and the packets missing there by sequence number (on
        the old leg before it, on the new one after it; a pause at the
        switch itself shows as the gap)."""
        out = []
        for old, new in zip(self.legs, self.legs[1:]):
            t = new.played_from
            start = max(t - window_s, old.played_from)
            end = min(t + window_s, new.played_to or time.monotonic())
            before = [a for a in self._leg_rtp(old, identity) if start <= a[0] < t]
            after = [a for a in self._leg_rtp(new, identity) if t <= a[0] <= end]
            lost = sum(rtp_window(x, start, end)[1] or 0 for x in (before, after))
            times = [start] + [a[0] for a in before + after] + [end]
            out.append((max(b - a for a, b in zip(times, times[1:])), lost))
        return out

    # ---- events ---------------------------------------------------------

    def mark(self) -> int:
        """An index into ``events``: pass as ``since`` to only look later."""
        return len(self.events)

    def events_of(self, type_: str, since: int = 0) -> List[Dict[str, Any]]:
        return [m for _, m in self.events[since:] if m.get("type") == type_]

    async def wait_event(self, type_: str, predicate: Optional[Callable] = None,
                         timeout: float = 10.0, since: int = 0) -> Dict[str, Any]:
        """First message of ``type_`` (matching ``predicate``) at or after
        index ``since`` of ``events`` -- already received or yet to come."""
        deadline = time.monotonic() + timeout
        i = since
        while True:
            while i < len(self.events):
                m = self.events[i][1]
                i += 1
                if m.get("type") == type_ and (predicate is None or predicate(m)):
                    return m
            if self._closed.is_set():
                raise PeerClosed(self.close_code, self.close_reason,
                                 f"closed while waiting for {type_}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise PeerError(f"{self.identity}: no {type_} event in {timeout}s")
            try:
                await asyncio.wait_for(self._new_event.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def wait_until(self, pred: Callable[[], Any], timeout: float = 10.0,
                         step: float = 0.05, what: str = "condition"):
        """Poll ``pred()`` until truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            v = pred()
            if v:
                return v
            if time.monotonic() > deadline:
                raise PeerError(f"{self.identity}: timed out waiting for {what}")
            await asyncio.sleep(step)

    async def wait_connected(self, timeout: float = 10.0) -> None:
        """Until the RTCPeerConnection is connected (ICE + DTLS)."""
        await self.wait_until(lambda: self.pc is not None
                              and self.pc.connectionState == "connected",
                              timeout, what="connectionState connected")

    async def wait_closed(self, timeout: float = 10.0) -> Tuple[int, str]:
        """Until the server closes the socket; returns (code, reason)."""
        await asyncio.wait_for(self._closed.wait(), timeout)
        return self.close_code, self.close_reason

    # ---- media control --------------------------------------------------

    async def mute(self, muted: bool = True, silence: bool = True,
                   timeout: float = 10.0) -> Dict[str, Any]:
        """Send ``mute`` and return the ``ack``. With ``silence`` the track
        also sends digital silence while muted (as the protocol expects)."""
        tracks = [leg.track for leg in (self.leg, self.moving) if leg and leg.track]
        for track in tracks if silence and muted else ():
            track.muted = True
        if self.moving is not None and self.moving.resume_token is not None:
            await self.send({"type": "mute", "muted": bool(muted)}, self.moving.ws)
        ack = await self.request({"type": "mute", "muted": bool(muted)}, timeout)
        if ack.get("type") != "ack":
            raise PeerError(f"expected ack to mute, got {ack!r}")
        for track in tracks if not muted else ():
            track.muted = False
        return ack

    async def ping(self, timeout: float = 10.0) -> float:
        """Send ``ping``, wait for ``pong``; returns the round trip in s."""
        t0 = time.monotonic()
        reply = await self.request({"type": "ping"}, timeout)
        if reply.get("type") != "pong":
            raise PeerError(f"expected pong, got {reply!r}")
        return time.monotonic() - t0

    async def leave(self, timeout: float = 5.0) -> Optional[int]:
        """Send ``leave`` and wait for the server to close the socket
        (docs: with 1000). Returns the close code."""
        if self.moving is not None and self.moving.resume_token is not None:
            await self.send({"type": "leave"}, self.moving.ws)
        await self.send({"type": "leave"})
        await self.wait_closed(timeout)
        return self.close_code

    async def close(self) -> None:
        """Stop everything: tasks, peer connection, WebSocket. Idempotent."""
        if self._closing:
            return
        self._closing = True
        for task in self._tasks:           # pinger, a move, a leg closing
            task.cancel()
        for leg in [*self.legs[:-1], self.moving]:   # (closing twice is harmless)
            if leg is not None:
                await self._drop_leg(leg)
        if self.leg.worker is not None:
            self.leg.worker.cancel()
        if self.pc is not None:
            await self.pc.close()          # ends the remote tracks -> recorders stop
        for task in self._record_tasks:
            task.cancel()
        if self.track is not None:
            self.track.stop()
        if self.ws is not None:
            await self.ws.close()          # the reader then ends by itself
        if self._reader is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._reader), 5)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._reader.cancel()
            if self.close_code is None:
                self.close_code = self.ws.close_code
                self.close_reason = self.ws.close_reason
        await asyncio.gather(*self._tasks, *self._record_tasks,
                             *[t for leg in self.legs for t in (leg.reader, leg.worker) if t],
                             return_exceptions=True)


class VideoPeer(Peer):
    """A Peer that also records the video frames it decodes: (arrival
    time, width, height) of each, in `video_frames`."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.video_frames: List[Tuple[float, int, int]] = []

    def _on_track(self, track) -> None:
        if track.kind != "video":
            return super()._on_track(track)
        self._record_tasks.append(asyncio.ensure_future(self._record_video(track)))

    async def _record_video(self, track) -> None:
        try:
            while True:
                f = await track.recv()
                self.video_frames.append((time.monotonic(), f.width, f.height))
        except MediaStreamError:
            pass

#!/usr/bin/env python3
"""sfud against Janus on the same load: CPU per packet, loss, latency.

Janus is Debian's `janus` package (1.1.2 on Debian 12), installed with
apt-get if missing, run with a configuration this script writes into a
temporary directory: the VideoRoom plugin and the HTTP transport only (the
plugin and transport folders it points Janus at hold nothing else), no
event handlers or loggers, ICE-lite, no STUN, host candidates on the veth
address only, mDNS off; everything else Janus's defaults.

Janus gathers no candidates on loopback, so both servers run in a network
namespace of their own (tests/integration/netns.py), reached over a veth
pair: the servers bind the namespace's end (10.77.S.2), the load generator
-- aiortc peers in this process, in the root namespace -- the other end
(10.77.S.1), so every packet crosses the veth. One server runs at a time,
each started afresh for every run and stopped after it; the two alternate
(repetition 1: sfud first, repetition 2: Janus first, ...).

The load, the same for both: N participants (10), each an aiortc peer
publishing a tone of its own frequency (Opus, 20 ms, with RFC 6464 audio
levels, as tests/integration/aiortc_peer.py does it). sfud: joined over its
WebSocket signaling (aiortc_peer.Peer). Janus: the VideoRoom over the REST
API (bench/janus_client.py): a publisher handle each, then one subscriber
handle per participant receiving every other feed. Scenarios:

  a  everyone publishes and receives everyone else (N x (N-1) streams);
  b  everyone publishes, nobody is subscribed (the cost of a received
     packet alone).

Per run, over a window of --seconds after everyone receives every stream
(a) or every publisher sends (b), and --warmup seconds more:

* packets, counted by the peers (aiortc's sender and receiver statistics:
  RTP after SRTP), the same way for both servers and independently of
  them: the packets the publishers sent to the server ("in"); in a, the
  packets each subscriber found missing in the streams it receives (from
  their sequence numbers, RFC 3550 A.3), hence the loss, and the packets
  forwarded: sent x (N - 1) less the missing ones. (The count of packets
  the peers received is in --json; it is not the denominator, because it
  moves with the load generator: packets the server forwarded before the
  window and the peers read in it would count in it);
* server CPU: utime + stime from /proc of every process of the server
  (sfud, its zygote and its room processes; the janus process, all its
  threads), per forwarded packet (a) and per packet in (b; also shown for
  a), and as % of one core;
* UDP datagrams the kernel dropped on the server's sockets and on the
  peers' (/proc/PID/net/udp, drops: a full receive buffer): where a loss
  happened;
* the server's private memory at the end of the window (smaps_rollup,
  all its processes);
* the load generator's CPU (this process: aiortc, all its threads) and the
  rest of the machine (/proc/stat busy time minus the server and this
  process): well above 0, something else ran and the figures are disturbed;
* in a, after the window, --latency-seconds of forwarding latency: a packet
  socket on the server's veth end timestamps in the kernel every RTP packet
  a peer sends and every copy the server sends. A copy is matched to its
  original through the stream it belongs to: its SSRC, mapped to the
  publisher's SSRC by the signaling (the SSRC lines of the server's SDP and
  the publisher they name), and its RTP timestamp, less the constant offset
  the server adds to that stream (Janus rewrites timestamps so that a
  subscriber's stream stays continuous across publisher switches; sfud
  forwards them unchanged): the offset is the most frequent difference
  between a copy's timestamp and that of the publisher's latest packet
  before it. The delay is the server's (wake-up, SRTP, fan-out, send) on
  this machine under this load; the peers' receive path is not in it.

The peers do not decode what they receive (each receiver's decoder thread
is stopped when it starts; --decode keeps them): the figures count
packets, and decoding 90 Opus streams would take the load generator most
of a core on a 2-core machine.

Then the figures of every run, and per scenario the median of each server
and the ratio sfud / Janus of each repetition and their median. Prints
figures; asserts nothing.

  /usr/bin/python3 bench/janus_compare.py --build build [--reps 3] [--seconds 15] [--json FILE]

Needs root (namespaces, the packet socket, apt-get), Debian's
python3-aiortc, iproute2 and iptables (netns.py).
"""
import argparse
import asyncio
import bisect
import collections
import glob
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
sys.path.insert(0, HERE)
from call_cpu import machine_busy_us, pct, proc_cpu_us, self_cpu_us, socket_inodes  # noqa: E402
from sfutest import Sfud, _die_with_parent, live_procs, proc_stat_fields, smaps  # noqa: E402
import rtp_capture  # noqa: E402

NS_TAG = "sfujanus"
JANUS_PORT = 8088
SCENARIOS = {"a": "everyone speaks, everyone receives",
             "b": "everyone speaks, nobody subscribed"}


# --------------------------------------------------------------------------
# Janus: package, configuration, process


def ensure_janus():
    """The janus binary; installs Debian's package if it is missing."""
    path = shutil.which("janus")
    if path is None:
        print("installing Debian's janus package (apt-get install -y janus)", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "janus"], check=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
                       stdout=subprocess.DEVNULL)
        path = shutil.which("janus")
    if path is None:
        raise SystemExit("janus is not installed and apt-get did not install it")
    return path


def janus_version(binary):
    out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    return out.split("\n")[0].strip()


def janus_library(kind, name):
    """The installed Janus module `name` of `kind` (plugins, transports)."""
    found = sorted(glob.glob(f"/usr/lib/*/janus/{kind}/{name}")) + \
        sorted(glob.glob(f"/usr/lib/janus/{kind}/{name}"))
    if not found:
        raise SystemExit(f"janus: {kind}/{name} not found under /usr/lib")
    return found[0]


def write_janus_config(conf, address, port):
    """janus.jcfg and the two module configurations in `conf`; the plugin
    and transport folders Janus is given hold only the VideoRoom plugin and
    the HTTP transport, the event handler and logger folders nothing."""
    for sub in ("plugins", "transports", "events", "loggers"):
        os.makedirs(os.path.join(conf, sub))
    os.symlink(janus_library("plugins", "libjanus_videoroom.so"),
               os.path.join(conf, "plugins", "libjanus_videoroom.so"))
    os.symlink(janus_library("transports", "libjanus_http.so"),
               os.path.join(conf, "transports", "libjanus_http.so"))
    with open(os.path.join(conf, "janus.jcfg"), "w") as f:
        f.write(f"""general: {{
	configs_folder = "{conf}"
	plugins_folder = "{conf}/plugins"
	transports_folder = "{conf}/transports"
	events_folder = "{conf}/events"
	loggers_folder = "{conf}/loggers"
	debug_level = 4
	debug_colors = false
	interface = "{address}"
	hide_dependencies = true
}}
certificates: {{
}}
media: {{
}}
nat: {{
	nice_debug = false
	ice_lite = true
	ice_enforce_list = "{address}"
	ignore_mdns = true
}}
plugins: {{
}}
transports: {{
}}
loggers: {{
}}
events: {{
	broadcast = false
}}
""")
    with open(os.path.join(conf, "janus.transport.http.jcfg"), "w") as f:
        f.write(f"""general: {{
	json = "plain"
	base_path = "/janus"
	http = true
	port = {port}
	ip = "{address}"
	https = false
}}
admin: {{
	admin_http = false
	admin_https = false
}}
cors: {{
}}
""")
    with open(os.path.join(conf, "janus.plugin.videoroom.jcfg"), "w") as f:
        f.write("general: {\n}\n")
    return os.path.join(conf, "janus.jcfg")


class Janus:
    """A Janus started by this script inside the namespace, stopped by PID."""

    def __init__(self, binary, conf, ns, log_path):
        self.log_path = log_path
        self.log = open(log_path, "w")
        # `ip netns exec` execs janus in place: proc.pid is janus's
        self.proc = subprocess.Popen(
            [*ns.exec_prefix(), binary, "-C", os.path.join(conf, "janus.jcfg"), "-F", conf],
            stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)

    def pids(self):
        return [self.proc.pid]

    def log_lines(self):
        with open(self.log_path, errors="replace") as f:
            return f.readlines()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class SfudServer:
    """sfud (sfutest.Sfud) inside the namespace, media on the veth address."""

    def __init__(self, build, ns, address):
        self.s = Sfud(os.path.join(build, "sfud"), os.path.join(build, "sfu-room"),
                      "--rtc-addresses", address, "--heartbeat-ms", "1000",
                      listen_host=address, prefix=ns.exec_prefix())

    def pids(self):
        return [self.s.proc.pid, *filter(None, [self.s.zygote()]), *self.s.children()]

    def log_lines(self):
        return list(self.s.log)

    def stop(self):
        procs = self.pids() if self.s.proc.poll() is None else []
        try:
            self.s.stop()
        except subprocess.TimeoutExpired:
            pass                            # stop() SIGKILLed sfud, zygote, rooms
        for pid in procs:                   # a room that outlived sfud
            fields = proc_stat_fields(pid)
            if fields is not None and fields[0] != "Z":
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def udp_drops(pids):
    """Datagrams the kernel dropped on the UDP sockets that `pids` hold
    (the drops column of /proc/PID/net/udp, read in the network namespace
    of pids[0]: a full receive buffer, mostly)."""
    inodes = set().union(*(socket_inodes(pid) for pid in pids))
    total = 0
    with open(f"/proc/{pids[0]}/net/udp") as f:
        for line in f.readlines()[1:]:
            bits = line.split()
            if bits[9] in inodes:
                total += int(bits[12])
    return total


def cpu_of(pids):
    """utime + stime (µs) of the processes still alive among `pids`."""
    total = 0
    for pid in pids:
        try:
            total += proc_cpu_us(pid)
        except OSError:
            pass
    return total


# --------------------------------------------------------------------------
# The load generator's side


def stop_decoding():
    """Each aiortc receiver stops its decoder thread as soon as it starts:
    RTP is still received, unprotected, depacketized and counted, its track
    just ends (nothing is decoded). The benchmark counts packets."""
    from aiortc.rtcrtpreceiver import RTCRtpReceiver
    receive = RTCRtpReceiver.receive

    async def receive_without_decoding(self, parameters):
        await receive(self, parameters)
        self._RTCRtpReceiver__stop_decoder()
    RTCRtpReceiver.receive = receive_without_decoding


def enlarge_receive_buffers(pcs, size=4 << 20):
    """SO_RCVBUFFORCE on the UDP sockets of `pcs` (aioice's, one per
    gathered address): the load generator's event loop shares 2 cores with
    the server and whatever else runs, and a stall of half a second would
    overflow the default buffer (~270 datagrams) and count as loss."""
    for pc in pcs:
        for t in pc.getTransceivers():
            ice = t.receiver.transport.transport
            for proto in ice._connection._protocols:
                sock = proto.transport.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, 33, size)    # SO_RCVBUFFORCE


async def sent_packets(pcs):
    """RTP packets the senders (with a track) of `pcs` sent."""
    n = 0
    for pc in pcs:
        for s in pc.getSenders():
            if s.track is not None:
                n += sum(v.packetsSent for v in (await s.getStats()).values()
                         if v.type == "outbound-rtp")
    return n


async def received_packets(pcs):
    """{remote SSRC: (RTP packets received, lost)} over the receivers of
    `pcs`; lost: expected from the sequence numbers less received (RFC 3550
    A.3, aiortc's statistics)."""
    out = {}
    for pc in pcs:
        for r in pc.getReceivers():
            for v in (await r.getStats()).values():
                if v.type == "inbound-rtp":
                    got, lost = out.get(v.ssrc, (0, 0))
                    out[v.ssrc] = (got + v.packetsReceived, lost + v.packetsLost)
    return out


class SfudLoad:
    """N aiortc_peer.Peer in one room of sfud. Like JanusLoad: start()
    joins them; pcs("pub") and pcs("sub") are the PeerConnections that send
    and that receive (here the same ones); ssrc_map() maps the SSRC of each
    stream the server sends to the SSRC of the publisher in it; errors()
    lists what went wrong in the peers' background tasks; close()."""

    def __init__(self, server, n, subscribe, host):
        self.server, self.n, self.subscribe, self.host = server, n, subscribe, host
        self.peers = []

    async def start(self):
        from aiortc_peer import Peer
        s = self.server.s
        st, room = s.request("POST", "/v1/rooms", {"name": "bench", "max_participants": self.n})
        if st != 201:
            raise RuntimeError(f"POST /v1/rooms: {st} {room}")
        grants = {"publish": True, "subscribe": self.subscribe}
        for i in range(self.n):
            ident = "p%02d" % i
            st, t = s.request("POST", "/v1/rooms/%s/tokens" % room["room_id"],
                              {"identity": ident, "grants": grants})
            if st != 201:
                raise RuntimeError(f"POST tokens: {st} {t}")
            p = Peer(room["ws_url"], room["room_id"], t["token"], ident, freq=400 + 150 * i,
                     host_addresses=[self.host])
            self.peers.append(p)
            await p.join(timeout=20)

    def pcs(self, role):
        return [p.pc for p in self.peers if p.pc is not None]

    def ssrc_map(self):
        own = {p.identity: p.pc.getSenders()[0]._ssrc for p in self.peers
               if p.pc and p.pc.getSenders()}
        out = {}
        for p in self.peers:
            for ml in p.remote_mlines:
                who = p.identities.get(ml["sid"])
                for ssrc in ml["ssrcs"]:
                    if who in own and who != p.identity:
                        out[ssrc] = own[who]
        return out

    def errors(self):
        return [f"{p.identity}: {e}" for p in self.peers for e in p.errors + p.violations]

    async def close(self):
        await asyncio.gather(*(p.close() for p in self.peers), return_exceptions=True)


class JanusLoad:
    """N janus_client.JanusParticipant in one VideoRoom; the interface of
    SfudLoad."""

    def __init__(self, address, n, subscribe, host):
        from janus_client import JanusApi
        self.api = JanusApi(address, JANUS_PORT)
        self.n, self.subscribe, self.host = n, subscribe, host
        self.parts = []

    async def start(self):
        from janus_client import JanusParticipant, create_room
        room = await create_room(self.api, self.n)
        for i in range(self.n):
            p = JanusParticipant(self.api, room, "p%02d" % i, 400 + 150 * i, self.host)
            self.parts.append(p)
            await p.publish()
        if self.subscribe:
            for p in self.parts:
                await p.subscribe([q.feed_id for q in self.parts if q is not p])

    def pcs(self, role):
        return [getattr(p, role + "_pc") for p in self.parts
                if getattr(p, role + "_pc") is not None]

    def ssrc_map(self):
        by_feed = {p.feed_id: p.ssrc for p in self.parts}
        return {ssrc: by_feed[feed] for p in self.parts
                for ssrc, feed in p.ssrc_sources.items() if feed in by_feed}

    def errors(self):
        return [f"{p.display}: {e}" for p in self.parts for e in p.errors()]

    async def close(self):
        await asyncio.gather(*(p.close() for p in self.parts), return_exceptions=True)


# --------------------------------------------------------------------------
# Latency: a packet socket on the server's veth end (bench/rtp_capture.py,
# run in the namespace)


def match_copies(records, ssrc_map):
    """Latency (µs) of every copy the server sent after its original, and
    per original the first and the last copy. A copy's original: the
    publisher's packet of SSRC ssrc_map[copy's SSRC] and timestamp the
    copy's less the stream's offset (see the top of the file). `records`
    are rtp_capture.capture()'s."""
    ins, outs = collections.defaultdict(list), collections.defaultdict(list)
    for ns, d, port, ssrc, ts in records:
        (ins[ssrc] if d == "i" else outs[(port, ssrc)]).append((ns, ts))
    copies, per_orig, unmatched, shifted = [], collections.defaultdict(list), 0, 0
    for (_, ssrc), pkts in outs.items():
        orig = sorted(ins.get(ssrc_map.get(ssrc), ()))
        times = [n for n, _ in orig]
        offsets = collections.Counter()
        for ns, ts in pkts:
            i = bisect.bisect_right(times, ns) - 1
            if i >= 0:
                offsets[(ts - orig[i][1]) & 0xFFFFFFFF] += 1
        if not offsets:
            unmatched += len(pkts)
            continue
        offset = offsets.most_common(1)[0][0]
        shifted += offset != 0
        sent_at = {ts: n for n, ts in orig}
        for ns, ts in pkts:
            n0 = sent_at.get((ts - offset) & 0xFFFFFFFF)
            if n0 is None or not 0 <= ns - n0 < 1_000_000_000:
                unmatched += 1
                continue
            copies.append((ns - n0) / 1e3)
            per_orig[(ssrc_map[ssrc], n0)].append((ns - n0) / 1e3)
    return {"copies": copies, "first": [min(v) for v in per_orig.values()],
            "last": [max(v) for v in per_orig.values()], "unmatched": unmatched,
            "originals": sum(len(v) for v in ins.values()), "streams": len(outs),
            "shifted": shifted}


# --------------------------------------------------------------------------
# One run: a server, a scenario


class Bench:
    """The runs, one server at a time in namespace `ns`; Janus's
    configurations and logs go to `tmp`."""

    def __init__(self, a, ns, tmp, janus_bin):
        self.a, self.ns, self.tmp, self.janus_bin = a, ns, tmp, janus_bin
        self.server = None              # the running server, if any
        self.janus_runs = 0

    def start_server(self, kind):
        if kind == "sfud":
            self.server = SfudServer(self.a.build, self.ns, self.ns.inner)
        else:
            self.janus_runs += 1
            conf = os.path.join(self.tmp, "janus-%d" % self.janus_runs)
            write_janus_config(conf, self.ns.inner, JANUS_PORT)
            self.server = Janus(self.janus_bin, conf, self.ns, conf + ".log")
        return self.server

    def stop_server(self):
        if self.server is not None:
            server, self.server = self.server, None
            server.stop()

    async def janus_up(self, timeout=20.0):
        from janus_client import JanusApi
        api = JanusApi(self.ns.inner, JANUS_PORT)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.server.proc.poll() is not None:
                break
            try:
                return await api.info()
            except (OSError, asyncio.TimeoutError):
                await asyncio.sleep(0.1)
        raise RuntimeError("janus did not answer on its HTTP port:\n"
                           + "".join(self.server.log_lines()[-30:]))

    async def snapshot(self, load, pids):
        """Counters and CPU at one instant (nothing here yields to the
        event loop, so no packet is handled in between)."""
        sent = await sent_packets(load.pcs("pub"))
        recv = await received_packets(load.pcs("sub"))
        busy, steal = machine_busy_us()
        snap = {"t": time.monotonic(), "sent": sent, "recv": recv,
                "server": cpu_of(pids), "self": self_cpu_us(), "busy": busy, "steal": steal}
        snap["drops"] = {"server": udp_drops(pids), "peers": udp_drops([os.getpid()])}
        return snap

    async def flowing(self, load, n, subscribe):
        """Until every publisher sends and (a) every peer receives every
        other's stream twice in a row; False after --setup-timeout."""
        end = time.monotonic() + self.a.setup_timeout
        last = None
        while time.monotonic() < end:
            sent = [await sent_packets([pc]) for pc in load.pcs("pub")]
            got = [sum(1 for v, _ in (await received_packets([pc])).values() if v > 0)
                   for pc in load.pcs("sub")]
            ok = len(sent) == n and all(sent)
            if subscribe:
                ok = ok and len(got) == n and all(g >= n - 1 for g in got)
            if ok and last:
                return True
            last = ok
            await asyncio.sleep(0.5)
        return False

    async def run(self, kind, scen, rep):
        a = self.a
        n = a.participants
        subscribe = scen == "a"
        res = {"server": kind, "scenario": scen, "rep": rep}
        server = self.start_server(kind)
        load = None
        try:
            if kind == "janus":
                await self.janus_up()
                load = JanusLoad(self.ns.inner, n, subscribe, self.ns.outer)
            else:
                load = SfudLoad(server, n, subscribe, self.ns.outer)
            t0 = time.monotonic()
            await load.start()
            enlarge_receive_buffers(load.pcs("pub") + load.pcs("sub"))
            res["flowing"] = await self.flowing(load, n, subscribe)
            res["setup_s"] = time.monotonic() - t0
            await asyncio.sleep(a.warmup)
            pids = server.pids()
            s0 = await self.snapshot(load, pids)
            await asyncio.sleep(max(0.0, a.seconds - (time.monotonic() - s0["t"])))
            s1 = await self.snapshot(load, pids)
            res.update(measure(s0, s1, n, subscribe))
            res["processes"] = len(pids)
            res["private_kib"] = sum(smaps(pid)["Private"] for pid in pids)
            if subscribe and a.latency_seconds > 0:
                records = await rtp_capture.capture(self.ns.inner_dev, a.latency_seconds,
                                                    address=self.ns.inner,
                                                    prefix=self.ns.exec_prefix())
                if records is not None:
                    res["latency"] = latency_figures(match_copies(records, load.ssrc_map()))
            res["errors"] = load.errors()
        except Exception as e:
            res["failed"] = f"{e!r}"
            print(f"{kind} {scen} rep {rep} failed: {e!r}\n"
                  + "".join(server.log_lines()[-30:]), file=sys.stderr)
        finally:
            if load is not None:
                try:
                    await asyncio.wait_for(load.close(), 30)
                except asyncio.TimeoutError:
                    print("warning: peers did not close within 30 s", file=sys.stderr)
            self.stop_server()
            if a.logs:
                os.makedirs(a.logs, exist_ok=True)
                with open(os.path.join(a.logs, f"{rep}-{scen}-{kind}.log"), "w") as f:
                    f.writelines(server.log_lines())
        return res

    async def all_runs(self):
        # SIGTERM ends the runs as ctrl-C does: the task is cancelled, each
        # run's finally closes its peers and stops its server
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM,
                                                      asyncio.current_task().cancel)
        out = []
        for rep in range(1, self.a.reps + 1):
            order = self.a.servers if rep % 2 else self.a.servers[::-1]
            for scen in self.a.scenarios:
                for kind in order:
                    print(f"rep {rep}, scenario {scen}, {kind} ...", file=sys.stderr, flush=True)
                    r = await self.run(kind, scen, rep)
                    print("  " + one_line(r), file=sys.stderr, flush=True)
                    out.append(r)
        return out


def measure(s0, s1, n, subscribe):
    """The window's figures from two snapshots. Forwarded packets: what the
    publishers sent times the N - 1 subscribers of each, less the packets
    the subscribers found missing. Both are counted by the peers, and
    neither moves when the load generator falls behind at one end of the
    window (the received count does: packets the server forwarded before
    the window and the peers read in it count in it)."""
    secs = s1["t"] - s0["t"]
    sent = s1["sent"] - s0["sent"]
    recv = sum(v for v, _ in s1["recv"].values()) - sum(v for v, _ in s0["recv"].values())
    lost = sum(v for _, v in s1["recv"].values()) - sum(v for _, v in s0["recv"].values())
    server = s1["server"] - s0["server"]
    me = s1["self"] - s0["self"]
    r = {"window_s": secs, "sent": sent, "server_cpu_us": server,
         "server_core_pct": server / secs / 1e4, "loadgen_core_pct": me / secs / 1e4,
         "rest_core_pct": ((s1["busy"] - s0["busy"]) - server - me) / secs / 1e4,
         "steal_core_pct": (s1["steal"] - s0["steal"]) / secs / 1e4,
         "us_per_received": server / sent if sent else None,
         "udp_drops": {k: s1["drops"][k] - s0["drops"][k] for k in s0["drops"]}}
    if subscribe:
        fwd = sent * (n - 1) - lost
        r.update(forwarded=fwd, received=recv, lost=lost,
                 us_per_forwarded=server / fwd if fwd > 0 else None,
                 loss_pct=100.0 * lost / (recv + lost) if recv + lost else None)
    return r


def latency_figures(m):
    def q(xs):
        if not xs:
            return None
        return {"p50": statistics.median(xs), "p90": pct(xs, 90), "p99": pct(xs, 99),
                "max": max(xs)}
    return {"copies": len(m["copies"]), "unmatched": m["unmatched"],
            "originals": m["originals"], "streams": m["streams"], "shifted": m["shifted"],
            "every": q(m["copies"]), "last": q(m["last"])}


# --------------------------------------------------------------------------
# Report


def fmt(v, spec=".2f"):
    return "-" if v is None else format(v, spec)


def one_line(r):
    """A run's figures in a line, printed as it ends."""
    if "failed" in r:
        return "failed: " + r["failed"]
    out = f"server {r['server_core_pct']:.1f} % of a core, "
    if r["scenario"] == "a":
        lat = (r.get("latency") or {}).get("every") or {}
        out += (f"{fmt(r['us_per_forwarded'])} µs per forwarded packet, loss "
                f"{fmt(r['loss_pct'], '.3f')} %, latency p50 {fmt(lat.get('p50'), '.0f')} µs, ")
    else:
        out += f"{fmt(r['us_per_received'])} µs per packet in, "
    return (out + f"load generator {r['loadgen_core_pct']:.0f} %, rest of the machine "
            f"{r['rest_core_pct']:.1f} %" + ("" if r.get("flowing") else ", NOT every stream "
                                             "flowing"))


def report(a, runs, info):
    print(f"\n{info['janus']}; sfud from {a.build}; {a.participants} participants, "
          f"{a.seconds:g} s windows after {a.warmup:g} s of warm-up, {a.reps} repetitions, "
          f"{os.cpu_count()} cores")
    print("CPU: the server's (/proc, all its processes), % of one core; packets counted by the "
          "peers: in = sent to the server, fwd = in x (N - 1) less those the subscribers found "
          "missing (loss); µs/fwd, µs/in: server CPU per packet; drops: UDP datagrams dropped "
          "on the server's sockets / on the peers'; rest: CPU of the rest of the machine")
    for scen in a.scenarios:
        fwd = scen == "a"
        print(f"\n== {scen}: {SCENARIOS[scen]}")
        print(f"{'rep':>3} {'server':6} {'in/s':>5} "
              + (f"{'fwd/s':>5} {'loss %':>6} " if fwd else "")
              + f"{'drops':>7} {'CPU %':>6} " + (f"{'µs/fwd':>7} " if fwd else "")
              + f"{'µs/in':>7} "
              + (f"{'latency p50/p90/p99 µs':>22} {'last copy p50/p99':>17} " if fwd else "")
              + f"{'loadgen %':>9} {'rest %':>6}")
        rows = [r for r in runs if r["scenario"] == scen]
        for r in rows:
            if "failed" in r:
                print(f"{r['rep']:>3} {r['server']:6} failed: {r['failed']}")
                continue
            w = r["window_s"]
            d = r["udp_drops"]
            line = f"{r['rep']:>3} {r['server']:6} {r['sent'] / w:5.0f} "
            if fwd:
                line += f"{r['forwarded'] / w:5.0f} {fmt(r['loss_pct'], '.3f'):>6} "
            line += f"{'%d/%d' % (d['server'], d['peers']):>7} {r['server_core_pct']:6.2f} "
            if fwd:
                line += f"{fmt(r['us_per_forwarded']):>7} "
            line += f"{fmt(r['us_per_received']):>7} "
            if fwd:
                lat = r.get("latency") or {}
                ev, la = lat.get("every"), lat.get("last")
                ev = "%.0f/%.0f/%.0f" % (ev["p50"], ev["p90"], ev["p99"]) if ev else "-"
                la = "%.0f/%.0f" % (la["p50"], la["p99"]) if la else "-"
                line += f"{ev:>22} {la:>17} "
            line += f"{r['loadgen_core_pct']:9.0f} {r['rest_core_pct']:6.1f}"
            if not r.get("flowing"):
                line += "  (not every stream flowing)"
            print(line)
            if r.get("errors"):
                print(f"      {len(r['errors'])} peer errors, first: {r['errors'][0]}")
        s = summary(rows)
        if s:
            what = "forwarded packet" if fwd else "packet in"
            meds = [f"{name} median {fmt(s[k])}" for k, name in (("sfud", "sfud"),
                                                                   ("janus", "Janus"))
                    if s[k] is not None]
            ratios = (f"; sfud / Janus per repetition {', '.join(fmt(x) for x in s['ratios'])}, "
                      f"median {fmt(s['ratio'])}" if s["ratios"] else "")
            print(f"  µs per {what}: " + ", ".join(meds) + ratios)
    mem = {(r["scenario"], r["server"]): [] for r in runs}
    for r in runs:
        if "private_kib" in r:
            mem[(r["scenario"], r["server"])].append(r["private_kib"])
    print("\nprivate memory at the end of the window (median, all processes of the server): "
          + ", ".join(f"{scen} {kind} {statistics.median(v) / 1024:.1f} MiB"
                      for (scen, kind), v in sorted(mem.items()) if v))
    lat = [r for r in runs if (r.get("latency") or {}).get("copies")]
    if lat:
        print("\nlatency captures (copies matched / unmatched, streams whose timestamps the "
              "server shifted / streams): " + ", ".join(
                  "%s %d/%d, %d/%d" % (r["server"], r["latency"]["copies"],
                                       r["latency"]["unmatched"], r["latency"]["shifted"],
                                       r["latency"]["streams"]) for r in lat))


def key_figure(r):
    return r.get("us_per_forwarded") if r["scenario"] == "a" else r.get("us_per_received")


def summary(rows):
    """Medians of each server's key figure, and sfud / Janus per repetition."""
    fig = {(r["server"], r["rep"]): key_figure(r) for r in rows if "failed" not in r}
    reps = sorted({rep for _, rep in fig})
    ratios = [fig[("sfud", rep)] / fig[("janus", rep)] for rep in reps
              if fig.get(("sfud", rep)) and fig.get(("janus", rep))]
    med = {k: statistics.median([v for (s, _), v in fig.items() if s == k and v])
           if any(s == k and v for (s, _), v in fig.items()) else None
           for k in ("sfud", "janus")}
    if not ratios and not any(med.values()):
        return None
    return {**med, "ratios": ratios, "ratio": statistics.median(ratios) if ratios else None}


# --------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=15.0, help="measurement window")
    ap.add_argument("--warmup", type=float, default=3.0,
                    help="seconds between every stream flowing and the window")
    ap.add_argument("--participants", type=int, default=10)
    ap.add_argument("--scenarios", default="a,b", help="a, b or a,b")
    ap.add_argument("--servers", default="sfud,janus",
                    help="sfud,janus (alternating), or one of them")
    ap.add_argument("--latency-seconds", type=float, default=5.0,
                    help="packet capture after the window of a; 0 = skip")
    ap.add_argument("--setup-timeout", type=float, default=60.0)
    ap.add_argument("--decode", action="store_true",
                    help="let the peers decode what they receive (aiortc's default)")
    ap.add_argument("--json", help="write every run's figures here")
    ap.add_argument("--logs", help="keep each run's server log in this directory")
    a = ap.parse_args()
    a.scenarios = [s for s in a.scenarios.split(",") if s]
    if any(s not in SCENARIOS for s in a.scenarios):
        ap.error("--scenarios: a, b or a,b")
    a.servers = [s for s in a.servers.split(",") if s]
    if not a.servers or any(s not in ("sfud", "janus") for s in a.servers):
        ap.error("--servers: sfud, janus or sfud,janus")
    if os.geteuid() != 0:
        raise SystemExit("needs root: network namespaces, the packet socket, apt-get")
    for f in ("sfud", "sfu-room"):
        if not os.access(os.path.join(a.build, f), os.X_OK):
            raise SystemExit(f"{a.build}/{f} not found (scripts/build.sh {a.build})")

    from netns import NetNS, Unavailable, sweep_stale_namespaces
    janus_bin = ensure_janus()
    info = {"janus": janus_version(janus_bin)}
    others = [pid for pid, _, cmd in live_procs() if os.path.basename(cmd()[0]) == b"janus"]
    if others:
        print(f"note: a Janus this script did not start runs (pid {others}); it is left alone, "
              "its CPU counts in the rest of the machine", file=sys.stderr)
    if not a.decode:
        stop_decoding()
    # outside the event loop, SIGTERM ends the run as ctrl-C does: through
    # the finally below
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sweep_stale_namespaces(NS_TAG)
    tmp = tempfile.mkdtemp(prefix="janus-compare-")
    ns = bench = None
    try:
        ns = NetNS(NS_TAG)
        bench = Bench(a, ns, tmp, janus_bin)
        runs = asyncio.run(bench.all_runs())
    except Unavailable as e:
        raise SystemExit(f"network namespaces unavailable: {e}")
    except (KeyboardInterrupt, asyncio.CancelledError):
        raise SystemExit("interrupted")
    finally:
        if bench is not None:
            bench.stop_server()
        if ns is not None:
            ns.close()
        shutil.rmtree(tmp, ignore_errors=True)
    report(a, runs, info)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"info": info, "args": vars(a), "runs": runs,
                       "summary": {s: summary([r for r in runs if r["scenario"] == s])
                                   for s in a.scenarios}}, f, indent=1)


if __name__ == "__main__":
    main()

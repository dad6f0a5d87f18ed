#!/usr/bin/env python3
"""Call forwarding cost: room CPU per forwarded packet, memory per participant.

Starts a local sfud (heartbeat 200 ms), measures an idle room's private
memory, then creates a room with N aiortc peers that all publish a tone (each
its own frequency) and hear each other. Over a window of --seconds it prints:

* RTP packets received by the room per second and forwarded per second
  (deltas of the room's counters rtp_in / rtp_out);
* room CPU per forwarded packet (µs) and as % of one core, two ways:
  - the room's own figures: sfud keeps the room's last stats message, which
    carries the counters *and* the room's getrusage() CPU (cpu_us) and
    uptime_ms taken at the same instant; the window runs from one fresh
    message to another, so counters and CPU are exactly aligned (primary);
  - /proc/<room pid>/stat utime+stime (clock ticks -> µs) read right after
    each of those fresh messages arrives (within a few ms; ±1 tick);
* sfud's CPU and this load generator's CPU (all peers run in this Python
  process) over the same window, from /proc and getrusage;
* drops: every stats.packets.drop_* delta;
* room memory at the end (smaps_rollup RSS / PSS / private) and per
  participant: (room private - idle room private) / N, plus the marginal
  cost (room private with N - with 1 participant) / (N - 1);
* what the rest of the machine used meanwhile (/proc/stat busy time minus
  the three above): anything well above 0 means the figures are disturbed;
* after the CPU window (so it does not disturb it), --latency-seconds of
  forwarding latency seen on the loopback interface: a packet socket
  (bench/rtp_capture.py; root needed) timestamps in the kernel every RTP
  packet a peer sends to the room and every copy the room sends out;
  copies are matched to their original by RTP timestamp (forwarded
  unchanged; SRTP leaves the header in the clear). That is the delay the
  room adds: wake-up, SRTP unprotect, fan-out, SRTP protect, sendmsg -- on
  this machine, under this load.

Prints figures; asserts nothing.

  bench/call_cpu.py --build build [--participants 10] [--seconds 20]
"""
import argparse
import asyncio
import os
import resource
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from sfutest import Sfud, smaps  # noqa: E402
import rtp_capture  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
HEARD = 0.01      # tone power of a clearly audible 0.3-amplitude tone is ~0.045


# --------------------------------------------------------------------------
# /proc readers


def proc_cpu_us(pid):
    """utime + stime of a process (all its threads), in µs (tick resolution)."""
    with open(f"/proc/{pid}/stat") as f:
        st = f.read()
    fields = st[st.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) * 1_000_000 // CLK_TCK


def self_cpu_us():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return int((ru.ru_utime + ru.ru_stime) * 1e6)


def private_by_mapping(pid, top=5):
    """[(private KiB, dirty KiB, mapping)] of a process per mapping kind
    ([heap], anonymous, a file's basename), largest first."""
    out, cur = {}, None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            bits = line.split()
            if "-" in bits[0] and len(bits) >= 5 and ":" in bits[3]:
                cur = os.path.basename(bits[5]) if len(bits) > 5 else "anonymous"
            elif bits[0] in ("Private_Clean:", "Private_Dirty:"):
                tot, dirty = out.get(cur, (0, 0))
                out[cur] = (tot + int(bits[1]),
                            dirty + (int(bits[1]) if bits[0] == "Private_Dirty:" else 0))
    return sorted(((t, d, k) for k, (t, d) in out.items() if t), reverse=True)[:top]


def machine_busy_us():
    """CPU time of the whole machine (all cores, not idle/iowait), µs."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest is in user)
    busy = v[0] + v[1] + v[2] + v[5] + v[6]
    return busy * 1_000_000 // CLK_TCK, v[7] * 1_000_000 // CLK_TCK


def socket_inodes(pid):
    """Inodes (strings, as /proc/net/udp shows them) of the sockets a
    process holds; none if it is gone."""
    out = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            out.add(link[8:-1])
    return out


def udp_ports(pid):
    """Local UDP ports of the sockets a process holds."""
    inodes = socket_inodes(pid)
    ports = set()
    for name in ("udp", "udp6"):
        try:
            with open(f"/proc/{pid}/net/{name}") as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            bits = line.split()
            if bits[9] in inodes:
                ports.add(int(bits[1].rsplit(":", 1)[1], 16))
    return ports


# --------------------------------------------------------------------------
# Latency


def latency_from_capture(records):
    """Latency (µs) of each forwarded copy after its original, and per
    original packet the first and the last copy; `records` are
    rtp_capture.capture()'s."""
    ins, outs = {}, []
    for ns, d, _, ssrc, ts in records:
        if d == "i":
            ins.setdefault(ts, []).append((ns, ssrc))
        else:
            outs.append((ns, ts))
    copies, per_orig, unmatched = [], {}, 0
    for ns, ts in outs:
        cands = [(n, s) for n, s in ins.get(ts, ()) if 0 <= ns - n < 1_000_000_000]
        if len(cands) != 1:           # no original in the capture, or ambiguous
            unmatched += 1
            continue
        lat = (ns - cands[0][0]) / 1e3
        copies.append(lat)
        per_orig.setdefault(cands[0], []).append(lat)
    first = [min(v) for v in per_orig.values()]
    last = [max(v) for v in per_orig.values()]
    fanout = [len(v) for v in per_orig.values()]
    return copies, first, last, fanout, unmatched, sum(len(v) for v in ins.values())


# --------------------------------------------------------------------------


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


class Bench:
    def __init__(self, a, sfud):
        self.a = a
        self.s = sfud

    async def get(self, path):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.s.request, "GET", path)

    async def fresh_snapshot(self, rid, timeout=5.0):
        """Wait for the room's next stats message to reach sfud, then read the
        /proc CPU figures at once. Returns (stats, proc readings)."""
        _, j = await self.get("/v1/rooms/" + rid)
        prev = (j.get("stats") or {}).get("uptime_ms")
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            await asyncio.sleep(0.003)
            _, j = await self.get("/v1/rooms/" + rid)
            st = j.get("stats")
            if st and st.get("uptime_ms") != prev:
                busy, steal = machine_busy_us()
                return st, {"t": time.monotonic(), "room": proc_cpu_us(j["pid"]),
                            "sfud": proc_cpu_us(self.s.proc.pid), "self": self_cpu_us(),
                            "busy": busy, "steal": steal}
        raise RuntimeError("no fresh stats from the room in %.0f s" % timeout)

    async def idle_room_private(self):
        st, r = self.s.request("POST", "/v1/rooms", {"name": "idle"})
        assert st == 201, r
        rid = r["room_id"]
        j = await self._running(rid)
        await asyncio.sleep(1.0)          # a few heartbeats: steady idle state
        s0, _ = await self.fresh_snapshot(rid)
        await asyncio.sleep(2.0)
        s1, _ = await self.fresh_snapshot(rid)
        m = smaps(j["pid"])
        m["cpu_pct"] = (s1["cpu_us"] - s0["cpu_us"]) / (s1["uptime_ms"] - s0["uptime_ms"]) / 10
        self.s.request("DELETE", "/v1/rooms/" + rid)
        end = time.monotonic() + 10
        while time.monotonic() < end and (await self.get("/v1/rooms/" + rid))[0] != 404:
            await asyncio.sleep(0.02)
        return m

    async def _running(self, rid):
        end = time.monotonic() + 10
        while time.monotonic() < end:
            _, j = await self.get("/v1/rooms/" + rid)
            if j.get("state") == "running":
                return j
            await asyncio.sleep(0.01)
        raise RuntimeError("room did not start")

    async def run(self):
        from aiortc_peer import Peer

        a = self.a
        n = a.participants
        idle = await self.idle_room_private()

        st, room = self.s.request("POST", "/v1/rooms",
                                  {"name": "bench", "max_participants": max(n, 2)})
        assert st == 201, room
        rid = room["room_id"]
        rj = await self._running(rid)
        pid = rj["pid"]
        freqs = [400 + 150 * i for i in range(n)]
        peers = []
        for i, f in enumerate(freqs):
            ident = "p%02d" % i
            _, t = self.s.request("POST", "/v1/rooms/%s/tokens" % rid, {"identity": ident})
            peers.append(Peer(room["ws_url"], rid, t["token"], ident, freq=f))
        res = {"idle": idle, "pid": pid}
        try:
            # first participant alone: private memory with 1 participant
            # media arriving is what counts (not aiortc's connectionState)
            await peers[0].join(timeout=15)
            end = time.monotonic() + 15
            while time.monotonic() < end and not (
                    (await self.get("/v1/rooms/" + rid))[1].get("stats") or {}
            ).get("packets", {}).get("rtp_in"):
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)
            res["priv1"] = smaps(pid)["Private"]
            for p in peers[1:]:
                await p.join(timeout=15)

            def hears_one(i):
                return any(peers[i].tone_power(peers[k].identity, freqs[k], 1.0) > HEARD
                           for k in range(n) if k != i)

            def pairs_heard():
                return sum(peers[i].tone_power(peers[k].identity, freqs[k], 1.0) > HEARD
                           for i in range(n) for k in range(n) if k != i)

            t0 = time.monotonic()
            end = t0 + a.hear_timeout
            while time.monotonic() < end and not all(hears_one(i) for i in range(n)):
                await asyncio.sleep(0.25)
            res["everyone_hears_one"] = all(hears_one(i) for i in range(n))
            # then, bounded, everyone hearing everyone (the full fan-out)
            while time.monotonic() < end and pairs_heard() < n * (n - 1):
                await asyncio.sleep(0.5)
            res["setup_s"] = time.monotonic() - t0
            res["pairs_before"] = pairs_heard()
            res["not_connected"] = [p.identity for p in peers
                                    if p.pc is None or p.pc.connectionState != "connected"]

            await asyncio.sleep(a.settle)
            s0, p0 = await self.fresh_snapshot(rid)
            await asyncio.sleep(max(0.0, a.seconds - (time.monotonic() - p0["t"]) - 0.1))
            s1, p1 = await self.fresh_snapshot(rid)
            res.update(s0=s0, s1=s1, p0=p0, p1=p1)
            res["mem"] = smaps(pid)
            res["mem_top"] = private_by_mapping(pid)
            res["threads"] = len(os.listdir(f"/proc/{pid}/task"))
            res["pairs_after"] = pairs_heard()

            if a.latency_seconds > 0:
                res["latency"] = await self.capture_latency(pid)
        finally:
            try:
                await asyncio.wait_for(asyncio.gather(*(p.close() for p in peers),
                                                      return_exceptions=True), 30)
            except asyncio.TimeoutError:
                print("warning: peers did not close within 30 s", file=sys.stderr)
        res["errors"] = sum(len(p.errors) for p in peers)
        return res

    async def capture_latency(self, pid):
        ports = udp_ports(pid)
        if os.geteuid() != 0 or not ports:
            return {"skipped": "needs root (packet socket)" if ports else "no UDP ports"}
        # every packet to or from the room's ports, as sent (lo shows each twice)
        records = await rtp_capture.capture("lo", self.a.latency_seconds, ports=ports,
                                            sent_only=True)
        if records is None:
            return {"skipped": "capture helper failed"}
        return latency_from_capture(records)


def report(a, r):
    n = a.participants
    s0, s1, p0, p1 = r["s0"], r["s1"], r["p0"], r["p1"]
    k0, k1 = s0["packets"], s1["packets"]
    win_s = (s1["uptime_ms"] - s0["uptime_ms"]) / 1e3
    proc_s = p1["t"] - p0["t"]
    rin = k1["rtp_in"] - k0["rtp_in"]
    rout = k1["rtp_out"] - k0["rtp_out"]
    room_cpu = s1["cpu_us"] - s0["cpu_us"]
    room_proc = p1["room"] - p0["room"]
    sfud_cpu = p1["sfud"] - p0["sfud"]
    self_cpu = p1["self"] - p0["self"]
    drops = {k: k1[k] - k0.get(k, 0) for k in sorted(k1) if k.startswith("drop_")}

    print(f"participants {n} (each publishing a tone and hearing the others), "
          f"window {win_s:.2f} s (room clock; /proc readings {proc_s:.2f} s apart)")
    print(f"  setup: everyone hears at least one other: "
          f"{'yes' if r['everyone_hears_one'] else 'NO'}; pairs heard "
          f"{r['pairs_before']}/{n * (n - 1)} before the window, "
          f"{r['pairs_after']}/{n * (n - 1)} after (in {r['setup_s']:.1f} s)")
    if r["not_connected"]:
        print(f"  aiortc connectionState not 'connected' (media flows regardless): "
              f"{', '.join(r['not_connected'])}")
    print(f"  RTP in {rin / win_s:.1f} pkt/s  forwarded out {rout / win_s:.1f} pkt/s  "
          f"(ideal {n * 50} / {n * (n - 1) * 50} at 20 ms ptime)")
    if rout:
        print(f"  room CPU per forwarded packet: {room_cpu / rout:.2f} µs "
              f"(room's getrusage, aligned with the counters); "
              f"{room_proc / rout:.2f} µs (/proc ticks)")
        print(f"  room CPU per received packet: {room_cpu / max(rin, 1):.2f} µs")
    print(f"  room CPU: {room_cpu / win_s / 1e4:.2f} % of one core "
          f"(/proc: {room_proc / proc_s / 1e4:.2f} %)")
    print(f"  sfud CPU: {sfud_cpu / proc_s / 1e4:.2f} % of one core (/proc, ±{1e6 / CLK_TCK / proc_s / 1e4:.2f})")
    print(f"  load generator (this Python, {n} aiortc peers) CPU: "
          f"{self_cpu / proc_s / 1e4:.1f} % of one core")
    other = (p1["busy"] - p0["busy"]) - room_proc - sfud_cpu - self_cpu
    print(f"  rest of the machine (other processes, kernel threads) in the window: "
          f"{other / proc_s / 1e4:.1f} % of one core (tick-sampled, ±2); steal "
          f"{(p1['steal'] - p0['steal']) / proc_s / 1e4:.1f} %  ({os.cpu_count()} cores)")
    print("  drops in the window: " + ", ".join(f"{k} {v}" for k, v in drops.items()))
    m, idle = r["mem"], r["idle"]
    print(f"  idle room: CPU {idle['cpu_pct']:.3f} % of one core (heartbeats); "
          f"memory (KiB) private {idle['Private']} (dirty {idle['Private_Dirty']})  "
          f"pss {idle['Pss']}  rss {idle['Rss']}")
    print(f"  call room (KiB): private {m['Private']} (dirty {m['Private_Dirty']})  "
          f"pss {m['Pss']}  rss {m['Rss']};  {r['threads']} thread(s)")
    print("    private by mapping: " + ", ".join(f"{k} {t} (dirty {d})"
                                                for t, d, k in r["mem_top"]))
    print(f"  per participant (KiB): (private - idle private) / N = "
          f"{(m['Private'] - idle['Private']) / n:.1f}  (dirty only: "
          f"{(m['Private_Dirty'] - idle['Private_Dirty']) / n:.1f});  marginal "
          + (f"(private(N) - private(1)) / (N-1) = {(m['Private'] - r['priv1']) / (n - 1):.1f}"
             f"  [private with 1 participant: {r['priv1']}]" if n > 1 else "n/a"))
    lat = r.get("latency")
    if lat is None:
        print("  forwarding latency: not measured (--latency-seconds 0)")
    elif isinstance(lat, dict):
        print(f"  forwarding latency: skipped ({lat['skipped']})")
    else:
        copies, first, last, fanout, unmatched, nin = lat
        if not copies:
            print("  forwarding latency: no matched packets")
        else:
            print(f"  forwarding latency on lo over {a.latency_seconds:g} s, after the "
                  f"CPU window ({nin} originals, {len(copies)} copies matched, "
                  f"{unmatched} unmatched, median fan-out {statistics.median(fanout):g}):")
            for name, xs in (("every copy", copies), ("first copy", first),
                             ("last copy", last)):
                print(f"    {name:10s} (µs): median {statistics.median(xs):.0f}  "
                      f"p90 {pct(xs, 90):.0f}  p99 {pct(xs, 99):.0f}  max {max(xs):.0f}")
    if r["errors"]:
        print(f"  note: {r['errors']} errors in aiortc peers' background tasks")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--participants", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--settle", type=float, default=2.0,
                    help="seconds between everyone hearing and the window")
    ap.add_argument("--hear-timeout", type=float, default=30.0)
    ap.add_argument("--heartbeat-ms", type=int, default=200)
    ap.add_argument("--latency-seconds", type=float, default=5.0,
                    help="loopback capture after the window (root); 0 = skip")
    a = ap.parse_args()

    s = Sfud(os.path.join(a.build, "sfud"), os.path.join(a.build, "sfu-room"),
             "--heartbeat-ms", str(a.heartbeat_ms),
             "--heartbeat-timeout-ms", "5000")
    try:
        r = asyncio.run(asyncio.wait_for(Bench(a, s).run(),
                                         a.seconds + a.latency_seconds + 180))
    finally:
        s.stop()
    report(a, r)


if __name__ == "__main__":
    main()

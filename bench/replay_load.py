#!/usr/bin/env python3
"""Load through sfu-replay: the standard scenarios, scaling curves, a full node.

Starts a local sfud (heartbeat 200 ms), measures an idle room's private
memory, then drives scenarios with sfu-replay (real clients: WebSocket,
ICE, DTLS, SRTP; one process, one thread each):

  a  room10        a 10-person room, everyone speaking (a looped Opus capture)
  b  listeners200  5 speakers and 200 listeners in one room
  c  rooms50       50 rooms of 6: 2 speakers and 4 listeners each

--curves runs generated scenarios, one point after another (each written to
a temporary scenario file; every speaker publishes the looped Opus tone
capture, 50 packets/s), and prints a table per curve:

  size    one room of N, everyone speaking, N = 2 5 10 20 50
  listen  one room of N, 3 speakers and N - 3 listeners, N = 5 10 20 50
  rooms   R rooms of 6 (2 speakers, 4 listeners), R = 1 10 50 200
          (more than --rooms-per-proc rooms: several sfu-replay processes)

--stage N runs a stage: one room, 5 speakers and N listeners whose tokens
may not publish (an audience), both spread over --stage-procs sfu-replay
processes (at most 5; each process checks loss and latency of the streams
of its own speakers), first in the room's one process, then with
--stage-relays relay processes made before anyone joins (sfud places the
audience on them in turn: docs/internals/relay.md); --stage-reps
alternates the order. Its block adds each process's copies/s, CPU per copy
and share of a core (copies count the packets each sends to clients and
over its links).

--node runs node2000: 2,000 audio participants, 100 rooms of 20 with 2
speakers each, the rooms spread over --node-procs sfu-replay processes
(distinct room-name prefixes), so the load generator is not one thread.

Over a window in the middle of the sending phase (it starts once every
room forwards, plus a settling time; sfu-replay is then stopped with
SIGINT, which ends its sending and makes it summarise) it prints, per
scenario:

* forwarded packets/s (the rooms' rtp_out counters);
* SFU CPU µs per forwarded packet: sfud (/proc) plus every room process
  (each room's own getrusage, sent with the same stats message as its
  counters, so CPU and packets are aligned), and as % of one core;
* the load generator's CPU over the same window (/proc of every sfu-replay);
* whether the load generator kept up: its sockets dropped nothing, it sent
  at least 99 % of the packets due, no process above 90 % of a core, and
  what it received waited at most 20 ms in its sockets;
* added latency p50/p99 and loss, from sfu-replay's summary (whole run;
  with several processes, the worst process's percentiles); clients the
  server ended (their later packets are not counted as lost);
* drops in the window: at the rooms' and the clients' UDP sockets
  (/proc/net/udp), the kernel's UDP and backlog counters, the rooms' own;
* how long datagrams waited in the rooms' and in the clients' sockets
  (their rx_queue sampled every second, Little's law): which side is behind;
* room memory per participant: private ((rooms' private - idle room x
  rooms) / participants) and RSS (rooms' RSS / participants, shared library
  pages counted once per room), from smaps_rollup at the end of the window;
* what the rest of the machine used meanwhile (should be near 0);
* the ratio to the floor measured in the same run, before the scenario
  (sfu-floor, bench/floor.c: one SRTP protect + its share of one sendmmsg
  per forwarded copy, one recvmmsg share + one unprotect per received
  packet): SFU CPU / (forwarded x per-copy floor + received x per-received
  floor); and to the floor of packets that arrive alone, each received
  packet paying one wake-up of as many processes as the scenario has rooms
  (sfu-floor --wake-procs) instead of its recvmmsg share.

sfud runs with --max-connections-per-ip and --max-connections above the
number of clients (all on 127.0.0.1), --max-participants 300, its default
heartbeat timeout (5 s); RLIMIT_NOFILE is raised to the hard limit. The
load generator runs under SCHED_BATCH (--generator-policy): woken by a
room's copies, it does not preempt the room in the middle of its sendmmsg.

Prints figures; asserts nothing.

  bench/replay_load.py --build build [--only a,b,c] [--seconds 15]
  bench/replay_load.py --build build --curves size,listen,rooms [--point-seconds 5]
  bench/replay_load.py --build build --node [--node-procs 4] [--seconds 15]
  bench/replay_load.py --build build --stage 2000 [--stage-relays 2] [--stage-procs 4]
"""
import argparse
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
sys.path.insert(0, HERE)
from sfutest import Sfud, smaps, wait_for  # noqa: E402
from call_cpu import machine_busy_us, proc_cpu_us, socket_inodes  # noqa: E402

QBYTES = 768.0  # rx_queue bytes of one queued datagram (measured in main)
SCENARIOS = {"a": "room10", "b": "listeners200", "c": "rooms50"}
TONE = os.path.normpath(os.path.join(HERE, "..", "tests", "data", "pcaps",
                                     "gst-opus-tone-stereo.pcap"))   # 50 packets/s
CURVES = {  # name: (title, [(point label, rooms, speakers, listeners)])
    "size": ("one room of N, everyone speaking",
             [("N=%d" % n, 1, n, 0) for n in (2, 5, 10, 20, 50)]),
    "listen": ("one room of N, 3 speakers + N-3 listeners",
               [("N=%d" % n, 1, 3, n - 3) for n in (5, 10, 20, 50)]),
    "rooms": ("R rooms of 6, 2 speakers + 4 listeners each",
              [("R=%d" % r, r, 2, 4) for r in (1, 10, 50, 200)]),
}


def raise_nofile():
    """Children (sfud, rooms, sfu-replay) inherit this: thousands of clients
    hold a WebSocket and ICE sockets each, sfud one connection per client."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(hard, 65536)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))  # root may raise the hard limit
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def socket_owner(groups):
    """{socket inode: group} of the pids of each group."""
    owner = {}
    for g, pids in groups.items():
        for pid in pids:
            for ino in socket_inodes(pid):
                owner[ino] = g
    return owner


def udp_sum(owner, column):
    """{group: the sum of a column of /proc/net/udp[6] over its sockets}."""
    out = {g: 0 for g in set(owner.values())}
    for name in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(name) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            bits = line.split()
            g = owner.get(bits[9])
            if g is not None:
                out[g] += column(bits)
    return out


def udp_drops(groups):
    """{group: datagrams the kernel dropped at the UDP sockets of its pids
    (full receive buffers: /proc/net/udp 'drops')}."""
    return dict({g: 0 for g in groups}, **udp_sum(socket_owner(groups), lambda b: int(b[12])))


def udp_queued(owner):
    """{group: bytes waiting in the receive buffers of its UDP sockets}
    (/proc/net/udp rx_queue: the buffers' memory, skb overhead included)."""
    return udp_sum(owner, lambda b: int(b[4].split(":")[1], 16))


def queued_bytes_per_datagram():
    """What one queued ~130-byte datagram (an SRTP Opus packet) counts in
    rx_queue on this kernel: sent to ourselves on loopback and read back."""
    import socket
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        a.bind(("127.0.0.1", 0))
        a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        for _ in range(100):
            b.sendto(b"\x80" * 130, a.getsockname())
        time.sleep(0.05)
        q = udp_queued({str(os.fstat(a.fileno()).st_ino): "x"}).get("x", 0)
        return q / 100.0 if q else 768.0
    finally:
        a.close()
        b.close()


def kernel_drops():
    """Datagrams the kernel dropped, machine-wide: UDP receive/send buffer
    errors and datagrams to closed ports (/proc/net/snmp), the per-CPU input backlog
    (/proc/net/softnet_stat, where loopback traffic queues; bounded by
    net.core.netdev_max_backlog)."""
    out = {}
    with open("/proc/net/snmp") as f:
        rows = [l.split() for l in f if l.startswith("Udp:")]
    for k, v in zip(rows[0][1:], rows[1][1:]):
        if k in ("RcvbufErrors", "SndbufErrors", "InErrors", "NoPorts"):
            out["udp_" + k] = int(v)
    with open("/proc/net/softnet_stat") as f:
        out["backlog_dropped"] = sum(int(l.split()[1], 16) for l in f if l.strip())
    return out


def room_names(scen):
    """The names sfu-replay gives the rooms of a scenario (replay.c)."""
    n = scen.get("rooms", 1)
    return [scen["room"]] if n == 1 else ["%s-%d" % (scen["room"], i) for i in range(n)]


def rooms_named(sfud, names):
    st, j = sfud.request("GET", "/v1/rooms")
    return [r for r in j["rooms"] if r.get("name") in names and r["state"] == "running"]


def room_stat(sfud, r):
    """(cpu_us, copies out, uptime_ms, rtp_in, {drop_*}, {process: (cpu_us, copies)}) of a
    room and its relays (each relay's from its last report): copies are the
    RTP packets sent to clients and over links, once per link."""
    st, j = sfud.request("GET", "/v1/rooms/" + r["room_id"])
    s = j.get("stats") or {}
    pk = s.get("packets", {})
    procs = {"origin": (s.get("cpu_us", 0), pk.get("rtp_out", 0) + pk.get("relay_out", 0),
                        pk.get("rtp_in", 0))}
    drops = {k: v for k, v in pk.items() if k.startswith("drop_")}
    for x in j.get("relays", []):
        xp = x.get("packets") or {}
        procs[x["relay_id"]] = (x.get("cpu_us", 0), xp.get("rtp_out", 0) + xp.get("relay_out", 0),
                                xp.get("rtp_in", 0))
        for k, v in xp.items():
            if k.startswith("drop_") and isinstance(v, int):
                drops[k] = drops.get(k, 0) + v
    return (sum(v[0] for v in procs.values()), sum(v[1] for v in procs.values()),
            s.get("uptime_ms", 0), sum(v[2] for v in procs.values()), drops, procs)


def room_pids(sfud, rooms):
    """The processes of the rooms: each room's and its relays'."""
    pids = []
    for r in rooms:
        pids.append(r["pid"])
        st, j = sfud.request("GET", "/v1/rooms/%s/relays" % r["room_id"])
        pids += [x["pid"] for x in (j if st == 200 else []) if x["state"] == "running"]
    return pids


def room_stats(sfud, rooms):
    """{room_id: (cpu_us, rtp_out, uptime_ms, rtp_in, {drop_*: n})} from each room's
    last stats."""
    return {r["room_id"]: room_stat(sfud, r) for r in rooms}


def measure_floor(args):
    """sfu-floor's figures on this machine, now (bench/floor.c)."""
    out = subprocess.run([os.path.join(args.build, "sfu-floor"), "--json"], check=True,
                         capture_output=True, text=True).stdout
    f = json.loads(out)
    print("floor: %.0f ns per forwarded copy (protect %.0f + send %.0f), %.0f ns per received"
          " packet (recv %.0f + unprotect %.0f)" % (f["per_copy_ns"], f["protect_ns"],
                                                     f["send_ns"], f["per_received_ns"],
                                                     f["recv_ns"], f["unprotect_ns"]),
          flush=True)
    return f


def measure_wake(args, procs):
    """sfu-floor's wake-up (--wake-only: nothing else measured) with `procs`
    processes woken in turn (at most 64, by then the figure no longer
    moves): what each received packet costs a process per room when
    packets arrive one at a time."""
    out = subprocess.run([os.path.join(args.build, "sfu-floor"), "--json", "--wake-only",
                          "--runs", "3", "--wake-procs", str(min(max(procs, 1), 64))],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["wake_ns"]


def generator_policy(args):
    """How the load generator is scheduled (Popen's preexec_fn).

    Its clients stand for machines elsewhere; on loopback, each copy a room
    sends wakes the generator, and under the default policy the woken
    generator preempts the room in the middle of its sendmmsg, once per copy
    (a context switch each way, charged to the room). SCHED_BATCH wakees do
    not preempt: the room finishes its batch, the generator reads it after.
    """
    if args.generator_policy == "normal":
        return None
    return lambda: os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


def fresh_stats(sfud, rooms):
    """Stats taken after every room has sent a newer message (heartbeats).
    Only rooms not yet fresh are asked again, so that many rooms do not
    make sfud (whose CPU is measured) serve a storm of requests."""
    before = room_stats(sfud, rooms)
    now, end = {}, time.monotonic() + 5
    while time.monotonic() < end:
        time.sleep(0.05)
        for r in rooms:
            k = r["room_id"]
            if k not in now:
                v = room_stat(sfud, r)
                if v[2] > before[k][2]:
                    now[k] = v
        if len(now) == len(rooms):
            return now
    print("  warning: %d of %d rooms sent no fresh stats within 5 s (left out)" %
          (len(rooms) - len(now), len(rooms)))
    return now


def idle_room_private_kib(sfud):
    st, r = sfud.request("POST", "/v1/rooms", {"name": "bench-idle"})
    wait_for(lambda: sfud.request("GET", "/v1/rooms/bench-idle")[1]["state"] == "running", 5)
    time.sleep(0.5)
    kib = smaps(r["pid"])["Private"]
    sfud.request("DELETE", "/v1/rooms/bench-idle")
    return kib


def gen_scenario(room, rooms, speakers, listeners):
    """A generated scenario: `rooms` rooms of `speakers` publishing the tone
    capture (absolute path: the file is written to a temporary directory)
    and `listeners` listening."""
    parts = [{"name": "speaker", "count": speakers, "publish": [{"capture": TONE}]}]
    if listeners:
        parts.append({"name": "listener", "count": listeners})
    return {"room": room, "rooms": rooms, "duration_s": 30, "loops": 0, "participants": parts}


def split_rooms(scen, procs):
    """The scenario's rooms spread over `procs` scenarios of their own
    (room-name prefixes <room>-p<i>), as evenly as they go."""
    n = scen.get("rooms", 1)
    procs = max(1, min(procs, n))
    out = []
    for i in range(procs):
        k = n // procs + (1 if i < n % procs else 0)
        s = dict(scen, room="%s-p%d" % (scen["room"], i), rooms=k)
        out.append(s)
    return out


def nparts_of(scen):
    return scen.get("rooms", 1) * sum(p.get("count", 1) for p in scen["participants"])


RATES = {}


def capture_rate(args, path):
    """A capture's packets per second, as sfu-replay --list counts them."""
    if path not in RATES:
        out = subprocess.run([os.path.join(args.build, "tools", "sfu-replay"), "--list", path],
                             capture_output=True, text=True).stdout
        m = re.search(r"(\d+) packets, ([\d.]+) s", out)
        RATES[path] = int(m.group(1)) / float(m.group(2)) if m and float(m.group(2)) else None
    return RATES[path]


def expected_sent_per_s(args, scen):
    """Packets/s the scenario's publishers should send (None: not known)."""
    total = 0.0
    for p in scen["participants"]:
        for x in p.get("publish", []):
            rate = capture_rate(args, x["capture"]) if "capture" in x else None
            if rate is None:
                return None
            total += p.get("count", 1) * rate
    return scen.get("rooms", 1) * total


def merge_latency(summaries):
    lats = [s.get("latency_us") or {} for s in summaries]
    lats = [l for l in lats if l.get("n")]
    if not lats:
        return {}
    if len(lats) == 1:
        return lats[0]
    return {"n": sum(l["n"] for l in lats), "p50": max(l["p50"] for l in lats),
            "p99": max(l["p99"] for l in lats), "max": max(l["max"] for l in lats)}


def write_plots(plot_dir, label, outs):
    """Keeps each sfu-replay summary of a scenario in plot_dir, with its
    latency histogram and loss over time as SVG beside it (bench/plot.py)."""
    import re
    import shutil
    sys.path.insert(0, HERE)
    import plot
    os.makedirs(plot_dir, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", label).strip("-").lower()
    for i, out in enumerate(outs):
        if not os.path.exists(out):
            continue
        keep = os.path.join(plot_dir, "%s%s.json" % (slug, "-%d" % i if len(outs) > 1 else ""))
        shutil.copyfile(out, keep)
        for p in plot.plot(keep, title=label):
            print("plot: " + p)


def run(args, sfud, label, scens, idle_kib, floor, window_s, settle_s, path=None,
        quiet=False):
    """Runs one sfu-replay per scenario of `scens` at once (path: the file
    `scens` was read from, for its relative capture paths), each written to
    a temporary file, measures the window, returns the figures."""
    names = set()
    for s in scens:
        names.update(room_names(s))
    nrooms = len(names)
    nparts = sum(nparts_of(s) for s in scens)
    wake_ns = measure_wake(args, nrooms)
    tmpdir = tempfile.mkdtemp(prefix="sfu-bench-")
    replays, outs, errs, wrote = [], [], [], []
    # sending would last this long; SIGINT ends it (sfu-replay then drains and
    # summarises) once the window is measured
    duration = settle_s + window_s + 120
    t_start = time.monotonic()
    for i, s in enumerate(scens):
        # the scenario's duration_s is what sfu-replay sends for (it overrides
        # --duration): each file is written again with it, captures made absolute
        s = dict(s, duration_s=round(duration, 1))
        if path is not None:
            s["participants"] = [dict(p, publish=[
                dict(x, capture=os.path.normpath(os.path.join(os.path.dirname(path),
                                                              x["capture"])))
                if "capture" in x else x for x in p.get("publish", [])])
                for p in s["participants"]]
        wrote.append(s)
        spath = os.path.join(tmpdir, "%s-%d.json" % (s["room"], i))
        with open(spath, "w") as f:
            json.dump(s, f, indent=1)
        out = os.path.join(tmpdir, "summary-%d.json" % i)
        err = open(os.path.join(tmpdir, "stderr-%d.txt" % i), "w+")
        replays.append(subprocess.Popen(
            [os.path.join(args.build, "tools", "sfu-replay"), "--server",
             "http://127.0.0.1:%d" % sfud.port, "--api-key", sfud.api_key, "--scenario", spath,
             "--duration", str(duration), "--json", out],
            stdout=subprocess.DEVNULL, stderr=err, text=True,
            preexec_fn=generator_policy(args)))
        outs.append(out)
        errs.append(err)
    log0 = len(sfud.log)

    # every room forwarding; a room seen forwarding is not asked again (sfud
    # serves these requests while thousands of clients join). Rooms that do
    # not all forward within 15 s of the last one that started are measured
    # as they are, with a warning.
    seen, rooms, last_change = set(), [], time.monotonic()
    deadline = time.monotonic() + 60 + nparts * 0.05
    while time.monotonic() < deadline:
        time.sleep(0.5)
        rooms = rooms_named(sfud, names)
        for r in rooms:
            if r["room_id"] not in seen and room_stat(sfud, r)[1] > 0:
                seen.add(r["room_id"])
                last_change = time.monotonic()
        if len(seen) == nrooms:
            break
        if seen and time.monotonic() - last_change > 15:
            print("  warning: %d of %d rooms running, %d forwarding after 15 s without"
                  " change; measuring those running" % (len(rooms), nrooms, len(seen)))
            break
    else:
        print("  warning: %d of %d rooms running, %d forwarding; measuring those" %
              (len(rooms), nrooms, len(seen)))
    t_fwd = time.monotonic() - t_start
    if not rooms:
        for p in replays:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
            try:
                p.wait(timeout=120)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        tails = []
        for e in errs:
            e.seek(0)
            tails.append(e.read()[-1500:])
            e.close()
        print("\n== %s: no room ran; sfu-replay said: %s" % (label, " | ".join(tails)))
        print("  sfud said: %s" % " | ".join(l.strip() for l in sfud.log[log0:]
                                              if "level=info" not in l)[:2000])
        return None
    time.sleep(settle_s)
    pids = room_pids(sfud, rooms)
    groups = {"rooms": pids, "sfu-replay": [p.pid for p in replays]}
    a_drops, a_kern = udp_drops(groups), kernel_drops()
    a = fresh_stats(sfud, rooms)
    a_sfud, a_rep, (a_busy, _) = proc_cpu_us(sfud.proc.pid), \
        [proc_cpu_us(p.pid) for p in replays], machine_busy_us()
    # what waits in the sockets, sampled through the window: by Little's law,
    # queued datagrams / arrival rate = how long a datagram waits there
    owner, queued = socket_owner(groups), []
    end = time.monotonic() + window_s
    while time.monotonic() < end:
        time.sleep(max(0.0, min(1.0, end - time.monotonic())))
        queued.append(udp_queued(owner))
    b = fresh_stats(sfud, rooms)
    b_sfud, b_rep, (b_busy, _) = proc_cpu_us(sfud.proc.pid), \
        [proc_cpu_us(p.pid) for p in replays], machine_busy_us()
    b_drops, b_kern = udp_drops(groups), kernel_drops()
    maps = []
    for pid in pids:
        try:
            maps.append(smaps(pid))
        except OSError:
            pass  # gone
    private = sum(m["Private"] for m in maps)
    rss = sum(m["Rss"] for m in maps)
    for p in replays:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    summaries = []
    for p, out, err in zip(replays, outs, errs):
        try:
            p.wait(timeout=120)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        try:
            with open(out) as f:
                summaries.append(json.load(f))
        except (OSError, ValueError):
            err.seek(0)
            tail = err.read()[-2000:]
            summaries.append({"failure": "no summary (exit %s): %s" % (p.returncode, tail),
                              "lost": 0, "received": 0, "sent": 0, "received_per_s": 0,
                              "sent_per_s": 0, "latency_us": None, "clients": []})
    if args.plots:
        write_plots(args.plots, label, outs)
    stderr_text = []
    for e in errs:
        e.seek(0)
        stderr_text.append(e.read())
        e.close()
    sfud_log = sfud.log[log0:]
    for r in rooms:  # rooms made before the run (--stage): not sfu-replay's to delete
        sfud.request("DELETE", "/v1/rooms/" + r["room_id"])
    # the rooms go once sfu-replay has deleted them: wait, so the next point starts clean
    try:
        wait_for(lambda: not rooms_named(sfud, names), 30, 0.25, "rooms deleted")
    except AssertionError:
        pass
    for f in os.listdir(tmpdir):
        os.unlink(os.path.join(tmpdir, f))
    os.rmdir(tmpdir)

    both = [k for k in b if k in a]
    per_proc = {}  # process -> (CPU us, copies) over the window
    for k in both:
        for name, v in b[k][5].items():
            u = a[k][5].get(name, (0, 0, 0))
            per_proc[name] = (v[0] - u[0], v[1] - u[1])
    room_cpu = sum(b[k][0] - a[k][0] for k in both)
    fwd = sum(b[k][1] - a[k][1] for k in both)
    rx = sum(b[k][3] - a[k][3] for k in both)
    secs = sum(b[k][2] - a[k][2] for k in both) / max(1, len(both)) / 1000.0 or window_s
    sfud_cpu = b_sfud - a_sfud
    rep_each = [y - x for x, y in zip(a_rep, b_rep)]
    rep_cpu = sum(rep_each)
    rest = (b_busy - a_busy) - room_cpu - sfud_cpu - rep_cpu
    sfu_cpu = room_cpu + sfud_cpu
    lat = merge_latency(summaries)
    lost = sum(s["lost"] for s in summaries)
    received = sum(s["received"] for s in summaries)
    connected = sum(sum(c["connected"] for c in s["clients"]) for s in summaries)
    floor_us = (fwd * floor["per_copy_ns"] + rx * floor["per_received_ns"]) / 1000.0
    alone_us = (fwd * floor["per_copy_ns"] + rx * (wake_ns + floor["unprotect_ns"])) / 1000.0
    r = {
        "label": label, "rooms": len(both), "rooms_wanted": nrooms, "clients": nparts,
        "procs": len(scens), "secs": secs, "fwd_per_s": fwd / secs, "rx_per_s": rx / secs,
        "us_per_fwd": sfu_cpu / fwd if fwd else float("nan"),
        "room_us": room_cpu / fwd if fwd else float("nan"),
        "sfud_us": sfud_cpu / fwd if fwd else float("nan"),
        "sfu_core": sfu_cpu / (secs * 1e6), "floor_us": floor_us / fwd if fwd else float("nan"),
        "ratio": sfu_cpu / floor_us if fwd else float("nan"),
        "wake_us": wake_ns / 1000.0, "alone_us": alone_us / fwd if fwd else float("nan"),
        "ratio_alone": sfu_cpu / alone_us if fwd else float("nan"),
        "rep_core": rep_cpu / (secs * 1e6), "rep_each": [c / (secs * 1e6) for c in rep_each],
        "rep_us_rx": rep_cpu / max(1, sum(s["received_per_s"] for s in summaries) * secs),
        "lat": lat, "lost": lost, "received": received,
        "loss": lost / (received + lost) if received + lost else 0.0,
        "connected": connected,
        "sent_per_s": sum(s["sent_per_s"] for s in summaries),
        "sent_want": expected_sent_per_s(args, wrote[0]) and
        sum(expected_sent_per_s(args, s) for s in wrote),
        "priv_pp": (private - idle_kib * len(maps)) / nparts, "rss_pp": rss / nparts,
        "private": private, "rest_core": rest / (secs * 1e6), "t_fwd": t_fwd,
        "ended": sorted(c["close_code"] for s in summaries for c in s["clients"]
                        if c.get("close_code")),
        "ice_restarts": sum(c.get("ice_restarts", 0) for s in summaries for c in s["clients"]),
        "resumes": sum(c.get("resumes", 0) for s in summaries for c in s["clients"]),
        "drops": {g: b_drops[g] - a_drops[g] for g in groups},
        "wait_ms": {g: (sum(q.get(g, 0) for q in queued) / max(1, len(queued)) / QBYTES)
                    / max(1.0, (fwd if g == "sfu-replay" else rx) / secs) * 1000.0
                    for g in groups},
        "kernel_drops": {k: b_kern[k] - a_kern[k] for k in b_kern},
        "room_drops": {k: sum(b[r][4].get(k, 0) - a[r][4].get(k, 0) for r in both)
                       for k in (b[both[0]][4] if both else {})},
        "ok": all(s.get("ok") for s in summaries),
        "per_proc": per_proc,
        "failures": [s["failure"] for s in summaries if s.get("failure")],
        "replay_notes": [l for t in stderr_text for l in t.splitlines() if l.strip()],
        "sfud_notes": [l for l in sfud_log if re.search(r"\b(warn|error|WARN|ERROR)\b", l)],
    }
    r["gen_behind"] = gen_behind(r)
    if not quiet:
        print_block(r, idle_kib)
    return r


def gen_behind(r):
    """Why the load generator did not keep up (empty: it did): datagrams
    its sockets dropped, packets not sent on time, a process on a full core."""
    why = []
    if r["drops"]["sfu-replay"]:
        why.append("its sockets dropped %d datagrams" % r["drops"]["sfu-replay"])
    if r["sent_want"] and r["sent_per_s"] < 0.99 * r["sent_want"]:
        why.append("it sent %.1f %% of the packets due" % (100.0 * r["sent_per_s"] / r["sent_want"]))
    if r["wait_ms"]["sfu-replay"] > 20:
        why.append("what it received waited %.0f ms in its sockets" % r["wait_ms"]["sfu-replay"])
    busy = [c for c in r["rep_each"] if c > 0.9]
    if busy:
        why.append("%d process(es) above 90 %% of a core" % len(busy))
    return why


def print_block(r, idle_kib):
    secs, lat = r["secs"], r["lat"]
    print("\n== %s: %d rooms%s, %d clients, %d sfu-replay process%s, %.1f s window" %
          (r["label"], r["rooms"], "" if r["rooms"] == r["rooms_wanted"] else
           " measured (of %d)" % r["rooms_wanted"], r["clients"], r["procs"],
           "" if r["procs"] == 1 else "es", secs))
    print("  forwarded           %9.0f packets/s (received %.0f/s)" % (r["fwd_per_s"], r["rx_per_s"]))
    if r["fwd_per_s"]:
        print("  SFU CPU             %9.2f us per forwarded packet (rooms %.2f + sfud %.2f);"
              " %.1f %% of a core" % (r["us_per_fwd"], r["room_us"], r["sfud_us"],
                                      100.0 * r["sfu_core"]))
        print("  floor               %9.2f us per forwarded packet (%d received per 100"
              " forwarded): SFU CPU is %.2f x the floor" %
              (r["floor_us"], round(100.0 * r["rx_per_s"] / r["fwd_per_s"]), r["ratio"]))
        print("  floor, packets alone%8.2f us per forwarded packet (each received one wakes one"
              " of %d processes: %.1f us): SFU CPU is %.2f x it" %
              (r["alone_us"], r["rooms"], r["wake_us"], r["ratio_alone"]))
    if len(r["per_proc"]) > 1:  # a room over relays: each process
        print("  per process         %s" % "; ".join(
            "%s %.0f copies/s, %.2f us each, %.0f %% of a core" %
            (name, c / secs, cpu / c if c else float("nan"), 100.0 * cpu / (secs * 1e6))
            for name, (cpu, c) in sorted(r["per_proc"].items())))
    print("  load generator CPU  %9.1f %% of a core (%.2f us per packet it received)%s" %
          (100.0 * r["rep_core"], r["rep_us_rx"],
           "" if r["procs"] == 1 else "; per process " +
           " ".join("%.0f%%" % (100 * c) for c in r["rep_each"])))
    print("  sent                %9.0f packets/s of %s/s the publishers should send" %
          (r["sent_per_s"], "%.0f" % r["sent_want"] if r["sent_want"] else "?"))
    print("  load generator      %s" % ("kept up" if not r["gen_behind"] else
                                       "did NOT keep up: " + "; ".join(r["gen_behind"])))
    print("  added latency       p50 %d us  p99 %d us  max %d us (%d packets)%s" %
          (lat.get("p50", 0), lat.get("p99", 0), lat.get("max", 0), lat.get("n", 0),
           "" if r["procs"] == 1 else " (worst process)"))
    print("  loss                %d of %d (%.4f %%); clients connected %d/%d; ok=%s" %
          (r["lost"], r["received"] + r["lost"], 100 * r["loss"], r["connected"], r["clients"],
           r["ok"]))
    if r["ended"] or r["ice_restarts"] or r["resumes"]:
        codes = {}
        for c in r["ended"]:
            codes[c] = codes.get(c, 0) + 1
        print("  clients ended by the server %d (close codes %s); ICE restarts %d; signaling"
              " resumes %d (their packets after the end are not counted as lost)" %
              (len(r["ended"]), codes, r["ice_restarts"], r["resumes"]))
    print("  UDP receive drops   %d at the rooms' sockets, %d at the clients' (full buffers,"
          " in the window)" % (r["drops"]["rooms"], r["drops"]["sfu-replay"]))
    print("  socket wait         %.2f ms in the rooms' sockets, %.2f ms in the clients' (mean,"
          " from what they held: Little's law)" % (r["wait_ms"]["rooms"],
                                                  r["wait_ms"]["sfu-replay"]))
    kd = {k: v for k, v in r["kernel_drops"].items() if v}
    rd = {k: v for k, v in r["room_drops"].items() if v}
    print("  other drops         kernel, whole machine: %s; rooms' own counters: %s" %
          (", ".join("%s %d" % kv for kv in sorted(kd.items())) or "none",
           ", ".join("%s %d" % kv for kv in sorted(rd.items())) or "none"))
    print("  room memory         %.0f KiB private per participant (%d KiB in %d rooms, idle"
          " room %d KiB); RSS %.0f KiB per participant (shared pages counted in every room)"
          % (r["priv_pp"], r["private"], r["rooms"], idle_kib, r["rss_pp"]))
    print("  rest of the machine %9.1f %% of a core" % (100.0 * r["rest_core"]))
    for f in r["failures"]:
        print("  sfu-replay:", f[:500])
    notes = [l for l in r["replay_notes"]
             if not l.startswith("{") and "interrupted: summarising" not in l]
    if notes:
        print("  sfu-replay stderr (%d lines), first: %s" % (len(notes), " | ".join(notes[:3])[:600]))
    if r["sfud_notes"]:
        print("  sfud warnings/errors (%d), first: %s" %
              (len(r["sfud_notes"]), " | ".join(x.strip() for x in r["sfud_notes"][:3])[:600]))
    sys.stdout.flush()


def run_stage(args, sfud, nrel, idle, floor):
    """One room, 5 speakers and args.stage audience listeners (tokens
    without publish: sfud places them on the relays), both spread over
    args.stage_procs sfu-replay processes (at most 5: each has a speaker,
    and checks loss and latency of its own speakers' streams only); the
    room is made first, with `nrel` relays running before anyone joins."""
    name = "bench-stage-%d" % nrel
    st, room = sfud.request("POST", "/v1/rooms",
                            {"name": name, "max_participants": args.stage + 5})
    if st != 201:
        print("\n== stage: cannot create the room: %s" % room)
        return None
    wait_for(lambda: sfud.request("GET", "/v1/rooms/" + room["room_id"])[1]["state"] == "running",
             5, 0.05, "the room running")
    for _ in range(nrel):
        st, j = sfud.request("POST", "/v1/rooms/%s/relays" % room["room_id"], {})
        if st != 201:
            print("\n== stage: cannot add a relay: %s" % j)
    if nrel:
        wait_for(lambda: len([x for x in sfud.request("GET", "/v1/rooms/%s/relays" %
                                                      room["room_id"])[1]
                              if x["state"] == "running"]) == nrel, 10, 0.1, "relays")
    # every process has speakers of its own: sfu-replay checks (loss, latency)
    # the streams its own publishers send, and sends for as long as they do
    procs = max(1, min(5, args.stage_procs))
    scens = []
    for i in range(procs):
        k = args.stage // procs + (1 if i < args.stage % procs else 0)
        parts = [{"name": "speaker%d" % i, "count": 5 // procs + (1 if i < 5 % procs else 0),
                  "publish": [{"capture": TONE}]}]
        if k:
            parts.append({"name": "aud%d" % i, "count": k, "audience": True})
        scens.append({"room": name, "rooms": 1, "duration_s": 30, "loops": 0,
                      "participants": parts})
    label = "stage: 5 speakers + %d listeners, %s" % (
        args.stage, "one process" if not nrel else "origin + %d relays" % nrel)
    return run(args, sfud, label, scens, idle, floor, args.seconds, 3)


def fmt_us(us):
    return "%d µs" % us if us < 10000 else "%.0f ms" % (us / 1000.0)


def curve_table(name, title, rows):
    print("\n### curve %s: %s" % (name, title))
    print("| point | clients connected | rooms | forwarded/s | SFU µs per fwd (rooms + sfud) "
          "| floor µs | ratio | ratio, packets alone | SFU CPU | gen CPU | gen kept up | loss | latency p50 / p99 "
          "| socket wait rooms / clients | private KiB per participant | rest of machine |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| %s | %d/%d | %d | %.0f | %.2f (%.2f + %.2f) | %.2f | %.2f× | %.2f× | %.0f %% "
              "| %.0f %% "
              "| %s | %.3f %% | %s / %s | %.1f / %.1f ms | %.0f | %.0f %% |" %
              (r["label"], r["connected"], r["clients"], r["rooms"], r["fwd_per_s"],
               r["us_per_fwd"], r["room_us"], r["sfud_us"], r["floor_us"], r["ratio"],
               r["ratio_alone"], 100 * r["sfu_core"], 100 * r["rep_core"], "yes" if not r["gen_behind"] else "no",
               100 * r["loss"], fmt_us(r["lat"].get("p50", 0)), fmt_us(r["lat"].get("p99", 0)),
               r["wait_ms"]["rooms"], r["wait_ms"]["sfu-replay"], r["priv_pp"],
               100 * r["rest_core"]))
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--only", default=None,
                    help="scenarios a,b,c (default: a,b,c unless --curves or --node)")
    ap.add_argument("--seconds", type=float, default=15,
                    help="window of the a/b/c and node scenarios")
    ap.add_argument("--curves", default=None,
                    help="scaling curves to run: size,listen,rooms (or 'all')")
    ap.add_argument("--points", default=None,
                    help="only these points of the curves (e.g. N=50,R=200)")
    ap.add_argument("--point-seconds", type=float, default=5,
                    help="window of each curve point")
    ap.add_argument("--settle", type=float, default=2,
                    help="seconds between every room forwarding and a curve point's window")
    ap.add_argument("--rooms-per-proc", type=int, default=50,
                    help="curve points with more rooms spread them over sfu-replay processes")
    ap.add_argument("--floor-each", type=int, default=1,
                    help="1: measure the floor again before each curve point and the node"
                    " scenario (the machine moves); 0: the first floor for all")
    ap.add_argument("--generator-policy", choices=("batch", "normal"), default="batch",
                    help="scheduling policy of sfu-replay (default batch: see generator_policy)")
    ap.add_argument("--stage", type=int, default=0, metavar="N",
                    help="a stage: one room, 5 speakers and N audience listeners, in one"
                         " process, then spread over --stage-relays relays")
    ap.add_argument("--stage-relays", type=int, default=2)
    ap.add_argument("--stage-procs", type=int, default=4,
                    help="sfu-replay processes sharing the audience")
    ap.add_argument("--stage-reps", type=int, default=1,
                    help="repetitions, alternating which comes first")
    ap.add_argument("--plots", default=None, metavar="DIR",
                    help="keep every sfu-replay summary in DIR with its latency histogram "
                         "and loss over time as SVG (bench/plot.py)")
    ap.add_argument("--node", action="store_true", help="run node2000")
    ap.add_argument("--node-rooms", type=int, default=100)
    ap.add_argument("--node-size", type=int, default=20, help="participants per room")
    ap.add_argument("--node-speakers", type=int, default=2)
    ap.add_argument("--node-procs", type=int, default=4, help="sfu-replay processes")
    args = ap.parse_args()
    only = args.only if args.only is not None else (
        "" if args.curves or args.node or args.stage else "a,b,c")
    curves = [] if not args.curves else (
        list(CURVES) if args.curves == "all" else [c.strip() for c in args.curves.split(",")])
    for c in curves:
        if c not in CURVES:
            ap.error("unknown curve %r (size, listen, rooms)" % c)
    nofile = raise_nofile()
    global QBYTES
    QBYTES = queued_bytes_per_datagram()
    node_clients = max(args.node_rooms * args.node_size if args.node else 0, args.stage + 5)
    sfud = Sfud(os.path.join(args.build, "sfud"), os.path.join(args.build, "sfu-room"),
                # sfud's own default (the test harness's 3 s kills rooms of a loaded
                # machine that missed heartbeats for a moment)
                "--heartbeat-timeout-ms", "5000",
                "--max-participants", str(max(300, args.stage + 10)),
                "--max-rooms", "1000",
                # every client is on 127.0.0.1: one WebSocket each, plus API requests
                "--max-connections-per-ip", str(max(2000, node_clients + 500)),
                "--max-connections", str(max(10000, node_clients + 1000)))
    print("RLIMIT_NOFILE %d (sfud, rooms and sfu-replay inherit it); %d cores; a queued"
          " datagram counts %.0f bytes in rx_queue" % (nofile, os.cpu_count(), QBYTES))
    try:
        floor = measure_floor(args)
        idle = idle_room_private_kib(sfud)
        fresh = True  # the floor was just measured
        for key in [k.strip() for k in only.split(",") if k.strip()]:
            name = SCENARIOS[key]
            path = os.path.join(HERE, "scenarios", name + ".json")
            with open(path) as f:
                scen = json.load(f)
            run(args, sfud, "%s (%s)" % (key, name), [scen], idle, floor, args.seconds, 3,
                path=path)
            fresh = False
        tables = []
        for c in curves:
            title, points = CURVES[c]
            rows = []
            for label, nrooms, speakers, listeners in points:
                if args.points and label not in args.points.split(","):
                    continue
                scen = gen_scenario("bench-%s-%s" % (c, label.replace("=", "").lower()),
                                    nrooms, speakers, listeners)
                procs = -(-nrooms // args.rooms_per_proc)
                scens = split_rooms(scen, procs) if procs > 1 else [scen]
                if args.floor_each and not fresh:
                    floor = measure_floor(args)
                fresh = False
                r = run(args, sfud, "%s %s" % (c, label), scens, idle, floor,
                        args.point_seconds, args.settle)
                if r:
                    rows.append(r)
            tables.append((c, title, rows))
            curve_table(c, title, rows)
        if args.node:
            scen = gen_scenario("bench-node", args.node_rooms, args.node_speakers,
                                args.node_size - args.node_speakers)
            label = "node%d (%d rooms of %d, %d speakers each)" % (
                node_clients, args.node_rooms, args.node_size, args.node_speakers)
            if args.floor_each and not fresh:
                floor = measure_floor(args)
            run(args, sfud, label, split_rooms(scen, args.node_procs), idle, floor,
                args.seconds, 3)
        for rep_i in range(args.stage_reps if args.stage else 0):
            modes = [0, args.stage_relays] if rep_i % 2 == 0 else [args.stage_relays, 0]
            for nrel in modes:
                if args.floor_each and not fresh:
                    floor = measure_floor(args)
                fresh = False
                run_stage(args, sfud, nrel, idle, floor)
        if len(tables) > 1 or (tables and args.node):
            print("\n---- the curves again, together")
            for t in tables:
                curve_table(*t)
        measure_floor(args)  # again: how much the machine moved during the run
    finally:
        sfud.kill()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Soak with faults: a real sfud under churning calls while things break.

Several rooms; participants (sfu-replay processes, one per participant,
joining with a minted token and publishing a capture from tests/data/pcaps
for a short --duration) join and leave at random (seeded) for --minutes.
Meanwhile, on a fixed schedule: a room process is SIGKILLed (and the room
created again), the webhook receiver is stopped and restarted on its port,
garbage UDP goes to a room's media port (loopback), and the journal's disk
"fills" (prlimit fsize on sfud, then unlimited).

At the end (after the load stops and every room is deleted):
  * every journal record (GET /v1/events) is at the receiver exactly once,
    in order (contiguous seq, unique ids, same ids as the journal);
  * per participant, its usage `connected` ms add up to the time the test
    saw it in the room (process start to exit); for a room that was killed,
    to the kill less at most one usage interval (docs/events.md);
  * after warm-up, the RSS and descriptor count of sfud and of every room
    process that lived through the run are flat;
  * no room process (nor anything this test started) is left once sfud stops.

Usage: test_soak.py --sfud PATH --room PATH --replay PATH [--minutes M] [--seed N]
(by default two cycles of the fault schedule, 80 s); bench/soak.py runs the
same with a longer default.
"""
import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from sfutest import Receiver, Sfud, live_procs, pid_alive, smaps, wait_for  # noqa: E402

PCAPS = os.path.join(HERE, "..", "data", "pcaps")
CAPTURES = ["gst-opus-speech-dtx.pcap", "gst-opus-tone-stereo.pcap", "str0m-vp8.pcap",
            "membrane-input_vp8.pcap"]
INTERVAL_S = 1          # --usage-interval-s: what a crash may lose per participant
PERIOD_S = 40           # one cycle of the fault schedule
WARMUP_S = 20           # RSS/fd samples before this are warm-up
SAMPLE_S = 10
# Observed time in the room vs `connected`: the process starts, signals and
# leaves on both sides of welcome..leave; a participant is never counted
# longer than the test saw it.
JOIN_SLACK_MS = 1500
OVER_SLACK_MS = 100
# Flat: the quiesced last sample against the first after warm-up. A 5-minute
# run of bench/soak.py saw sfud creep 160 KiB and rooms vary by up to
# ~700 KiB (allocator noise with the load), descriptors not at all.
RSS_BOUND_KIB = {"sfud": 1024, "room": 1536}
FD_BOUND = {"sfud": 2, "room": 0}


class Failure(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def fds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def rss(pid):
    try:
        return smaps(pid)["Rss"]
    except (OSError, KeyError):
        return None


def udp_ports(pid):
    """Local UDP ports of a process's sockets (from /proc, loopback or any)."""
    inodes = set()
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if t.startswith("socket:["):
                inodes.add(t[8:-1])
        ports = []
        for tab in ("udp", "udp6"):
            with open("/proc/%d/net/%s" % (pid, tab)) as f:
                next(f)
                for line in f:
                    p = line.split()
                    if p[9] in inodes:
                        ports.append(int(p[1].rsplit(":", 1)[1], 16))
        return sorted(set(ports))
    except OSError:
        return []


class Soak:
    def __init__(self, args):
        self.a = args
        self.rng = random.Random(args.seed)
        self.tmp = tempfile.mkdtemp(prefix="sfu-soak-")
        self.parts = []        # every participant: dict
        self.rooms = {}        # slot -> {"name", "room_id", "pid", "created"}
        self.room_pids_seen = set()
        self.samples = []      # (t, {"sfud": (rss, fds), pid: (rss, fds)})
        self.room_born = {}    # pid -> t
        self.fig = {"joins": 0, "leaves": 0, "kills": 0,
                    "receiver_restarts": 0, "garbage_datagrams": 0, "garbage_rounds": 0,
                    "disk_full": 0, "degraded_seen": 0}
        self.next_id = 0

    # --- setup -------------------------------------------------------------
    def start(self):
        self.rcv = Receiver()
        self.sfud = Sfud(self.a.sfud, self.a.room, "--webhook-url", self.rcv.url,
                         "--webhook-secret", Receiver.SECRET, "--node-id", "soak",
                         "--usage-interval-s", str(INTERVAL_S))
        self.t0 = time.monotonic()
        for slot in range(self.a.rooms):
            self.create_room(slot)

    def now(self):
        return time.monotonic() - self.t0

    def create_room(self, slot):
        name = "soak-%d" % slot
        st, r = self.sfud.request("POST", "/v1/rooms", {"name": name, "max_participants": 16})
        check(st == 201, "room %s not created: %s %s" % (name, st, r))
        self.rooms[slot] = {"name": name, "room_id": r["room_id"], "pid": r["pid"],
                            "ws_url": r["ws_url"]}
        self.room_pids_seen.add(r["pid"])
        self.room_born[r["pid"]] = self.now()

    # --- participants ------------------------------------------------------
    def join(self, slot):
        room = self.rooms[slot]
        ident = "p%04d" % self.next_id
        self.next_id += 1
        st, t = self.sfud.request("POST", "/v1/rooms/%s/tokens" % room["room_id"],
                                  {"identity": ident})
        check(st == 201, "token for %s refused: %s %s" % (room["name"], st, t))
        dur = self.rng.uniform(3, 12)
        cap = self.rng.choice(CAPTURES)
        out = os.path.join(self.tmp, ident + ".json")
        proc = subprocess.Popen(
            [self.a.replay, "--server", "http://127.0.0.1:%d" % self.sfud.port,
             "--api-key", self.sfud.api_key, "--token", t["token"], "--ws-url", room["ws_url"],
             "--room", room["room_id"], "--loop", "0", "-d", "%.1f" % dur, "--json", out,
             os.path.join(PCAPS, cap)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.parts.append({"id": ident, "slot": slot, "room_id": room["room_id"],
                           "proc": proc, "t0": self.now(), "t1": None, "killed_at": None,
                           "dur": dur, "cap": cap, "out": out, "rc": None, "err": ""})
        self.fig["joins"] += 1

    def reap(self, wait=False):
        """Notes the exit of every participant that ended; with wait, until
        all have (polling them all, so each exit time is seen within 50 ms),
        killing any still there after 60 s."""
        end = time.monotonic() + 60
        while wait and any(p["proc"].poll() is None for p in self.parts):
            self.reap()
            if time.monotonic() > end:
                for p in self.parts:
                    if p["proc"].poll() is None:
                        p["proc"].kill()
                        p["proc"].wait()
            time.sleep(0.05)
        for p in self.parts:
            if p["t1"] is not None:
                continue
            if p["proc"].poll() is not None:
                p["t1"] = self.now()
                p["rc"] = p["proc"].returncode
                p["err"] = p["proc"].stderr.read()[-1000:]
                p["proc"].stderr.close()
                self.fig["leaves"] += 1

    def live_in(self, slot):
        return sum(1 for p in self.parts if p["slot"] == slot and p["t1"] is None)

    # --- faults ------------------------------------------------------------
    def kill_room(self, slot):
        room = self.rooms.pop(slot)
        st, r = self.sfud.request("GET", "/v1/rooms/" + room["room_id"])
        check(st == 200 and r["pid"] == room["pid"], "room %s: %s" % (room["name"], r))
        os.kill(r["pid"], signal.SIGKILL)
        t = self.now()
        for p in self.parts:
            if p["room_id"] == room["room_id"] and p["t1"] is None:
                p["killed_at"] = t
        self.fig["kills"] += 1
        wait_for(lambda: self.sfud.request("GET", "/v1/rooms/" + room["room_id"])[1]
                 .get("state") == "crashed", 10, what="room %s crashed" % room["name"])
        st, _ = self.sfud.request("DELETE", "/v1/rooms/" + room["room_id"])
        check(st == 200, "DELETE of crashed room: %s" % st)
        self.create_room(slot)

    def garbage(self, slot):
        room = self.rooms[slot]
        ports = udp_ports(room["pid"])
        if not ports:
            print("  [%5.1fs] no UDP port found for room %s" % (self.now(), room["name"]))
            return
        before = self.room_drops(room)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        n = 0
        for port in ports:
            for _ in range(300):
                kind = self.rng.randrange(4)
                size = self.rng.choice([1, 12, 20, 200, 1200, 1999])
                body = bytearray(self.rng.getrandbits(8) for _ in range(size))
                if kind == 1 and size >= 12:
                    body[0] = 0x80            # RTP-looking
                elif kind == 2 and size >= 20:
                    body[0:2] = b"\x00\x01"   # STUN-looking
                elif kind == 3 and size >= 13:
                    body[0] = 22              # DTLS-looking
                try:
                    s.sendto(bytes(body), ("127.0.0.1", port))
                    n += 1
                except OSError:
                    pass
        s.close()
        self.fig["garbage_datagrams"] += n
        self.fig["garbage_rounds"] += 1
        time.sleep(0.5)  # stats come with the next heartbeat (200 ms)
        st, r = self.sfud.request("GET", "/v1/rooms/" + room["room_id"])
        check(st == 200 and r["state"] == "running" and pid_alive(room["pid"]),
              "room %s after garbage UDP: %s" % (room["name"], r))
        self.fig["garbage_counted_drops"] = (self.fig.get("garbage_counted_drops", 0)
                                             + self.room_drops(room) - before)

    def room_drops(self, room):
        """The room's drop_* packet counters, summed (its stats)."""
        st, r = self.sfud.request("GET", "/v1/rooms/" + room["room_id"])
        pk = ((r.get("stats") or {}).get("packets") or {}) if st == 200 else {}
        return sum(v for k, v in pk.items() if k.startswith("drop_") and isinstance(v, int))

    def disk(self, full):
        v = "--fsize=1:unlimited" if full else "--fsize=unlimited"
        subprocess.run(["prlimit", "--pid", str(self.sfud.proc.pid), v], check=True)
        if full:
            self.fig["disk_full"] += 1

    def sample(self):
        s = {"sfud": (rss(self.sfud.proc.pid), fds(self.sfud.proc.pid))}
        for room in self.rooms.values():
            s[room["pid"]] = (rss(room["pid"]), fds(room["pid"]))
        self.samples.append((self.now(), s))

    # --- the run -----------------------------------------------------------
    def run(self):
        load_s = self.a.minutes * 60
        period = PERIOD_S
        next_sample = 0.0
        next_garbage = 7.0
        done = set()
        rcv_port = self.rcv.port
        rcv_down = False
        disk_full = False
        kill_slot = 0
        while self.now() < load_s:
            t = self.now()
            cyc, off = int(t // period), t % period
            self.reap()
            # joins: up to 3 at once per room, a few a second node-wide
            for slot in list(self.rooms):
                if self.live_in(slot) < 3 and self.rng.random() < 0.15:
                    self.join(slot)
            # the fault schedule, once per cycle each
            if off >= 10 and (cyc, "kill") not in done:
                done.add((cyc, "kill"))
                self.kill_room(kill_slot % self.a.rooms)
                print("  [%5.1fs] SIGKILL room soak-%d" % (t, kill_slot % self.a.rooms))
                kill_slot += 1
            if off >= 15 and (cyc, "rcv-stop") not in done:
                done.add((cyc, "rcv-stop"))
                self.rcv.stop()
                rcv_down = True
                print("  [%5.1fs] receiver stopped" % t)
            if off >= 28 and (cyc, "rcv-start") not in done:
                done.add((cyc, "rcv-start"))
                self.rcv.start(rcv_port)
                rcv_down = False
                self.fig["receiver_restarts"] += 1
                print("  [%5.1fs] receiver restarted" % t)
            if off >= 20 and (cyc, "disk-full") not in done:
                done.add((cyc, "disk-full"))
                self.disk(True)
                disk_full = True
                print("  [%5.1fs] disk full (fsize 1)" % t)
            if disk_full:
                st, hz = self.sfud.request("GET", "/healthz", auth=False)
                if st in (200, 503) and isinstance(hz, dict) and hz.get("status") == "degraded":
                    self.fig["degraded_seen"] += 1
            if off >= 26 and (cyc, "disk-ok") not in done:
                done.add((cyc, "disk-ok"))
                self.disk(False)
                disk_full = False
                print("  [%5.1fs] disk unlimited" % t)
            if t >= next_garbage:
                next_garbage += 7.0
                self.garbage(self.rng.choice(list(self.rooms)))
            if t >= next_sample:
                next_sample += SAMPLE_S
                self.sample()
            time.sleep(0.2)
        if disk_full:
            self.disk(False)
        if rcv_down:
            self.rcv.start(rcv_port)
            self.fig["receiver_restarts"] += 1
        self.t_load_end = self.now()
        self.reap(wait=True)
        time.sleep(INTERVAL_S + 0.5)
        self.sample()   # quiesced: no participant left anywhere
        self.final_sample = self.samples[-1]
        for room in self.rooms.values():
            self.sfud.request("DELETE", "/v1/rooms/" + room["room_id"])

    # --- invariants --------------------------------------------------------
    def journal(self):
        recs, after = [], 0
        while True:
            st, r = self.sfud.request("GET", "/v1/events?after=%d&limit=1000" % after)
            check(st == 200, "GET /v1/events: %s" % st)
            recs += r["records"]
            if not r["records"] or r["next_after"] <= after:
                return recs, after
            after = r["next_after"]

    def received(self):
        url = "http://127.0.0.1:%d/records?after=0&limit=100000" % self.rcv.port
        with urllib.request.urlopen(url) as r:
            return json.loads(r.read())["records"]

    def check_delivery(self):
        def finished():
            _, last = self.journal()
            recs = self.received()
            fins = sum(r["type"] == "room_finished" for r in recs)
            return recs if recs and recs[-1]["seq"] >= last and fins >= len(self.rooms) else None
        rec = wait_for(finished, 120, 0.5, what="delivery of the whole journal")
        jour, last = self.journal()
        self.fig["records"] = len(rec)
        self.fig["journal_records"] = len(jour)
        ids = [r["id"] for r in rec]
        check(len(ids) == len(set(ids)), "duplicate ids at the receiver")
        seqs = [r["seq"] for r in rec]
        check(seqs == list(range(1, len(seqs) + 1)),
              "receiver seqs not contiguous from 1: %s..." % seqs[:20])
        check(seqs[-1] == last, "receiver ends at %d, journal at %d" % (seqs[-1], last))
        # in order as they arrived: the receiver stores each new record in a
        # row of its own, so rowid order is arrival order
        import sqlite3
        db = sqlite3.connect("file:%s?mode=ro" % self.rcv.db, uri=True)
        arrived = [row[0] for row in db.execute("SELECT seq FROM records ORDER BY rowid")]
        db.close()
        check(arrived == seqs, "records arrived out of order: %s"
              % [(a, b) for a, b in zip(arrived, seqs) if a != b][:10])
        # what the journal still serves is what the receiver got, record for record
        by_id = {r["id"]: r for r in rec}
        for j in jour:
            check(j["id"] in by_id, "journal record %s not delivered" % j["id"])
            check(by_id[j["id"]] == j, "record %s differs at the receiver: %s vs %s"
                  % (j["id"], by_id[j["id"]], j))
        check(self.sfud.metric("sfu_events_lost_total") == 0, "sfu_events_lost_total > 0")
        check(self.fig["degraded_seen"] > 0 or not self.fig["disk_full"],
              "/healthz never said degraded while the disk was full")
        st, hz = self.sfud.request("GET", "/healthz", auth=False)
        check(hz.get("status") == "ok", "/healthz at the end: %s %s" % (st, hz))
        return rec

    def check_usage(self, recs):
        conn, left, joined = {}, {}, {}
        for r in recs:
            if r["type"] == "usage":
                conn[r["participant"]] = conn.get(r["participant"], 0) + r["ms"]["connected"]
            elif r["type"] == "participant_left":
                left.setdefault(r["participant"], []).append(r.get("reason"))
            elif r["type"] == "participant_joined":
                joined[r["participant"]] = joined.get(r["participant"], 0) + 1
        bad, errs = [], []
        self.fig["crashed_sessions"] = 0
        worst = {"left": 0, "crashed": 0}
        for p in self.parts:
            pid = p["id"]
            ms = conn.get(pid, 0)
            if p["killed_at"] is not None:
                self.fig["crashed_sessions"] += 1
                seen = (p["killed_at"] - p["t0"]) * 1000
                lo = seen - INTERVAL_S * 1000 - JOIN_SLACK_MS
                if joined.get(pid):
                    if left.get(pid) != ["room_crashed"]:
                        bad.append("%s: left %s, want [room_crashed]" % (pid, left.get(pid)))
                else:
                    lo = 0  # killed before it joined
            else:
                seen = (p["t1"] - p["t0"]) * 1000
                lo = seen - JOIN_SLACK_MS
                if p["rc"] != 0:
                    errs.append("%s: sfu-replay exit %s: %s" % (pid, p["rc"], p["err"].strip()))
                if joined.get(pid) != 1 or left.get(pid) != ["left"]:
                    bad.append("%s: joined %s left %s" % (pid, joined.get(pid), left.get(pid)))
            key = "crashed" if p["killed_at"] is not None else "left"
            worst[key] = max(worst[key], round(seen - ms))
            if not (max(lo, 0) <= ms <= seen + OVER_SLACK_MS):
                bad.append("%s: connected %d ms, test saw %.0f ms%s (allowed %.0f..%.0f)"
                           % (pid, ms, seen, " up to the kill" if p["killed_at"] is not None
                              else "", max(lo, 0), seen + OVER_SLACK_MS))
        self.fig["usage_worst_shortfall_ms"] = worst
        check(not errs, "participants that failed:\n  " + "\n  ".join(errs))
        if bad:
            for line in bad[:2]:
                pid = line.split(":")[0]
                print("  records of %s (t0 %.1fs t1 %s killed %s):" % (
                    pid, *[(p["t0"], p["t1"], p["killed_at"]) for p in self.parts
                           if p["id"] == pid][0]))
                for r in recs:
                    if r.get("participant") == pid:
                        print("    " + json.dumps({k: r[k] for k in r if k not in (
                            "room_id", "sid", "id")}))
        check(not bad, "usage does not match time in the room:\n  " + "\n  ".join(bad))

    def check_flat(self):
        rows = []
        warm = [s for t, s in self.samples if t >= WARMUP_S]
        check(len(warm) >= 2, "too few samples after warm-up")
        base, last = warm[0], self.final_sample[1]
        b, l = base["sfud"], last["sfud"]
        rows.append("sfud: rss %s KiB fds %s" % ([s["sfud"][0] for _, s in self.samples],
                                                   [s["sfud"][1] for _, s in self.samples]))
        check(l[0] <= b[0] + RSS_BOUND_KIB["sfud"], "sfud RSS %d KiB at the end, %d after warm-up"
              % (l[0], b[0]))
        check(l[1] <= b[1] + FD_BOUND["sfud"], "sfud fds %d at the end, %d after warm-up"
              % (l[1], b[1]))
        idle = self.samples[0][1]["sfud"][1]  # before any participant
        check(l[1] <= idle + FD_BOUND["sfud"], "sfud fds %d once quiet again, %d before the load"
              % (l[1], idle))
        # every room process: from its first sample WARMUP_S after it started
        checked = 0
        for pid, born in self.room_born.items():
            mine = [(t, s[pid]) for t, s in self.samples if pid in s and s[pid][0] is not None]
            after = [x for x in mine if x[0] >= born + WARMUP_S]
            if len(after) < 2:
                continue
            (t0, b), (t1, l) = after[0], after[-1]
            checked += 1
            rows.append("room %d: rss %s KiB fds %s" % (pid, [x[1][0] for x in mine],
                                                         [x[1][1] for x in mine]))
            check(l[0] <= b[0] + RSS_BOUND_KIB["room"], "room %d RSS %d KiB at %.0fs, %d at %.0fs"
                  % (pid, l[0], t1, b[0], t0))
            check(l[1] <= b[1] + FD_BOUND["room"], "room %d fds %d at %.0fs, %d at %.0fs"
                  % (pid, l[1], t1, b[1], t0))
        self.fig["rooms_checked_flat"] = checked
        return rows

    def check_orphans(self):
        zyg = self.sfud.zygote()
        rc = self.sfud.stop()
        check(rc == 0, "sfud exit status %s" % rc)
        self.sfud.assert_clean_log()
        room_bin = os.path.realpath(self.a.room).encode()
        left = []
        for pid, fields, cmdline in live_procs():
            if pid in self.room_pids_seen or pid == zyg:
                left.append((pid, cmdline()))
            elif cmdline()[0] and os.path.realpath(cmdline()[0]) == room_bin.decode():
                left.append((pid, cmdline()))
        left += [(p["proc"].pid, "sfu-replay") for p in self.parts if p["proc"].poll() is None]
        check(not left, "processes left after sfud stopped: %s" % left)

    def close(self):
        for p in self.parts:
            if p["proc"].poll() is None:
                p["proc"].kill()
                p["proc"].wait()
        if getattr(self, "sfud", None) is not None:
            if self.sfud.proc.poll() is None:
                self.sfud.kill()
        if getattr(self, "rcv", None) is not None:
            self.rcv.close()
        import shutil
        shutil.rmtree(self.tmp, ignore_errors=True)


def main(argv=None, minutes=2 * PERIOD_S / 60):
    ap = argparse.ArgumentParser()
    ap.add_argument("--sfud", required=True)
    ap.add_argument("--room", required=True)
    ap.add_argument("--replay", required=True)
    ap.add_argument("--minutes", type=float, default=minutes)
    ap.add_argument("--rooms", type=int, default=6)
    ap.add_argument("--seed", type=int, default=int(os.environ.get("SOAK_SEED", "1")))
    a = ap.parse_args(argv)
    print("soak: %.1f min, %d rooms, seed %d" % (a.minutes, a.rooms, a.seed))
    t_start = time.monotonic()
    s = Soak(a)
    ok = False
    try:
        s.start()
        s.run()
        recs = s.check_delivery()
        s.check_usage(recs)
        rows = s.check_flat()
        s.check_orphans()
        ok = True
    except Failure as e:
        print("FAIL:", e)
        rows = []
    finally:
        for r in (rows if ok else []):
            print("  " + r)
        if not ok:
            print("  sfud: %s" % [s_["sfud"] for _, s_ in s.samples])
            print("  sfud log tail:\n" + "".join(getattr(s, "sfud", None) and s.sfud.log[-12:] or []))
        s.close()
    s.fig["run_s"] = round(time.monotonic() - t_start, 1)
    print("figures: " + json.dumps(s.fig, sort_keys=True))
    print("soak: " + ("ok" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""The reference webhook receiver (tools/sfu-receiver.py) against the
contract of docs/webhooks.md: signatures, timestamp window, body bound,
validation, de-duplication, simulated control-plane failures, shutdown.

Needs no sfud: the batches are built and signed here, with
tools/sfu_webhook.py. Usage: test_receiver.py [unittest options]
"""
import ctypes
import hashlib
import hmac
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.join(os.path.dirname(os.path.dirname(HERE)), "tools")
RECEIVER = os.path.join(TOOLS, "sfu-receiver.py")
sys.path.insert(0, TOOLS)
import sfu_webhook  # noqa: E402

SECRET = "whsec_test_0123456789abcdef"
NODE = "voice-7"
MIB = 1 << 20


def _die_with_parent():
    """In the child before exec: SIGTERM when the test process dies."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def record(n, type_="usage", room="rm_3f9c0a1b2c3d4e5f", **extra):
    """Record number `n` of NODE; `extra` adds or overrides fields."""
    r = {"id": "%s-%d" % (NODE, n), "seq": n, "type": type_,
         "ts_ms": 1795694400000 + n, "room_id": room}
    if type_ == "usage":
        r.update(participant="alice", sid="PA_1", period_start_ms=1795694390000,
                 period_end_ms=1795694400000, final=False,
                 seconds={"connected": 10.0, "audio_published": 4.25,
                          "audio_received": 9.5, "video_published": 0,
                          "video_received": 0})
    r.update(extra)
    return r


def batch(seqs, node=NODE):
    return {"node": node, "records": [record(s) for s in seqs]}


class Receiver:
    """tools/sfu-receiver.py on an ephemeral loopback port."""

    def __init__(self, tmp, *extra, db=None, secret=SECRET):
        self.db = db or os.path.join(tmp, "records.sqlite3")
        self.port_file = os.path.join(tmp, "port.%d" % time.monotonic_ns())
        self.stdout = []
        self.stderr_path = os.path.join(tmp, "stderr.%d" % time.monotonic_ns())
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, RECEIVER, "--listen", "127.0.0.1:0", "--secret", secret,
             "--db", self.db, "--port-file", self.port_file, *extra],
            stdout=subprocess.PIPE, stderr=self._stderr, text=True,
            preexec_fn=_die_with_parent)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        end = time.monotonic() + 10
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.monotonic() > end:
                self.kill()
                raise AssertionError("receiver did not start:\n" + self.stderr())
            time.sleep(0.02)
        with open(self.port_file) as f:
            self.port = int(f.read())
        self.url = "http://127.0.0.1:%d" % self.port

    def _read(self):
        for line in self.proc.stdout:
            self.stdout.append(line)

    def stderr(self):
        with open(self.stderr_path, errors="replace") as f:
            return f.read()

    def kill(self):
        """By PID, whatever state it is in."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._reader.join(5)
        self.proc.stdout.close()
        self._stderr.close()

    # --- HTTP -------------------------------------------------------------

    def request(self, method, path, body=None, headers=None):
        req = urllib.request.Request(self.url + path, data=body, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw

    def post(self, body, ts=None, secret=SECRET, headers=None, sign=True,
             batch_header=True):
        """POST a batch: `body` is a dict (serialised here) or raw bytes."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        ts = int(time.time()) if ts is None else ts
        h = {"Content-Type": "application/json"}
        if sign:
            h["X-SFU-Timestamp"] = str(ts)
            h["X-SFU-Signature"] = sfu_webhook.sign(secret, ts, raw)
        if batch_header and isinstance(body, dict) and body.get("records"):
            try:
                h["X-SFU-Batch"] = "%d-%d" % (body["records"][0]["seq"],
                                              body["records"][-1]["seq"])
            except (KeyError, TypeError):
                pass
        h.update(headers or {})
        return self.request("POST", "/", raw, h)

    def records(self, after=0):
        st, j = self.request("GET", "/records?after=%d" % after)
        assert st == 200, (st, j)
        return j["records"]


class Signing(unittest.TestCase):
    """tools/sfu_webhook.py on its own: the vector in docs/webhooks.md."""

    def test_sign_matches_the_documented_vector(self):
        body = b'{"node":"n1","records":[]}'
        want = hmac.new(b"s3cret", b"1795694400." + body, hashlib.sha256).hexdigest()
        self.assertEqual(want, "6b4c5ac7a49b61e1433e33ecd4022d4ca87b8a9a98b7e07a1b2b2bf73e30ab43")
        self.assertEqual(sfu_webhook.sign("s3cret", 1795694400, body), "v1=" + want)
        self.assertEqual(sfu_webhook.sign("s3cret", "1795694400", body), "v1=" + want)

    def test_verify(self):
        body, now = b'{"x":1}', 1795694400
        h = {"x-sfu-timestamp": str(now), "X-SFU-Signature": sfu_webhook.sign("k", now, body)}
        v = sfu_webhook.verify
        self.assertEqual(v("k", h, body, now), (True, "ok"))
        self.assertEqual(v("k", h, body, now + 300), (True, "ok"))      # edge of the window
        self.assertEqual(v("k", h, body, now - 300), (True, "ok"))      # sender clock ahead
        self.assertEqual(v("k", h, body, now + 301), (False, "stale_timestamp"))
        self.assertEqual(v("k", h, body, now - 301), (False, "stale_timestamp"))
        self.assertEqual(v("other", h, body, now), (False, "bad_signature"))
        self.assertEqual(v(["old", "k"], h, body, now), (True, "ok"))  # rotation
        self.assertEqual(v("k", h, body + b" ", now), (False, "bad_signature"))
        self.assertEqual(v("k", {}, body, now), (False, "missing_timestamp"))
        self.assertEqual(v("k", {"X-SFU-Timestamp": str(now)}, body, now),
                         (False, "missing_signature"))
        for bad in ("+%d" % now, "%d.0" % now, "", "abc", "-1"):
            self.assertEqual(v("k", dict(h, **{"x-sfu-timestamp": bad}), body, now),
                             (False, "invalid_timestamp"), bad)
        for bad in ("", "v1=", "v1=zz", "sha256=" + "0" * 64, h["X-SFU-Signature"][3:]):
            self.assertEqual(v("k", dict(h, **{"X-SFU-Signature": bad}), body, now),
                             (False, "invalid_signature"), bad)
        # several entries: unknown schemes ignored, any v1 may match
        multi = "v2=abc, v1=%s, %s" % ("0" * 64, h["X-SFU-Signature"].upper().replace("V1", "v1"))
        self.assertEqual(v("k", dict(h, **{"X-SFU-Signature": multi}), body, now), (True, "ok"))


class ReceiverTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="sfu-receiver-test.")
        self.addCleanup(self._rmtree)

    def _rmtree(self):
        import shutil
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self, *extra, **kw):
        r = Receiver(self.tmp, *extra, **kw)
        self.addCleanup(r.kill)
        return r

    def db_rows(self, r):
        with sqlite3.connect(r.db) as db:
            return db.execute("SELECT id, seq, node, type, room_id, ts_ms FROM records"
                              " ORDER BY seq").fetchall()

    def assertNothingStored(self, r):
        self.assertEqual(r.records(), [])

    # --- the happy path and de-duplication ---------------------------------

    def test_good_batch_is_stored_in_order(self):
        r = self.start()
        self.assertEqual(r.request("GET", "/healthz"), (200, {"status": "ok"}))
        b = batch([1, 2, 3])
        b["records"][1] = record(2, "participant_joined", participant="bob", sid="PA_2")
        st, j = r.post(b)
        self.assertEqual((st, j), (200, {"stored": 3, "duplicates": 0}))
        got = r.records()
        self.assertEqual(got, b["records"])          # exactly what was sent, in seq order
        self.assertEqual([x["seq"] for x in r.records(after=1)], [2, 3])
        self.assertEqual(self.db_rows(r)[1], ("voice-7-2", 2, NODE, "participant_joined",
                                              "rm_3f9c0a1b2c3d4e5f", 1795694400002))
        st, j = r.post(batch([4, 7]))                # gaps between batches are allowed
        self.assertEqual((st, j), (200, {"stored": 2, "duplicates": 0}))
        self.assertEqual([x["seq"] for x in r.records()], [1, 2, 3, 4, 7])

    def test_same_batch_again_is_acknowledged_and_not_stored_twice(self):
        r = self.start("--print")
        b = batch([1, 2, 3])
        self.assertEqual(r.post(b), (200, {"stored": 3, "duplicates": 0}))
        self.assertEqual(r.post(b), (200, {"stored": 0, "duplicates": 3}))
        # a retry that overlaps a stored batch: only the new record counts
        self.assertEqual(r.post(batch([3, 4])), (200, {"stored": 1, "duplicates": 1}))
        self.assertEqual([x["id"] for x in r.records()],
                         ["voice-7-1", "voice-7-2", "voice-7-3", "voice-7-4"])
        self.assertEqual(len(self.db_rows(r)), 4)
        # --print: one line per newly stored record, none for duplicates
        deadline = time.monotonic() + 5
        while len(r.stdout) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
        self.assertEqual([json.loads(l)["id"] for l in r.stdout],
                         ["voice-7-1", "voice-7-2", "voice-7-3", "voice-7-4"])

    def test_concurrent_deliveries_of_one_batch_store_it_once(self):
        r = self.start()
        b = batch(range(1, 51))
        results = []
        ts = [threading.Thread(target=lambda: results.append(r.post(b))) for _ in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
        self.assertEqual(len(results), 8)
        self.assertTrue(all(st == 200 for st, _ in results), results)
        self.assertEqual(sum(j["stored"] for _, j in results), 50)
        self.assertEqual(sum(j["duplicates"] for _, j in results), 7 * 50)
        self.assertEqual(len(r.records()), 50)

    def test_records_survive_a_restart_and_still_deduplicate(self):
        r = self.start()
        b = batch([1, 2])
        self.assertEqual(r.post(b)[0], 200)
        r.proc.send_signal(signal.SIGTERM)
        self.assertEqual(r.proc.wait(5), 0)
        r2 = self.start(db=r.db)
        self.assertEqual(r2.post(b), (200, {"stored": 0, "duplicates": 2}))
        self.assertEqual([x["seq"] for x in r2.records()], [1, 2])

    def test_unknown_record_type_and_fields_are_accepted(self):
        r = self.start()
        b = {"node": NODE, "future_field": 1,
             "records": [record(1, "node_draining", room=None, extra={"x": 1})]}
        del b["records"][0]["room_id"]
        self.assertEqual(r.post(b), (200, {"stored": 1, "duplicates": 0}))

    def test_body_of_exactly_one_mib_is_accepted(self):
        r = self.start()
        raw = json.dumps(batch([1])).encode()
        raw += b" " * (MIB - len(raw))             # JSON allows trailing whitespace
        self.assertEqual(len(raw), MIB)
        self.assertEqual(r.post(raw, headers={"X-SFU-Batch": "1-1"}),
                         (200, {"stored": 1, "duplicates": 0}))

    # --- refusals: nothing stored -------------------------------------------

    def test_wrong_signature_is_401(self):
        r = self.start()
        st, j = r.post(batch([1]), secret="not-the-secret")
        self.assertEqual(st, 401)
        self.assertEqual(j["error"], {"code": "unauthorized", "message": "bad_signature"})
        # a body changed after signing
        raw = json.dumps(batch([1])).encode()
        ts = int(time.time())
        st, _ = r.request("POST", "/", raw.replace(b"alice", b"mallory"), {
            "Content-Type": "application/json", "X-SFU-Timestamp": str(ts),
            "X-SFU-Signature": sfu_webhook.sign(SECRET, ts, raw)})
        self.assertEqual(st, 401)
        # a signature for another timestamp
        st, _ = r.request("POST", "/", raw, {
            "Content-Type": "application/json", "X-SFU-Timestamp": str(ts),
            "X-SFU-Signature": sfu_webhook.sign(SECRET, ts - 1, raw)})
        self.assertEqual(st, 401)
        self.assertNothingStored(r)

    def test_stale_or_future_timestamp_is_401(self):
        r = self.start()
        now = int(time.time())
        for ts in (now - 301 - 5, now + 301 + 5, now - 3600):
            st, j = r.post(batch([1]), ts=ts)        # correctly signed, out of the window
            self.assertEqual(st, 401, ts)
            self.assertEqual(j["error"]["message"], "stale_timestamp")
        self.assertNothingStored(r)
        self.assertEqual(r.post(batch([1]), ts=now - 240)[0], 200)   # inside the window

    def test_missing_headers_are_401(self):
        r = self.start()
        raw = json.dumps(batch([1])).encode()
        ts = str(int(time.time()))
        sig = sfu_webhook.sign(SECRET, ts, raw)
        for h, reason in (({}, "missing_timestamp"),
                          ({"X-SFU-Signature": sig}, "missing_timestamp"),
                          ({"X-SFU-Timestamp": ts}, "missing_signature")):
            h = dict(h, **{"Content-Type": "application/json"})
            st, j = r.request("POST", "/", raw, h)
            self.assertEqual((st, j["error"]["message"]), (401, reason))
        self.assertNothingStored(r)

    def test_body_over_one_mib_is_413(self):
        r = self.start()
        raw = json.dumps(batch([1])).encode()
        raw += b" " * (MIB + 1 - len(raw))
        st, j = r.post(raw)                          # even though well signed
        self.assertEqual(st, 413)
        self.assertEqual(j["error"]["code"], "payload_too_large")
        self.assertNothingStored(r)                  # and the receiver still answers

    def test_malformed_json_is_400(self):
        r = self.start()
        for raw in (b'{"node": "voice-7", "records": [', b"not json", b"\xff\xfe{}",
                    b'{"node":"voice-7","records":[{"id":"voice-7-1","seq":1,'
                    b'"type":"usage","ts_ms":NaN,"room_id":"r"}]}',
                    b"[" * 100000, b'["a list"]'):
            st, j = r.post(raw)
            self.assertEqual(st, 400, raw[:40])
            self.assertEqual(j["error"]["code"], "invalid_json", raw[:40])
        self.assertNothingStored(r)

    def test_records_missing_id_or_seq_are_400_and_nothing_of_the_batch_is_stored(self):
        r = self.start()
        for field in ("id", "seq"):
            b = batch([1, 2, 3])
            del b["records"][2][field]
            st, j = r.post(b, batch_header=False)
            self.assertEqual(st, 400, field)
            self.assertEqual(j["error"]["code"], "missing_field")
            self.assertIn("records[2]", j["error"]["message"])
        self.assertNothingStored(r)

    def test_inconsistent_batches_are_400(self):
        r = self.start()
        cases = {
            "no node": {"records": [record(1)]},
            "no records": {"node": NODE},
            "empty records": {"node": NODE, "records": []},
            "id not node-seq": {"node": NODE, "records": [record(1, id="voice-7-2")]},
            "other node": {"node": "voice-8", "records": [record(1)]},
            "seq not increasing": {"node": NODE, "records": [record(2), record(1)]},
            "seq repeated": {"node": NODE, "records": [record(1), record(1)]},
            "seq not an integer": {"node": NODE, "records": [record(1, seq="1")]},
            "seq zero": {"node": NODE, "records": [record(0)]},
            "seq bool": {"node": NODE, "records": [record(1, seq=True, id="voice-7-True")]},
            "no room_id": {"node": NODE, "records": [record(1, room=None)]},
            "ts_ms float": {"node": NODE, "records": [record(1, ts_ms=1.5)]},
        }
        for name, b in cases.items():
            st, j = r.post(b, batch_header=False)
            self.assertEqual(st, 400, name)
        st, j = r.post(batch([1, 2]), headers={"X-SFU-Batch": "1-3"})
        self.assertEqual(st, 400)
        self.assertIn("X-SFU-Batch", j["error"]["message"])
        st, _ = r.post(batch([1]), headers={"Content-Type": "text/plain"})
        self.assertEqual(st, 415)
        self.assertNothingStored(r)

    # --- a failing control plane --------------------------------------------

    def test_fail_status_answers_it_and_stores_nothing(self):
        r = self.start("--fail-status", "503")
        for _ in range(3):
            st, j = r.post(batch([1, 2]))
            self.assertEqual(st, 503)
            self.assertEqual(j["error"]["code"], "simulated_failure")
        self.assertNothingStored(r)

    def test_fail_for_s_fails_then_recovers(self):
        r = self.start("--fail-for-s", "1")
        t0 = time.monotonic()
        self.assertEqual(r.post(batch([1]))[0], 503)
        self.assertNothingStored(r)
        time.sleep(max(0.0, 1.2 - (time.monotonic() - t0)))
        self.assertEqual(r.post(batch([1])), (200, {"stored": 1, "duplicates": 0}))

    # --- shutdown -----------------------------------------------------------

    def test_sigterm_exits_0_promptly(self):
        r = self.start()
        self.assertEqual(r.post(batch([1]))[0], 200)
        t0 = time.monotonic()
        os.kill(r.proc.pid, signal.SIGTERM)
        # (a bound that says "by itself, not hung"; seconds, not a benchmark:
        # a loaded machine can take over 2 s to start and stop Python)
        self.assertEqual(r.proc.wait(10), 0)
        self.assertLess(time.monotonic() - t0, 10)
        self.assertNotIn("Traceback", r.stderr())

    def test_sigint_exits_0_with_an_idle_keepalive_connection_open(self):
        import http.client
        r = self.start()
        c = http.client.HTTPConnection("127.0.0.1", r.port, timeout=5)
        self.addCleanup(c.close)
        c.request("GET", "/healthz")
        self.assertEqual(c.getresponse().read(), b'{"status": "ok"}\n')   # kept open
        t0 = time.monotonic()
        os.kill(r.proc.pid, signal.SIGINT)
        # (a bound that says "by itself, not hung"; seconds, not a benchmark:
        # a loaded machine can take over 2 s to start and stop Python)
        self.assertEqual(r.proc.wait(10), 0)
        self.assertLess(time.monotonic() - t0, 10)
        self.assertNotIn("Traceback", r.stderr())


if __name__ == "__main__":
    unittest.main(verbosity=2)

#!/usr/bin/python3
"""Reference receiver for sfud webhooks (docs/webhooks.md).

Operators may copy this file (and tools/sfu_webhook.py, which it imports) as
the starting point of their own control-plane endpoint, or run it as is to
collect a node's usage records and events into SQLite. Standard library only.

    sfu-receiver.py --listen 127.0.0.1:8090 --secret "$SFU_WEBHOOK_SECRET" \\
                    --db records.sqlite3 --print

What it does with a POST (any path), in this order:

  1. body bound: Content-Length required (411), at most 1 MiB (413);
  2. X-SFU-Timestamp within 5 minutes of our clock and X-SFU-Signature a
     valid HMAC-SHA256 of "<timestamp>.<body>" (401 otherwise);
  3. Content-Type application/json (415), UTF-8 JSON (400);
  4. shape: {"node": str, "records": [non-empty]}, each record with id ==
     "<node>-<seq>", seq a positive integer strictly increasing within the
     batch, type a string, ts_ms an integer, room_id a string; X-SFU-Batch,
     when present, equal to "<first seq>-<last seq>" (400 otherwise). A bad
     record refuses the whole batch: nothing of it is stored;
  5. INSERT OR IGNORE every record in one transaction (duplicates by id are
     counted, not stored twice), commit, and only then answer
     200 {"stored": n, "duplicates": d}.

Errors answer {"error": {"code": ..., "message": ...}} as docs/api.md does.
sfud deletes a batch on 2xx, retries on 5xx or no answer, parks it on other
4xx: so a receiver must not answer 2xx before its commit, and must answer
5xx (not 4xx) when its own storage fails.

Also:
  GET /healthz                          -> 200 {"status": "ok"}
  GET /records?after=SEQ[&node=N][&limit=L]
                                        -> 200 {"records": [...]} in seq order
      (for tests and inspection; unauthenticated -- keep it on loopback)

--tls-cert PEM --tls-key PEM serve HTTPS (sfud verifies it: webhook_tls_ca_file,
webhook_tls_pin). Options for tests: --port-file F (the bound port, written atomically, so
--listen 127.0.0.1:0 works), --fail-status N (answer N to every POST without
storing anything), --fail-for-s T (fail only during the first T seconds;
status --fail-status, default 503). --print writes each newly stored record
as one line of JSON on stdout. Logs go to stderr. SIGTERM/SIGINT: stop
accepting, let a batch being committed finish, exit 0.
"""
import argparse
import json
import os
import signal
import socket
import sqlite3
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sfu_webhook  # noqa: E402

MAX_BODY = 1 << 20          # 1 MiB: larger bodies are refused with 413
MAX_NODE_LEN = 128
KNOWN_TYPES = frozenset((
    "room_started", "room_finished", "participant_joined", "participant_left",
    "track_published", "track_unpublished", "usage", "room_crashed"))


def log(msg):
    sys.stderr.write("sfu-receiver: %s\n" % msg)
    sys.stderr.flush()


class BadBatch(Exception):
    """The batch is well signed but not what docs/webhooks.md describes."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _reject_constant(name):
    raise ValueError("%s is not JSON" % name)


def parse_batch(body, batch_header=None):
    """Decode and validate one batch; returns (node, records) or raises
    BadBatch. Unknown record types and unknown fields are accepted (a newer
    sfud may send them); what is checked is what storage and de-duplication
    rely on."""
    try:
        doc = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise BadBatch("invalid_json", "body is not UTF-8 JSON: %s" % e)
    if not isinstance(doc, dict):
        raise BadBatch("invalid_json", "body is not a JSON object")
    node = doc.get("node")
    if not isinstance(node, str) or not 0 < len(node) <= MAX_NODE_LEN:
        raise BadBatch("invalid_field", "'node' must be a string of 1-%d characters"
                       % MAX_NODE_LEN)
    records = doc.get("records")
    if not isinstance(records, list) or not records:
        raise BadBatch("invalid_field", "'records' must be a non-empty array")
    last = 0
    for i, r in enumerate(records):
        where = "records[%d]" % i
        if not isinstance(r, dict):
            raise BadBatch("invalid_field", where + " is not an object")
        for f in ("id", "seq", "type", "ts_ms"):
            if f not in r:
                raise BadBatch("missing_field", "%s has no '%s'" % (where, f))
        seq = r["seq"]
        if not _is_int(seq) or not 0 < seq < 1 << 63:
            raise BadBatch("invalid_field", where + ".seq must be a positive integer")
        if seq <= last:
            raise BadBatch("invalid_field", where + ".seq is not above the previous record's")
        last = seq
        if r["id"] != "%s-%d" % (node, seq):
            raise BadBatch("invalid_field", "%s.id must be \"%s-%d\"" % (where, node, seq))
        if not isinstance(r["type"], str) or not r["type"]:
            raise BadBatch("invalid_field", where + ".type must be a non-empty string")
        if not _is_int(r["ts_ms"]):
            raise BadBatch("invalid_field", where + ".ts_ms must be an integer")
        room = r.get("room_id")
        if r["type"] in KNOWN_TYPES and not isinstance(room, str):
            raise BadBatch("missing_field", where + " has no string 'room_id'")
        if room is not None and not isinstance(room, str):
            raise BadBatch("invalid_field", where + ".room_id must be a string")
    if batch_header is not None:
        want = "%d-%d" % (records[0]["seq"], records[-1]["seq"])
        if batch_header.strip() != want:
            raise BadBatch("invalid_field", "X-SFU-Batch is %r, the records say %r"
                           % (batch_header, want))
    return node, records


class Store:
    """The records table, one connection shared by the handler threads
    under a lock; each batch is one transaction. WAL with synchronous=FULL:
    a committed batch survives a power cut, which is what a 200 promises."""

    SCHEMA = """
        CREATE TABLE IF NOT EXISTS records(
            id TEXT PRIMARY KEY,
            seq INTEGER NOT NULL,
            node TEXT NOT NULL,
            type TEXT NOT NULL,
            room_id TEXT,
            ts_ms INTEGER,
            json TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS records_seq ON records(seq, node);
    """

    def __init__(self, path):
        self.lock = threading.Lock()
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(self.SCHEMA)

    def add_batch(self, node, records):
        """Returns (newly stored records, duplicate count)."""
        new, dups = [], 0
        with self.lock:
            if self.db is None:
                raise sqlite3.ProgrammingError("store closed")
            cur = self.db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                for r in records:
                    text = json.dumps(r, separators=(",", ":"), ensure_ascii=False)
                    cur.execute("INSERT OR IGNORE INTO records(id, seq, node, type, room_id,"
                                " ts_ms, json) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                (r["id"], r["seq"], node, r["type"], r.get("room_id"),
                                 r["ts_ms"], text))
                    if cur.rowcount == 1:
                        new.append(r)
                        continue
                    dups += 1
                    old = cur.execute("SELECT json FROM records WHERE id = ?",
                                      (r["id"],)).fetchone()
                    if old and json.loads(old[0]) != r:
                        log("warning: %s redelivered with different content "
                            "(kept the first): %s" % (r["id"], text))
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return new, dups

    def list(self, after, node, limit):
        q = "SELECT json FROM records WHERE seq > ?"
        args = [after]
        if node is not None:
            q += " AND node = ?"
            args.append(node)
        q += " ORDER BY seq, node LIMIT ?"
        args.append(limit)
        with self.lock:
            if self.db is None:
                raise sqlite3.ProgrammingError("store closed")
            rows = self.db.execute(q, args).fetchall()
        return [json.loads(t) for (t,) in rows]

    def close(self, timeout):
        """Waits (bounded) for a batch being committed, then closes."""
        if not self.lock.acquire(timeout=timeout):
            log("a batch is still being committed; exiting without waiting "
                "(SQLite keeps it atomic: committed or not, and then unanswered)")
            return
        try:
            if self.db is not None:
                self.db.close()
                self.db = None
        finally:
            self.lock.release()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive: sfud may reuse the connection
    timeout = 30                    # per socket read: a stalled sender is dropped
    server_version = "sfu-receiver/1"

    # --- plumbing ---------------------------------------------------------

    def reply(self, status, obj, close=False):
        body = json.dumps(obj).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def error(self, status, code, message, close=False):
        self.note = "%s: %s" % (code, message)
        self.reply(status, {"error": {"code": code, "message": message}}, close)

    def drain(self, length, limit=16 * MAX_BODY):
        left = min(length, limit)
        while left > 0:
            chunk = self.rfile.read(min(left, 65536))
            if not chunk:
                break
            left -= len(chunk)

    def log_request(self, code="-", size="-"):
        extra = getattr(self, "note", "")
        log("%s %s %s %s%s" % (self.client_address[0], self.command, self.path,
                               code, " " + extra if extra else ""))

    def log_message(self, fmt, *args):
        log(fmt % args)

    # --- routes -----------------------------------------------------------

    def do_GET(self):
        self.note = ""
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/healthz":
            return self.reply(200, {"status": "ok"})
        if url.path != "/records":
            return self.error(404, "not_found", "no route " + url.path)
        q = urllib.parse.parse_qs(url.query)
        try:
            after = int(q.get("after", ["0"])[0])
            limit = int(q.get("limit", ["1000"])[0])
            if not 1 <= limit <= 100000:
                raise ValueError
        except ValueError:
            return self.error(400, "invalid_field", "'after' and 'limit' must be integers"
                              " (limit 1..100000)")
        node = q.get("node", [None])[0]
        try:
            recs = self.server.store.list(after, node, limit)
        except sqlite3.Error as e:
            return self.error(503, "storage", str(e))
        self.reply(200, {"records": recs})

    def do_POST(self):
        self.note = ""
        srv = self.server
        if self.headers.get("Transfer-Encoding"):
            return self.error(411, "length_required",
                              "send Content-Length, not Transfer-Encoding", close=True)
        length = self.headers.get("Content-Length")
        if length is None:
            return self.error(411, "length_required", "Content-Length is required", close=True)
        try:
            length = int(length)
            if length < 0:
                raise ValueError
        except ValueError:
            return self.error(400, "bad_request", "bad Content-Length", close=True)
        failing = srv.fail_status and time.monotonic() < srv.fail_until
        if length > MAX_BODY:
            # Read and drop it (up to a point) before answering: closing a
            # socket with unread data sends a reset, which can destroy the
            # answer, and a sender that sees no answer retries forever.
            self.drain(length)
            if failing:
                return self.error(srv.fail_status, "simulated_failure",
                                  "--fail-status", close=True)
            return self.error(413, "payload_too_large",
                              "body of %d bytes is over %d" % (length, MAX_BODY), close=True)
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            self.note = "body cut short (%d of %d bytes)" % (len(body), length)
            return
        if failing:
            return self.error(srv.fail_status, "simulated_failure",
                              "this receiver was started with --fail-status %d" % srv.fail_status)

        ok, reason = sfu_webhook.verify(srv.secrets, self.headers, body, time.time())
        if not ok:
            return self.error(401, "unauthorized", reason)
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return self.error(415, "unsupported_media_type",
                              "Content-Type must be application/json")
        try:
            node, records = parse_batch(body, self.headers.get(sfu_webhook.BATCH_HEADER))
        except BadBatch as e:
            return self.error(400, e.code, str(e))
        try:
            new, dups = srv.store.add_batch(node, records)
        except sqlite3.Error as e:
            # Our failure, not the batch's: 5xx so that sfud retries it.
            return self.error(503, "storage", str(e))
        self.note = "batch %s-%s stored=%d duplicates=%d" % (
            records[0]["seq"], records[-1]["seq"], len(new), dups)
        if srv.print_records and new:
            with srv.print_lock:
                for r in new:
                    sys.stdout.write(json.dumps(r, separators=(",", ":"),
                                                ensure_ascii=False) + "\n")
                sys.stdout.flush()
        self.reply(200, {"stored": len(new), "duplicates": dups})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False   # idle keep-alive connections must not delay exit
    allow_reuse_address = True
    ssl_ctx = None           # set with --tls-cert: HTTPS

    def finish_request(self, request, client_address):
        """In the connection's own thread: the TLS handshake first, so a
        slow or broken one holds up only its connection."""
        if self.ssl_ctx is None:
            return super().finish_request(request, client_address)
        import ssl
        request.settimeout(10)
        try:
            tls = self.ssl_ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            log("TLS handshake with %s failed: %s" % (client_address[0], e))
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            tls.close()


class _Stop(BaseException):
    """SIGTERM/SIGINT, raised in the main thread wherever it is. Not an
    Exception: the signal may land while the main thread accepts a
    connection, inside socketserver's handler of a request, which would
    take an Exception for that request's error and serve on."""


def parse_listen(s):
    host, sep, port = s.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise argparse.ArgumentTypeError("expected HOST:PORT, got %r" % s)
    return host.strip("[]"), int(port)


def write_port_file(path, port):
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", type=parse_listen, default=("127.0.0.1", 8090),
                    metavar="HOST:PORT", help="address to listen on (port 0: any free port)")
    ap.add_argument("--secret", action="append",
                    help="shared webhook secret; repeat to accept several (rotation). "
                         "Default: $SFU_WEBHOOK_SECRET (keeps it out of ps)")
    ap.add_argument("--db", required=True, help="SQLite file (created if missing)")
    ap.add_argument("--print", dest="print_records", action="store_true",
                    help="print each newly stored record as a JSON line on stdout")
    ap.add_argument("--port-file", help="write the bound port to this file")
    ap.add_argument("--tls-cert", metavar="PEM",
                    help="serve HTTPS with this certificate chain (with --tls-key)")
    ap.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert")
    ap.add_argument("--fail-status", type=int, metavar="N",
                    help="answer every POST with status N (400..599), storing nothing")
    ap.add_argument("--fail-for-s", type=float, metavar="T",
                    help="fail only during the first T seconds (status --fail-status, "
                         "default 503)")
    args = ap.parse_args(argv)
    if args.fail_status is not None and not 400 <= args.fail_status <= 599:
        ap.error("--fail-status must be 400..599")
    if not args.secret and os.environ.get("SFU_WEBHOOK_SECRET"):
        args.secret = [os.environ["SFU_WEBHOOK_SECRET"]]
    if not args.secret:
        ap.error("--secret (or SFU_WEBHOOK_SECRET) is required")
    if any(not s for s in args.secret):
        ap.error("--secret must not be empty")
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("--tls-cert and --tls-key go together")

    host, port = args.listen
    Server.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
    store = Store(args.db)
    server = Server((host, port), Handler)
    server.store = store
    if args.tls_cert:
        import ssl
        server.ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.ssl_ctx.load_cert_chain(args.tls_cert, args.tls_key)
    server.secrets = args.secret
    server.print_records = args.print_records
    server.print_lock = threading.Lock()
    server.fail_status = args.fail_status
    if args.fail_for_s is not None and server.fail_status is None:
        server.fail_status = 503
    server.fail_until = (time.monotonic() + args.fail_for_s if args.fail_for_s is not None
                         else float("inf"))

    def on_signal(signum, frame):
        raise _Stop(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        bound = server.server_address[1]
        if args.port_file:
            write_port_file(args.port_file, bound)
        log("listening on %s:%d, db %s" % (host, bound, args.db))
        server.serve_forever(poll_interval=0.25)
    except _Stop as e:
        log("signal %d: stopping" % e.args[0])
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        server.socket.close()
        store.close(timeout=1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())

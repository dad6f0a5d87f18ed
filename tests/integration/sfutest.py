"""Helpers for integration tests: start a real sfud, talk to its API.

Only the Python standard library, so the tests run wherever sfud builds.
CallTest and PageCallTest are the test-case helpers the call tests share
(rooms, tokens, aiortc peers, polling, a Chromium page).
"""
import asyncio
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import unittest


def _die_with_parent():
    """In the child before exec: SIGTERM when the test process dies, so a
    test killed by a timeout leaves no sfud behind."""
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Receiver:
    """The reference webhook receiver (tools/sfu-receiver.py) on port 0."""

    SECRET = "webhook-secret-0123456789"

    def __init__(self, db=None, port=0, *extra):
        import tempfile
        here = os.path.dirname(os.path.abspath(__file__))
        self.tool = os.path.join(here, "..", "..", "tools", "sfu-receiver.py")
        self.dir = tempfile.mkdtemp(prefix="sfu-receiver-")
        self.db = db or os.path.join(self.dir, "records.db")
        self.start(port, *extra)

    def start(self, port=0, *extra):
        pf = os.path.join(self.dir, "port")
        if os.path.exists(pf):
            os.unlink(pf)
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", self.tool, "--listen", "127.0.0.1:%d" % port, "--secret",
             self.SECRET, "--db", self.db, "--port-file", pf, *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        def port_written():
            if not os.path.exists(pf):
                return None
            with open(pf) as f:
                return f.read().strip() or None
        self.port = int(wait_for(port_written, what="receiver up"))
        # with --tls-cert: https:// by name (sfud checks the certificate's DNS name)
        self.url = ("https://localhost:%d/hook" if "--tls-cert" in extra
                    else "http://127.0.0.1:%d/hook") % self.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)

    def records(self):
        import ssl
        import urllib.request
        url = self.url.replace("/hook", "/records?after=0")
        # (the test reads back what it stored; sfud's side is what verifies)
        ctx = ssl._create_unverified_context() if url.startswith("https") else None
        with urllib.request.urlopen(url, context=ctx) as r:
            return json.loads(r.read())["records"]

    def close(self):
        import shutil
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Sfud:
    """A running sfud on an ephemeral loopback port, with its log captured."""

    def __init__(self, sfud, room, *extra, api_key="test-key",
                 token_secret="test-secret-0123456789abcdef0123456789", data_dir=None,
                 fsize=None, listen_host=None, prefix=(), tls=None, port=0):
        """listen_host: bind the HTTP server there (--listen-host) instead of
        127.0.0.1, an IPv6 address without brackets ("::1"); requests then
        go there too. prefix: words run before sfud's own command line
        (e.g. ["ip", "netns", "exec", NAME], which execs sfud in place, so
        proc.pid stays sfud's). tls: (cert, key, ca) PEM files: sfud serves
        HTTPS with cert/key and request() verifies it against ca. port: the
        port to listen on (0: any free one)."""
        import tempfile
        self.own_data_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="sfu-test-data-")
        self.api_key = api_key
        self.token_secret = token_secret
        self.log = []
        self.port = None
        self.host = listen_host or "127.0.0.1"
        args = [*prefix, sfud, "--listen-port", str(port), "--api-key", api_key,
                "--token-secret", token_secret, "--room-binary", room,
                "--heartbeat-ms", "200", "--heartbeat-timeout-ms", "3000",
                "--shutdown-grace-ms", "2000", "--data-dir", self.data_dir, *extra]
        if listen_host is not None:
            args[len(prefix) + 1:len(prefix) + 1] = ["--listen-host", listen_host]
        self.tls = tls
        if tls is not None:
            args += ["--tls-cert-file", tls[0], "--tls-key-file", tls[1]]
        def child():
            _die_with_parent()
            if fsize is not None:  # to make the journal's disk "full"
                import resource
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, resource.RLIM_INFINITY))
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, preexec_fn=child)
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(10):
            self.kill()
            raise RuntimeError("sfud did not start:\n" + "".join(self.log))

    def _read(self):
        for line in self.proc.stderr:
            self.log.append(line)
            host = "[%s]" % self.host if ":" in self.host else self.host  # IPv6: [::1]
            m = re.search(r'listening on https?://(?:%s|localhost):(\d+)' % re.escape(host), line)
            if m:
                self.port = int(m.group(1))
                self._ready.set()

    def request(self, method, path, body=None, auth=True, raw=None,
                headers=None):
        if self.tls is not None:
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=10,
                                               context=self.ssl_context())
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        h = dict(headers or {})
        if auth:
            h["Authorization"] = "Bearer " + (auth if isinstance(auth, str)
                                              else self.api_key)
        data = raw if raw is not None else (
            json.dumps(body).encode() if body is not None else None)
        if data is not None:
            h.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=h)
        resp = conn.getresponse()
        text = resp.read().decode()
        conn.close()
        ctype = resp.getheader("Content-Type", "")
        parsed = json.loads(text) if ctype.startswith("application/json") else text
        return resp.status, parsed

    def ssl_context(self):
        """A client context trusting only the test CA of `tls`."""
        import ssl
        return ssl.create_default_context(cafile=self.tls[2])

    def _procs(self):
        """{pid: (ppid, cmdline)} of live (non-zombie) processes."""
        return {pid: (int(fields[1]), cmdline()) for pid, fields, cmdline in live_procs()}

    def zygote(self):
        """PID of sfud's zygote (the template process rooms fork from)."""
        for pid, (ppid, cmd) in self._procs().items():
            if ppid == self.proc.pid and b"--zygote" in cmd:
                return pid
        return None

    def children(self):
        """PIDs of live room processes of this sfud: its children, or the
        children of its zygote; the zygote itself is not a room."""
        procs = self._procs()
        zygotes = {p for p, (pp, cmd) in procs.items()
                   if pp == self.proc.pid and b"--zygote" in cmd}
        own = procs.get(self.proc.pid, (0, None))[1]
        # a forked room keeps the zygote's command line: tell them by parent;
        # a child with sfud's own command line is a fork not yet exec'd (a
        # zygote being started), not a room
        return sorted(p for p, (pp, cmd) in procs.items()
                      if pp in zygotes or (pp == self.proc.pid and p not in zygotes and
                                           cmd != own))

    def metric(self, name):
        _, text = self.request("GET", "/metrics", auth=False)
        m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
        return float(m.group(1)) if m else None

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        self._reader.join(5)  # the log up to its last line
        self._cleanup()
        return rc

    def stop_and_check(self, log_path=None):
        """stop(); then, even if that fails, its stderr closed and its log
        written to log_path (if given); then assert_clean_log()."""
        try:
            self.stop()
        finally:
            self.proc.stderr.close()
            if log_path:
                with open(log_path, "w") as f:
                    f.writelines(self.log)
        self.assert_clean_log()

    def assert_clean_log(self):
        """No sanitizer report from sfud or any room (they share stderr)."""
        bad = [l for l in self.log if "Sanitizer" in l or "runtime error:" in l]
        if bad:
            raise AssertionError("sanitizer report:\n" + "".join(self.log[-200:]))

    def kill(self, keep_data=False):
        """The node dies, as its machine would: sfud, its zygote and its
        rooms (which would outlive sfud alone: crash())."""
        procs = [self.zygote(), *self.children()] if self.proc.poll() is None else []
        self.crash()
        for pid in procs:
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self._reader.join(5)
        if not keep_data:
            self._cleanup()

    def crash(self):
        """sfud alone dies (SIGKILL); its rooms go on for their orphan
        grace, its data dir stays for the next sfud."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def _cleanup(self):
        import shutil
        if self.own_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


class TestCA:
    """A throwaway certificate authority (openssl CLI) in `directory`:
    ca.pem, and leaf certificates it signs for host names and addresses."""

    def __init__(self, directory, name="SFU test CA"):
        self.dir = directory
        self.pem = os.path.join(directory, "ca.pem")
        self.key = os.path.join(directory, "ca.key")
        self._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-nodes", "-keyout", self.key, "-out", self.pem, "-days", "2",
                      "-subj", "/CN=" + name)

    def _openssl(self, *args):
        subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)

    def issue(self, name, dns=("localhost",), ips=("127.0.0.1",)):
        """(cert, key) paths of a fresh P-256 leaf for `dns` names and `ips`."""
        cert = os.path.join(self.dir, name + ".pem")
        key = os.path.join(self.dir, name + ".key")
        csr = os.path.join(self.dir, name + ".csr")
        ext = os.path.join(self.dir, name + ".ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=" + ",".join(["DNS:" + d for d in dns] +
                                                 ["IP:" + i for i in ips]) + "\n")
        self._openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                      "-keyout", key, "-out", csr, "-subj", "/CN=" + (dns or ips)[0])
        self._openssl("x509", "-req", "-in", csr, "-CA", self.pem, "-CAkey", self.key,
                      "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext)
        return cert, key

    @staticmethod
    def pin(cert):
        """sha256//<base64> of the certificate's SubjectPublicKeyInfo."""
        import base64
        import hashlib
        spki = subprocess.run(
            "openssl x509 -in '%s' -pubkey -noout | openssl pkey -pubin -outform der" % cert,
            shell=True, check=True, stdout=subprocess.PIPE).stdout
        return "sha256//" + base64.b64encode(hashlib.sha256(spki).digest()).decode()


class CallTest(unittest.IsolatedAsyncioTestCase):
    """What the call tests share around a running sfud, `self.sfud`: rooms
    and tokens from its API, aiortc peers in `self.peers` (a list the
    subclass's setUp makes; closed after each test) and polling. How sfud
    starts is the subclass's; start_sfud() gives each test its own.

    until() waits UNTIL_S unless told, polling every POLL_S; a timeout fails
    the test with timeout_details() appended to the message."""

    PEER = None         # the class peer() makes: aiortc_peer.Peer or a subclass
    UNTIL_S = 15.0
    POLL_S = 0.1

    def start_sfud(self, *args, **kw):
        """Sfud(*args, **kw) as self.sfud, stopped when the test ends (after
        the peers are closed); with SFU_TEST_LOG set, the end of its log
        goes to stderr."""
        self.sfud = Sfud(*args, **kw)
        self.addCleanup(self._end_sfud)
        return self.sfud

    def _end_sfud(self):
        self.sfud.stop()
        if os.environ.get("SFU_TEST_LOG"):
            sys.stderr.write("".join(self.sfud.log[-60:]))

    async def asyncTearDown(self):
        for p in self.peers:
            await p.close()

    def assert_peers_clean(self):
        """No peer had a failure in a background task or saw the server
        contradict docs/signaling.md."""
        for p in self.peers:
            self.assertEqual(p.errors, [], p.identity)
            self.assertEqual(p.violations, [], p.identity)

    # -- the API -----------------------------------------------------------

    def new_room(self, name):
        """POST /v1/rooms: the room's JSON (room_id, ws_url, ...)."""
        st, room = self.sfud.request("POST", "/v1/rooms", {"name": name})
        self.assertEqual(st, 201, room)
        return room

    def token(self, identity, room=None):
        """A join token for `identity` in `room` (new_room()'s JSON;
        self.room if not given)."""
        room = room or self.room
        st, j = self.sfud.request("POST", "/v1/rooms/%s/tokens" % room["room_id"],
                                  {"identity": identity})
        self.assertEqual(st, 201, j)
        return j["token"]

    def peer(self, room, identity, **kw):
        """A PEER for `identity` in `room` with a fresh token, in self.peers
        (not joined yet); kw go to its constructor."""
        p = self.PEER(room["ws_url"], room["room_id"], self.token(identity, room), identity,
                      **kw)
        self.peers.append(p)
        return p

    # -- waiting -----------------------------------------------------------

    async def until(self, pred, timeout=None, what="condition", step=None):
        """Polls pred() -- a coroutine function too -- until it is truthy;
        returns its value."""
        timeout = self.UNTIL_S if timeout is None else timeout
        end = time.monotonic() + timeout
        while True:
            v = pred()
            if asyncio.iscoroutine(v):
                v = await v
            if v:
                return v
            if time.monotonic() >= end:
                self.fail("timed out (%.0f s) waiting for %s%s"
                          % (timeout, what, await self.timeout_details()))
            await asyncio.sleep(self.POLL_S if step is None else step)

    async def timeout_details(self):
        """What a timeout in until() adds to its message."""
        return ""


class PageCallTest(CallTest):
    """A CallTest that also drives one Chromium page, `self.page`
    (chromium.py, with window.sfu from pagejs.py). CDP calls block: they
    run off the event loop, which aiortc needs."""

    page = None

    async def js(self, expression, timeout=15.0):
        return await asyncio.to_thread(self.page.evaluate, expression, True, timeout)

    async def js_until(self, expression, timeout=None, what=None):
        """until() for a JavaScript expression in the page."""
        return await self.until(lambda: self.js(expression), timeout, what or expression)

    async def page_hears(self):
        """The page received over 50 audio packets, and energy (sfu.stats())."""
        st = await self.js("sfu.stats()")
        return (sum(r["packetsReceived"] for r in st) > 50
                and sum(r["totalAudioEnergy"] for r in st) > 0)

    def close_browser(self, browser):
        """Closes a Chromium; it must leave no temp dir and no process."""
        tmp = browser.tmp_dir
        browser.close()
        self.assertFalse(os.path.exists(tmp), "chromium temp dir left behind")
        self.assertEqual(browser._own_pids(), [], "chromium processes left behind")

    async def call_state(self, state_js, console=20):
        """Diagnostics lines: the page's client (state_js's value), its last
        `console` console messages, each peer's connection and what it heard."""
        out = []
        if self.page is not None:
            try:
                out.append(json.dumps(await self.js(state_js, timeout=5)))
            except Exception as e:
                out.append("(page: %r)" % e)
            out += ["%s: %s" % (c["type"], c["text"]) for c in self.page.console[-console:]]
        for p in self.peers:
            out.append("%s: pc %s, pairs %r, heard %r" % (
                p.identity, p.pc and p.pc.connectionState,
                p.selected_candidate_types() if p.pc else None, p.received_by_source()))
        return out


def main(replay=None, logdir=None, **unittest_kw):
    """The integration scripts' entry point: parses --sfud and --room, --replay
    (replay="required" or "optional") and --logdir (default `logdir`) into
    the script's ARGS, then runs its tests with the remaining arguments."""
    import argparse
    import __main__
    ap = argparse.ArgumentParser()
    ap.add_argument("--sfud", required=True)
    ap.add_argument("--room", required=True)
    if replay:
        ap.add_argument("--replay", required=replay == "required", default=None)
    ap.add_argument("--logdir", default=logdir)
    __main__.ARGS, rest = ap.parse_known_args()
    unittest.main(module="__main__", argv=[sys.argv[0]] + rest, verbosity=2, **unittest_kw)


def wait_for(pred, timeout=10.0, step=0.05, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("timed out waiting for " + what)


def live_procs():
    """(pid, stat fields after the command name, cmdline()) of every live
    (non-zombie) process; cmdline() reads /proc/PID/cmdline split at NULs,
    b"" if the process is gone."""
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        fields = proc_stat_fields(int(d))
        if fields is None or fields[0] == "Z":
            continue

        def cmdline(d=d):
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    return f.read().split(b"\0")
            except OSError:
                return [b""]
        yield int(d), fields, cmdline


def proc_stat_fields(pid):
    """Fields of /proc/PID/stat after the command name (state first), or
    None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return None
    return st[st.rindex(")") + 2:].split()


def pid_alive(pid):
    fields = proc_stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def smaps(pid):
    """/proc/PID/smaps_rollup in KiB, plus "Private" = clean + dirty."""
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                out[parts[0].rstrip(":")] = int(parts[1])
    out["Private"] = out["Private_Clean"] + out["Private_Dirty"]
    return out

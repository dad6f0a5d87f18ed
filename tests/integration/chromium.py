#!/usr/bin/env python3
"""Drive headless Chromium over the DevTools protocol (CDP), stdlib only.

    from chromium import Chromium
    with Chromium() as browser:
        page = browser.open("http://127.0.0.1:8000/index.html")
        n = page.evaluate("navigator.mediaDevices.getUserMedia({audio:true})"
                          ".then(s => s.getAudioTracks().length)")
        print(n, page.console)

Chromium gets the flags of docs/testing.md (fake media devices and
permission UI, loopback ICE candidates) and a fresh --user-data-dir; it runs
in its own process group, which close() kills before removing the directory.
The CDP WebSocket client is a minimal RFC 6455 implementation so the helper
needs nothing outside the standard library.

Self-test (serves a trivial page and web/ on 127.0.0.1, checks fake
getUserMedia, an Opus offer, and that web/sfu-client.js loads as a module):

    python3 tests/integration/chromium.py --self-test
One-off evaluation:

    python3 tests/integration/chromium.py URL 'JS expression'
"""
import base64
import http.client
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sfutest import live_procs  # noqa: E402
import tempfile
import threading
import time
import urllib.parse

CHROMIUM = os.environ.get("CHROMIUM", "/usr/lib/chromium/chromium")

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class CdpError(Exception):
    """A CDP command failed (the protocol answered with an error)."""


class JsError(Exception):
    """The evaluated JavaScript threw or its promise rejected."""

    def __init__(self, message, details=None):
        super().__init__(message)
        self.details = details


# --------------------------------------------------------------------------
# Minimal WebSocket client (RFC 6455): text frames, fragmentation, ping/close.

class _WebSocket:
    def __init__(self, url, timeout=10.0):
        u = urllib.parse.urlsplit(url)
        if u.scheme != "ws":
            raise ValueError("only ws:// URLs: " + url)
        self.sock = socket.create_connection((u.hostname, u.port or 80),
                                             timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        path = u.path + ("?" + u.query if u.query else "")
        # No Origin header: Chromium refuses DevTools WebSockets from
        # origins not listed in --remote-allow-origins, but allows none.
        req = (f"GET {path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(req.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("WebSocket handshake: connection closed")
            head += chunk
        head, self._buf = head.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            raise ConnectionError("WebSocket handshake refused: "
                                  + status.decode(errors="replace"))
        self.sock.settimeout(None)
        self._send_lock = threading.Lock()
        self.closed = False

    def _read_exact(self, n):
        while len(self._buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self._buf)))
            if not chunk:
                raise ConnectionError("WebSocket closed by peer")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def _send_frame(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            hdr = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            hdr = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        with self._send_lock:
            self.sock.sendall(hdr + mask + masked)

    def send_text(self, text):
        self._send_frame(0x1, text.encode())

    def recv_text(self):
        """Next complete text message; None once the peer closed."""
        parts = []
        while True:
            b0, b1 = self._read_exact(2)
            fin, opcode = b0 & 0x80, b0 & 0x0F
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read_exact(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read_exact(8))[0]
            mask = self._read_exact(4) if b1 & 0x80 else None
            payload = self._read_exact(n)
            if mask:
                payload = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
            if opcode == 0x8:            # close
                self.closed = True
                return None
            if opcode == 0x9:            # ping
                self._send_frame(0xA, payload)
                continue
            if opcode == 0xA:            # pong
                continue
            parts.append(payload)
            if fin:
                return b"".join(parts).decode()

    def close(self):
        if not self.closed:
            self.closed = True
            try:
                self._send_frame(0x8, struct.pack("!H", 1000))
            except OSError:
                pass
        try:
            self.sock.close()
        except OSError:
            pass


# --------------------------------------------------------------------------

class Page:
    """One page target. Commands are synchronous; events are recorded."""

    def __init__(self, ws_url, timeout=15.0):
        self.timeout = timeout
        self._ws = _WebSocket(ws_url)
        self._next_id = 0
        self._lock = threading.Condition()
        self._replies = {}
        self.events = []          # every CDP event, in order: {method, params}
        self.console = []         # {"type", "text"} from console.*, errors, logs
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.send("Runtime.enable")
        self.send("Page.enable")
        self.send("Log.enable")

    # -- plumbing ----------------------------------------------------------
    def _read(self):
        try:
            while True:
                text = self._ws.recv_text()
                if text is None:
                    break
                msg = json.loads(text)
                with self._lock:
                    if "id" in msg:
                        self._replies[msg["id"]] = msg
                    else:
                        self.events.append(msg)
                        self._record_console(msg)
                    self._lock.notify_all()
        except (OSError, ConnectionError, ValueError):
            pass
        finally:
            with self._lock:
                self._ws.closed = True
                self._lock.notify_all()

    def _record_console(self, msg):
        m, p = msg.get("method"), msg.get("params", {})
        if m == "Runtime.consoleAPICalled":
            text = " ".join(_remote_to_str(a) for a in p.get("args", []))
            self.console.append({"type": p.get("type"), "text": text})
        elif m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            exc = d.get("exception", {})
            self.console.append({"type": "exception",
                                 "text": exc.get("description") or d.get("text", "")})
        elif m == "Log.entryAdded":
            e = p.get("entry", {})
            text = e.get("text", "")
            if e.get("url"):
                text += " (" + e["url"] + ")"
            self.console.append({"type": e.get("level", "log"), "text": text})

    def send(self, method, params=None, timeout=None):
        """Run one CDP command and return its result object."""
        with self._lock:
            self._next_id += 1
            cid = self._next_id
        self._ws.send_text(json.dumps({"id": cid, "method": method,
                                       "params": params or {}}))
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._lock:
            while cid not in self._replies:
                left = deadline - time.monotonic()
                if self._ws.closed:
                    raise CdpError(f"{method}: DevTools connection closed")
                if left <= 0:
                    raise TimeoutError(f"{method}: no reply within "
                                       f"{timeout or self.timeout} s")
                self._lock.wait(left)
            reply = self._replies.pop(cid)
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    def wait_event(self, method, since=0, timeout=None, pred=None):
        """The first event named `method` at index >= since (see .events)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._lock:
            while True:
                for ev in self.events[since:]:
                    if ev.get("method") == method and (
                            pred is None or pred(ev.get("params", {}))):
                        return ev.get("params", {})
                left = deadline - time.monotonic()
                if left <= 0 or self._ws.closed:
                    raise TimeoutError("no " + method + " event")
                self._lock.wait(left)

    # -- convenience -------------------------------------------------------
    def navigate(self, url, timeout=None):
        """Load url and wait for its load event."""
        with self._lock:
            mark = len(self.events)
        res = self.send("Page.navigate", {"url": url})
        if res.get("errorText"):
            raise CdpError(f"navigate {url}: {res['errorText']}")
        self.wait_event("Page.loadEventFired", since=mark, timeout=timeout)

    def evaluate(self, expression, await_promise=True, timeout=None):
        """Evaluate JS in the page and return its JSON value.

        Promises are awaited; the value comes back by value (JSON), so return
        plain data. Raises JsError if it throws or the promise rejects.
        """
        t = timeout or self.timeout
        res = self.send("Runtime.evaluate", {
            "expression": expression, "awaitPromise": await_promise,
            "returnByValue": True, "userGesture": True,
            "timeout": int(t * 1000),
        }, timeout=t + 5)
        if "exceptionDetails" in res:
            d = res["exceptionDetails"]
            exc = d.get("exception", {})
            raise JsError(exc.get("description") or exc.get("value")
                          or d.get("text", "exception"), d)
        r = res.get("result", {})
        if r.get("type") == "undefined":
            return None
        if "value" in r:
            return r["value"]
        if "unserializableValue" in r:
            return r["unserializableValue"]
        return r.get("description")

    def wait_for(self, expression, timeout=None, step=0.1):
        """Poll a JS expression until it is truthy; return its value."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            v = self.evaluate(expression)
            if v:
                return v
            if time.monotonic() >= deadline:
                raise TimeoutError("timed out waiting for: " + expression)
            time.sleep(step)

    def title(self):
        return self.evaluate("document.title")

    def close(self):
        self._ws.close()


def _remote_to_str(obj):
    if "value" in obj:
        v = obj["value"]
        return v if isinstance(v, str) else json.dumps(v)
    if "unserializableValue" in obj:
        return obj["unserializableValue"]
    return obj.get("description", obj.get("type", ""))


class Chromium:
    """A headless Chromium in its own process group with a temp profile."""

    def __init__(self, binary=CHROMIUM, extra_args=(), port=0, timeout=15.0, ca_file=None,
                 prefix=()):
        """ca_file: a PEM CA certificate Chromium trusts for TLS servers
        (put in the profile's NSS database with certutil, from Debian's
        libnss3-tools), for pages and WebSockets on https/wss. prefix:
        words run before Chromium's command line, which must exec it in
        place (e.g. NetNS.exec_prefix(): Chromium in a network namespace;
        its DevTools port is then on that namespace's loopback, so the
        calling thread talks to it from inside, NetNS.entered())."""
        self.timeout = timeout
        self.pages = []
        self.proc = None
        # Everything Chromium writes goes under one fresh directory: the
        # profile, and (through HOME and XDG_*) the crashpad database, dconf
        # cache and PulseAudio runtime files that would otherwise land in
        # ~/.config, ~/.cache and /tmp/pulse-*.
        self.tmp_dir = tempfile.mkdtemp(prefix="sfu-chromium-")
        self.user_data_dir = os.path.join(self.tmp_dir, "profile")
        env = dict(os.environ)
        for var, sub in (("HOME", "home"), ("XDG_CONFIG_HOME", "home/.config"),
                         ("XDG_CACHE_HOME", "home/.cache"),
                         ("XDG_RUNTIME_DIR", "run")):
            env[var] = os.path.join(self.tmp_dir, sub)
            os.makedirs(env[var], mode=0o700, exist_ok=True)
        os.mkdir(self.user_data_dir)
        if ca_file is not None:
            nssdb = os.path.join(env["HOME"], ".pki", "nssdb")
            os.makedirs(nssdb, mode=0o700)
            for cmd in (["-N", "--empty-password"],
                        ["-A", "-n", "sfu-test-ca", "-t", "C,,", "-i", ca_file]):
                subprocess.run(["certutil", "-d", "sql:" + nssdb, *cmd], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._stderr = open(os.path.join(self.tmp_dir, "stderr.log"), "w+b")
        try:
            args = [*prefix, binary, *FLAGS, f"--user-data-dir={self.user_data_dir}",
                    "--remote-debugging-address=127.0.0.1",
                    f"--remote-debugging-port={port}", *extra_args,
                    "about:blank"]
            # start_new_session: Chromium's helpers (zygotes, renderers,
            # utilities) share its process group, so close() can end exactly
            # this tree with one killpg. (Its crashpad handlers double-fork
            # into their own sessions; close() finds them by the temp dir in
            # their command line and ends them by PID.)
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL,
                                         stderr=self._stderr, env=env,
                                         start_new_session=True)
            self.port = self._wait_port(port)
        except BaseException:
            self.close()
            raise

    def _wait_port(self, port):
        """With port 0 Chromium picks a free one and writes it to
        <user-data-dir>/DevToolsActivePort; wait until /json/version answers."""
        deadline = time.monotonic() + self.timeout
        path = os.path.join(self.user_data_dir, "DevToolsActivePort")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("chromium exited with %s:\n%s"
                                   % (self.proc.returncode, self.stderr()))
            p = port
            if not p:
                try:
                    with open(path) as f:
                        p = int(f.readline().strip() or 0)
                except (OSError, ValueError):
                    p = 0
            if p:
                try:
                    self._http("GET", "/json/version", port=p)
                    return p
                except OSError:
                    pass
            time.sleep(0.05)
        raise RuntimeError("chromium DevTools did not come up:\n" + self.stderr())

    def _http(self, method, path, port=None):
        conn = http.client.HTTPConnection("127.0.0.1", port or self.port,
                                          timeout=self.timeout)
        try:
            conn.request(method, path)
            resp = conn.getresponse()
            body = resp.read().decode()
            if resp.status != 200:
                raise OSError(f"{method} {path}: HTTP {resp.status} {body}")
            return json.loads(body)
        finally:
            conn.close()

    def targets(self):
        return self._http("GET", "/json/list")

    def stderr(self):
        try:
            self._stderr.flush()
            self._stderr.seek(0)
            return self._stderr.read().decode(errors="replace")[-4000:]
        except (OSError, ValueError):
            return ""

    def open(self, url=None):
        """A Page: the initial blank tab first, then new tabs; loads url."""
        target = None
        if not self.pages:
            deadline = time.monotonic() + self.timeout
            while target is None and time.monotonic() < deadline:
                target = next((t for t in self.targets()
                               if t.get("type") == "page"), None)
                if target is None:
                    time.sleep(0.05)
        if target is None:
            target = self._http("PUT", "/json/new?about:blank")
        page = Page(target["webSocketDebuggerUrl"], timeout=self.timeout)
        self.pages.append(page)
        if url:
            page.navigate(url)
        return page

    def _own_pids(self):
        """Live processes started by this Chromium: its group, plus any
        process whose command line names our private temp dir."""
        mine = self.tmp_dir.encode()
        return [pid for pid, fields, cmdline in live_procs()
                if (self.proc and int(fields[2]) == self.proc.pid)
                or any(mine in a for a in cmdline())]

    def _browser_close(self, timeout=3.0):
        """Ask Chromium to quit over CDP (Browser.close); wait for it."""
        try:
            url = self._http("GET", "/json/version")["webSocketDebuggerUrl"]
            ws = _WebSocket(url, timeout=timeout)
            try:
                ws.send_text(json.dumps({"id": 1, "method": "Browser.close"}))
            finally:
                ws.close()
            self.proc.wait(timeout)
        except (OSError, ConnectionError, KeyError, ValueError,
                subprocess.TimeoutExpired):
            pass

    def close(self):
        """Close the pages, end Chromium's processes, remove the temp dir."""
        for p in self.pages:
            p.close()
        self.pages = []
        if self.proc is not None:
            pgid = self.proc.pid     # leader of its own session and group
            helpers = self._own_pids()
            if self.proc.poll() is None:
                self._browser_close()     # lets Chromium reap its children
            if self.proc.poll() is None:
                try:
                    os.killpg(pgid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    pass
            try:
                os.killpg(pgid, signal.SIGKILL)   # stragglers in the group
            except ProcessLookupError:
                pass
            self.proc.wait()
            # Crashpad handlers live in their own sessions; they exit when
            # Chromium does, but make sure (by PID, only ones we started).
            deadline = time.monotonic() + 2
            left = [p for p in helpers if _alive(p)]
            while left and time.monotonic() < deadline:
                time.sleep(0.05)
                left = [p for p in left if _alive(p)]
            for p in left:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            self._stderr.close()
        except OSError:
            pass
        shutil.rmtree(self.tmp_dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------
# Static file server and self-test

class StaticServer:
    """http.server on 127.0.0.1:<ephemeral> serving `directory`, in a thread."""

    def __init__(self, directory):
        import functools
        import http.server

        class Quiet(http.server.SimpleHTTPRequestHandler):
            extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                              ".js": "text/javascript", ".mjs": "text/javascript"}

            def log_message(self, *a):
                pass

        handler = functools.partial(Quiet, directory=directory)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._t = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._t.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def self_test():
    here = os.path.dirname(os.path.abspath(__file__))
    web = os.path.normpath(os.path.join(here, "..", "..", "web"))
    tmp = tempfile.mkdtemp(prefix="sfu-page-")
    ok = True

    def check(what, got, want):
        nonlocal ok
        good = got == want
        ok &= good
        print(f"{'ok  ' if good else 'FAIL'} {what}: {got!r}"
              + ("" if good else f" (want {want!r})"))

    try:
        with open(os.path.join(tmp, "index.html"), "w") as f:
            f.write("<!doctype html><title>blank</title>"
                    "<link rel=icon href='data:,'><p>hello</p>"
                    "<script>console.log('page loaded')</script>")
        with StaticServer(tmp) as trivial, StaticServer(web) as webdir, \
                Chromium() as browser:
            page = browser.open(trivial.url + "/index.html")
            check("title", page.title(), "blank")
            check("fake microphone tracks", page.evaluate(
                "navigator.mediaDevices.getUserMedia({audio:true})"
                ".then(s => { const n = s.getAudioTracks().length;"
                " s.getTracks().forEach(t => t.stop()); return n; })"), 1)
            check("offer has opus", page.evaluate("""(async () => {
                const pc = new RTCPeerConnection();
                pc.addTransceiver('audio');
                const o = await pc.createOffer();
                pc.close();
                return /opus\\/48000/i.test(o.sdp);
            })()"""), True)
            try:
                page.evaluate("Promise.reject(new Error('boom'))")
                check("rejection raises JsError", False, True)
            except JsError as e:
                check("rejection raises JsError", "boom" in str(e), True)
            check("console captured",
                  any(c["text"] == "page loaded" for c in page.console), True)

            mark = len(page.console)
            page.navigate(webdir.url + "/index.html")
            check("sfu-client.js is a module exporting SfuClient", page.evaluate(
                "import('/sfu-client.js').then(m => typeof m.SfuClient)"),
                "function")
            check("SfuClient is an EventTarget", page.evaluate(
                "import('/sfu-client.js').then(m => new m.SfuClient("
                "{wsUrl: 'ws://127.0.0.1:9/v1/rtc'}) instanceof EventTarget)"),
                True)
            check("demo.js loads", page.evaluate(
                "import('/demo.js').then(() => 'ok')"), "ok")
            check("demo form present",
                  page.evaluate("!!document.querySelector('#join-form')"), True)
            errors = [c for c in page.console[mark:]
                      if c["type"] in ("error", "exception")]
            check("no console errors", errors, [])
            pid = browser.proc.pid
        check("chromium group gone", _group_alive(pid), False)
        check("temp dir removed", os.path.exists(browser.tmp_dir), False)
        check("no process left", browser._own_pids(), [])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def _alive(pid):
    """True if pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
        return st[st.rindex(")") + 2] != "Z"
    except OSError:
        return False


def _group_alive(pgid):
    """True if any live (non-zombie) process is in process group pgid."""
    return any(int(fields[2]) == pgid for _, fields, _ in live_procs())


def main(argv):
    if argv[1:2] == ["--self-test"]:
        return self_test()
    if len(argv) != 3:
        print(__doc__)
        return 2
    with Chromium() as browser:
        page = browser.open(argv[1])
        try:
            print(json.dumps(page.evaluate(argv[2]), indent=2))
            rc = 0
        except JsError as e:
            print("error:", e, file=sys.stderr)
            rc = 1
        for c in page.console:
            print(f"console.{c['type']}: {c['text']}", file=sys.stderr)
        return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))

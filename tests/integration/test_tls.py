#!/usr/bin/env python3
"""sfud on HTTPS/WSS and webhooks to https://, against a real sfud.

Certificates come from a throwaway CA made with the openssl CLI
(sfutest.TestCA). The call over wss:// with Chromium is in test_browser.py
(BrowserCallOverTlsTest); here:

* start-up errors: a missing file, a key of another certificate, a file
  that is not PEM, one of the two settings alone -- each a clear message
  and a non-zero exit, never a node that serves plain HTTP instead;
* the API over https:// verified against the CA, ws_url wss://, two aiortc
  peers hearing each other over wss://; plain HTTP and TLS 1.1 refused on
  the port;
* SIGHUP: new connections get the new certificate, a connection opened
  before keeps working (the HTTP keep-alive and a joined peer's
  WebSocket), a broken file is refused and the previous certificate stays;
* garbage and stalled handshakes on the port: other clients are served
  meanwhile, the stalled ones are closed after the handshake timeout;
* webhooks to https://: delivered when the receiver's chain verifies
  against webhook_tls_ca_file, held back (and retried) against the system
  store or with a pin of another key, delivered with the right pin.

Usage: test_tls.py --sfud PATH --room PATH
"""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sfutest import Receiver, Sfud, TestCA, main, wait_for  # noqa: E402
from aiortc_peer import Peer  # noqa: E402

ARGS = None
HEARD = 0.01


def der_of(host, port, ctx):
    """The DER certificate a fresh TLS connection to host:port is served."""
    with socket.create_connection((host, port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as s:
            return s.getpeercert(binary_form=True)


def closed_by_server(s, timeout):
    """True once the server ended the connection (EOF or reset), False if
    it is still open after `timeout` seconds."""
    s.settimeout(timeout)
    try:
        while s.recv(4096):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def pem_der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


class TlsTest(unittest.IsolatedAsyncioTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="sfu-tls-test-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.ca = TestCA(self.dir)
        self.cert, self.key = self.ca.issue("sfud")
        self.sfud = None
        self.peers = []

    async def asyncTearDown(self):
        for p in self.peers:
            await p.close()

    def tearDown(self):
        if self.sfud is not None:
            self.sfud.stop()

    def start(self, *extra, tls=True):
        self.sfud = Sfud(ARGS.sfud, ARGS.room, *extra,
                         tls=(self.cert, self.key, self.ca.pem) if tls else None)
        return self.sfud

    def refused_start(self, *args):
        """sfud's exit status and stderr for a start that must fail."""
        data = os.path.join(self.dir, "data")
        p = subprocess.run([ARGS.sfud, "--listen-port", "0", "--room-binary", ARGS.room,
                            "--data-dir", data, "--api-key", "test-key-1", *args],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           timeout=20)
        return p.returncode, p.stderr

    # ------------------------------------------------------------------

    def test_start_refuses_bad_certificate_settings(self):
        other_cert, other_key = self.ca.issue("other")
        notpem = os.path.join(self.dir, "notpem.pem")
        with open(notpem, "w") as f:
            f.write("this is not a certificate\n")
        missing = os.path.join(self.dir, "missing.pem")
        cases = [
            (["--tls-cert-file", missing, "--tls-key-file", self.key],
             ["tls_cert_file", missing, "No such file"]),
            (["--tls-cert-file", self.cert, "--tls-key-file", missing],
             ["tls_key_file", missing, "No such file"]),
            (["--tls-cert-file", self.cert, "--tls-key-file", other_key],
             ["tls_key_file", other_key, "match"]),
            (["--tls-cert-file", notpem, "--tls-key-file", self.key],
             ["tls_cert_file", notpem, "PEM"]),
            (["--tls-cert-file", self.dir, "--tls-key-file", self.key],
             ["tls_cert_file", self.dir]),
            (["--tls-cert-file", self.cert], ["tls_cert_file and tls_key_file"]),
            (["--webhook-url", "ftp://x/hook", "--webhook-secret", "s" * 16], ["webhook_url"]),
            (["--webhook-tls-ca-file", self.ca.pem], ["https:// webhook_url"]),
            (["--webhook-url", "https://localhost:1/hook", "--webhook-secret", "s" * 16,
              "--webhook-tls-pin", "sha256//short"], ["webhook_tls_pin"]),
        ]
        for args, words in cases:
            code, err = self.refused_start(*args)
            self.assertNotEqual(code, 0, (args, err))
            for w in words:
                self.assertIn(w, err, args)
            self.assertNotIn("listening on http://", err, args)

    async def test_https_api_wss_call_and_refusals(self):
        sfud = self.start()
        st, room = sfud.request("POST", "/v1/rooms", {"name": "tls"})
        self.assertEqual(st, 201, room)
        self.assertTrue(room["ws_url"].startswith("wss://127.0.0.1:%d/" % sfud.port), room)
        self.assertEqual(sfud.request("GET", "/healthz", auth=False)[0], 200)

        # plain HTTP on the TLS port: no HTTP answer, and the node goes on
        with socket.create_connection(("127.0.0.1", sfud.port), timeout=5) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            got = s.recv(4096)
        self.assertNotIn(b"HTTP/1.1 200", got)
        # TLS 1.1 offered (the client allowing it): refused
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.load_verify_locations(self.ca.pem)
        old.set_ciphers("DEFAULT:@SECLEVEL=0")
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
        with self.assertRaises((ssl.SSLError, ConnectionError)):
            der_of("127.0.0.1", sfud.port, old)
        # a client that trusts only the system store does not accept it
        with self.assertRaises(ssl.SSLCertVerificationError):
            der_of("127.0.0.1", sfud.port, ssl.create_default_context())

        # two peers over wss:// hear each other
        opts = {"ssl": sfud.ssl_context()}
        peers = []
        for name, freq in (("alice", 440), ("bob", 660)):
            st, tok = sfud.request("POST", "/v1/rooms/%s/tokens" % room["room_id"],
                                   {"identity": name})
            self.assertEqual(st, 201, tok)
            p = Peer(room["ws_url"], room["room_id"], tok["token"], name, freq=freq,
                     ws_options=opts)
            self.peers.append(p)
            peers.append(p)
            await p.join()
        a, b = peers
        await a.wait_until(lambda: a.tone_power("bob", 660, 1.0) > HEARD and
                           b.tone_power("alice", 440, 1.0) > HEARD, timeout=20,
                           what="both hear each other over wss")
        self.assertEqual(a.errors + b.errors, [])

    async def test_sighup_reloads_certificate_keeping_open_connections(self):
        sfud = self.start("--log-level", "info")
        ctx = sfud.ssl_context()
        first = pem_der(self.cert)
        self.assertEqual(der_of("127.0.0.1", sfud.port, ctx), first)
        # before the reload: a keep-alive HTTPS connection and a joined peer
        import http.client
        keep = http.client.HTTPSConnection("127.0.0.1", sfud.port, timeout=10, context=ctx)
        keep.request("GET", "/healthz")
        self.assertEqual(keep.getresponse().read()[:1], b"{")
        st, room = sfud.request("POST", "/v1/rooms", {"name": "reload"})
        st, tok = sfud.request("POST", "/v1/rooms/%s/tokens" % room["room_id"],
                               {"identity": "early"})
        early = Peer(room["ws_url"], room["room_id"], tok["token"], "early", freq=440,
                     ws_options={"ssl": ctx})
        self.peers.append(early)
        await early.join()

        # new certificate and key in place of the old files, then SIGHUP
        new_cert, new_key = self.ca.issue("sfud2")
        shutil.copy(new_cert, self.cert)
        shutil.copy(new_key, self.key)
        second = pem_der(self.cert)
        self.assertNotEqual(first, second)
        sfud.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: sfud.metric("sfu_tls_reloads_total") == 1, what="reload counted")
        self.assertEqual(der_of("127.0.0.1", sfud.port, ctx), second)
        # what was open before still works
        keep.request("GET", "/healthz")
        self.assertEqual(keep.getresponse().status, 200)
        self.assertEqual(keep.sock.getpeercert(binary_form=True), first)
        keep.close()
        self.assertLess(await early.ping(), 5.0)

        # a broken file: refused, counted, the second certificate stays
        with open(self.key, "w") as f:
            f.write("garbage\n")
        sfud.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: sfud.metric("sfu_tls_reload_failures_total") == 1,
                 what="failed reload counted")
        self.assertEqual(der_of("127.0.0.1", sfud.port, ctx), second)
        self.assertEqual(sfud.metric("sfu_tls_reloads_total"), 1)
        self.assertLess(await early.ping(), 5.0)
        self.assertTrue(any("TLS reload failed" in line for line in sfud.log))

    def test_garbage_and_stalled_handshakes_do_not_block_others(self):
        sfud = self.start("--http-request-timeout-ms", "1500",
                          "--max-connections-per-ip", "1000")
        stalled, garbage = [], []
        try:
            for i in range(150):
                s = socket.create_connection(("127.0.0.1", sfud.port), timeout=5)
                if i % 3 == 0:
                    s.sendall(os.urandom(512))           # not TLS at all
                    garbage.append(s)
                elif i % 3 == 1:
                    s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a ClientHello cut short
                    stalled.append(s)
                else:
                    stalled.append(s)                    # says nothing
            # others are served meanwhile, over TLS
            t0 = time.monotonic()
            for _ in range(5):
                self.assertEqual(sfud.request("GET", "/healthz", auth=False)[0], 200)
            served = time.monotonic() - t0
            # garbage is closed at once, stalled handshakes after the timeout
            for s in garbage:
                self.assertTrue(closed_by_server(s, 5), "garbage handshake left open")
            wait_for(lambda: sfud.metric("sfu_http_connections") <= 1, timeout=10,
                     what="stalled handshakes closed by the server")
            for s in stalled:
                self.assertTrue(closed_by_server(s, 5), "stalled handshake left open")
            print("5 requests served in %.3f s while 150 bad handshakes were open" % served)
        finally:
            for s in stalled + garbage:
                s.close()
        self.assertEqual(sfud.request("GET", "/healthz", auth=False)[0], 200)

    def test_webhooks_over_https_verify_the_receiver(self):
        rcert, rkey = self.ca.issue("receiver", dns=("localhost",), ips=())
        other_cert, _ = self.ca.issue("unrelated")
        recv = Receiver(None, 0, "--tls-cert", rcert, "--tls-key", rkey)
        self.addCleanup(recv.close)
        self.assertTrue(recv.url.startswith("https://localhost:"))
        data = os.path.join(self.dir, "node-data")
        base = ("--webhook-url", recv.url, "--webhook-secret", Receiver.SECRET)

        def run(*tls_args, delivered):
            """A room created and closed; True if its records reached the
            receiver within a few seconds."""
            sfud = Sfud(ARGS.sfud, ARGS.room, *base, *tls_args, data_dir=data)
            try:
                st, room = sfud.request("POST", "/v1/rooms", {"name": "hook"})
                self.assertEqual(st, 201, room)
                sfud.request("DELETE", "/v1/rooms/" + room["room_id"])
                rid = room["room_id"]
                got = lambda: any(r.get("room_id") == rid for r in recv.records())  # noqa: E731
                if delivered:
                    wait_for(got, timeout=15, what="records delivered over https")
                else:
                    wait_for(lambda: sfud.metric("sfu_webhook_failures_total") >= 1,
                             timeout=15, what="a failed delivery")
                    self.assertFalse(got())
                    self.assertEqual(sfud.metric("sfu_webhook_batches_total"), 0)
                return sfud.log
            finally:
                sfud.stop()

        # the system store does not know the test CA: nothing is delivered
        log = run(delivered=False)
        self.assertTrue(any("not delivered" in line for line in log))
        # the pin of another key: refused even though the chain verifies
        run("--webhook-tls-ca-file", self.ca.pem,
            "--webhook-tls-pin", TestCA.pin(other_cert), delivered=False)
        # the CA file: delivered (what the earlier runs held back, too)
        run("--webhook-tls-ca-file", self.ca.pem, delivered=True)
        # the right pin with the CA: delivered
        run("--webhook-tls-ca-file", self.ca.pem, "--webhook-tls-pin", TestCA.pin(rcert),
            delivered=True)


if __name__ == "__main__":
    main()

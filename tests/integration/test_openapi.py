#!/usr/bin/env python3
"""docs/openapi.yaml against itself, docs/api.md and a real sfud.

* The file is valid OpenAPI (tests/node/openapi-check.js: the npm package
  @apidevtools/swagger-parser, installed by scripts/deps.sh --test), and
  every example in it matches its own schema.
* Every route docs/api.md names (`METHOD /path`) is in it.
* A real sfud is driven through every route a node that runs alone
  serves, happy paths and errors: each answer's status must be one the
  spec lists for that operation, and its body must match that response's
  schema. The schemas list the fields a client relies on as `required`,
  so an answer that loses one fails here. A 405 must carry an `Allow`
  header naming exactly the spec's methods of the path.

Usage: test_openapi.py --sfud PATH --room PATH
"""
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import unittest

import jsonschema
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sfutest import Sfud, main, wait_for  # noqa: E402

ARGS = None
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SPEC_PATH = os.path.join(ROOT, "docs", "openapi.yaml")
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def load_spec():
    with open(SPEC_PATH) as f:
        return yaml.safe_load(f)


class Spec:
    """The spec, with $ref resolution and schema validation."""

    def __init__(self, doc):
        self.doc = doc
        self.resolver = jsonschema.RefResolver.from_schema(doc)

    def deref(self, obj):
        while isinstance(obj, dict) and "$ref" in obj:
            _, obj = self.resolver.resolve(obj["$ref"])
        return obj

    def validate(self, instance, schema, what):
        v = jsonschema.Draft202012Validator(schema, resolver=self.resolver)
        errors = sorted(v.iter_errors(instance), key=lambda e: list(e.path))
        if errors:
            raise AssertionError("%s: %s\n%s" % (
                what, "; ".join("%s at %s" % (e.message, "/".join(map(str, e.path)) or "(top)")
                                for e in errors[:5]),
                json.dumps(instance)[:2000]))

    def template_of(self, path):
        """The spec's path template that `path` (no query) matches, or None.
        Literal templates win over those with parameters."""
        best = None
        for tmpl in self.doc["paths"]:
            rx = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(tmpl)) + "/?$"
            if re.match(rx, path):
                literal = "{" not in tmpl
                if best is None or literal:
                    best = tmpl
        return best


class SpecFile(unittest.TestCase):
    def test_valid_openapi(self):
        node_dir = os.path.join(ROOT, "tests", "node")
        self.assertTrue(os.path.isdir(os.path.join(node_dir, "node_modules")),
                        "tests/node/node_modules missing: run scripts/deps.sh --test")
        r = subprocess.run(["node", os.path.join(node_dir, "openapi-check.js"), SPEC_PATH],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertIn("valid OpenAPI 3.1", r.stdout)

    def test_examples_match_their_schemas(self):
        spec = Spec(load_spec())
        checked = 0

        def media(content, where):
            nonlocal checked
            m = content.get("application/json")
            if not m or "schema" not in m:
                return
            exs = [("example", m["example"])] if "example" in m else []
            exs += [(k, spec.deref(e)["value"]) for k, e in m.get("examples", {}).items()]
            for name, ex in exs:
                spec.validate(ex, m["schema"], "%s %s" % (where, name))
                checked += 1

        for path, item in spec.doc["paths"].items():
            for method in METHODS:
                op = item.get(method)
                if not op:
                    continue
                where = "%s %s" % (method.upper(), path)
                if "requestBody" in op:
                    media(op["requestBody"]["content"], where + " request")
                for status, resp in op["responses"].items():
                    media(spec.deref(resp).get("content", {}), "%s %s" % (where, status))
        self.assertGreater(checked, 30)

    def test_every_route_of_api_md_is_described(self):
        doc = load_spec()
        with open(os.path.join(ROOT, "docs", "api.md")) as f:
            text = f.read()
        routes = set(re.findall(r"`(GET|POST|DELETE|PUT|PATCH) (/[A-Za-z0-9_/{}.-]+)", text))
        self.assertGreater(len(routes), 20)
        missing = sorted("%s %s" % (m, p) for m, p in routes
                         if m.lower() not in doc["paths"].get(p.rstrip("/") or "/", {}))
        self.assertEqual(missing, [], "routes in docs/api.md but not in docs/openapi.yaml")

    def test_api_md_links_the_spec(self):
        with open(os.path.join(ROOT, "docs", "api.md")) as f:
            self.assertIn("](openapi.yaml)", f.read())


class LiveAnswers(unittest.TestCase):
    """A real sfud (dev routes on), driven through its routes."""

    @classmethod
    def setUpClass(cls):
        cls.spec = Spec(load_spec())
        cls.sfud = Sfud(ARGS.sfud, ARGS.room, "--dev", "1", "--crashed-retention-s", "60")
        cls.seen = set()

    @classmethod
    def tearDownClass(cls):
        cls.sfud.stop_and_check()
        ops = {(m, p) for p, item in cls.spec.doc["paths"].items() for m in METHODS if m in item}
        done = {(m, p) for m, p, _ in cls.seen} & ops
        sys.stderr.write("operations answered: %d of %d; not here: %s\n" % (
            len(done), len(ops), ", ".join(sorted("%s %s" % (m.upper(), p)
                                                  for m, p in ops - done)) or "none"))

    def call(self, method, path, body=None, auth=True, raw=None, want=None, headers=None):
        """One request; checks the answer against the spec; returns (status,
        body, headers). `want`: the status it must have."""
        conn = http.client.HTTPConnection("127.0.0.1", self.sfud.port, timeout=10)
        h = dict(headers or {})
        if auth:
            h["Authorization"] = "Bearer " + self.sfud.api_key
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            h.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=h)
        resp = conn.getresponse()
        text = resp.read().decode()
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        conn.close()
        ctype = hdrs.get("content-type", "")
        parsed = json.loads(text) if ctype.startswith("application/json") else text
        what = "%s %s -> %d" % (method, path, resp.status)
        if want is not None:
            self.assertEqual(resp.status, want, "%s: %s" % (what, text[:500]))
        self.check(method, path, resp.status, parsed, ctype, hdrs, what)
        return resp.status, parsed, hdrs

    def check(self, method, path, status, body, ctype, hdrs, what):
        spec = self.spec
        tmpl = spec.template_of(path.split("?")[0])
        self.assertIsNotNone(tmpl, "%s: path not in the spec" % what)
        item = spec.doc["paths"][tmpl]
        op = item.get(method.lower())
        if status == 405:
            allowed = sorted(m.upper() for m in METHODS if m in item)
            self.assertIsNone(op, "%s: the spec has this operation" % what)
            self.assertEqual(sorted(x.strip() for x in hdrs.get("allow", "").split(",")),
                             allowed, "%s: Allow" % what)
            resp = spec.deref({"$ref": "#/components/responses/MethodNotAllowed"})
            for m in allowed:  # every operation of the path documents its 405
                self.assertIn("405", item[m.lower()]["responses"], "%s %s" % (m, tmpl))
        else:
            self.assertIsNotNone(op, "%s: operation not in the spec" % what)
            self.assertIn(str(status), op["responses"],
                          "%s: status not listed for %s %s" % (what, method, tmpl))
            resp = spec.deref(op["responses"][str(status)])
        content = resp.get("content", {})
        mtype = ctype.split(";")[0].strip()
        if content:
            self.assertIn(mtype, content, "%s: content type %r" % (what, ctype))
            if "schema" in content[mtype]:
                spec.validate(body, content[mtype]["schema"], what)
        for name in resp.get("headers", {}):
            self.assertIn(name.lower(), hdrs, "%s: header %s" % (what, name))
        self.seen.add((method.lower(), tmpl, status))

    def room_running(self, name):
        def ready():
            st, j, _ = self.call("GET", "/v1/rooms/" + name)
            return j if j.get("state") == "running" and "stats" in j else None
        return wait_for(ready, what="room %s running with stats" % name)

    def test_health_metrics_node(self):
        self.call("GET", "/healthz", auth=False, want=200)
        self.call("GET", "/metrics", auth=False, want=200)
        self.call("POST", "/healthz", auth=False, want=405)
        self.call("GET", "/v1/node", want=200)
        self.call("DELETE", "/v1/node", want=405)
        self.call("GET", "/v1/fleet", want=404)
        self.call("GET", "/v1/rtc", auth=False, want=400)
        st, j, _ = self.call("GET", "/v1/events?after=0&limit=5", want=200)
        self.call("GET", "/v1/events?limit=0", want=400)
        self.call("GET", "/v1/events?after=x", want=400)
        self.call("POST", "/v1/events", want=405)

    def test_drain(self):
        self.call("POST", "/v1/node/drain", {"draining": True}, want=200)
        try:
            st, j, _ = self.call("POST", "/v1/rooms", {}, want=503)
            self.assertEqual(j["error"]["code"], "draining")
        finally:
            st, j, _ = self.call("POST", "/v1/node/drain", {"draining": False}, want=200)
        self.assertFalse(j["draining"])
        st, j, _ = self.call("POST", "/v1/node/drain", {"draining": True, "migrate": True},
                             want=409)
        self.assertEqual(j["error"]["code"], "no_fleet")
        self.call("POST", "/v1/node/drain", {"draining": "yes"}, want=400)
        self.call("GET", "/v1/node/drain", want=405)

    def test_errors_of_the_api(self):
        st, j, h = self.call("GET", "/v1/rooms", auth=False, want=401)
        self.assertEqual(j["error"]["code"], "unauthorized")
        self.assertIn("www-authenticate", h)
        st, j, _ = self.call("POST", "/v1/rooms", raw=b'{"name": ', want=400)
        self.assertEqual(j["error"]["code"], "invalid_json")
        st, j, _ = self.call("POST", "/v1/rooms", {"bogus": 1}, want=400)
        self.assertEqual(j["error"]["code"], "unknown_field")
        st, j, _ = self.call("POST", "/v1/rooms", {"max_participants": 0}, want=400)
        self.assertEqual(j["error"]["code"], "invalid_field")
        st, j, _ = self.call("POST", "/v1/rooms", raw=b'{"metadata": "' + b"x" * 70000 + b'"}',
                             want=413)
        self.assertEqual(j["error"]["code"], "payload_too_large")
        st, j, _ = self.call("POST", "/v1/rooms", {"node": "elsewhere"}, want=404)
        self.assertEqual(j["error"]["code"], "node_not_found")
        st, j, _ = self.call("GET", "/v1/rooms/nope", want=404)
        self.assertEqual(j["error"]["code"], "room_not_found")
        self.call("DELETE", "/v1/rooms/nope", want=404)
        self.call("POST", "/v1/rooms/nope/tokens", {"identity": "a"}, want=404)
        self.call("PUT", "/v1/rooms", {}, want=405)
        # node-to-node routes on a node that runs alone
        self.call("POST", "/v1/node/relays", {}, want=404)
        self.call("POST", "/v1/node/links/rl_x", {"type": "x"}, want=404)
        self.call("POST", "/v1/node/migrations", {}, want=404)
        self.call("GET", "/v1/node/migrations/rm_x", want=404)
        self.call("DELETE", "/v1/node/migrations/rm_x", want=404)
        self.call("POST", "/v1/node/migrations/rm_x/commit", {"cut_wall_ms": 1}, want=404)

    def test_whip_and_whep_without_a_session(self):
        # (a whole session, with media, is integration.whip's)
        sdp = {"Content-Type": "application/sdp"}
        for base in ("/whip/oa-w", "/whep/oa-w"):
            st, j, _ = self.call("POST", base, raw=b"v=0", auth=False, want=415)
            self.assertEqual(j["error"]["code"], "unsupported_media_type")
            st, j, _ = self.call("POST", base, raw=b"v=0\r\n", auth=False, headers=sdp,
                                 want=401)
            self.assertEqual(j["error"]["code"], "unauthorized")
            self.call("OPTIONS", base, auth=False, want=204)
            self.call("GET", base, auth=False, want=405)
        for base in ("/whip/oa-w/nope", "/whep/oa-w/nope"):
            st, j, _ = self.call("DELETE", base, auth=False, want=404)
            self.assertEqual(j["error"]["code"], "not_found")
            self.call("PATCH", base, raw=b"a=ice-ufrag:x\r\n", auth=False,
                      headers={"Content-Type": "application/trickle-ice-sdpfrag"}, want=404)
            self.call("OPTIONS", base, auth=False, want=204)

    def test_a_room_through_its_life(self):
        st, room, h = self.call("POST", "/v1/rooms", {"name": "oa-life", "max_participants": 4,
                                                      "metadata": {"team": 7}}, want=201)
        rid = room["room_id"]
        self.assertEqual(h["location"], "/v1/rooms/" + rid)
        st, j, _ = self.call("POST", "/v1/rooms", {"name": "oa-life"}, want=409)
        self.assertEqual(j["error"]["code"], "name_in_use")
        self.room_running("oa-life")
        st, j, _ = self.call("GET", "/v1/rooms", want=200)
        self.assertIn(rid, [r["room_id"] for r in j["rooms"]])
        self.call("PATCH", "/v1/rooms/" + rid, {}, want=405)

        st, tok, _ = self.call("POST", "/v1/rooms/oa-life/tokens",
                               {"identity": "alice", "name": "Alice", "ttl_s": 60,
                                "grants": {"publish": False, "subscribe": True}}, want=201)
        self.assertEqual(tok["room_id"], rid)
        st, j, _ = self.call("POST", "/v1/rooms/oa-life/tokens", {}, want=400)
        self.assertEqual(j["error"]["code"], "missing_field")
        self.call("GET", "/v1/rooms/oa-life/tokens", want=405)

        base = "/v1/rooms/%s/participants/" % rid
        self.call("POST", base + "bob/mute", {"muted": True}, want=202)
        self.call("POST", base + "bob/mute", {"muted": 1}, want=400)
        self.call("POST", base + "bad*id/mute", {"muted": True}, want=400)
        self.call("DELETE", base + "bob/mute", want=405)
        self.call("POST", base + "eve/ban", {"reason": "spam"}, want=202)
        self.call("POST", base + "mallory/ban", want=202)
        self.call("POST", base + "eve/ban", {"reason": "x" * 300}, want=400)
        self.call("PUT", base + "eve/ban", {}, want=405)
        self.call("DELETE", base + "carol", want=202)
        self.call("POST", base + "carol", want=405)
        st, j, _ = self.call("GET", "/v1/rooms/" + rid, want=200)
        self.assertEqual([b["identity"] for b in j["moderation"]["bans"]], ["eve", "mallory"])
        self.assertEqual(j["moderation"]["server_muted"], ["bob"])
        self.call("DELETE", base + "eve/ban", want=200)
        st, j, _ = self.call("DELETE", base + "eve/ban", want=404)
        self.assertEqual(j["error"]["code"], "not_banned")

        st, j, _ = self.call("POST", "/v1/rooms/%s/capture" % rid,
                             {"action": "start", "max_mib": 1, "max_seconds": 5}, want=202)
        self.assertTrue(j["file"].endswith(".pcap"))
        self.call("POST", "/v1/rooms/%s/capture" % rid, {"action": "stop"}, want=202)
        self.call("POST", "/v1/rooms/%s/capture" % rid, {"action": "pause"}, want=400)
        self.call("GET", "/v1/rooms/%s/capture" % rid, want=405)

        st, rl, _ = self.call("POST", "/v1/rooms/%s/relays" % rid, {}, want=201)
        self.call("POST", "/v1/rooms/%s/relays" % rid, {"node": 5}, want=400)
        self.call("POST", "/v1/rooms/%s/relays" % rid, {"node": "b"}, want=404)
        wait_for(lambda: self.call("GET", "/v1/rooms/%s/relays" % rid, want=200)[1],
                 what="relay listed")
        self.call("DELETE", "/v1/rooms/%s/relays" % rid, want=405)
        self.call("DELETE", "/v1/rooms/%s/relays/%s" % (rid, rl["relay_id"]), want=202)
        self.call("DELETE", "/v1/rooms/%s/relays/rl_nope" % rid, want=404)
        self.call("POST", "/v1/rooms/%s/migrate" % rid, {}, want=404)
        self.call("GET", "/v1/rooms/%s/migrate" % rid, want=405)

        st, j, _ = self.call("DELETE", "/v1/rooms/" + rid, want=202)
        self.assertEqual(j["state"], "closing")

    def test_a_crashed_room(self):
        st, room, _ = self.call("POST", "/v1/rooms", {"name": "oa-crash"}, want=201)
        self.room_running("oa-crash")
        os.kill(room["pid"], signal.SIGKILL)
        wait_for(lambda: self.call("GET", "/v1/rooms/" + room["room_id"])[1]["state"] == "crashed",
                 what="crash seen")
        rid = room["room_id"]
        st, j, _ = self.call("POST", "/v1/rooms/%s/tokens" % rid, {"identity": "a"}, want=409)
        self.assertEqual(j["error"]["code"], "room_not_running")
        self.call("POST", "/v1/rooms/%s/participants/a/mute" % rid, {"muted": True}, want=409)
        self.call("POST", "/v1/rooms/%s/capture" % rid, {"action": "start"}, want=409)
        st, j, _ = self.call("DELETE", "/v1/rooms/" + rid, want=200)
        self.assertEqual(j["state"], "crashed")
        self.assertEqual(j["exit"]["signal"], signal.SIGKILL)

    def test_dev_join(self):
        st, j, _ = self.call("POST", "/dev/join", {"room": "oa-dev", "identity": "dev1",
                                                   "name": "Dev"}, auth=False, want=201)
        self.assertTrue(j["token"])
        self.call("POST", "/dev/join", {"room": "no room!", "identity": "dev1"}, auth=False,
                  want=400)
        self.call("GET", "/dev/join", auth=False, want=405)
        self.call("DELETE", "/v1/rooms/oa-dev", want=202)


if __name__ == "__main__":
    main()

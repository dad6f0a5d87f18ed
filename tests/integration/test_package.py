"""integration.package: the Debian package built from the tree, installed
into a clean Debian 12 root, runs sfud as its unit says.

The root is the host's own (Debian 12, where the tree builds) seen through
an overlay in a private mount namespace: the lower layer is /, the upper a
tmpfs, so installing the package, the user its postinst adds and everything
sfud writes vanish with the namespace, and nothing on the host changes.
The root gets its own /run (empty: no systemd there, so the maintainer
scripts leave the host's alone), /proc and /dev. The script re-executes
itself under `unshare -m` to get there.

That root already holds the build's libraries, so installing proves little
about Depends; instead every shared library a packaged binary names
(DT_NEEDED) is found, and the package owning it is one Depends names.

The unit is read from the installed file and done by hand: StateDirectory
made for its User, EnvironmentFile read, ExecStart run as User and Group
through chroot. Only the listening address is moved (SFU_LISTEN_HOST and
SFU_LISTEN_PORT, which the unit's environment would override the file
with too): the host's network is shared.
"""
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sfutest import wait_for  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TREE = os.path.realpath(os.path.join(HERE, "..", ".."))
MARK = "SFU_PACKAGE_TEST_NAMESPACE"


def run(*cmd, check=True, **kw):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    if check and p.returncode != 0:
        raise AssertionError("%s: exit %d\n%s%s" % (" ".join(cmd), p.returncode, p.stdout,
                                                    p.stderr))
    return p


def room_processes():
    """Pids of the packaged sfu-room running (the zygote and rooms)."""
    out = []
    for p in os.listdir("/proc"):
        try:
            if p.isdigit() and os.readlink("/proc/%s/exe" % p).endswith("/usr/lib/sfu/sfu-room"):
                out.append(p)
        except OSError:
            pass
    return out


def unit_settings(text):
    """[Service] of a unit file as {key: [values]} (continuations joined)."""
    out, section = {}, None
    for line in text.replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line
            continue
        k, _, v = line.partition("=")
        out.setdefault((section, k.strip()), []).append(v.strip())
    return out


class PackageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        t0 = time.monotonic()
        cls.work = tempfile.mkdtemp(prefix="sfu-package-")
        out = run(os.path.join(TREE, "scripts", "package.sh"), ARGS.build, cls.work).stdout
        cls.deb = out.strip().splitlines()[-1]
        cls.build_s = time.monotonic() - t0
        cls.control = {k: run("dpkg-deb", "-f", cls.deb, k).stdout.strip()
                       for k in ("Package", "Version", "Depends")}
        # the root: / under a tmpfs upper layer, with its own /run, /proc, /dev
        cls.mnt = os.path.join(cls.work, "mnt")
        os.mkdir(cls.mnt)
        run("mount", "-t", "tmpfs", "-o", "size=512m", "tmpfs", cls.mnt)
        for d in ("upper", "work", "root"):
            os.mkdir(os.path.join(cls.mnt, d))
        cls.root = os.path.join(cls.mnt, "root")
        run("mount", "-t", "overlay", "overlay", "-o",
            "lowerdir=/,upperdir=%s/upper,workdir=%s/work" % (cls.mnt, cls.mnt), cls.root)
        run("mount", "-t", "proc", "proc", cls.R("/proc"))
        run("mount", "-t", "tmpfs", "tmpfs", cls.R("/run"))
        run("mount", "--rbind", "/dev", cls.R("/dev"))
        shutil.copy(cls.deb, cls.R("/tmp/sfu.deb"))
        t0 = time.monotonic()
        cls.install = cls.chroot("dpkg", "-i", "/tmp/sfu.deb")
        cls.install_s = time.monotonic() - t0

    @classmethod
    def tearDownClass(cls):
        print("package built in %.1f s, installed in %.1f s" % (cls.build_s, cls.install_s),
              file=sys.stderr)
        run("umount", "-R", "-l", cls.mnt, check=False)
        shutil.rmtree(cls.work, ignore_errors=True)

    @classmethod
    def R(cls, path):
        """A path of the installed root, seen from here."""
        return os.path.join(cls.root, path.lstrip("/"))

    @classmethod
    def chroot(cls, *cmd, user=None, check=True, env=None):
        spec = ["--userspec=%s" % user] if user else []
        return run("chroot", *spec, cls.root, *cmd, check=check, env=env)

    def unit(self):
        with open(self.R("/lib/systemd/system/sfud.service")) as f:
            return unit_settings(f.read())

    def service_env(self, u):
        """The unit's environment: its EnvironmentFile= files."""
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        for path in u.get(("[Service]", "EnvironmentFile"), []):
            path = path.lstrip("-")
            with open(self.R(path)) as f:
                for line in f:
                    line = line.strip()
                    if line and not line.startswith("#"):
                        k, _, v = line.partition("=")
                        env[k] = v
        return env

    def test_depends_cover_every_library(self):
        depends = {d.split()[0] for d in self.control["Depends"].split(",")}
        self.assertIn("adduser", depends)  # postinst's
        listed = run("dpkg-deb", "-c", self.deb).stdout
        needs = []  # (binary, library, path)
        for binary in ("/usr/bin/sfud", "/usr/lib/sfu/sfu-room", "/usr/bin/sfu-replay"):
            self.assertIn("." + binary, listed)
            needed = re.findall(r"NEEDED\s+(\S+)", run("objdump", "-p", self.R(binary)).stdout)
            self.assertIn("libuv.so.1", needed)
            self.assertFalse([n for n in needed if "srtp" in n], "libsrtp is linked statically")
            ldd = self.chroot("ldd", binary).stdout
            self.assertNotIn("not found", ldd)
            for lib in needed:
                path = re.search(r"^\s*%s => (\S+)" % re.escape(lib), ldd, re.M).group(1)
                needs.append((binary, lib, path))
        # /lib and /usr/lib are one on Debian 12: a package names either (one dpkg -S)
        alias = lambda p: "/usr" + p if p.startswith("/lib") else p[len("/usr"):]  # noqa: E731
        paths = sorted({p for _, _, path in needs for p in (path, alias(path))})
        owners = {}
        for line in self.chroot("dpkg", "-S", *paths, check=False).stdout.splitlines():
            pkgs, _, path = line.partition(": ")
            owners[path] = pkgs.split(":")[0]
        for binary, lib, path in needs:
            pkg = owners.get(path) or owners.get(alias(path))
            self.assertTrue(pkg, "no package has %s" % path)
            self.assertIn(pkg, depends, "%s needs %s from %s" % (binary, lib, pkg))

    def test_installed_as_described(self):
        self.assertIn("Setting up sfu", self.install.stdout)
        pw = self.chroot("getent", "passwd", "sfu").stdout.split(":")
        self.assertEqual(pw[5], "/var/lib/sfu")
        self.assertIn(pw[6].strip(), ("/usr/sbin/nologin", "/bin/false"))
        st = os.stat(self.R("/etc/sfu/sfud.env"))
        self.assertEqual(st.st_mode & 0o777, 0o640)
        env = self.service_env(self.unit())
        self.assertEqual(len(env["SFU_API_KEY"]), 36)
        self.assertEqual(len(env["SFU_TOKEN_SECRET"]), 64)
        with open(self.R("/var/lib/dpkg/info/sfu.conffiles")) as f:
            self.assertEqual(f.read().split(), ["/etc/sfu/sfud.conf"])
        # the configuration: generated from the table, packaged paths active
        with open(self.R("/etc/sfu/sfud.conf")) as f:
            conf = f.read()
        for line in ("data_dir = /var/lib/sfu", "web_root = /usr/share/sfu/web",
                     "room_binary = /usr/lib/sfu/sfu-room", "listen_host = 0.0.0.0",
                     "# max_rooms = 1000", "# rtc_addresses = 127.0.0.1"):
            self.assertIn("\n" + line + "\n", conf)
        self.assertTrue(os.path.exists(self.R("/usr/share/sfu/web/index.html")))
        # nothing is enabled
        self.assertFalse(os.path.exists(self.R(
            "/etc/systemd/system/multi-user.target.wants/sfud.service")))
        # the unit is one systemd accepts, and says what the service needs
        self.chroot("systemd-analyze", "verify", "/lib/systemd/system/sfud.service")
        u = self.unit()
        want = {"User": "sfu", "StateDirectory": "sfu", "ProtectSystem": "strict",
                "ProtectHome": "yes", "NoNewPrivileges": "yes", "PrivateTmp": "yes",
                "Restart": "on-failure", "KillMode": "process"}
        for k, v in want.items():
            self.assertEqual(u.get(("[Service]", k)), [v], k)
        self.assertGreaterEqual(int(u[("[Service]", "LimitNOFILE")][0]), 65536)

    def start_service(self):
        """The unit's ExecStart as its User, with its StateDirectory and
        EnvironmentFile. stderr goes to a file that the environment names
        as journald's stream, as systemd would with the journal."""
        u = self.unit()
        user, group = u[("[Service]", "User")][0], u[("[Service]", "Group")][0]
        state = self.R("/var/lib/" + u[("[Service]", "StateDirectory")][0])
        pw = self.chroot("getent", "passwd", user).stdout.split(":")
        os.makedirs(state, exist_ok=True)
        os.chown(state, int(pw[2]), int(pw[3]))
        os.chmod(state, int(u[("[Service]", "StateDirectoryMode")][0], 8))
        env = self.service_env(u)
        env.update(SFU_LISTEN_HOST="127.0.0.1", SFU_LISTEN_PORT="0")
        log = open(os.path.join(self.work, "sfud.log"), "w+")
        st = os.fstat(log.fileno())
        env["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
        cmd = shlex.split(u[("[Service]", "ExecStart")][0])
        proc = subprocess.Popen(["chroot", "--userspec=%s:%s" % (user, group), self.root, *cmd],
                                env=env, stdout=subprocess.DEVNULL, stderr=log)

        def up():
            log.seek(0)
            m = re.search(r"up: (http://\S+);", log.read())
            if proc.poll() is not None:
                log.seek(0)
                raise AssertionError("sfud exited %d:\n%s" % (proc.returncode, log.read()))
            return m and m.group(1)
        url = wait_for(up, timeout=15, what="sfud up")
        return proc, url, env, log

    def request(self, url, method="GET", body=None, key=None):
        req = urllib.request.Request(url, method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
        if key:
            req.add_header("Authorization", "Bearer " + key)
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def test_service_runs_as_its_user(self):
        proc, url, env, log = self.start_service()
        try:
            self.assertEqual(self.request(url + "/healthz")[0], 200)
            # the key from the env file works, a room runs from the packaged sfu-room
            key = env["SFU_API_KEY"]
            self.assertEqual(self.request(url + "/v1/node")[0], 401)
            st, body = self.request(url + "/v1/rooms", "POST", {"name": "pkg"}, key)
            self.assertEqual(st, 201, body)
            room = json.loads(body)
            wait_for(lambda: json.loads(self.request(url + "/v1/rooms/" + room["room_id"],
                                                     key=key)[1]).get("state") == "running",
                     timeout=10, what="room running")
            pw = self.chroot("getent", "passwd", "sfu").stdout.split(":")
            rooms = room_processes()
            self.assertTrue(rooms)
            for p in rooms:
                self.assertEqual(os.stat("/proc/" + p).st_uid, int(pw[2]))
            self.assertEqual(os.stat("/proc/%d" % proc.pid).st_uid, int(pw[2]))
            # state where the unit keeps it
            self.assertTrue(os.path.isdir(self.R("/var/lib/sfu/journal")))
            # the demo page from the packaged web_root
            self.assertEqual(self.request(url + "/web/sfu-client.js")[0], 200)
            # --check-config where it runs: passes, with the unit's user and environment
            cmd = shlex.split(self.unit()[("[Service]", "ExecStart")][0])
            chk = self.chroot(*cmd, "--check-config", user="sfu:sfu", env=env, check=False)
            self.assertEqual(chk.returncode, 0, chk.stderr)
            self.assertIn("configuration OK: /etc/sfu/sfud.conf", chk.stdout)
            self.assertIn("keys           api_key set, token_secret set", chk.stdout)
            self.assertIn("room_binary    /usr/lib/sfu/sfu-room", chk.stdout)
        finally:
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(15)
            log.seek(0)
            lines = log.read().splitlines()
            log.close()
        self.assertEqual(rc, 0)
        # sfud stopped its rooms (and their zygote) itself: KillMode=process leaves none
        wait_for(lambda: room_processes() == [], timeout=5, what="rooms and zygote gone")
        # journald gets each line's priority: info as <6>, from sfud and its rooms
        self.assertTrue(any(re.match(r"<6>ts=\S+ level=info mod=sfud ", x) for x in lines), lines)
        self.assertTrue(any(re.match(r"<6>ts=\S+ level=info .*room=", x) for x in lines), lines)
        self.assertFalse([x for x in lines if x.startswith("ts=")])

    def test_check_config_refuses_a_broken_file(self):
        env = self.service_env(self.unit())
        tls = self.R("/etc/sfu/tls")
        os.makedirs(tls, exist_ok=True)
        for name in ("a", "b"):
            run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-subj", "/CN=sfu.test", "-days", "2", "-keyout",
                "%s/%s.key" % (tls, name), "-out", "%s/%s.pem" % (tls, name))
        os.chmod(tls + "/a.key", 0o644)

        def check(extra):
            with open(self.R("/etc/sfu/sfud.conf")) as f:
                conf = f.read()
            with open(self.R("/etc/sfu/test.conf"), "w") as f:
                f.write(conf + extra)
            return self.chroot("/usr/bin/sfud", "--config", "/etc/sfu/test.conf",
                               "--check-config", user="sfu:sfu", env=env, check=False)

        good = check("tls_cert_file = /etc/sfu/tls/a.pem\ntls_key_file = /etc/sfu/tls/a.key\n")
        self.assertEqual(good.returncode, 0, good.stderr)
        self.assertIn("tls            /etc/sfu/tls/a.pem", good.stdout)
        bad = check("tls_cert_file = /etc/sfu/tls/a.pem\n"
                    "tls_key_file = /etc/sfu/tls/b.key\n"  # another key, and unreadable
                    "room_binary = /etc/sfu/sfud.conf\n"
                    "data_dir = /usr/share/sfu/data\n"
                    "webhook_url = https://\nwebhook_secret = 0123456789abcdef\n")
        self.assertEqual(bad.returncode, 1, bad.stdout)
        self.assertEqual(bad.stdout, "")
        for want in ("error: tls_key_file '/etc/sfu/tls/b.key'",
                     "error: room_binary '/etc/sfu/sfud.conf' is not executable",
                     "error: data_dir '/usr/share/sfu/data' does not exist and cannot be created",
                     "error: webhook_url 'https://' is not",
                     "has 4 errors"):
            self.assertIn(want, bad.stderr)
        # a line sfud cannot read
        unknown = check("no_such_setting = 1\n")
        self.assertEqual(unknown.returncode, 1)
        self.assertIn("unknown setting 'no_such_setting'", unknown.stderr)


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--sfud", required=True)
    ap.add_argument("--room", required=True)
    ARGS, rest = ap.parse_known_args()
    ARGS.build = os.path.dirname(os.path.realpath(ARGS.sfud))
    if os.environ.get(MARK) != "1":
        # into a private mount namespace: every mount of the test is its own
        os.environ[MARK] = "1"
        os.execvp("unshare", ["unshare", "--mount", "--propagation", "private",
                              sys.executable, *sys.argv])
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)

"""A throwaway Wazuh home, the analysisd queue socket and integratord's way of running the script.

The script runs as wazuh-integratord runs it (docs/wazuh-interfaces.md section 1): through the
`custom-virustotal_ip` wrapper in <home>/integrations, cwd <home>, stdin /dev/null, a new
session, the 4.14 argv. <home>/framework/python is a virtual environment over the test
interpreter, so the wrapper starts a real `framework/python/bin/python3` with `requests`.
The queue socket is a real AF_UNIX datagram socket (docs/wazuh-interfaces.md section 3).
Used by the tests (conftest.py), the benchmarks and the demo.
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import importlib.util
import json
import os
import pwd
import secrets
import select
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from no_egress import DEAD_PROXY, proxy_env
from vt_server import VTServer

REPO = Path(__file__).resolve().parent.parent
FILES = REPO / "files"
SCRIPT = FILES / "custom-virustotal_ip.py"
PACKAGE = FILES / "virustotal_ip"
WRAPPER = FILES / "custom-virustotal_ip"
RULES = FILES / "virustotal_ip_rules.xml"
FIXTURES = json.loads((Path(__file__).parent / "fixtures" / "vt_ip_objects.json").read_text())
API_KEY = "test-key-" + "0123456789abcdef" * 4
NO_DEBUG = "> /dev/null 2>&1"


def script_package(*names: str) -> list:
    """Modules of the deployed package (files/virustotal_ip), for their pure functions."""
    if str(FILES) not in sys.path:
        sys.path.append(str(FILES))
    return [importlib.import_module(f"virustotal_ip.{name}") for name in names]


def sample_alert(ip: str = "64.62.197.132", **extra: object) -> dict:
    """The original design's sshd alert (docs/verdict.md, "Worked examples") with another source IP."""
    alert = {
        "timestamp": "2025-07-21T12:41:18.157+0000",
        "rule": {"level": 5, "description": f"sshd: Authentication succeeded from a public IP address {ip}.",
                 "id": "100003", "firedtimes": 2, "mail": False,
                 "groups": ["local", "syslog", "sshd", "authentication_failed", "authentication_success"],
                 "pci_dss": ["10.2.4", "10.2.5"]},
        "agent": {"id": "000", "name": "rhel9.localdomain"},
        "manager": {"name": "rhel9.localdomain"},
        "id": "1753101678.8211",
        "full_log": f"Dec 10 01:02:02 host sshd[1234]: Accepted none for root from {ip} port 1066 ssh2",
        "predecoder": {"program_name": "sshd", "timestamp": "Dec 10 01:02:02", "hostname": "host"},
        "decoder": {"parent": "sshd", "name": "sshd"},
        "data": {"srcip": ip, "srcport": "1066", "dstuser": "root"},
        "location": "/var/log/test.log",
    }
    alert.update(extra)
    return alert


def split_message(raw: bytes) -> tuple:
    """`1:<location>:<json>` as analysisd splits it: the location ends at the first `:` that
    is not escaped (`|:` is a colon, `||` a pipe; docs/wazuh-interfaces.md section 3)."""
    text = raw.decode()
    assert text.startswith("1:"), text[:80]
    location, i = [], 2
    while text[i] != ":":
        if text[i] == "|" and text[i + 1] in "|:":
            i += 1
        location.append(text[i])
        i += 1
    return "".join(location), json.loads(text[i + 1:])


class Result:
    def __init__(self, proc: subprocess.CompletedProcess, elapsed: float, messages: list,
                 log: str) -> None:
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.elapsed = elapsed
        self.messages = messages      # raw datagrams received by the queue socket
        self.log = log                # what this run appended to integrations.log

    def events(self) -> list:
        """(location, decoded JSON) for every datagram."""
        return [split_message(raw) for raw in self.messages]

    def enrichments(self) -> list:
        """The `virustotal_ip` object of every datagram, in the order they came."""
        return [message["virustotal_ip"] for _location, message in self.events()]

    def event(self) -> dict:
        events = self.events()
        assert len(events) == 1, f"expected one event, got {len(events)}; log: {self.log}"
        return events[0][1]


class WazuhHome:
    """A Wazuh home as the script sees it: integrations/, etc/, logs/, queue/, var/."""

    def __init__(self, root: Path, vt: VTServer, python: str = sys.executable, files: Path = FILES) -> None:
        """`files`: where the wrapper, the entry point and its package come from (the bench
        passes an earlier version's)."""
        self.root = root
        self.vt = vt
        for sub in ("integrations", "etc/rules", "logs", "queue/sockets", "var", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        for name in (SCRIPT.name, WRAPPER.name):
            shutil.copy(files / name, root / "integrations" / name)
            os.chmod(root / "integrations" / name, 0o750)
        if (files / PACKAGE.name).is_dir():
            shutil.copytree(files / PACKAGE.name, root / "integrations" / PACKAGE.name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        self._python(python)
        self.config({"api_url": vt.url})
        self.sock: socket.socket | None = None
        self.received: list = []      # datagrams read while waiting for the lookup workers
        self.open_queue()

    def _python(self, python: str) -> None:
        """framework/python as a virtual environment over `python` (a venv with requests: the
        test interpreter, or one like Wazuh's embedded 3.9 or 3.10)."""
        fw = self.root / "framework" / "python"
        (fw / "bin").mkdir(parents=True)
        base, version, purelib = interpreter(python)
        (fw / "bin" / "python3").symlink_to(base)
        (fw / "pyvenv.cfg").write_text(f"home = {Path(base).parent}\ninclude-system-site-packages = false\n"
                                       f"version = {version}\n")
        lib = fw / "lib" / f"python{version.rsplit('.', 1)[0]}"
        lib.mkdir(parents=True)
        (lib / "site-packages").symlink_to(purelib)

    @property
    def queue_path(self) -> Path:
        return self.root / "queue" / "sockets" / "queue"

    @property
    def log_path(self) -> Path:
        return self.root / "logs" / "integrations.log"

    @property
    def db_path(self) -> Path:
        return self.root / "var" / "virustotal_ip" / "cache.db"

    def open_queue(self) -> None:
        """Bind the queue socket as analysisd does (AF_UNIX, SOCK_DGRAM)."""
        if self.queue_path.exists():
            self.queue_path.unlink()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(str(self.queue_path))

    def close_queue(self, unlink: bool) -> None:
        """analysisd down: the socket file stays (connection refused) or is gone."""
        self.sock.close()
        self.sock = None
        if unlink:
            self.queue_path.unlink()

    def receive(self, count: int, timeout: float = 30) -> list:
        """The next `count` datagrams, waiting for each (TimeoutError after `timeout`): for a
        sender no lock tells the end of (a lookup worker that carries its alert)."""
        out = []
        self.sock.settimeout(timeout)
        try:
            while len(out) < count:
                out.append(self.sock.recv(1 << 17))
        except OSError as exc:
            raise TimeoutError(f"{len(out)} of {count} datagrams in {timeout} s") from exc
        finally:
            self.sock.settimeout(None)
        return out

    def drain_queue(self) -> list:
        out, self.received = self.received, []
        while self.sock is not None:
            try:
                out.append(self.sock.recv(1 << 17, socket.MSG_DONTWAIT))
            except BlockingIOError:
                break
        return out

    def config(self, values: dict) -> None:
        (self.root / "etc" / "custom-virustotal_ip.json").write_text(json.dumps(values))

    def sql(self, query: str, args: tuple = ()) -> list:
        with contextlib.closing(sqlite3.connect(self.db_path)) as db, db:
            return db.execute(query, args).fetchall()

    def waiting(self) -> list:
        """(ip, deferred, slot) of every alert waiting for its lookup, oldest first: the pending
        table, then the files runs queued for the lookup worker (state/queue/, no slot yet)."""
        queue = self.db_path.parent / "queue"
        queued = []
        for path in sorted(queue.glob("[0-9]*.json")) if queue.is_dir() else []:   # not those being written
            record = json.loads(path.read_text())
            queued.append((record["source"]["ip"], int(record["deferred"]), None))
        return self.sql("SELECT ip, deferred, slot FROM pending ORDER BY id") + queued

    def _log_offset(self) -> int:
        return self.log_path.stat().st_size if self.log_path.is_file() else 0

    def wait_workers(self, timeout: float = 90) -> None:
        """Wait until no lookup worker runs: each holds its slot's lock (worker-N.lock) from
        before the run that starts it exits until it is done."""
        # analysisd reads its socket all the time: so does this wait, or a worker with more
        # than net.unix.max_dgram_qlen (10) events to send would block in send().
        done = threading.Event()
        reader = threading.Thread(target=self._read_until, args=(done,), daemon=True)
        reader.start()
        try:
            for path in sorted((self.root / "var" / "virustotal_ip").glob("worker-*.lock")):
                fd = os.open(path, os.O_RDWR)
                try:
                    with bounded(timeout, f"a lookup worker still holds {path.name} after {timeout} s"):
                        fcntl.flock(fd, fcntl.LOCK_EX)
                finally:
                    os.close(fd)
        finally:
            done.set()
            reader.join()

    def wait_runs(self, procs: list, timeout: float = 60) -> list:
        """The exit statuses of runs started without waiting, reading analysisd's socket
        meanwhile as analysisd does (a run sending its verdict blocks once 10 datagrams wait)."""
        done = threading.Event()
        reader = threading.Thread(target=self._read_until, args=(done,), daemon=True)
        reader.start()
        try:
            return [proc.wait(timeout=timeout) for proc in procs]
        finally:
            done.set()
            reader.join()

    def _read_until(self, done: threading.Event) -> None:
        sock = self.sock
        while sock is not None and not done.is_set():
            ready, _, _ = select.select([sock], [], [], 0.05)
            if ready:
                self.received.append(sock.recv(1 << 17))

    def _finish(self, proc, started: float, offset: int, wait: bool = True) -> Result:
        elapsed = time.monotonic() - started
        if wait:
            self.wait_workers()
        log = ""
        if self.log_path.is_file():
            with open(self.log_path, "rb") as fh:
                fh.seek(offset)
                log = fh.read().decode("utf-8", "replace")
        return Result(proc, elapsed, self.drain_queue(), log)

    def write_alert(self, alert: object) -> Path:
        """An alert file as integratord names it: /tmp/<name>-<epoch>-<rand>.alert."""
        path = self.root / "tmp" / f"custom-virustotal_ip-{int(time.time())}-{secrets.randbelow(10**9)}.alert"
        if isinstance(alert, bytes):
            path.write_bytes(alert)
        elif alert is not None:
            path.write_text(json.dumps(alert))
        return path

    def integratord_argv(self, alert_path: Path, api_key: str = API_KEY, debug: bool = False,
                         options: dict | None = None, timeout: int = 10, retries: int = 3) -> list:
        """wazuh-integratord 4.14's argv (docs/wazuh-interfaces.md section 1)."""
        opt = ""
        if options is not None:
            opt_path = alert_path.with_suffix(".options")
            opt_path.write_text(json.dumps(options))
            opt = str(opt_path)
        argv = [str(self.root / "integrations" / "custom-virustotal_ip"), str(alert_path), api_key, "",
                "debug" if debug else "", opt, str(timeout), str(retries)]
        return argv if debug else argv + [NO_DEBUG]

    def run_argv(self, argv: list, env: dict | None = None, wait: bool = True) -> Result:
        """Run `argv` as integratord would; `wait`: then wait for the lookup workers it started."""
        offset, started = self._log_offset(), time.monotonic()
        proc = subprocess.run(argv, cwd=self.root, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, start_new_session=True, timeout=120,
                              env=env if env is not None else script_env())
        return self._finish(proc, started, offset, wait)

    def run(self, alert: object = None, wait: bool = True, **kwargs: object) -> Result:
        """One integratord run for `alert` (default: the original design's sshd alert); `wait`: for the
        lookup worker it started too, so that the result holds what the worker sent."""
        alert_path = self.write_alert(sample_alert() if alert is None else alert)
        return self.run_argv(self.integratord_argv(alert_path, **kwargs), wait=wait)

    def worker_pids(self) -> list:
        """The pids of the lookup workers running now (from their slots' lock files)."""
        pids = []
        for path in sorted((self.root / "var" / "virustotal_ip").glob("worker-*.lock")):
            fd = os.open(path, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pids.append(int(path.read_text().split()[0]))
            finally:
                os.close(fd)
        return pids

    def cli(self, *args: str, env: dict | None = None, wait: bool = True, as_root: bool = False) -> Result:
        """An analyst command: python3 custom-virustotal_ip.py --check/--status/--drain ...

        Run as root, a command becomes the wazuh user before it touches a file (analyst.py),
        and the interpreter (under /root here) and pytest's temporary homes are closed to that
        user. So a test run as root runs it as cron runs --drain, as a user who is not root:
        the user of a user namespace of its own, to whom root's files are still its own.
        `as_root`: as root itself (the tests of what root does, test_privileges.py)."""
        python = str(self.root / "framework" / "python" / "bin" / "python3")
        argv = [python, str(self.root / "integrations" / "custom-virustotal_ip.py"), *args]
        if os.geteuid() == 0 and not as_root:
            argv = ["unshare", "--user", "--map-user=65534", "--map-group=65534", "--", *argv]
        return self.run_argv(argv, env=env, wait=wait)


WAZUH_USER = "wazuh"
TEST_ACCOUNT = "wazuh-virustotal-ip tests"      # the comment that marks a wazuh user made here
ACCOUNT_USERS = Path("/run/lock/vtip-test-wazuh-user")   # pids of the sessions using one


@contextlib.contextmanager
def wazuh_user():
    """The wazuh user, for the tests that run the analyst commands as root (they become it).
    A machine with Wazuh has one: it is used as it is. Elsewhere (CI) one is made, a system
    account without home or login, marked by its comment, and removed when the last test
    session on this machine that uses it ends: the sessions using it are listed, under a lock,
    so that one session's end does not take it from another (pytest-xdist's workers, or a
    colleague's run). One left by a killed session is removed by the next one's end."""
    def take(users: set) -> pwd.struct_passwd:
        try:
            account = pwd.getpwnam(WAZUH_USER)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                            "--shell", "/usr/sbin/nologin", "--comment", TEST_ACCOUNT, "--user-group",
                            WAZUH_USER], check=True, capture_output=True)
            account = pwd.getpwnam(WAZUH_USER)
        if account.pw_gecos == TEST_ACCOUNT:
            users.add(os.getpid())
        return account

    def give_back(users: set) -> None:
        users.discard(os.getpid())
        try:
            made_here = pwd.getpwnam(WAZUH_USER).pw_gecos == TEST_ACCOUNT
        except KeyError:
            made_here = False
        if made_here and not users:
            subprocess.run(["userdel", WAZUH_USER], check=True, capture_output=True)

    account = _with_account_users(take)
    try:
        yield account
    finally:
        _with_account_users(give_back)


def _with_account_users(change):
    """change(users), users being the live pids listed in ACCOUNT_USERS, under its lock; the
    set as change leaves it is written back."""
    ACCOUNT_USERS.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(ACCOUNT_USERS, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        users = {int(pid) for pid in os.pread(fd, 1 << 16, 0).split() if pid.isdigit() and _alive(int(pid))}
        result = change(users)
        os.ftruncate(fd, 0)
        os.pwrite(fd, " ".join(map(str, sorted(users))).encode(), 0)
        return result
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@contextlib.contextmanager
def bounded(seconds: float, message: str):
    """A blocking call in the main thread, interrupted with TimeoutError after `seconds`."""
    def fire(signum, frame):
        raise TimeoutError(message)
    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def script_pythons() -> list:
    """(id, python) for every interpreter the script is tested under: the test venv's, and
    Wazuh's embedded versions where tests/script-pythons/make-venvs.sh could make them."""
    found = [("py" + ".".join(map(str, sys.version_info[:2])), sys.executable)]
    for venv in sorted(REPO.glob(".venv-script-*")):
        if (venv / "bin" / "python").exists():
            found.append(("py" + venv.name.rsplit("-", 1)[1], str(venv / "bin" / "python")))
    return found


@functools.cache
def interpreter(python: str) -> tuple:
    """(base executable, X.Y.Z, site-packages) of a Python, asked in a subprocess."""
    code = ("import sys, sysconfig; print(getattr(sys, '_base_executable', sys.executable)); "
            "print('%d.%d.%d' % sys.version_info[:3]); print(sysconfig.get_paths()['purelib'])")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    return str(Path(out[0]).resolve()), out[1], out[2]


def script_env(**extra: str) -> dict:
    """The environment of every script run: this machine's, less VT_/WAZUH_/PYTHON* variables,
    with every request for a host other than this one sent to the egress catcher (no_egress.py;
    conftest starts it and names it in VTIP_EGRESS_PROXY), never to the network."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VT_", "WAZUH_", "PYTHON")) and k.lower() not in PROXY_VARIABLES}
    env.update(proxy_env(os.environ.get("VTIP_EGRESS_PROXY", DEAD_PROXY)))
    env.update(extra)
    return env


PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}

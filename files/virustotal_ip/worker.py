# SPDX-License-Identifier: MIT
"""The lookup worker: cache misses looked up outside integratord's call.

wazuh-integratord runs every integration one at a time and waits for each with no timeout,
so a run of the script must never wait on VirusTotal, nor on the disk. On a miss the run
queues the alert (a file in the state's queue/, state.enqueue) and starts a worker if a
worker slot is free (start()); the worker moves the queue into the pending store (SQLite),
looks the queued addresses up within the budget and delivers each verdict, then
exits when nothing is left that it may look up now. `--drain` (every minute) runs the same
loop in the foreground: the safety net for a worker killed mid-way, whose alerts are still
pending.

Slots: at most `lookup_parallel` workers at once, each holding worker-<slot>.lock for its
whole life. The run that starts a worker takes the slot's lock itself and hands the locked
descriptor over (fd 3), so there is no moment at which a started worker does not hold it.
An alert is claimed by a slot in the state (one transaction), so no two workers look one
address up; claims of a slot whose lock nobody holds belong to a dead worker and are given
back. The worker is detached from integratord: a new session, stdin a pipe that carries its
job (the API key among it: never argv or the environment), stdout and stderr /dev/null,
no other inherited descriptor; integratord's wpclose() has nothing of it to wait for.
"""
from __future__ import annotations

import posix      # not os: see codec.py
import sys
import time

from . import state as st
from .codec import json_dumps, json_loads
from .wazuh import EXIT_INTERNAL, EXIT_OK, EXIT_REFUSED, EXIT_UNDELIVERED, DeliveryError, RefusedError, error_event

LOCK_FD = 3                   # the slot's lock, handed over by the run that started the worker
MAX_JOB = 1 << 20             # bytes of job read from stdin at most
WORKER_TAG = "virustotal_ip-lookup-worker"   # in the worker's argv, for ps and pgrep
PACKAGE_DIR = __file__.rsplit("/", 2)[0]   # where virustotal_ip/ is: a worker's argv names it
# The worker's program: the package directory and the slot come as arguments.
BOOT = ("import sys\n"
        "sys.path.append(sys.argv[1])\n"
        "from virustotal_ip.worker import main_and_exit\n"
        "main_and_exit(int(sys.argv[2]))\n")


def slots(cfg) -> int:
    """Workers allowed at once: lookup_parallel, never more than the per-minute budget."""
    limit = cfg.rate_limit_per_minute
    return min(cfg.lookup_parallel, limit) if limit else cfg.lookup_parallel


def lock_name(slot: int) -> str:
    return f"worker-{slot}"


# --------------------------------------------------------------------------- the run's side

def start(state: st.State, cfg, job: dict) -> int | None:
    """Start a worker on the first free slot; its slot number, or None when every slot is
    busy (a busy worker looks again for new alerts before it exits, see work()).
    `job`: api_key, options (the <options> object), timeout, retries, debug."""
    for slot in range(slots(cfg)):
        fd = state.lock(lock_name(slot), blocking=False)
        if fd is None:
            continue
        try:
            spawn(fd, slot, job)
        finally:
            posix.close(fd)     # the worker has its own copy of the locked descriptor
        return slot
    return None


def spawn(lock_fd: int | None, slot: int, job: dict) -> None:
    """Start the worker detached, on `slot` with its locked descriptor, or (slot -1, no lock)
    for the alerts its job carries only; OSError if it cannot be started."""
    import fcntl
    actions = [(posix.POSIX_SPAWN_OPEN, 1, "/dev/null", posix.O_RDWR, 0), (posix.POSIX_SPAWN_DUP2, 1, 2)]
    if lock_fd is not None:
        # Above the descriptors the file actions write to: dup2 of a descriptor onto itself
        # would leave its close-on-exec flag set on older C libraries.
        lock_fd = fcntl.fcntl(lock_fd, fcntl.F_DUPFD_CLOEXEC, 10)
        actions.append((posix.POSIX_SPAWN_DUP2, lock_fd, LOCK_FD))
    read_end, write_end = posix.pipe()
    try:
        pid = posix.posix_spawn(
            sys.executable,
            [sys.executable, "-I", "-S", "-c", BOOT, PACKAGE_DIR, str(slot), WORKER_TAG],
            posix.environ,
            file_actions=[(posix.POSIX_SPAWN_DUP2, read_end, 0), *actions],
            setsid=True,
        )
        posix.close(read_end)
        read_end = -1
        if lock_fd is not None:
            note_pid(lock_fd, pid)
        # A job fits a pipe's buffer (64 KiB) unless <options> is huge; then this waits
        # for the worker, which reads it first thing.
        data = json_dumps(job).encode()
        while data:
            data = data[posix.write(write_end, data):]
    finally:
        for fd in (read_end, write_end, lock_fd):
            if fd is not None and fd >= 0:
                posix.close(fd)


# --------------------------------------------------------------------------- the worker's side

def read_job() -> dict:
    raw = b""
    while len(raw) < MAX_JOB:
        chunk = posix.read(0, 65536)
        if not chunk:
            break
        raw += chunk
    job = json_loads(raw.decode("utf-8", "replace")) if raw else {}
    return job if isinstance(job, dict) else {}


def detach_descriptors() -> None:
    """Nothing inherited stays open but stdio (/dev/null once the job is read) and the lock."""
    posix.closerange(LOCK_FD + 1, 1 << 16)
    null = posix.open("/dev/null", posix.O_RDWR)
    posix.dup2(null, 0)
    posix.close(null)


def note_pid(lock_fd: int, pid: int) -> None:
    """The worker's pid and start in its slot's lock file, for --status (written by whoever
    holds the lock: the run that started the worker, or --drain)."""
    text = f"{pid} {int(time.time())}\n".encode()
    posix.ftruncate(lock_fd, 0)
    posix.pwrite(lock_fd, text, 0)


def main(slot: int) -> int:
    from . import settings
    from .cli import Quiet, wazuh_home
    from .lookup import Outbox
    from .wazuh import integrations_log
    posix.umask(0o007)
    job = read_job()
    detach_descriptors()
    home = wazuh_home()
    try:
        posix.stat(f"{home}/var/{st.STATE_DIR}")
    except FileNotFoundError:
        return EXIT_OK          # uninstalled since the run queued: not made again by open_state
    log = integrations_log(home, debug=bool(job.get("debug")))
    cfg = settings.load(home, None, Quiet(), options=job.get("options") or None)
    try:
        state = st.open_state(home, log)
    except RefusedError as exc:        # made a link since the run that started this worker
        log.error(f"lookup worker: {exc}")
        return EXIT_REFUSED
    if state is None:
        return EXIT_INTERNAL
    lookup_for = lookups(cfg=cfg, log=log, state=state, api_key=job.get("api_key") or cfg.api_key,
                         timeout=job.get("timeout", 10), retries=job.get("retries", 3))
    out = Outbox(home=home, cfg=cfg, log=log, state=state, debug=False)
    if slot < 0:
        return look_up_carried(job.get("alerts") or [], lookup_for(None), out)
    return work(slot, LOCK_FD, state, lookup_for, out, log, until=None)


def lookups(*, cfg, log, state: st.State, api_key: str, timeout: float, retries: int):
    """lookup_for(seconds_left=None): the Lookup for one address of the queue, with its own
    time bound, timeout x (retries + 1), cut to the seconds --drain has left. Unserialised:
    claims keep the workers' addresses apart."""
    from .lookup import Lookup
    bound = timeout * (retries + 1)

    def lookup_for(seconds_left: float | None = None) -> Lookup:
        return Lookup(cfg=cfg, log=log, state=state, api_key=api_key, timeout=timeout, retries=retries,
                      started=time.monotonic(), time_budget=bound if seconds_left is None else min(seconds_left, bound),
                      serialised=False)
    return lookup_for


def main_and_exit(slot: int) -> None:
    """Like cli.main_and_exit: one log line for any error, never a traceback."""
    from .cli import report_crash
    try:
        status = main(slot)
    except BaseException as exc:     # SystemExit and the deadline too: a worker has no caller
        report_crash(exc, "lookup worker: internal error")
        status = EXIT_INTERNAL
    posix._exit(status)


# --------------------------------------------------------------------------- the loop

def reap_dead_slots(state: st.State, own: int) -> None:
    """Give back the claims of slots no worker holds (a worker killed mid-way)."""
    for slot in state.claiming_slots():
        if slot == own:
            continue
        fd = state.lock(lock_name(slot), blocking=False)
        if fd is not None:
            try:
                state.release(slot)
            finally:
                posix.close(fd)


def work(slot: int, lock_fd: int, state: st.State, lookup_for, out, log, until: float | None,
         name: str = "") -> int:
    """Look up the queued addresses, one at a time on this slot, until none is left that may
    be looked up now (or `until`, monotonic, for --drain). Holds `lock_fd` (the slot's lock)
    and closes it. Returns an exit status."""
    status, sent = EXIT_OK, 0
    while True:
        try:
            state.release(slot)            # a dead predecessor on this slot
            reap_dead_slots(state, slot)
            state.drop_expired()
            while True:
                left = None if until is None else until - time.monotonic()
                if left is not None and left < 1:
                    last = state.last_pending_id()
                    break
                state.take_queue()
                ip, last = state.claim(slot)
                if ip is None:
                    break
                done = look_up_claimed(ip, slot, lookup_for(left), out, log)
                if done is None:
                    break                  # budget, outage, VirusTotal trouble, analysisd down
                sent += done
        except DeliveryError as exc:
            log.error(f"{name or 'lookup worker'}: {exc}")
            from contextlib import suppress
            with suppress(st.Error):               # the store may be what failed
                state.release(slot, deferred=True)
            status = EXIT_UNDELIVERED
            last = None
        posix.close(lock_fd)
        # A run that queued an alert while this slot was still held started no worker:
        # look again now that the slot is free, and take it back if there is something new
        # (--drain, within its time).
        if (last is None or (state.last_pending_id() <= last and not state.queued())
                or (until is not None and until - time.monotonic() < 1)):
            break
        lock_fd = state.lock(lock_name(slot), blocking=False)
        if lock_fd is None:
            break                          # a new worker has the slot and will see it
        note_pid(lock_fd, posix.getpid())
    pending = state.pending_summary()[0]
    log.info(f"{name or f'lookup worker {slot}'}: sent {sent}, {pending} still pending")
    return status


def look_up_claimed(ip: str, slot: int, run, out, log) -> int | None:
    """Look `ip` up and deliver every alert this slot claimed for it; how many were sent, or
    None when the worker should stop (the alerts are given back, marked deferred)."""
    from .lookup import Deferred, Found
    state = run.state
    outcome = run.lookup(ip, count=False)
    if isinstance(outcome, Found):
        return out.flush_pending(ip, outcome, slot=slot)
    if isinstance(outcome, Deferred):
        state.release(slot, ip, deferred=True, not_before=outcome.until)
        log.info(f"deferred lookup of {ip}: {outcome.why}")
        if outcome.until is not None:
            return 0                       # only its IPv6 /64 waits: the other addresses go on
        state.defer_waiting()
        return None
    exc = outcome.error
    rows = state.pending_for(ip, slot)
    log.error(f"{ip}: VirusTotal error {exc.code}: {exc.description}")
    if exc.transient:
        # Reported once (the breaker says when); the alerts wait for --drain.
        state.release(slot, ip, deferred=True)
        state.defer_waiting()
        if outcome.report and rows:
            out.deliver(error_event(exc.code, exc.description, rows[0][1]), rows[0][1])
        return None
    # A lasting error (a wrong key, a malformed answer): each alert gets its error event, as
    # an inline lookup gives it, and is not kept (the next alert reports it again).
    for row_id, source, _deferred in rows:
        state.done(row_id)
        if outcome.report:
            out.deliver(error_event(exc.code, exc.description, source), source)
    return 0


def look_up_carried(alerts: list, run, out) -> int:
    """The alerts a run could not queue (worker.spawn's slot -1): looked up and sent as the
    run would have (what could not be sent, the store cannot keep either: it is logged)."""
    from .lookup import send_outcome
    from .wazuh import Target
    status = EXIT_OK
    for source in alerts:
        outcome = run.lookup(source["ip"], count=False)
        status = max(status, send_outcome(run, out, Target(source["ip"], source), outcome))
    return status


def stop_all(seconds: float = 10) -> tuple:
    """Stop every lookup worker started from this installation (the uninstall): SIGTERM to
    each process whose argv is BOOT's with this package's directory, then wait until they are
    gone. (stopped, still running after `seconds`)."""
    import signal
    tail = [PACKAGE_DIR.encode(), WORKER_TAG.encode()]     # spawn's argv: ..., PACKAGE_DIR, slot, WORKER_TAG
    pids = []
    for entry in posix.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")[:-1]     # NUL-terminated arguments
        except OSError:
            continue                                 # gone, or not ours to read
        if len(argv) >= 3 and [argv[-3], argv[-1]] == tail and argv[-2].lstrip(b"-").isdigit():
            try:
                posix.kill(int(entry), signal.SIGTERM)
                pids.append(int(entry))
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + seconds
    running = [pid for pid in pids if alive(pid)]
    while running and time.monotonic() < deadline:
        time.sleep(0.05)
        running = [pid for pid in running if alive(pid)]
    return len(pids) - len(running), len(running)


def alive(pid: int) -> bool:
    """Still running: not gone, and not a zombie its parent has yet to reap."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def status_lines(state: st.State, cfg) -> list:
    """One line per worker slot that is busy, for --status."""
    from .codec import iso_utc
    lines = []
    for slot in range(slots(cfg)):
        fd = state.lock(lock_name(slot), blocking=False)
        if fd is not None:
            posix.close(fd)
            continue
        try:
            with open(f"{state.dir}/{lock_name(slot)}.lock", "rb") as fh:
                pid, since = fh.read(64).split()[:2]
            lines.append(f"slot {slot}: pid {int(pid)}, since {iso_utc(int(since))}")
        except (OSError, ValueError):
            lines.append(f"slot {slot}: busy")
    return lines

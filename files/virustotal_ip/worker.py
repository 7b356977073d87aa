# SPDX-License-Identifier: MIT
"""The lookup worker: every cache miss is looked up here, on a slot, outside integratord's call
or (lookup_mode inline, debug, --drain) in the foreground, by the same code.

wazuh-integratord runs every integration one at a time and waits for each with no timeout,
so a run of the script must never wait on VirusTotal, nor on the disk. On a miss the run
queues the alert (spool.enqueue: a file) and starts a worker if a slot is free (start()). The
worker moves the queue into the pending store (SQLite), claims one address at a time, looks
it up within the budget and settles its alerts (settle(): the one place an outcome becomes
verdicts, error events or a wait), then exits when nothing is left that it may look up now.
`--drain` (every minute) runs the same loop in the foreground: the safety net for a worker
killed mid-way, whose alerts are still pending.

Slots: at most `lookup_parallel` workers at once, each holding worker-<slot>.lock for its
whole life; no lookup process runs without one. The run that starts a worker takes the slot's
lock itself and hands the locked descriptor over (fd 3), so there is no moment at which a
started worker does not hold it. An address is claimed by a slot in the state (one
transaction), so no two workers look one address up; claims of a slot whose lock nobody holds
belong to a dead worker and are given back. An alert that cannot be handled is set aside, so
it costs only itself; an address VirusTotal fails for backs off, so it costs only itself.
The worker is detached from integratord: a new session, stdin a pipe that carries its job
(the API key among it: never argv or the environment), stdout and stderr /dev/null, no other
inherited descriptor; integratord's wpclose() has nothing of it to wait for.
"""
from __future__ import annotations

import fcntl
import posix      # not os: see codec.py
import sys
import time
from _signal import SIGTERM      # (signal itself imports enum: a tenth of a cache hit)

from . import settings, spool
from . import state as st
from .codec import iso_utc, json_dumps, json_loads, shown
from .deadline import DeadlineExceeded
from .lookup import Deferred, Failed, Found, Lookup
from .wazuh import (
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNDELIVERED,
    Delivery,
    DeliveryError,
    Log,
    Quiet,
    RefusedError,
    integrations_log,
    report_crash,
    wazuh_home,
)

TYPE_CHECKING = False        # typing.TYPE_CHECKING, without importing typing on every alert
if TYPE_CHECKING:
    from collections.abc import Callable

LOCK_FD = 3                   # the slot's lock, handed over by the run that started the worker
MAX_JOB = 1 << 20             # bytes of job read from stdin at most
WORKER_TAG = "virustotal_ip-lookup-worker"   # in the worker's argv, for ps and pgrep
PACKAGE_DIR = __file__.rsplit("/", 2)[0]   # where virustotal_ip/ is: a worker's argv names it
BACKOFF = (60, 300, 900, 3600)   # seconds an address waits after its 1st, 2nd, 3rd, later failure
# The worker's program: the package directory and the slot come as arguments.
BOOT = ("import sys\n"
        "sys.path.append(sys.argv[1])\n"
        "from virustotal_ip.worker import main_and_exit\n"
        "main_and_exit(int(sys.argv[2]))\n")


class Crew:
    """What the settling of pending alerts needs, in a worker, --drain or a run alike: the
    state, where events go, the log, and `lookup_for(seconds_left)`, the Lookup for one
    address (its own time bound, cut to what --drain or the run has left)."""

    def __init__(self, *, state: st.State, delivery: Delivery, log: Log,
                 lookup_for: Callable[[float | None], Lookup]) -> None:
        self.state, self.delivery, self.log, self.lookup_for = state, delivery, log, lookup_for


def slots(cfg) -> int:
    """Workers allowed at once: lookup_parallel, never more than the per-minute budget."""
    limit = cfg.rate_limit_per_minute
    return min(cfg.lookup_parallel, limit) if limit else cfg.lookup_parallel


def lock_name(slot: int) -> str:
    return f"worker-{slot}"


def lookups(*, cfg, log, state: st.State, api_key: str, timeout: float, retries: int):
    """lookup_for(seconds_left=None): a Lookup for one address of the queue, with its own time
    bound, timeout x (retries + 1), cut to `seconds_left` (--drain's)."""
    bound = timeout * (retries + 1)

    def lookup_for(seconds_left: float | None = None) -> Lookup:
        return Lookup(cfg=cfg, log=log, state=state, api_key=api_key, timeout=timeout, retries=retries,
                      started=time.monotonic(), time_budget=bound if seconds_left is None else min(seconds_left, bound))
    return lookup_for


# --------------------------------------------------------------------------- the run's side

def hand_off(run: Lookup, crew: Crew, source: dict, job: Callable[[], dict]) -> int | None:
    """A miss of the run, for the lookup worker: queued, and a worker started if a slot is
    free. While the budget (or the address's /64 share) or an outage allows no request, the
    alert waits, deferred, and no worker is started (a storm would start one per alert). The
    exit status, or None when nothing could be queued (the caller looks it up itself)."""
    try:
        held = run.blocked_now(source["ip"])
    except st.Error as exc:          # (a writer holding the store): the worker checks it again
        crew.log.warning(f"{source['ip']}: cannot read the budget now ({exc}); queued all the same")
        held = None
    try:
        spool.enqueue(crew.state.queue_dir, source, deferred=held is not None)
    except OSError as exc:
        crew.log.error(f"{source['ip']}: cannot queue alert {shown(source['alert_id'])} for the lookup worker "
                       f"({exc.strerror or exc}); looking it up in the run")
        return None
    if held is not None:
        crew.log.info(f"deferred lookup of {source['ip']} for alert {shown(source['alert_id'])}: {held.why}")
        return EXIT_OK
    crew.log.debug(f"{source['ip']}: alert {shown(source['alert_id'])} queued for the lookup worker")
    try:
        slot = start(crew.state, run.cfg, job())
    except OSError as exc:
        crew.log.error(f"{source['ip']}: cannot start a lookup worker ({exc.strerror or exc}); "
                       "--drain will look it up")
        return EXIT_OK
    started = "already running" if slot is None else f"started on slot {slot}"
    crew.log.debug(f"{source['ip']}: lookup worker {started}")
    return EXIT_OK


def look_up_now(crew: Crew, source: dict, slot_count: int) -> int:
    """The run's own lookup, in the foreground (lookup_mode inline, debug, or a queue that
    cannot be written): the alert goes into the pending store and its address is settled on a
    slot as a worker settles it, within the run's time bound. An alert the store cannot keep
    gets an error event naming why (no request could be counted either)."""
    state, log, ip = crew.state, crew.log, source["ip"]
    try:
        state.add_pending(source, deferred=False)
    except st.Error as exc:
        why = f"the pending store cannot keep it ({exc}), so no VirusTotal request can be counted: not looked up"
        return undelivered(crew.delivery, log, source, why)
    slot, fd = take_slot(state, slot_count, crew.lookup_for(None))
    if fd is None:
        log.info(f"{ip}: no lookup slot came free in time; alert {shown(source['alert_id'])} waits for --drain")
        return EXIT_OK
    try:
        note_pid(fd, posix.getpid())
        state.release(slot)                       # a dead predecessor's claims
        # Until nothing is left for this address: the alerts of runs that found it claimed
        # (this one's, or another slot's) while it was being looked up are sent with it.
        while state.claim(slot, ip)[0] is not None and settle(ip, slot, crew, None):
            pass
        return EXIT_OK
    except (DeliveryError, st.Error) as exc:
        log.error(f"{ip}: {exc}")
        try:
            state.release(slot, deferred=True)
        except st.Error:
            pass                                  # the store may be what failed
        return EXIT_UNDELIVERED
    finally:
        posix.close(fd)


def take_slot(state: st.State, slot_count: int, run: Lookup) -> tuple:
    """(slot, its locked descriptor): a free one, else the first as soon as it is free within
    the run's time bound; (None, None) if none came free."""
    for slot in range(slot_count):
        fd = spool.lock(state.dir, lock_name(slot), blocking=False)
        if fd is not None:
            return slot, fd
    fd = None
    try:
        with run.deadline.watch():
            fd = spool.lock(state.dir, lock_name(0))
        return 0, fd
    except DeadlineExceeded:
        if fd is not None:                   # the watchdog fired just after the lock was taken
            posix.close(fd)
        return None, None


def undelivered(delivery: Delivery, log: Log, source: dict, why: str) -> int:
    """An alert nothing more can be done for now: its error event says why (exit 3)."""
    log.error(f"{source['ip']}: alert {shown(source['alert_id'])}: {why}")
    try:
        delivery.error("Undelivered", why, source)
    except DeliveryError as exc:
        log.error(f"{source['ip']}: {exc}")
    return EXIT_UNDELIVERED


def start(state: st.State, cfg, job: dict) -> int | None:
    """Start a worker on the first free slot; its slot number, or None when every slot is
    busy (a busy worker looks again for new alerts before it exits, see work()).
    `job`: api_key, options (the <options> object), timeout, retries, debug."""
    for slot in range(slots(cfg)):
        fd = spool.lock(state.dir, lock_name(slot), blocking=False)
        if fd is None:
            continue
        try:
            spawn(fd, slot, job)
        finally:
            posix.close(fd)     # the worker has its own copy of the locked descriptor
        return slot
    return None


def spawn(lock_fd: int, slot: int, job: dict) -> None:
    """Start the worker detached, on `slot` with its locked descriptor; OSError if it cannot
    be started."""
    # Above the descriptors the file actions write to: dup2 of a descriptor onto itself would
    # leave its close-on-exec flag set on older C libraries.
    lock_fd = fcntl.fcntl(lock_fd, fcntl.F_DUPFD_CLOEXEC, 10)
    read_end, write_end = posix.pipe()
    try:
        pid = posix.posix_spawn(
            sys.executable,
            [sys.executable, "-I", "-S", "-c", BOOT, PACKAGE_DIR, str(slot), WORKER_TAG],
            posix.environ,
            file_actions=[(posix.POSIX_SPAWN_DUP2, read_end, 0),
                          (posix.POSIX_SPAWN_OPEN, 1, "/dev/null", posix.O_RDWR, 0),
                          (posix.POSIX_SPAWN_DUP2, 1, 2), (posix.POSIX_SPAWN_DUP2, lock_fd, LOCK_FD)],
            setsid=True,
        )
        posix.close(read_end)
        read_end = -1
        # A job fits a pipe's buffer (64 KiB) unless <options> is huge; then this waits for the
        # worker, which reads it first thing.
        data = json_dumps(job).encode()
        while data:
            data = data[posix.write(write_end, data):]
        try:
            note_pid(lock_fd, pid)
        except OSError:
            pass                             # for --status only (a full disk): the worker runs
    finally:
        for fd in (read_end, write_end, lock_fd):
            if fd >= 0:
                posix.close(fd)


def note_pid(lock_fd: int, pid: int) -> None:
    """The worker's pid and start in its slot's lock file, for --status (written by whoever
    holds the lock: the run that started the worker, --drain, or a run in the foreground)."""
    text = f"{pid} {int(time.time())}\n".encode()
    posix.ftruncate(lock_fd, 0)
    posix.pwrite(lock_fd, text, 0)


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


def main(slot: int) -> int:
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
    except (RefusedError, st.StateError) as exc:   # made a link, or broken, since the run
        log.error(f"lookup worker: {exc}")
        return EXIT_REFUSED if isinstance(exc, RefusedError) else EXIT_INTERNAL
    crew = Crew(state=state, delivery=Delivery(home=home, cfg=cfg, log=log, debug=False), log=log,
                lookup_for=lookups(cfg=cfg, log=log, state=state, api_key=job.get("api_key") or cfg.api_key,
                                   timeout=job.get("timeout", 10), retries=job.get("retries", 3)))
    return work(slot, LOCK_FD, crew, until=None)


def main_and_exit(slot: int) -> None:
    """Like cli.main_and_exit: one log line for any error, never a traceback."""
    try:
        status = main(slot)
    except BaseException as exc:     # SystemExit and the deadline too: a worker has no caller
        report_crash(exc, "lookup worker: internal error")
        status = EXIT_INTERNAL
    posix._exit(status)


def drain(crew: Crew, slot_count: int, seconds: float) -> int:
    """--drain: the lookup worker's loop in the foreground, on a free slot, for `seconds` at most."""
    state, log = crew.state, crew.log
    first_day = st.stats_first_day(time.time())
    try:
        spool.prune_tallies(state.dir, first_day)
        state.prune_old_counts(first_day)
    except (OSError, st.Error) as exc:
        log.warning(f"--drain: cannot prune old hit/miss counts ({exc})")
    for slot in range(slot_count):
        fd = spool.lock(state.dir, lock_name(slot), blocking=False)
        if fd is not None:
            note_pid(fd, posix.getpid())
            return work(slot, fd, crew, until=time.monotonic() + seconds, name="--drain")
    log.info("--drain: every lookup worker slot is busy; they look the queue up")
    return EXIT_OK


# --------------------------------------------------------------------------- the loop

def work(slot: int, lock_fd: int, crew: Crew, until: float | None, name: str = "") -> int:
    """Settle the queued addresses, one at a time on this slot, until none is left that may be
    looked up now (or `until`, monotonic, for --drain). Holds `lock_fd` (the slot's lock) and
    closes it. A run that queued an alert while this slot was still held started no worker:
    so once the slot is free, this looks again, and takes it back if something came."""
    state, status, sent = crew.state, EXIT_OK, 0
    while True:
        try:
            done, dry_at = work_locked(slot, crew, until)
            sent += done
        except DeliveryError as exc:
            crew.log.error(f"{name or 'lookup worker'}: {exc}")
            status, dry_at = EXIT_UNDELIVERED, None
        posix.close(lock_fd)
        if dry_at is None or time_up(until) or not came_since(state, dry_at):
            break
        lock_fd = spool.lock(state.dir, lock_name(slot), blocking=False)
        if lock_fd is None:
            break                          # a new worker has the slot and will see it
        note_pid(lock_fd, posix.getpid())
    crew.log.info(f"{name or f'lookup worker {slot}'}: sent {sent}, {waiting(state)[0]} still pending")
    return status


def work_locked(slot: int, crew: Crew, until: float | None) -> tuple:
    """(alerts sent, what the queue held when it ran dry (came_since), or None when the worker
    stopped for the budget, an outage or its time). DeliveryError: analysisd or the store
    failed, the slot's alerts given back."""
    state = crew.state
    try:
        state.release(slot)                # a dead predecessor on this slot
        reap_dead_slots(state, slot)
        expired = state.drop_expired()
        if expired:
            crew.log.warning(f"dropped {expired} pending alert(s) older than {st.PENDING_MAX_AGE // 86400} days")
        sent = 0
        while not time_up(until):
            take_queue(state, crew.log)
            ip, newest = state.claim(slot)
            if ip is None:
                return sent, (newest, frozenset(spool.listing(state.queue_dir)[0]))
            done = settle(ip, slot, crew, None if until is None else until - time.monotonic())
            if done is None:
                return sent, None
            sent += done
        return sent, None
    except (DeliveryError, st.Error, OSError) as exc:
        try:
            state.release(slot, deferred=True)
        except st.Error:
            pass                            # the store may be what failed
        if isinstance(exc, DeliveryError):
            raise
        raise DeliveryError(f"the state failed ({exc})") from None


def time_up(until: float | None) -> bool:
    return until is not None and until - time.monotonic() < 1


def came_since(state: st.State, dry_at: tuple) -> bool:
    """An alert came since the queue ran dry at `dry_at` (the newest pending id and the queue's
    names then): one a run queued while this slot was still held, so it started no worker.
    (A name that was there then, which could not be removed, is not new.)"""
    newest, names = dry_at
    return state.last_pending_id() > newest or not set(spool.listing(state.queue_dir)[0]) <= names


def reap_dead_slots(state: st.State, own: int) -> None:
    """Give back the claims of slots no worker holds (a worker killed mid-way)."""
    for slot in state.claiming_slots():
        if slot == own:
            continue
        fd = spool.lock(state.dir, lock_name(slot), blocking=False)
        if fd is not None:
            try:
                state.release(slot)
            finally:
                posix.close(fd)


def take_queue(state: st.State, log: Log) -> int:
    """Move the queue's files into the pending store, in one transaction, then remove them; how
    many alerts were taken. Each name taken is kept in that transaction (for a day), so a file
    left by a reader killed before removing it is removed, never taken twice."""
    names, stale = spool.listing(state.queue_dir)
    records, done = [], list(stale)
    for name in names:
        if state.was_taken(name):              # its removal failed before: removed, not taken twice
            done.append(name)
            continue
        try:
            source = spool.read_record(state.queue_dir, name)
        except (OSError, ValueError) as exc:
            log.error(f"queue file {name} is unreadable ({type(exc).__name__}); removed")
            source = {}
        if source is not None:                 # (None: another reader took and removed it)
            records.append((name, source))

    def take() -> int:
        taken = 0
        for name, source in records:
            if source:
                deferred = source.pop("deferred")
                state.add_pending(source, deferred, spool.queued_at(name))
                taken += 1
            state.note_taken(name)
        return taken
    taken = state.transaction(take) if records else 0
    for name in spool.remove(state.queue_dir, done + [record[0] for record in records]):
        log.debug(f"queue entry {name} cannot be removed; it is passed over")
    return taken


# --------------------------------------------------------------------------- one address

def settle(ip: str, slot: int, crew: Crew, seconds_left: float | None) -> int | None:
    """Look `ip` up and settle every alert `slot` claimed for it: the one place an outcome
    becomes verdicts, error events or a wait. How many verdicts were sent, or None when the
    worker should stop (the budget or an outage: the alerts wait, deferred). Anything else
    that goes wrong with this address sets its alerts aside: it costs only itself."""
    state = crew.state
    try:
        outcome = crew.lookup_for(seconds_left).lookup(ip, count=False)
        rows = state.pending_for(ip, slot)
        if isinstance(outcome, Found):
            return send_verdicts(ip, rows, outcome, crew)
        if isinstance(outcome, Deferred):
            return wait_for_budget(ip, slot, outcome, crew)
        return after_failure(ip, slot, rows, outcome, crew)
    except (DeliveryError, st.Error):
        raise                                # analysisd or the store: every alert's trouble
    except Exception as exc:                 # this address's alone: the others go on
        why = f"{type(exc).__name__}: {shown(str(exc))}"
        crew.log.error(f"{ip}: its alerts are set aside ({why}); the others go on")
        for row in state.pending_for(ip, slot):
            state.set_aside(row.row_id, why)
        return 0


def each_row(ip: str, rows: list, crew: Crew, action: Callable[[st.Pending], None]) -> int:
    """action(row) for each alert; how many it did. An alert whose own data makes it fail (an
    event too large, a field missing) is set aside with one log line: it costs only itself.
    analysisd down or the store failing stop the worker (every alert's trouble)."""
    done = 0
    for row in rows:
        try:
            action(row)
        except (DeliveryError, st.Error):
            raise
        except Exception as exc:
            why = f"{type(exc).__name__}: {shown(str(exc))}"
            crew.log.error(f"{ip}: alert {shown(row.source.get('alert_id'))} is set aside ({why})")
            crew.state.set_aside(row.row_id, why)
            continue
        done += 1
    return done


def send_verdicts(ip: str, rows: list, found: Found, crew: Crew) -> int:
    """Each alert's verdict, sent in the transaction that removes it from the store: one that
    cannot be removed (a full disk) is not sent. (A commit that fails after the send leaves it
    to be sent again: at least once, never lost.)"""
    def deliver(row: st.Pending) -> None:
        crew.state.done(row.row_id)
        crew.delivery.verdict(found.entry, row.source, cached=found.cached, deferred=row.deferred)
    sent = each_row(ip, rows, crew, lambda row: crew.state.transaction(lambda: deliver(row)))
    if len(rows) > 1 or (rows and rows[0].deferred):
        crew.log.info(f"sent {sent} pending enrichment(s) for {ip}")
    return sent


def wait_for_budget(ip: str, slot: int, deferred: Deferred, crew: Crew) -> int | None:
    """Not asked now: the address's alerts wait. Only its /64's share spent (`until`): the
    other addresses go on; else the worker stops and every waiting alert is deferred."""
    crew.state.release(slot, ip, deferred=True, not_before=deferred.until)
    crew.log.info(f"deferred lookup of {ip}: {deferred.why}")
    if deferred.until is not None:
        return 0
    crew.state.defer_waiting()
    return None


def after_failure(ip: str, slot: int, rows: list, failed: Failed, crew: Crew) -> int | None:
    """VirusTotal gave no usable answer.
    - A 429 or a timeout (VirusTotal out for everyone): the alerts wait and the worker stops,
      reported once per outage.
    - Another transient failure (a 5xx, no connection): this address's alone. Its alerts get
      one error event each, ever, and it is looked up again after a backoff while the others
      go on; when it was the third address in a row to fail, the outage it opened stops the
      worker too.
    - A lasting error (a wrong key, a malformed answer): each alert gets its error event and
      is not kept (the next alert reports it again)."""
    state, exc = crew.state, failed.error
    crew.log.error(f"{ip}: VirusTotal error {exc.code}: {exc.description}")
    if exc.quota or not exc.transient or exc.code == "Timeout":
        if exc.transient:
            state.release(slot, ip, deferred=True)
            state.defer_waiting()
            if failed.report:
                each_row(ip, rows[:1], crew, lambda row: report(row, exc, crew))
            return None
        each_row(ip, rows, crew, lambda row: forget_reporting(row, exc, failed, crew))
        return 0
    each_row(ip, [row for row in rows if not row.reported], crew, lambda row: report(row, exc, crew))
    until = state.back_off(slot, ip, BACKOFF)
    crew.log.info(f"{ip}: looked up again after {iso_utc(until)}; the other addresses go on")
    if failed.outage:
        state.defer_waiting()
        return None
    return 0


def report(row: st.Pending, exc, crew: Crew) -> None:
    """The alert's error event, marked sent so that it is never sent again while it waits."""
    crew.delivery.error(exc.code, exc.description, row.source)
    crew.state.mark_reported(row.row_id)


def forget_reporting(row: st.Pending, exc, failed: Failed, crew: Crew) -> None:
    """A lasting error: the alert can never get a verdict, so it is not kept; its error event
    is sent (analysisd down: lost with it, and the next alert reports the error again)."""
    crew.state.done(row.row_id)
    if failed.report:
        crew.delivery.error(exc.code, exc.description, row.source)


# --------------------------------------------------------------------------- the analyst's side

def waiting(state: st.State) -> tuple:
    """(alerts waiting, queued_at of the oldest or None, alerts set aside): the pending store
    and the queue's files."""
    count, oldest, aside = state.pending_summary()
    names = spool.listing(state.queue_dir)[0]
    if names:
        first = spool.queued_at(names[0])
        count, oldest = count + len(names), first if oldest is None else min(oldest, first)
    return count, oldest, aside


def stop_all(seconds: float = 10) -> tuple:
    """Stop every lookup worker started from this installation (the uninstall): SIGTERM to
    each process whose argv is BOOT's with this package's directory, then wait until they are
    gone. (stopped, still running after `seconds`)."""
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
                posix.kill(int(entry), SIGTERM)
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
    lines = []
    for slot in range(slots(cfg)):
        fd = spool.lock(state.dir, lock_name(slot), blocking=False)
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

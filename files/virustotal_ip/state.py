# SPDX-License-Identifier: MIT
"""The state under <home>/var/virustotal_ip/: every line of SQL the integration runs.

cache.db (SQLite) holds the VirusTotal facts per IP, the request log the budget counts, the
quota outage and the deferred (pending) alerts; hits-/misses-YYYY-MM-DD files count cache
hits and misses; queue/ holds the alerts runs queued for the lookup worker, one file each,
until a worker or --drain moves them into cache.db; lookup.lock serialises inline lookups
and the workers' budget checks; worker-N.lock is held by the lookup worker (or --drain)
working on slot N of the queue.

Shared by concurrent runs (busy timeout); lookups are serialised by a lock file so that
two runs for one uncached IP make one request and budgets are counted exactly. The
journal is the default rollback journal, not WAL: with WAL every run would create -wal
and -shm files, then checkpoint and delete them as it exits, while a cache hit here only
reads under a shared lock. A run that misses writes no SQLite either (see enqueue): the
writes, with their fsyncs, happen in the worker and --drain, which nobody waits for.
"""
from __future__ import annotations

import posix      # not os: see codec.py
import time

try:
    import _sqlite3 as sqlite3      # what `sqlite3` re-exports, without its date adapters
except ImportError:                 # (and the `datetime` import they need)
    import sqlite3

from .address import ip_text, parse_ip
from .codec import json_dumps, json_loads
from .wazuh import RefusedError

STATE_DIR = "virustotal_ip"   # in <home>/var
QUEUE_DIR = "queue"           # in the state directory: alerts queued by runs, a file each
SCHEMA_VERSION = 5            # 3: pending.slot (a worker's claim) and pending.deferred; 4: taken;
                              # 5: requests.prefix (an IPv6 /64's share) and pending.not_before
TAKEN_DAYS = 1                # days a queue file's name is remembered after it was taken
PENDING_MAX = 10000           # deferred alerts kept at most (oldest dropped, logged)
PENDING_LOG_MAX = 8192        # characters of full_log kept with a deferred alert
PENDING_MAX_AGE = 7 * 86400   # deferred alerts older than this are dropped, logged
STATS_DAYS = 30               # days of hit/miss counts kept for --status
Error = sqlite3.Error
TALLY = {"hit": "hits", "miss": "misses"}   # <kind>: its tally files, <prefix>-YYYY-MM-DD
TALLY_KIND = {prefix: kind for kind, prefix in TALLY.items()}


def stats_first_day(now: float) -> str:
    """The first UTC day whose hit and miss counts are kept (STATS_DAYS days up to today)."""
    return time.strftime("%Y-%m-%d", time.gmtime(now - (STATS_DAYS - 1) * 86400))


class State:
    def __init__(self, directory: str, log) -> None:
        self.dir = directory
        self.path = f"{directory}/cache.db"
        self.queue_dir = f"{directory}/{QUEUE_DIR}"
        self.log = log
        try:
            self.db = self._open()
        except sqlite3.DatabaseError as exc:
            if "not a database" not in str(exc) and "malformed" not in str(exc):
                raise
            log.warning(f"cache {self.path} is corrupt ({exc}); recreating it")
            for suffix in ("", "-journal", "-wal", "-shm"):
                try:
                    posix.unlink(self.path + suffix)
                except FileNotFoundError:
                    pass
            self.db = self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=2.0, isolation_level=None)
        try:
            if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                # A cache made by version 1 (WAL) can leave WAL only while no other process
                # has it open: until then, use it as it is.
                try:
                    if db.execute("PRAGMA journal_mode=DELETE").fetchone()[0] != "delete":
                        return db
                except sqlite3.OperationalError:
                    return db
                # PRAGMA takes no bound parameters: the constant, formatted as an integer.
                db.executescript("""
                    BEGIN IMMEDIATE;
                    CREATE TABLE IF NOT EXISTS cache(ip TEXT PRIMARY KEY, entry TEXT NOT NULL,
                                                     fetched_at REAL NOT NULL);
                    CREATE INDEX IF NOT EXISTS cache_age ON cache(fetched_at);
                    CREATE TABLE IF NOT EXISTS requests(ts REAL NOT NULL, prefix TEXT);
                    CREATE TABLE IF NOT EXISTS state(key TEXT PRIMARY KEY, value TEXT);
                    CREATE TABLE IF NOT EXISTS stats(day TEXT, name TEXT, n INTEGER,
                                                     PRIMARY KEY(day, name));
                    CREATE TABLE IF NOT EXISTS pending(
                        id INTEGER PRIMARY KEY, ip TEXT NOT NULL, source TEXT NOT NULL,
                        queued_at REAL NOT NULL, alert_key TEXT UNIQUE,
                        slot INTEGER, deferred INTEGER NOT NULL DEFAULT 1, not_before REAL);
                    CREATE TABLE IF NOT EXISTS taken(name TEXT PRIMARY KEY);""")
                # columns added since: version 2's pending lacks slot and deferred; 4's lacks
                # not_before, and its requests lack prefix (their requests count against none)
                for table, name, decl in (("pending", "slot", "INTEGER"),
                                          ("pending", "deferred", "INTEGER NOT NULL DEFAULT 1"),
                                          ("pending", "not_before", "REAL"), ("requests", "prefix", "TEXT")):
                    if name not in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:
                        db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")
                db.execute("CREATE INDEX IF NOT EXISTS requests_prefix ON requests(prefix, ts) "
                           "WHERE prefix IS NOT NULL")
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
                db.execute("COMMIT")
        except BaseException:
            db.close()
            raise
        return db

    # -- cache
    def get(self, ip: str) -> dict | None:
        row = self.db.execute("SELECT entry FROM cache WHERE ip = ?", (ip,)).fetchone()
        return json_loads(row[0]) if row else None

    def put(self, ip: str, entry: dict, max_entries: int) -> None:
        self.db.execute("INSERT OR REPLACE INTO cache(ip, entry, fetched_at) VALUES (?, ?, ?)",
                        (ip, json_dumps(entry), entry["fetched_at"]))
        excess = self.db.execute("SELECT COUNT(*) FROM cache").fetchone()[0] - max_entries
        if excess > 0:
            self.db.execute("DELETE FROM cache WHERE ip IN "
                            "(SELECT ip FROM cache ORDER BY fetched_at LIMIT ?)", (excess,))

    def entries(self) -> list:
        """Every cached entry, decoded (for --status)."""
        return [json_loads(raw) for (raw,) in self.db.execute("SELECT entry FROM cache")]

    # -- hit and miss counts
    def count(self, name: str) -> None:
        """One more "hit" or "miss" today: one byte appended to today's tally file (its size
        is the count), not a SQLite write, which would cost a journal and fsyncs on every
        alert (a miss's run ends as soon as its alert is queued)."""
        day = time.strftime("%Y-%m-%d", time.gmtime())
        fd = posix.open(f"{self.dir}/{TALLY[name]}-{day}", posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT, 0o660)
        try:
            posix.write(fd, b".")
        finally:
            posix.close(fd)

    def _tallies(self) -> dict:
        """{(kind, day): path} of the tally files ("hit" or "miss")."""
        found = {}
        for name in posix.listdir(self.dir):
            kind, day = TALLY_KIND.get(name.split("-", 1)[0]), name.split("-", 1)[-1]
            if kind and day != name:
                found[kind, day] = f"{self.dir}/{name}"
        return found

    def counts(self, first_day: str) -> tuple:
        """({day: hits}, {day: misses}) from first_day (YYYY-MM-DD) on. Misses counted in
        SQLite (before 1.3) are added to the tallies."""
        counted: dict = {"hit": {}, "miss": {}}
        for (kind, day), path in self._tallies().items():
            if day >= first_day:
                counted[kind][day] = posix.stat(path).st_size
        for day, n in self.db.execute("SELECT day, n FROM stats WHERE name = 'miss' AND day >= ?", (first_day,)):
            counted["miss"][day] = counted["miss"].get(day, 0) + n
        return counted["hit"], counted["miss"]

    def prune_counts(self, first_day: str) -> None:
        """Forget hit and miss counts from before first_day."""
        self.db.execute("DELETE FROM stats WHERE day < ?", (first_day,))
        for kind_day, path in self._tallies().items():
            if kind_day[1] < first_day:
                posix.unlink(path)

    # -- requests and the quota outage
    def record_request(self, prefix: str | None = None) -> None:
        """One request made now; `prefix`: the IPv6 /64 of its address (None for IPv4)."""
        now = time.time()
        self.db.execute("INSERT INTO requests(ts, prefix) VALUES (?, ?)", (now, prefix))
        self.db.execute("DELETE FROM requests WHERE ts < ?", (now - 2 * 86400,))

    def requests_since(self, since: float, prefix: str | None = None) -> int:
        """Requests made since `since`: all of them, or those for the addresses of `prefix`."""
        if prefix is None:
            return self.db.execute("SELECT COUNT(*) FROM requests WHERE ts >= ?", (since,)).fetchone()[0]
        return self.db.execute("SELECT COUNT(*) FROM requests WHERE prefix = ? AND ts >= ?",
                               (prefix, since)).fetchone()[0]

    def get_state(self, key: str, default: str = "") -> str:
        row = self.db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_state(self, **values: object) -> None:
        for key, value in values.items():
            self.db.execute("INSERT OR REPLACE INTO state(key, value) VALUES (?, ?)", (key, str(value)))

    # -- pending alerts: deferred (for --drain), or queued for the lookup worker
    def defer(self, source: dict) -> None:
        """Keep the alert until its IP is looked up, deferred: it waits for the budget or
        VirusTotal (its enrichment will say so). (The lookup worker's alerts come through
        the queue: enqueue, take_queue.)"""
        self._insert_pending(source, True, time.time())
        self._cap_pending()

    def _insert_pending(self, source: dict, deferred: bool, queued_at: float) -> None:
        kept = dict(source)
        if len(kept["full_log"]) > PENDING_LOG_MAX:     # marked as wazuh.encode_message marks a cut
            kept["full_log"] = kept["full_log"][:PENDING_LOG_MAX] + " [truncated]"
        key = f"{source['ip']}|{source['alert_id']}" if source["alert_id"] else None
        self.db.execute("INSERT OR IGNORE INTO pending(ip, source, queued_at, alert_key, deferred) "
                        "VALUES (?, ?, ?, ?, ?)", (source["ip"], json_dumps(kept), queued_at, key, int(deferred)))

    def _cap_pending(self) -> None:
        excess = self.db.execute("SELECT COUNT(*) FROM pending").fetchone()[0] - PENDING_MAX
        if excess > 0:
            self.db.execute("DELETE FROM pending WHERE id IN "
                            "(SELECT id FROM pending ORDER BY id LIMIT ?)", (excess,))
            self.log.warning(f"pending queue full: dropped the {excess} oldest deferred alert(s)")

    # -- the queue: alerts a run hands to the lookup worker
    def enqueue(self, source: dict, deferred: bool) -> None:
        """Queue an alert for the lookup worker without writing SQLite: integratord waits for
        the run, and a SQLite commit waits for the disk (fsyncs). One file in queue/, written
        under a hidden name and renamed, so a reader never sees part of one. Like the alerts
        integratord itself reads from alerts.json, it survives the run, a killed worker and a
        restart, not a power cut in the seconds before the kernel writes it out. OSError if
        it cannot be written; nothing is left behind then."""
        name = f"{time.time_ns():020d}-{posix.getpid()}.json"
        hidden = f"{self.queue_dir}/.{name}"
        data = json_dumps({"source": source, "deferred": deferred}).encode()
        flags = posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL
        try:
            fd = posix.open(hidden, flags, 0o660)
        except FileNotFoundError:
            try:
                posix.mkdir(self.queue_dir, 0o770)
            except FileExistsError:
                pass
            fd = posix.open(hidden, flags, 0o660)
        try:
            try:
                while data:
                    data = data[posix.write(fd, data):]
            finally:
                posix.close(fd)
            posix.rename(hidden, f"{self.queue_dir}/{name}")
        except BaseException:
            try:
                posix.unlink(hidden)
            except OSError:
                pass
            raise

    def queued(self) -> list:
        """The names of the queue's files (as enqueue names them), oldest first."""
        return self._queue_listing()[0]

    def _queue_listing(self) -> tuple:
        """(names, hidden names) of the queue's files, as enqueue names them, oldest first, from
        one listing; the hidden ones (without their dot) are still being written, or were left
        by a run killed while writing one."""
        try:
            names = posix.listdir(self.queue_dir)
        except FileNotFoundError:
            return [], []
        return queue_names(names), queue_names(name[1:] for name in names if name.startswith("."))

    def take_queue(self) -> int:
        """Move the queue's files into the pending table, in one transaction, then remove them;
        how many alerts were taken. Each name taken is kept in that transaction (for a day), so
        a file left by a reader killed before removing it is removed, never taken twice."""
        # A hidden file an hour old belongs to a run killed while writing it: never renamed,
        # so never an alert a run reported queued.
        stale = f"{time.time_ns() - 3600 * 10**9:020d}"
        names, hidden = self._queue_listing()
        done, taken = [f".{name}" for name in hidden if name < stale], 0
        if names:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for name in names:
                    if not self.db.execute("SELECT 1 FROM taken WHERE name = ?", (name,)).fetchone():
                        source = self._queue_file(name)
                        if source is None:
                            continue                   # another reader took and removed it
                        if source:
                            deferred = source.pop("deferred")
                            self._insert_pending(source, deferred, queued_at(name))
                            taken += 1
                        self.db.execute("INSERT INTO taken(name) VALUES (?)", (name,))
                    done.append(name)                  # (taken before: the file not yet removed)
                self._cap_pending()
                forget = f"{time.time_ns() - TAKEN_DAYS * 86400 * 10**9:020d}"
                self.db.execute("DELETE FROM taken WHERE name < ?", (forget,))
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
        for name in done:
            try:
                posix.unlink(f"{self.queue_dir}/{name}")
            except FileNotFoundError:
                pass
        return taken

    def _queue_file(self, name: str) -> dict | None:
        """The alert source of a queue file with its "deferred"; None if the file is gone, {}
        if it cannot be read (logged: only the script writes there, and never part of a file,
        so this cannot happen, but such a file is not kept forever if it does)."""
        try:
            with open(f"{self.queue_dir}/{name}", "rb") as fh:
                record = json_loads(fh.read().decode("utf-8", "replace"))
            source = dict(record["source"], deferred=bool(record["deferred"]))
            if not all(isinstance(source.get(key), str) for key in ("ip", "full_log", "alert_id")):
                raise ValueError("not an alert source")
            packed = parse_ip(source["ip"])          # the run wrote it canonical; it goes into a URL
            if packed is None or ip_text(packed) != source["ip"]:
                raise ValueError("not an address")
            return source
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError) as exc:
            self.log.error(f"queue file {name} is unreadable ({type(exc).__name__}); removed")
            return {}

    def pending_for(self, ip: str, slot: int | None = None) -> list:
        """(id, source, deferred) of the alerts waiting for `ip`: all of them, or only those
        the worker on `slot` has claimed."""
        if slot is None:
            rows = self.db.execute("SELECT id, source, deferred FROM pending WHERE ip = ? ORDER BY id", (ip,))
        else:
            rows = self.db.execute("SELECT id, source, deferred FROM pending WHERE ip = ? AND slot = ? "
                                   "ORDER BY id", (ip, slot))
        return [(row_id, json_loads(src), bool(deferred)) for row_id, src, deferred in rows.fetchall()]

    def drop_expired(self) -> None:
        cutoff = time.time() - PENDING_MAX_AGE
        dropped = self.db.execute("DELETE FROM pending WHERE queued_at < ?", (cutoff,)).rowcount
        if dropped:
            self.log.warning(f"dropped {dropped} deferred alert(s) older than {PENDING_MAX_AGE // 86400} days")

    def claim(self, slot: int) -> tuple:
        """(ip, last id) : the next IP no worker is on, its waiting alerts now claimed by `slot`,
        and the newest pending id at that moment; (None, last id) when there is none. One
        transaction, so two workers never claim one IP. Alerts released `not_before` a time
        to come (their IPv6 /64's share is spent) are passed over until then, unless a newer
        alert for the same IP comes."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            row = self.db.execute(
                "SELECT ip FROM pending WHERE slot IS NULL AND (not_before IS NULL OR not_before <= ?) "
                "AND ip NOT IN (SELECT ip FROM pending WHERE slot IS NOT NULL) ORDER BY id LIMIT 1",
                (time.time(),)).fetchone()
            if row is not None:
                self.db.execute("UPDATE pending SET slot = ? WHERE ip = ? AND slot IS NULL", (slot, row[0]))
            last = self.db.execute("SELECT COALESCE(MAX(id), 0) FROM pending").fetchone()[0]
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        return (row[0] if row else None), last

    def release(self, slot: int, ip: str | None = None, deferred: bool = False,
                not_before: float | None = None) -> None:
        """Give back the alerts `slot` claimed (for `ip`, or all), marked deferred if they
        must now wait for the budget or VirusTotal; `not_before`: not claimed again before
        then (their IPv6 /64's share of the day is spent)."""
        self.db.execute("UPDATE pending SET slot = NULL, deferred = MAX(deferred, ?), "
                        "not_before = COALESCE(?, not_before) WHERE slot = ? AND (? IS NULL OR ip = ?)",
                        (int(deferred), not_before, slot, ip, ip))

    def defer_waiting(self) -> None:
        """Every alert no worker is on now waits for the budget or VirusTotal."""
        self.db.execute("UPDATE pending SET deferred = 1 WHERE slot IS NULL AND deferred = 0")

    def claiming_slots(self) -> list:
        return [slot for (slot,) in self.db.execute("SELECT DISTINCT slot FROM pending WHERE slot IS NOT NULL")]

    def last_pending_id(self) -> int:
        return self.db.execute("SELECT COALESCE(MAX(id), 0) FROM pending").fetchone()[0]

    def pending_summary(self) -> tuple:
        """(alerts waiting, queued_at of the oldest or None): the pending table and the queue."""
        count, oldest = self.db.execute("SELECT COUNT(*), MIN(queued_at) FROM pending").fetchone()
        names = self.queued()
        if names:
            first = queued_at(names[0])
            count, oldest = count + len(names), first if oldest is None else min(oldest, first)
        return count, oldest

    def done(self, row_id: int) -> None:
        self.db.execute("DELETE FROM pending WHERE id = ?", (row_id,))

    def remove_while(self, row_id: int, action) -> None:
        """Remove an alert and run `action` (its delivery) in one transaction: if `action`
        raises, the alert stays; if the removal cannot be written, `action` never runs."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute("DELETE FROM pending WHERE id = ?", (row_id,))
            action()
        except BaseException:
            if self.db.in_transaction:       # SQLite ends it itself on some errors (a full disk)
                self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def lock(self, name: str, blocking: bool = True):
        """An exclusive flock on <state>/<name>.lock; the file descriptor, or None if busy."""
        import fcntl
        fd = posix.open(f"{self.dir}/{name}.lock", posix.O_RDWR | posix.O_CREAT, 0o660)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            posix.close(fd)
            return None
        except BaseException:
            posix.close(fd)
            raise
        return fd


def queue_names(names) -> list:
    """Those of `names` that State.enqueue writes (<20 digits of ns>-<pid>.json), sorted."""
    return sorted(name for name in names if name[:20].isdigit() and name[20:21] == "-" and name.endswith(".json"))


def queued_at(name: str) -> float:
    """When a queue file was written, from its name (State.enqueue)."""
    return int(name[:20]) / 1e9


S_IFMT, S_IFLNK = 0o170000, 0o120000     # stat.S_IFMT and S_IFLNK, without importing stat


def is_link(path: str) -> bool:
    """`path` is a symbolic link (lstat: the link itself, never where it points)."""
    try:
        return posix.lstat(path).st_mode & S_IFMT == S_IFLNK
    except OSError:
        return False         # absent, or not ours to see: opening it fails on its own


def open_state(home: str, log) -> State | None:
    """The state, or None (run uncached) when it cannot be used. RefusedError when the
    directory is a symbolic link: var/ is the wazuh group's, so whoever made the link chose
    where the cache, its budget and its locks are; nothing is looked up (the budget cannot be
    checked)."""
    directory = f"{home}/var/{STATE_DIR}"
    if is_link(directory):
        raise RefusedError(f"{directory} is a symbolic link: not used, nothing looked up "
                           "(remove the link: the integration makes the directory itself)")
    try:
        try:
            posix.mkdir(directory, 0o770)
        except FileExistsError:
            pass
        return State(directory, log)
    except (OSError, sqlite3.Error) as exc:
        log.warning(f"cache unusable in {directory} ({exc}); running uncached")
        return None

# SPDX-License-Identifier: MIT
"""The state under <home>/var/virustotal_ip: every line of SQL the integration runs.

cache.db (SQLite) holds the VirusTotal facts per IP, the request log the budget counts, the
quota outage, and the pending alerts (deferred for the budget or VirusTotal, or taken from the
queue for the lookup worker, or set aside). The directory's plain files (the queue of runs'
alerts, the hit and miss tallies, the lock files) are spool.py's.

Shared by concurrent runs and workers (busy timeout). The journal is the default rollback
journal, not WAL: with WAL every run would create -wal and -shm files, then checkpoint and
delete them as it exits, while a cache hit here only reads under a shared lock. A run that
misses writes no SQLite (spool.enqueue): the writes, with their fsyncs, happen in the workers
and --drain, which nobody waits for.
"""
from __future__ import annotations

import posix      # not os: see codec.py
import time

try:
    import _sqlite3 as sqlite3      # what `sqlite3` re-exports, without its date adapters
except ImportError:                 # (and the `datetime` import they need)
    import sqlite3

from . import spool
from .codec import json_dumps, json_loads
from .wazuh import RefusedError

STATE_DIR = "virustotal_ip"   # in <home>/var
# The schema's version. 3: pending.slot (a worker's claim) and pending.deferred; 4: taken;
# 5: requests.prefix (an IPv6 /64's share) and pending.not_before; 6: pending.attempts,
# reported and set_aside.
SCHEMA_VERSION = 6
TAKEN_DAYS = 1                # days a queue file's name is remembered after it was taken
PENDING_MAX = 10000           # pending alerts kept at most (oldest dropped, logged)
PENDING_LOG_MAX = 8192        # characters of full_log kept with a pending alert
PENDING_MAX_AGE = 7 * 86400   # pending alerts older than this are dropped, logged
STATS_DAYS = 30               # days of hit/miss counts kept for --status
Error = sqlite3.Error
# Columns added to a table since it was first made, added on open (their rows predate them).
ADDED_COLUMNS = (("pending", "slot", "INTEGER"), ("pending", "deferred", "INTEGER NOT NULL DEFAULT 1"),
                 ("pending", "not_before", "REAL"), ("requests", "prefix", "TEXT"),
                 ("pending", "attempts", "INTEGER NOT NULL DEFAULT 0"),
                 ("pending", "reported", "INTEGER NOT NULL DEFAULT 0"), ("pending", "set_aside", "TEXT"))
SCHEMA = """
    CREATE TABLE IF NOT EXISTS cache(ip TEXT PRIMARY KEY, entry TEXT NOT NULL, fetched_at REAL NOT NULL);
    CREATE INDEX IF NOT EXISTS cache_age ON cache(fetched_at);
    CREATE TABLE IF NOT EXISTS requests(ts REAL NOT NULL, prefix TEXT);
    CREATE TABLE IF NOT EXISTS state(key TEXT PRIMARY KEY, value TEXT);
    CREATE TABLE IF NOT EXISTS stats(day TEXT, name TEXT, n INTEGER, PRIMARY KEY(day, name));
    CREATE TABLE IF NOT EXISTS pending(
        id INTEGER PRIMARY KEY, ip TEXT NOT NULL, source TEXT NOT NULL, queued_at REAL NOT NULL,
        alert_key TEXT UNIQUE, slot INTEGER, deferred INTEGER NOT NULL DEFAULT 1, not_before REAL,
        attempts INTEGER NOT NULL DEFAULT 0, reported INTEGER NOT NULL DEFAULT 0, set_aside TEXT);
    CREATE TABLE IF NOT EXISTS taken(name TEXT PRIMARY KEY);"""


def stats_first_day(now: float) -> str:
    """The first UTC day whose hit and miss counts are kept (STATS_DAYS days up to today)."""
    return time.strftime("%Y-%m-%d", time.gmtime(now - (STATS_DAYS - 1) * 86400))


class Pending:
    """One pending alert: its row id, the alert's source, whether it waited (deferred), and
    whether its error event was sent already (reported)."""
    __slots__ = ("deferred", "reported", "row_id", "source")

    def __init__(self, row_id: int, source: dict, deferred: bool, reported: bool) -> None:
        self.row_id, self.source, self.deferred, self.reported = row_id, source, deferred, reported


class StateError(Exception):
    """The state cannot be used: the reason, for the log and the alert's error event."""


class State:
    def __init__(self, directory: str, log) -> None:
        self.dir = directory
        self.path = f"{directory}/cache.db"
        self.queue_dir = f"{directory}/{spool.QUEUE_DIR}"
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
                db.executescript("BEGIN IMMEDIATE;" + SCHEMA)
                for table, name, decl in ADDED_COLUMNS:
                    if name not in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:
                        db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")
                db.execute("CREATE INDEX IF NOT EXISTS requests_prefix ON requests(prefix, ts) "
                           "WHERE prefix IS NOT NULL")
                # PRAGMA takes no bound parameters: the constant, formatted as an integer.
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
                db.execute("COMMIT")
        except BaseException:
            db.close()
            raise
        return db

    def transaction(self, action) -> object:
        """action() in one write transaction: all of it, or (on any error) none of it."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            result = action()
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:       # SQLite ends it itself on some errors (a full disk)
                self.db.execute("ROLLBACK")
            raise
        return result

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

    # -- hit and miss counts kept by 1.2 (spool's tallies since)
    def old_miss_counts(self, first_day: str) -> dict:
        return dict(self.db.execute("SELECT day, n FROM stats WHERE name = 'miss' AND day >= ?", (first_day,)))

    def prune_old_counts(self, first_day: str) -> None:
        self.db.execute("DELETE FROM stats WHERE day < ?", (first_day,))

    # -- requests and the quota outage
    def record_request(self, prefix: str | None = None) -> None:
        """One request about to be made now; `prefix`: the IPv6 /64 of its address (None for IPv4)."""
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

    # -- pending alerts
    def add_pending(self, source: dict, deferred: bool, queued_at: float | None = None) -> None:
        """Keep an alert until its address is looked up (`deferred`: it waits for the budget or
        VirusTotal, and its enrichment will say so)."""
        kept = dict(source)
        if len(kept["full_log"]) > PENDING_LOG_MAX:     # marked as wazuh.encode_message marks a cut
            kept["full_log"] = kept["full_log"][:PENDING_LOG_MAX] + " [truncated]"
        key = f"{source['ip']}|{source['alert_id']}" if source["alert_id"] else None
        self.db.execute("INSERT OR IGNORE INTO pending(ip, source, queued_at, alert_key, deferred) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (source["ip"], json_dumps(kept), time.time() if queued_at is None else queued_at, key,
                         int(deferred)))
        excess = self.db.execute("SELECT COUNT(*) FROM pending").fetchone()[0] - PENDING_MAX
        if excess > 0:
            self.db.execute("DELETE FROM pending WHERE id IN (SELECT id FROM pending ORDER BY id LIMIT ?)", (excess,))
            self.log.warning(f"pending store full: dropped the {excess} oldest pending alert(s)")

    def was_taken(self, name: str) -> bool:
        """The queue file of this name was taken into the store already (its removal may have
        failed): it is removed, never taken twice."""
        return self.db.execute("SELECT 1 FROM taken WHERE name = ?", (name,)).fetchone() is not None

    def note_taken(self, name: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO taken(name) VALUES (?)", (name,))
        forget = f"{time.time_ns() - TAKEN_DAYS * 86400 * 10**9:020d}"
        self.db.execute("DELETE FROM taken WHERE name < ?", (forget,))

    def pending_for(self, ip: str, slot: int) -> list:
        """The alerts for `ip` the worker on `slot` claimed, oldest first (Pending). A row whose
        source cannot be read is set aside here, not returned."""
        rows = self.db.execute("SELECT id, source, deferred, reported FROM pending WHERE ip = ? AND slot = ? "
                               "ORDER BY id", (ip, slot)).fetchall()
        found = []
        for row_id, raw, deferred, reported in rows:
            try:
                source = json_loads(raw)
                if not isinstance(source, dict):
                    raise ValueError("not an object")
            except ValueError as exc:
                self.set_aside(row_id, f"unreadable ({exc})")
                continue
            found.append(Pending(row_id, source, bool(deferred), bool(reported)))
        return found

    def drop_expired(self) -> int:
        cutoff = time.time() - PENDING_MAX_AGE
        return self.db.execute("DELETE FROM pending WHERE queued_at < ?", (cutoff,)).rowcount

    def claim(self, slot: int, ip: str | None = None) -> tuple:
        """(ip, newest pending id): the oldest address no worker is on (or `ip`) whose alerts
        may be looked up now, its alerts now claimed by `slot`, in one transaction, so that
        two workers never claim one address; (None, newest id) when there is none. Alerts
        released `not_before` a time to come (a backoff, or their /64's share spent) wait, and
        so do the newer alerts of the same address: a noisy address cannot skip its backoff."""
        def take() -> tuple:
            row = self.db.execute(
                "SELECT ip FROM pending WHERE slot IS NULL AND set_aside IS NULL AND (? IS NULL OR ip = ?) "
                "AND ip NOT IN (SELECT ip FROM pending WHERE slot IS NOT NULL OR not_before > ?) "
                "ORDER BY id LIMIT 1", (ip, ip, time.time())).fetchone()
            if row is not None:
                self.db.execute("UPDATE pending SET slot = ? WHERE ip = ? AND slot IS NULL AND set_aside IS NULL",
                                (slot, row[0]))
            return (row[0] if row else None), self.last_pending_id()
        return self.transaction(take)

    def release(self, slot: int, ip: str | None = None, deferred: bool = False,
                not_before: float | None = None) -> None:
        """Give back the alerts `slot` claimed (for `ip`, or all), marked deferred if they
        must now wait for the budget or VirusTotal; `not_before`: not claimed again before then."""
        self.db.execute("UPDATE pending SET slot = NULL, deferred = MAX(deferred, ?), "
                        "not_before = COALESCE(?, not_before) WHERE slot = ? AND (? IS NULL OR ip = ?)",
                        (int(deferred), not_before, slot, ip, ip))

    def back_off(self, slot: int, ip: str, delays: tuple) -> float:
        """Give back `ip`'s alerts after a failure of that address alone, not to be claimed
        again for the next of `delays` (seconds, by attempt); when that is."""
        attempts = self.db.execute("SELECT COALESCE(MAX(attempts), 0) FROM pending WHERE slot = ? AND ip = ?",
                                   (slot, ip)).fetchone()[0]
        until = time.time() + delays[min(attempts, len(delays) - 1)]
        self.db.execute("UPDATE pending SET slot = NULL, deferred = 1, not_before = ?, attempts = attempts + 1 "
                        "WHERE slot = ? AND ip = ?", (until, slot, ip))
        return until

    def mark_reported(self, row_id: int) -> None:
        """The alert's error event was sent: it is not sent again while the alert waits."""
        self.db.execute("UPDATE pending SET reported = 1 WHERE id = ?", (row_id,))

    def set_aside(self, row_id: int, why: str) -> None:
        """An alert that could not be handled: kept out of every claim (and counted by --status)
        until it expires, so it costs only itself."""
        self.db.execute("UPDATE pending SET slot = NULL, set_aside = ? WHERE id = ?", (why[:200], row_id))

    def defer_waiting(self) -> None:
        """Every alert no worker is on now waits for the budget or VirusTotal."""
        self.db.execute("UPDATE pending SET deferred = 1 WHERE slot IS NULL AND deferred = 0")

    def claiming_slots(self) -> list:
        return [slot for (slot,) in self.db.execute("SELECT DISTINCT slot FROM pending WHERE slot IS NOT NULL")]

    def last_pending_id(self) -> int:
        return self.db.execute("SELECT COALESCE(MAX(id), 0) FROM pending").fetchone()[0]

    def pending_summary(self) -> tuple:
        """(alerts waiting, queued_at of the oldest or None, alerts set aside) in the store."""
        count, oldest = self.db.execute("SELECT COUNT(*), MIN(queued_at) FROM pending "
                                        "WHERE set_aside IS NULL").fetchone()
        aside = self.db.execute("SELECT COUNT(*) FROM pending WHERE set_aside IS NOT NULL").fetchone()[0]
        return count, oldest, aside

    def done(self, row_id: int) -> None:
        self.db.execute("DELETE FROM pending WHERE id = ?", (row_id,))


def open_state(home: str, log) -> State:
    """The state. RefusedError when the directory is a symbolic link: var/ is the wazuh
    group's, so whoever made the link chose where the cache, its budget and its locks are.
    StateError (the reason) when it cannot be used: nothing is looked up then, since no
    request could be counted."""
    directory = f"{home}/var/{STATE_DIR}"
    if spool.is_link(directory):
        raise RefusedError(f"{directory} is a symbolic link: not used, nothing looked up "
                           "(remove the link: the integration makes the directory itself)")
    try:
        try:
            posix.mkdir(directory, 0o770)
        except FileExistsError:
            pass
        return State(directory, log)
    except (OSError, sqlite3.Error) as exc:
        raise StateError(f"the state in {directory} is unusable ({exc})") from None

# SPDX-License-Identifier: MIT
"""The plain files of the state directory (<home>/var/virustotal_ip): the queue of alerts the
runs hand to the lookup workers, the daily hit and miss tallies, and the lock files. No SQL
(state.py) and no decision: what to queue, count or lock is the caller's.

Why files and not SQLite for the queue and the tallies: integratord waits for every run, and a
SQLite commit waits for the disk's fsyncs and for any other writer. A run writes one file
(written under a hidden name, then renamed, so a reader never sees part of one) or appends
one byte, and never waits on another process.
"""
from __future__ import annotations

import fcntl
import posix      # not os: see codec.py
import time

from .address import ip_text, parse_ip
from .codec import json_dumps, json_loads

QUEUE_DIR = "queue"                         # in the state directory: alerts queued by runs, a file each
TALLY = {"hit": "hits", "miss": "misses"}   # <kind>: its tally files, <prefix>-YYYY-MM-DD
TALLY_KIND = {prefix: kind for kind, prefix in TALLY.items()}
STALE_HIDDEN = 3600                         # seconds after which a half-written queue file is a killed run's
S_IFMT, S_IFLNK = 0o170000, 0o120000        # stat.S_IFMT and S_IFLNK, without importing stat


# --------------------------------------------------------------------------- the queue

def enqueue(queue_dir: str, source: dict, deferred: bool) -> None:
    """Queue one alert for the lookup worker: one file, written under a hidden name and
    renamed. Like the alerts integratord reads from alerts.json, it survives the run, a killed
    worker and a restart, not a power cut in the seconds before the kernel writes it out.
    OSError if it cannot be written; nothing is left behind then."""
    name = f"{time.time_ns():020d}-{posix.getpid()}.json"
    hidden = f"{queue_dir}/.{name}"
    data = json_dumps({"source": source, "deferred": deferred}).encode()
    flags = posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW
    try:
        fd = posix.open(hidden, flags, 0o660)
    except FileNotFoundError:
        try:
            posix.mkdir(queue_dir, 0o770)
        except FileExistsError:
            pass
        fd = posix.open(hidden, flags, 0o660)
    try:
        try:
            while data:
                data = data[posix.write(fd, data):]
        finally:
            posix.close(fd)
        posix.rename(hidden, f"{queue_dir}/{name}")
    except BaseException:
        try:
            posix.unlink(hidden)
        except OSError:
            pass
        raise


def queue_names(names) -> list:
    """Those of `names` that enqueue writes (<20 digits of ns>-<pid>.json), sorted."""
    return sorted(name for name in names if name[:20].isdigit() and name[20:21] == "-" and name.endswith(".json"))


def queued_at(name: str) -> float:
    """When a queue file was written, from its name (enqueue)."""
    return int(name[:20]) / 1e9


def listing(queue_dir: str) -> tuple:
    """(names, stale hidden names) of the queue's files, oldest first, from one listing. A
    hidden file older than STALE_HIDDEN was left by a run killed while writing it: never
    renamed, so never an alert a run reported queued."""
    try:
        names = posix.listdir(queue_dir)
    except FileNotFoundError:
        return [], []
    stale = f"{time.time_ns() - STALE_HIDDEN * 10**9:020d}"
    hidden = [f".{name}" for name in queue_names(n[1:] for n in names if n.startswith(".")) if name < stale]
    return queue_names(names), hidden


def read_record(queue_dir: str, name: str) -> dict | None:
    """The alert source of a queue file, with its "deferred"; None if the file is gone.
    ValueError (or OSError) if it is not what enqueue writes: only the script writes there, and
    never part of a file, so that is someone else's file, and its address goes into a URL."""
    try:
        with open(f"{queue_dir}/{name}", "rb") as fh:
            record = json_loads(fh.read().decode("utf-8", "replace"))
    except FileNotFoundError:
        return None
    try:
        source = dict(record["source"], deferred=bool(record["deferred"]))
    except (TypeError, KeyError):
        raise ValueError("not a queue record") from None
    if not all(isinstance(source.get(key), str) for key in ("ip", "full_log", "alert_id")):
        raise ValueError("not an alert source")
    packed = parse_ip(source["ip"])              # the run wrote it canonical
    if packed is None or ip_text(packed) != source["ip"]:
        raise ValueError("not an address")
    return source


def remove(queue_dir: str, names: list) -> list:
    """Remove these queue files; the names that could not be removed (someone else's
    directory there, say: the caller remembers them as taken)."""
    kept = []
    for name in names:
        try:
            posix.unlink(f"{queue_dir}/{name}")
        except FileNotFoundError:
            pass
        except OSError:
            kept.append(name)
    return kept


# --------------------------------------------------------------------------- hit and miss tallies

def count(state_dir: str, kind: str) -> None:
    """One more "hit" or "miss" today: one byte appended to today's tally file (its size is
    the count), not a SQLite write, which would cost a journal and fsyncs on every alert."""
    day = time.strftime("%Y-%m-%d", time.gmtime())
    fd = posix.open(f"{state_dir}/{TALLY[kind]}-{day}",
                    posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT | posix.O_NOFOLLOW, 0o660)
    try:
        posix.write(fd, b".")
    finally:
        posix.close(fd)


def tallies(state_dir: str) -> dict:
    """{(kind, day): path} of the tally files ("hit" or "miss")."""
    found = {}
    for name in posix.listdir(state_dir):
        kind, day = TALLY_KIND.get(name.split("-", 1)[0]), name.split("-", 1)[-1]
        if kind and day != name:
            found[kind, day] = f"{state_dir}/{name}"
    return found


def tally_counts(state_dir: str, first_day: str) -> dict:
    """{"hit": {day: n}, "miss": {day: n}} from first_day (YYYY-MM-DD) on."""
    counted: dict = {"hit": {}, "miss": {}}
    for (kind, day), path in tallies(state_dir).items():
        if day >= first_day:
            counted[kind][day] = posix.stat(path).st_size
    return counted


def prune_tallies(state_dir: str, first_day: str) -> None:
    for (_kind, day), path in tallies(state_dir).items():
        if day < first_day:
            posix.unlink(path)


# --------------------------------------------------------------------------- locks and links

def lock(state_dir: str, name: str, blocking: bool = True) -> int | None:
    """An exclusive flock on <state>/<name>.lock; the file descriptor, or None if busy."""
    fd = posix.open(f"{state_dir}/{name}.lock", posix.O_RDWR | posix.O_CREAT | posix.O_NOFOLLOW, 0o660)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        posix.close(fd)
        return None
    except BaseException:
        posix.close(fd)
        raise
    return fd


def is_link(path: str) -> bool:
    """`path` is a symbolic link (lstat: the link itself, never where it points)."""
    try:
        return posix.lstat(path).st_mode & S_IFMT == S_IFLNK
    except OSError:
        return False         # absent, or not ours to see: opening it fails on its own

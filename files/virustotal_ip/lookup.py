# SPDX-License-Identifier: MIT
"""One alert, or one --drain: the cache, then the budget, then VirusTotal; the result is
delivered to analysisd, or the alert deferred for --drain when VirusTotal may not be asked now.

Every lookup ends in one of three typed outcomes: Found (an entry, from the cache or just
fetched), Deferred (the budget or a quota outage said not now), Failed (VirusTotal gave no
usable answer). A cache hit touches nothing here but the cache read and the hit tally.
"""
from __future__ import annotations

import posix      # not os: see codec.py
import time

from . import state as st
from .address import ipv6_prefix, parse_ip
from .codec import shown
from .settings import CONFIG_FILE, Settings
from .verdict import is_fresh, is_usable, needs_pivot_request
from .wazuh import (
    EXIT_OK,
    EXIT_UNDELIVERED,
    DeliveryError,
    Log,
    Target,
    build_enrichment,
    encode_message,
    error_event,
    send,
)

TYPE_CHECKING = False        # typing.TYPE_CHECKING, without importing typing on every alert
if TYPE_CHECKING:
    from collections.abc import Callable

    from .deadline import Deadline


# --------------------------------------------------------------------------- outcomes

class Found:
    """VirusTotal's facts for the IP: from the cache (`cached`), or just fetched and stored."""
    __slots__ = ("cached", "entry")

    def __init__(self, entry: dict, cached: bool) -> None:
        self.entry, self.cached = entry, cached


class Deferred:
    """Not asked now (budget, quota outage, a lookup holding the lock): the alert waits for --drain.
    `until`: set when only this address must wait, until then (its IPv6 /64's share of the
    day is spent); other addresses may still be looked up."""
    __slots__ = ("until", "why")

    def __init__(self, why: str, until: float | None = None) -> None:
        self.why, self.until = why, until


class Failed:
    """`error` is a virustotal.VTError; `report` says whether to send an error event."""
    __slots__ = ("error", "report")

    def __init__(self, error, report: bool) -> None:
        self.error, self.report = error, report


class Lookup:
    """The cache, then the budget, then VirusTotal, for one IP at a time; what it needs is
    passed explicitly. It decides nothing about where results go (Outbox does)."""

    def __init__(self, *, cfg: Settings, log: Log, state: st.State | None, api_key: str,
                 timeout: float, retries: int, started: float, time_budget: float,
                 serialised: bool = True) -> None:
        """`serialised`: hold lookup.lock for the whole lookup (an inline run, --check), so that
        two runs for one IP make one request. A worker's IP is its own by claim (worker.py):
        it holds the lock only to check the budget and count its request."""
        self.cfg, self.log, self.state = cfg, log, state
        self.api_key, self.timeout, self.retries = api_key, timeout, retries
        self._bound = (started, time_budget)      # the run's time bound, from `started` (monotonic)
        self.serialised = serialised
        self._prepaid = False                     # a request counted by _reserve, not yet made
        self._prefix = None                       # the IPv6 /64 the requests being made count against
        self._deadline = None
        self._client = None
        self._breaker = None

    @property
    def deadline(self) -> Deadline:
        """The run's time bound, made on first use: a cache hit never waits, so never loads it."""
        if self._deadline is None:
            from .deadline import Deadline
            self._deadline = Deadline(*self._bound)
        return self._deadline

    # -- the parts a miss needs, made on first use
    def client(self):
        if self._client is None:
            from .virustotal import VTClient
            self._client = VTClient(api_url=self.cfg.api_url, api_key=self.api_key, timeout=self.timeout,
                                    retries=self.retries, deadline=self.deadline, on_request=self._count_request)
        return self._client

    def breaker(self):
        """The quota breaker, or None when there is no state to keep it in."""
        if self._breaker is None and self.state is not None:
            from .budget import QuotaBreaker
            self._breaker = QuotaBreaker(self.state, self.cfg.rate_limit_per_minute, self.cfg.daily_quota,
                                         self.log, self.cfg.ipv6_prefix_requests_per_day)
        return self._breaker

    def _count_request(self) -> None:
        """The client's hook, before each request it makes."""
        if self._prepaid:
            self._prepaid = False
        else:
            self._record_request()

    def _record_request(self) -> None:
        if self.state is not None:
            try:
                self.state.record_request(self._prefix)
            except st.Error as exc:
                self.log.warning(f"cannot record a VT request in the cache ({exc})")

    # -- the lookup
    def from_cache(self, ip: str, count: bool = True) -> Found | None:
        """The cached entry if it may be used now; None on a miss (the stale entry is kept for
        fetch). `count`: tally the hit or miss (once per alert)."""
        entry = self._cached(ip)
        self.log.debug(f"{ip}: {'cached' if entry is not None else 'not cached'}")
        if is_usable(entry, self.cfg, time.time()):
            if count:
                self._count("hit")
            return Found(entry, True)
        if count:
            self._count("miss")
        return None

    def lookup(self, ip: str, count: bool = True) -> Found | Deferred | Failed:
        found = self.from_cache(ip, count)
        return found if found is not None else self.fetch(ip)

    def fetch(self, ip: str) -> Found | Deferred | Failed:
        """A miss: VirusTotal, within the budget."""
        cfg, now = self.cfg, time.time()
        if not self.api_key:
            from .virustotal import VTError
            return Failed(VTError("NoApiKey", "no VirusTotal API key: set api_key in "
                                  f"{CONFIG_FILE} or <api_key> in ossec.conf"), True)
        lock = None
        try:
            if self.state is not None and self.serialised:
                lock = self._lock()
                if lock is None:
                    return Deferred("another lookup held the lock for the whole time budget")
            # another run may have looked it up meanwhile (while we waited for the lock)
            entry = self._cached(ip)
            if is_usable(entry, cfg, now):
                return Found(entry, True)
            return self._fetch(ip, entry if entry is not None and is_fresh(entry, cfg, now) else None)
        finally:
            if lock is not None:
                posix.close(lock)

    def _lock(self) -> int | None:
        """lookup.lock within the run's time bound; None if it stayed busy."""
        from .deadline import DeadlineExceeded
        try:
            with self.deadline.watch():
                return self.state.lock("lookup")
        except DeadlineExceeded:
            return None

    def _reserve(self, ip: str) -> Deferred | None:
        """Why no request for `ip` may be made now, or None. Unserialised, the check and the
        request's count are one step under lookup.lock, so parallel workers never overrun the
        budget (nor a /64's share of it)."""
        if self.serialised or self.state is None:
            return self.blocked_now(ip)
        lock = self._lock()
        if lock is None:
            return Deferred("another lookup held the lock for the whole time budget")
        try:
            held = self.blocked_now(ip)
            if held is None:
                self._record_request()
                self._prepaid = True
            return held
        finally:
            posix.close(lock)

    def blocked_now(self, ip: str | None = None) -> Deferred | None:
        """Why no VirusTotal request may be made now (budget, quota or outage; for `ip`, also its
        IPv6 /64's share of the day), or None."""
        breaker, now = self.breaker(), time.time()
        if breaker is None:
            return None
        why = breaker.blocked(now)
        if why:
            return Deferred(why)
        why = breaker.prefix_blocked(None if ip is None else prefix_of(ip), now)
        if why:
            from .budget import next_utc_midnight    # (loaded by breaker())
            return Deferred(why, until=next_utc_midnight(now))
        return None

    def _answered(self) -> None:
        breaker = self.breaker()
        if breaker is not None:
            breaker.answered()

    def _fetch(self, ip: str, entry: dict | None) -> Found | Deferred | Failed:
        from .virustotal import VTError
        cfg = self.cfg
        self._prefix = prefix_of(ip)
        try:
            if entry is None:
                held = self._reserve(ip)
                if held:
                    return held
                facts = self.client().ip_object(ip)
                self._answered()
                entry = {"found": facts is not None, "facts": facts, "fetched_at": time.time()}
                self._store(ip, entry)
            if needs_pivot_request(entry, cfg, time.time()):
                held = self._reserve(ip)
                if held:
                    return held
                try:
                    entry["pivot"] = self.client().communicating_files(ip, cfg.pivot_limit)
                    self._answered()
                except VTError as exc:
                    if exc.quota:
                        raise
                    # a failed pivot leaves the verdict as it was (integration.md step 5)
                    self.log.warning(f"pivot for {ip} failed: {exc.code}: {exc.description}")
                    entry["pivot_failed"] = True
                self._store(ip, entry)
        except VTError as exc:
            # A 429, and a VirusTotal that does not answer, open the breaker: the next lookups
            # are deferred instead of each waiting out the whole timeout again.
            breaker = self.breaker() if exc.quota or exc.code == "Timeout" else None
            return Failed(exc, True if breaker is None else breaker.tripped(exc.code, time.time()))
        finally:
            self._prepaid, self._prefix = False, None
        return Found(entry, False)

    def _cached(self, ip: str) -> dict | None:
        if self.state is None:
            return None
        try:
            return self.state.get(ip)
        except (st.Error, ValueError) as exc:
            self.log.warning(f"cache read failed ({exc}); looking {ip} up")
            return None

    def _store(self, ip: str, entry: dict) -> None:
        if self.state is not None:
            try:
                self.state.put(ip, entry, self.cfg.cache_max_entries)
            except st.Error as exc:
                self.log.warning(f"cache write failed ({exc}); result not cached")

    def _count(self, name: str) -> None:
        if self.state is not None:
            try:
                self.state.count(name)
            except (st.Error, OSError):
                pass  # statistics only


def prefix_of(ip: str) -> str | None:
    """The IPv6 /64 a looked-up address counts against; None for IPv4."""
    packed = parse_ip(ip)
    return None if packed is None else ipv6_prefix(packed)


class Outbox:
    """Where results go: analysisd's queue socket, or the pending store for --drain when
    VirusTotal may not be asked now (or the result could not be delivered)."""

    def __init__(self, *, home: str, cfg: Settings, log: Log, state: st.State | None, debug: bool) -> None:
        self.home, self.cfg, self.log, self.state, self.debug = home, cfg, log, state, debug

    def deliver(self, event: dict, source: dict) -> None:
        raw = encode_message(event, source)
        if self.debug:
            print(f"# Request result from VT server: {raw.decode('utf-8', 'replace')}")
        send(self.home, raw)
        self.log.debug(f"sent {len(raw)} bytes for alert {shown(source.get('alert_id'))} to analysisd")

    def send_verdict(self, found: Found, source: dict, how: str = "") -> None:
        """The enrichment of one alert, sent, and its line in integrations.log."""
        event = build_enrichment(found.entry, self.cfg, time.time(), source, cached=found.cached)
        self.deliver(event, source)
        self.log.info(f"{source['ip']}: {event['verdict']} ({','.join(event['reasons'])})"
                      f"{' from cache' if found.cached else ''} for alert {shown(source['alert_id'])}{how}")

    def defer(self, source: dict, why: str) -> bool:
        """Keep the alert in the pending store, deferred for --drain (a lookup in the run that
        may not be made now, or whose verdict could not be delivered)."""
        if self.state is None:
            self.log.error(f"cannot defer the lookup of {source['ip']} ({why}): cache unusable")
            return False
        try:
            self.state.defer(source)
        except st.Error as exc:
            self.log.error(f"cannot defer the lookup of {source['ip']} ({why}): {exc}")
            return False
        self._waits(source, why, deferred=True)
        return True

    def queue(self, source: dict, why: str, deferred: bool) -> bool:
        """Hand the alert to the lookup worker (the queue, state.enqueue): written without
        waiting for the disk. `deferred`: it waits for the budget or VirusTotal."""
        try:
            self.state.enqueue(source, deferred)
        except OSError as exc:
            self.log.error(f"cannot queue the lookup of {source['ip']} ({why}): {exc.strerror or exc}")
            return False
        self._waits(source, why, deferred)
        return True

    def _waits(self, source: dict, why: str, deferred: bool) -> None:
        """integrations.log's line for an alert that now waits: for the budget or VirusTotal
        (deferred), or only for the worker (debug)."""
        if deferred:
            self.log.info(f"deferred lookup of {source['ip']} for alert {shown(source['alert_id'])}: {why}")
        else:
            self.log.debug(f"{source['ip']}: alert {shown(source['alert_id'])} queued: {why}")

    def flush_pending(self, ip: str, found: Found, slot: int | None = None) -> int:
        """Send the alerts waiting for this IP (only those `slot` claimed, for a worker);
        returns how many were sent. Each alert leaves the store in the transaction that sends
        it: one that cannot be removed (a full disk) is not sent, so it is never sent twice. A
        worker's alerts that could not be sent are given back, deferred, and DeliveryError
        raised: the worker stops."""
        if self.state is None:
            return 0
        sent = 0
        for row_id, source, deferred in self.state.pending_for(ip, slot):
            event = build_enrichment(found.entry, self.cfg, time.time(), source, cached=found.cached)
            if deferred:
                event["deferred"] = True
            try:
                try:
                    self.state.remove_while(row_id, lambda event=event, source=source: self.deliver(event, source))
                except st.Error as exc:
                    raise DeliveryError(f"the pending store cannot be written ({exc})") from None
            except DeliveryError as exc:
                self.log.error(f"alerts for {ip} stay queued: {exc}")
                if slot is not None:
                    from contextlib import suppress      # (not on a hit's path)
                    with suppress(st.Error):             # the store may be what failed
                        self.state.release(slot, ip, deferred=True)
                    raise
                break
            sent += 1
        if sent:
            self.log.info(f"sent {sent} {'queued' if slot is not None else 'deferred'} enrichment(s) for {ip}")
        return sent


def queue_for_worker(run: Lookup, out: Outbox, target: Target, job: Callable[[], dict]) -> int | None:
    """The worker path of a miss: queue the alert and start a worker if a slot is free. The
    exit status, or None when it could not be queued (the caller looks it up inline)."""
    log, ip, source = run.log, target.ip, target.source
    # While the budget (or this address's /64 share) or an outage allows no request, a worker
    # would start only to stop: the alert waits, deferred, and none is started (a storm would
    # start one per alert).
    held = run.blocked_now(ip)
    if held:
        return EXIT_OK if out.queue(source, held.why, deferred=True) else None
    if not out.queue(source, "for the lookup worker", deferred=False):
        return carry(run, source, job)
    from .worker import start
    try:
        slot = start(run.state, run.cfg, job())
    except OSError as exc:
        log.error(f"{ip}: cannot start a lookup worker ({exc.strerror or exc}); --drain will look it up")
        return EXIT_OK
    log.debug(f"{ip}: lookup worker {'started on slot ' + str(slot) if slot is not None else 'already running'}")
    return EXIT_OK


def carry(run: Lookup, source: dict, job: Callable[[], dict]) -> int | None:
    """The store cannot take the alert (a full disk): a worker outside the slots gets it in
    its job and looks it up, so integratord still does not wait. None if no worker could be
    started (the caller looks it up inline)."""
    from .worker import spawn
    try:
        spawn(None, -1, {**job(), "alerts": [source]})
    except OSError as exc:
        run.log.error(f"{source['ip']}: cannot start a lookup worker ({exc.strerror or exc}); looking it up now")
        return None
    run.log.warning(f"{source['ip']}: the pending store cannot keep alert {shown(source['alert_id'])}; "
                    "a lookup worker carries it (lost if that worker is killed)")
    return EXIT_OK


def handle_alert(run: Lookup, out: Outbox, target: Target, job: Callable[[], dict] | None = None) -> int:
    """The integratord path: one address in, at most one enrichment or error event out. With
    lookup_mode worker (and a usable state), a miss is queued for the lookup worker and the
    run ends without waiting on VirusTotal; `job` is what the worker needs (worker.start)."""
    ip = target.ip
    # debug (integrator.debug=2, or the seed's manual test): the lookup is made in the run, so
    # that its result is printed where the administrator reads it.
    if run.cfg.lookup_mode == "worker" and run.state is not None and job is not None and not out.debug:
        outcome = run.from_cache(ip)
        if outcome is None:
            status = queue_for_worker(run, out, target, job)
            if status is not None:
                return status
            outcome = run.fetch(ip)
    else:
        outcome = run.lookup(ip)
    return send_outcome(run, out, target, outcome)


def send_outcome(run: Lookup, out: Outbox, target: Target, outcome: Found | Deferred | Failed) -> int:
    """What a looked-up alert gets: its verdict, deferral, or error event; the exit status.
    Also a lookup worker's for the alerts it carries (worker.look_up_carried)."""
    log, ip, source = run.log, target.ip, target.source
    try:
        if isinstance(outcome, Found):
            out.send_verdict(outcome, source)
            if run.cfg.lookup_mode != "worker":
                out.flush_pending(ip, outcome)   # (a worker sends the alerts it queued itself)
            return EXIT_OK
        if isinstance(outcome, Deferred):
            return EXIT_OK if out.defer(source, outcome.why) else EXIT_UNDELIVERED
        exc = outcome.error
        log.error(f"{ip}: VirusTotal error {exc.code}: {exc.description}")
        if exc.transient:
            out.defer(source, f"after {exc.code}")
        if outcome.report:
            out.deliver(error_event(exc.code, exc.description, source), source)
        return EXIT_OK
    except DeliveryError as exc:
        log.error(f"{ip}: {exc}")
        if isinstance(outcome, Found):
            out.defer(source, "delivery failed")
        return EXIT_UNDELIVERED


def drain(run_for, out: Outbox, seconds: float) -> int:
    """--drain: the lookup worker's loop in the foreground, on a free slot, for `seconds` at
    most. `run_for(seconds_left)` makes the Lookup for one address."""
    from .worker import lock_name, note_pid, slots, work
    state, log = out.state, out.log
    if state is None:
        return EXIT_UNDELIVERED
    until = time.monotonic() + seconds
    try:
        state.prune_counts(st.stats_first_day(time.time()))
    except (OSError, st.Error) as exc:
        log.warning(f"--drain: cannot prune old hit/miss counts ({exc})")
    for slot in range(slots(out.cfg)):
        guard = state.lock(lock_name(slot), blocking=False)
        if guard is not None:
            note_pid(guard, posix.getpid())
            return work(slot, guard, state, run_for, out, log, until=until, name="--drain")
    log.info("--drain: every lookup worker slot is busy; they look the queue up")
    return EXIT_OK

# SPDX-License-Identifier: MIT
"""One address: the cache, then the budget, then VirusTotal. Where the result goes is the
caller's (the run sends a cache hit, the worker everything else).

Every lookup ends in one of three typed outcomes: Found (an entry, from the cache or just
fetched), Deferred (the budget, an outage, or a state that cannot count the request said not
now), Failed (VirusTotal gave no usable answer).

One rule for the budget: a request is made only after it was counted in the state, under
lookup.lock, together with the check that the budget allows it; a request that cannot be
counted is not made. So parallel workers never overrun the budget, and a full disk or a
locked store spends nothing.
"""
from __future__ import annotations

import posix      # not os: see codec.py
import time

from . import spool
from . import state as st
from .address import ipv6_prefix, parse_ip
from .budget import QuotaBreaker, next_utc_midnight
from .deadline import Deadline, DeadlineExceeded
from .settings import CONFIG_FILE, Settings
from .verdict import is_fresh, is_usable, needs_pivot_request
from .wazuh import Log

TYPE_CHECKING = False        # typing.TYPE_CHECKING, without importing typing on every alert
if TYPE_CHECKING:
    from .virustotal import VTClient, VTError


# --------------------------------------------------------------------------- outcomes

class Found:
    """VirusTotal's facts for the IP: from the cache (`cached`), or just fetched and stored."""
    __slots__ = ("cached", "entry")

    def __init__(self, entry: dict, cached: bool) -> None:
        self.entry, self.cached = entry, cached


class Deferred:
    """Not asked now: the alert waits. `until`: set when only this address must wait (its IPv6
    /64's share of the day is spent); other addresses may still be looked up."""
    __slots__ = ("until", "why")

    def __init__(self, why: str, until: float | None = None) -> None:
        self.why, self.until = why, until


class Failed:
    """`error` is a virustotal.VTError. `report`: whether to send an error event for it (an
    outage is reported once). `outage`: VirusTotal is out for every address (a 429, a timeout,
    or failures of several addresses in a row), not only for this one."""
    __slots__ = ("error", "outage", "report")

    def __init__(self, error: VTError, report: bool, outage: bool) -> None:
        self.error, self.report, self.outage = error, report, outage


class NotNowError(Exception):
    """Raised before a request that may not be made now (the client then makes none)."""

    def __init__(self, deferred: Deferred) -> None:
        super().__init__(deferred.why)
        self.deferred = deferred


def prefix_of(ip: str) -> str | None:
    """The IPv6 /64 a looked-up address counts against; None for IPv4."""
    packed = parse_ip(ip)
    return None if packed is None else ipv6_prefix(packed)


# --------------------------------------------------------------------------- the lookup

class Lookup:
    """The cache, then the budget, then VirusTotal, for one address at a time, within one time
    bound (`started`, monotonic, plus `time_budget` seconds); what it needs is passed in."""

    def __init__(self, *, cfg: Settings, log: Log, state: st.State, api_key: str, timeout: float,
                 retries: int, started: float, time_budget: float) -> None:
        self.cfg, self.log, self.state = cfg, log, state
        self.api_key, self.timeout, self.retries = api_key, timeout, retries
        self.deadline = Deadline(started, time_budget)
        self.breaker = QuotaBreaker(state, cfg.rate_limit_per_minute, cfg.daily_quota, log,
                                    cfg.ipv6_prefix_requests_per_day)
        self._client = None

    def client(self, ip: str) -> VTClient:
        """The VirusTotal client, counting each request for `ip` before it is made. Made on a
        miss only: importing `requests` costs more than the rest of a cache hit."""
        from .virustotal import VTClient
        if self._client is None:
            self._client = VTClient(api_url=self.cfg.api_url, api_key=self.api_key, timeout=self.timeout,
                                    retries=self.retries, deadline=self.deadline, on_request=None)
        self._client.on_request = lambda: self.count_request(ip)
        return self._client

    def from_cache(self, ip: str, count: bool = True) -> Found | None:
        """The cached entry if it may be used now; None on a miss. `count`: tally the hit or
        miss (once per alert, by the run)."""
        entry = self._cached(ip)
        found = Found(entry, True) if is_usable(entry, self.cfg, time.time()) else None
        self.log.debug(f"{ip}: {'cached' if entry is not None else 'not cached'}")
        if count:
            self._tally("hit" if found else "miss")
        return found

    def lookup(self, ip: str, count: bool = True) -> Found | Deferred | Failed:
        found = self.from_cache(ip, count)
        return found if found is not None else self.fetch(ip)

    def blocked_now(self, ip: str | None = None) -> Deferred | None:
        """Why no VirusTotal request may be made now (budget, quota or outage; for `ip`, also
        its IPv6 /64's share of the day), or None."""
        now = time.time()
        why = self.breaker.blocked(now)
        if why:
            return Deferred(why)
        why = self.breaker.prefix_blocked(None if ip is None else prefix_of(ip), now)
        return Deferred(why, until=next_utc_midnight(now)) if why else None

    def count_request(self, ip: str) -> None:
        """The client's hook before each request (retries too): the budget's check and the
        request's count in one step under lookup.lock. NotNowError when it may not be made or
        cannot be counted: then it is not made."""
        fd = None
        try:
            with self.deadline.watch():
                fd = spool.lock(self.state.dir, "lookup")
        except DeadlineExceeded:
            if fd is not None:              # the watchdog fired just after the lock was taken
                posix.close(fd)
            raise NotNowError(Deferred("another lookup held the lock for the whole time budget")) from None
        except OSError as exc:
            raise NotNowError(self._uncounted(ip, exc.strerror or str(exc))) from None
        try:
            held = self.blocked_now(ip)
            if held is not None:
                raise NotNowError(held)
            try:
                self.state.record_request(prefix_of(ip))
            except st.Error as exc:
                raise NotNowError(self._uncounted(ip, str(exc))) from None
        finally:
            posix.close(fd)

    def _uncounted(self, ip: str, why: str) -> Deferred:
        self.log.error(f"{ip}: a VirusTotal request could not be counted in the state ({why}); not made")
        return Deferred(f"the request could not be counted ({why})")

    def fetch(self, ip: str) -> Found | Deferred | Failed:
        """A miss: VirusTotal, within the budget."""
        from .virustotal import NO_TIME_LEFT, VTError
        if not self.api_key:
            return Failed(VTError("NoApiKey", f"no VirusTotal API key: set api_key in {CONFIG_FILE} or "
                                              "<api_key> in ossec.conf"), True, False)
        now = time.time()
        entry = self._cached(ip)            # another worker or run may have looked it up meanwhile
        if is_usable(entry, self.cfg, now):
            return Found(entry, True)
        try:
            return Found(self._fetch(ip, entry if entry is not None and is_fresh(entry, self.cfg, now) else None),
                         False)
        except NotNowError as exc:
            return exc.deferred
        except VTError as exc:
            if exc.code == NO_TIME_LEFT:     # no request was made: nothing failed
                return Deferred("no time was left in this lookup's time bound")
            return self._failed(ip, exc)

    def _fetch(self, ip: str, entry: dict | None) -> dict:
        """The IP object (unless `entry` is a fresh one), then the pivot if the verdict needs
        it; stored. NotNowError or VTError."""
        from .virustotal import VTError
        if entry is None:
            facts = self.client(ip).ip_object(ip)
            self.breaker.answered()
            entry = {"found": facts is not None, "facts": facts, "fetched_at": time.time()}
            self._store(ip, entry)
        if needs_pivot_request(entry, self.cfg, time.time()):
            try:
                entry["pivot"] = self.client(ip).communicating_files(ip, self.cfg.pivot_limit)
                self.breaker.answered()
            except VTError as exc:
                if exc.quota:
                    raise
                # a failed pivot leaves the verdict as it was (docs/verdict.md)
                self.log.warning(f"pivot for {ip} failed: {exc.code}: {exc.description}")
                entry["pivot_failed"] = True
            self._store(ip, entry)
        return entry

    def _failed(self, ip: str, exc: VTError) -> Failed:
        """A 429 or a VirusTotal that does not answer opens the breaker for every address at
        once; another transient failure is this address's until several fail in a row."""
        now = time.time()
        if exc.quota or exc.code == "Timeout":
            return Failed(exc, self.breaker.tripped(exc.code, now), True)
        if exc.transient:
            report = self.breaker.failed(ip, exc.code, now)
            return Failed(exc, True if report is None else report, report is not None)
        return Failed(exc, True, False)

    def _cached(self, ip: str) -> dict | None:
        try:
            return self.state.get(ip)
        except (st.Error, ValueError) as exc:
            self.log.warning(f"cache read failed ({exc}); looking {ip} up")
            return None

    def _store(self, ip: str, entry: dict) -> None:
        try:
            self.state.put(ip, entry, self.cfg.cache_max_entries)
        except st.Error as exc:
            self.log.warning(f"cache write failed ({exc}); result not cached")

    def _tally(self, kind: str) -> None:
        try:
            spool.count(self.state.dir, kind)
        except OSError:
            pass  # statistics only

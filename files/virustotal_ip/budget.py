# SPDX-License-Identifier: MIT
"""The request budget and the quota breaker: whether a VirusTotal request may be made now.

Four limits, all counted in the state's request log, so they hold across concurrent runs:
the manager's per-minute rate and daily quota (its share of the key's, written by the role),
the day's share of one IPv6 /64 (ipv6_prefix_requests_per_day: an attacker rotating through a
/64's addresses misses the cache on each one), and the breaker VirusTotal itself trips with a
429. A 429 stops requests for a minute; a 429 again within two minutes of that block ending
means the daily (or monthly) quota is spent, and requests stop until 00:00 UTC. A request
VirusTotal does not answer in time (after its retries) stops requests for a minute too, so
that the next lookups do not each wait out the whole timeout. Any other failure (a 5xx, no
connection) is one address's until OUTAGE_ADDRESSES different addresses fail in a row with no
answer between them: that is an outage, and stops requests for a minute as well. The first
outage is reported once as an error event; the next successful answer closes it.
"""
from __future__ import annotations

from .codec import iso_utc

QUOTA_MINUTE_BLOCK = 60
OUTAGE_ADDRESSES = 3          # different addresses failing in a row: VirusTotal is out, not one address
OUTAGE_PREFIX = "Outage:"     # an outage_code opened by failed(), before the last failure's code


def next_utc_midnight(now: float) -> float:
    return (int(now) // 86400 + 1) * 86400


def outage_until(code: str, last_until: float, now: float) -> float:
    """When requests may resume after a 429 (pure)."""
    repeated = code == "QuotaExceededError" and last_until > 0 and now - last_until < 120
    return next_utc_midnight(now) if repeated else now + QUOTA_MINUTE_BLOCK


def budget_reason(*, requests_last_minute: int, requests_today: int, rate_limit: int, daily_quota: int,
                  now: float) -> str | None:
    """Why the manager's own budget allows no request now, or None (pure)."""
    if rate_limit and requests_last_minute >= rate_limit:
        return f"rate_limit_per_minute={rate_limit} reached"
    if daily_quota and requests_today >= daily_quota:
        return f"daily_quota={daily_quota} reached; no requests until {iso_utc(next_utc_midnight(now))}"
    return None


def prefix_reason(*, prefix: str, requests_today: int, limit: int, now: float) -> str | None:
    """Why no request may be made now for an address of this IPv6 /64 (its share of the day
    is spent), or None (pure)."""
    if limit and requests_today >= limit:
        return (f"ipv6_prefix_requests_per_day={limit} reached for {prefix}; its addresses wait until "
                f"{iso_utc(next_utc_midnight(now))}")
    return None


def failing_streak(streak: list, ip: str) -> list:
    """The different addresses that failed since VirusTotal last answered, `ip` now among
    them (pure; the newest OUTAGE_ADDRESSES at most)."""
    return ([a for a in streak if a != ip] + [ip])[-OUTAGE_ADDRESSES:]


class QuotaBreaker:
    """The budget and the 429 breaker over one state (state.State)."""

    def __init__(self, state, rate_limit: int, daily_quota: int, log, prefix_limit: int = 0) -> None:
        self.state, self.rate_limit, self.daily_quota, self.log = state, rate_limit, daily_quota, log
        self.prefix_limit = prefix_limit

    def _until(self) -> float:
        return float(self.state.get_state("quota_until", "0") or 0)

    def blocked(self, now: float) -> str | None:
        """Why no VT request may be made now (quota outage, budget), or None."""
        until = self._until()
        if now < until:
            code = self.state.get_state("outage_code")
            if code == "Timeout":
                return f"VirusTotal did not answer (Timeout); no requests until {iso_utc(until)}"
            if code.startswith(OUTAGE_PREFIX):
                return (f"VirusTotal failed for {OUTAGE_ADDRESSES} different addresses in a row "
                        f"({code[len(OUTAGE_PREFIX):]}); no requests until {iso_utc(until)}")
            return f"VirusTotal quota exceeded; no requests until {iso_utc(until)}"
        minute = self.state.requests_since(now - 60) if self.rate_limit else 0
        today = self.state.requests_since(next_utc_midnight(now) - 86400) if self.daily_quota else 0
        return budget_reason(requests_last_minute=minute, requests_today=today, rate_limit=self.rate_limit,
                             daily_quota=self.daily_quota, now=now)

    def prefix_blocked(self, prefix: str | None, now: float) -> str | None:
        """Why no request may be made now for an address of this IPv6 /64 (None: an IPv4
        address), or None."""
        if prefix is None or not self.prefix_limit:
            return None
        today = self.state.requests_since(next_utc_midnight(now) - 86400, prefix)
        return prefix_reason(prefix=prefix, requests_today=today, limit=self.prefix_limit, now=now)

    def tripped(self, code: str, now: float) -> bool:
        """A 429, or a request VirusTotal did not answer in time (code Timeout): start or
        extend the outage; True if this outage has not been reported yet."""
        until = outage_until(code, self._until(), now)
        report = self.state.get_state("outage_reported") != "1"
        self.state.set_state(quota_until=until, outage_reported=1, outage_code=code)
        self.log.warning(f"VirusTotal {code}: no requests until {iso_utc(until)}")
        return report

    def failed(self, ip: str, code: str, now: float) -> bool | None:
        """A failure of one address (not a 429 or a timeout): None while it may be that
        address's alone; once OUTAGE_ADDRESSES different addresses failed in a row, the outage
        is opened as tripped() opens it, and whether it is to be reported is returned."""
        streak = failing_streak([a for a in self.state.get_state("failing").split(" ") if a], ip)
        outage = len(streak) >= OUTAGE_ADDRESSES
        # An outage starts the count again: after its minute, three more must fail to reopen it.
        self.state.set_state(failing="" if outage else " ".join(streak))
        return self.tripped(OUTAGE_PREFIX + code, now) if outage else None

    def answered(self) -> None:
        """VirusTotal answered: close a reported outage, forget the failing addresses."""
        if self.state.get_state("failing"):
            self.state.set_state(failing="")
        if self.state.get_state("outage_reported") == "1":
            self.state.set_state(quota_until=0, outage_reported=0)
            self.log.info("VirusTotal answered again; quota outage over")

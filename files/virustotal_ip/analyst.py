# SPDX-License-Identifier: MIT
"""The analyst and maintenance commands: --check IP, --status, --drain, --stop-workers (see
cli.py for usage).

Run as root, they first become the wazuh user, before they read or write any file: logs/ and
var/ are the wazuh group's, so root following a link planted there would write wherever its
maker chose. They refuse to run as root where there is no wazuh user, and refuse a state
directory or integrations.log that is a symbolic link. The files they create are wazuh's, as
integratord's runs need. Nothing is sent to Wazuh by --check and --status; --drain delivers
the deferred enrichments.
"""
from __future__ import annotations

import argparse
import os
import pwd
import sys
import time

from . import settings, spool
from .address import ip_text, lookup_address, parse_ip, skip_reason
from .budget import next_utc_midnight
from .codec import iso_utc, shown
from .lookup import Deferred, Found, Lookup
from .state import STATE_DIR, STATS_DAYS, State, StateError, open_state, stats_first_day
from .verdict import is_fresh
from .worker import Crew, drain, lookups, slots, status_lines, stop_all, waiting
from .wazuh import (
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    EXIT_BAD_INPUT,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_UNDELIVERED,
    Delivery,
    RefusedError,
    build_enrichment,
    integrations_log,
)

DRAIN_SECONDS = 50            # --drain ends before cron starts the next one
WAZUH_USER = "wazuh"          # the user Wazuh's daemons, integratord among them, run as


def ids_to_take(euid: int, account: pwd.struct_passwd | None) -> tuple | None:
    """(uid, gid) to take before touching any file: the wazuh user's when run as root, None
    otherwise. RefusedError when root has no one else to become: it does not go on as root."""
    if euid != 0:
        return None
    if account is None:
        raise RefusedError(f"run as root, this command becomes the {WAZUH_USER} user before it reads or "
                           f"writes a file, and this machine has no {WAZUH_USER} user; nothing done")
    if account.pw_uid == 0:
        raise RefusedError(f"the {WAZUH_USER} user is root (uid 0); nothing done")
    return account.pw_uid, account.pw_gid


def become_wazuh() -> None:
    """Run as root, become the wazuh user for good (real, effective and saved ids, no other
    groups); RefusedError (still root, nothing touched) when that cannot be done."""
    euid = os.geteuid()
    try:
        account = pwd.getpwnam(WAZUH_USER) if euid == 0 else None
    except KeyError:
        account = None
    ids = ids_to_take(euid, account)
    if ids is not None:
        try:
            os.setgroups([])
            os.setgid(ids[1])
            os.setuid(ids[0])
        except OSError as exc:     # a container without CAP_SETUID: still root, so say it on stderr
            raise RefusedError(f"cannot become the {WAZUH_USER} user ({exc.strerror}); nothing done") from None


def refuse_links(home: str) -> None:
    """RefusedError if integrations.log or the state directory is a symbolic link: checked
    before the config is read, as its warnings go to the log."""
    for path in (integrations_log(home).path, f"{home}/var/{STATE_DIR}"):
        if spool.is_link(path):
            raise RefusedError(f"{path} is a symbolic link: not used, nothing done "
                               "(remove the link: the integration makes its own)")


def format_check(ip: str, found: Found, cfg) -> str:
    source = {"alert_id": "", "rule": "", "ip": ip}
    e = build_enrichment(found.entry, cfg, time.time(), source, cached=found.cached)
    age = "" if e.get("age_days") is None else f" ({e['age_days']} days ago)"
    lines = [f"IP:          {ip}", f"Verdict:     {e['verdict']}",
             f"Reasons:     {', '.join(e['reasons'])}"]
    if e["found"]:
        lines += [
            f"Engines:     malicious {e['counts']['malicious']}, suspicious {e['counts']['suspicious']}"
            f" (weighted {e['weighted_malicious']:.2f})",
            f"Reputation:  {e['reputation']}",
            f"Tags:        {', '.join(e['tags']) or '-'}",
            f"Analysed:    {e['last_analysis_date'] or 'never'}{age}",
            f"Owner:       {e['as_owner'] or '-'} ({e['country'] or '-'}, {e['network'] or '-'})",
        ]
        if e["pivot"]["used"]:
            lines.append(f"Pivot:       {e['pivot']['strong_mal_files']} of "
                         f"{e['pivot']['total_files']} communicating files strongly malicious")
    else:
        lines.append("VirusTotal:  not found (never seen)")
    lines += [f"Source:      {'cache' if found.cached else 'VirusTotal'}", f"Permalink:   {e['permalink']}"]
    return "\n".join(lines)


def format_status(state: State, cfg) -> str:
    now = time.time()
    today = time.strftime("%Y-%m-%d", time.gmtime(now))
    entries = state.entries()
    fresh = sum(1 for entry in entries if is_fresh(entry, cfg, now))
    counted = spool.tally_counts(state.dir, stats_first_day(now))
    daily_hits, daily_misses = counted["hit"], counted["miss"]
    for day, n in state.old_miss_counts(stats_first_day(now)).items():     # counted by 1.2
        daily_misses[day] = daily_misses.get(day, 0) + n
    hits, misses = sum(daily_hits.values()), sum(daily_misses.values())
    ratio = f"{100.0 * hits / (hits + misses):.1f}%" if hits + misses else "n/a"
    until = float(state.get_state("quota_until", "0") or 0)
    quota = f"exceeded, no requests until {iso_utc(until)}" if now < until else "ok"
    pending, oldest, aside = waiting(state)
    limit, daily, managers = cfg.rate_limit_per_minute, cfg.daily_quota, cfg.budget_managers
    if cfg.lookup_mode == "inline":
        lookups = "inline, within integratord's call (lookup_mode inline)"
    else:
        busy = status_lines(state, cfg)
        lookups = (f"by lookup workers, at most {slots(cfg)} at once; "
                   + (f"running: {'; '.join(busy)}" if busy else "none running"))
    budget = (f"{f'{limit} requests a minute' if limit else 'no per-minute limit'}, "
              f"{f'{daily} a day' if daily else 'no daily cap'}")
    if managers > 1:
        budget += f": this manager's share of a key {managers} managers share"
    return "\n".join([
        f"Cache:             {len(entries)} entries ({fresh} fresh), {state.path}",
        f"Cache hit ratio:   {ratio} ({hits} hits, {misses} misses in {STATS_DAYS} days; today "
        f"{daily_hits.get(today, 0)}/{daily_misses.get(today, 0)})",
        f"VT requests today: {state.requests_since(next_utc_midnight(now) - 86400)}"
        f"{f' of {daily} allowed' if daily else ''} "
        f"(last minute: {state.requests_since(now - 60)}"
        f"{f' of {limit} allowed' if limit else ', no local rate limit'})",
        f"Budget:            {budget}",
        f"Quota:             {quota}",
        f"Pending lookups:   {pending}"
        f"{f' (oldest queued {iso_utc(oldest)})' if pending else ''}"
        f"{f'; {aside} set aside (could not be handled; they expire after 7 days)' if aside else ''}",
        f"Lookups:           {lookups}",
    ])


def run_cli(args: list, home: str, started: float) -> int:
    parser = argparse.ArgumentParser(
        prog="custom-virustotal_ip.py",
        description="VirusTotal IP reputation for Wazuh: analyst and maintenance commands.")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", metavar="IP", help="look one IP up and print the verdict with its reasons")
    mode.add_argument("--status", action="store_true", help="cache, request, quota and pending figures")
    mode.add_argument("--drain", action="store_true", help="look up deferred alerts (cron, every minute)")
    mode.add_argument("--stop-workers", action="store_true",
                      help="stop this installation's lookup workers and wait for them (the uninstall)")
    parser.add_argument("--api-key", default=os.environ.get("VT_API_KEY", ""),
                        help="VirusTotal key (default: $VT_API_KEY, then api_key in the config file)")
    parser.add_argument("--options", metavar="FILE", help="a JSON options file applied last")
    parser.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT, help="seconds per request")
    parser.add_argument("--retries", type=int, default=DEFAULT_RETRIES, help="retries per request")
    ns = parser.parse_args(args)
    become_wazuh()
    log = integrations_log(home, echo=True)
    if ns.stop_workers:
        stopped, running = stop_all()
        print(f"stopped {stopped} lookup worker(s)" + (f"; {running} still running" if running else ""))
        return EXIT_INTERNAL if running else EXIT_OK
    refuse_links(home)
    cfg = settings.load(home, ns.options, log)
    timeout, retries = min(max(ns.timeout, 1), 300), min(max(ns.retries, 0), 10)
    try:
        state = open_state(home, log)
    except StateError as exc:
        log.error(str(exc))
        return EXIT_INTERNAL
    if ns.status:
        print(format_status(state, cfg))
        return EXIT_OK
    if ns.drain:
        crew = Crew(state=state, delivery=Delivery(home=home, cfg=cfg, log=log, debug=False), log=log,
                    lookup_for=lookups(cfg=cfg, log=log, state=state, api_key=ns.api_key or cfg.api_key,
                                       timeout=timeout, retries=retries))
        return drain(crew, slots(cfg), DRAIN_SECONDS - (time.monotonic() - started))
    run = Lookup(cfg=cfg, log=log, state=state, api_key=ns.api_key or cfg.api_key, timeout=timeout,
                 retries=retries, started=started, time_budget=timeout * (retries + 1))
    packed = parse_ip(ns.check)
    if packed is None:
        print(f"error: {shown(ns.check)} is not an IP address", file=sys.stderr)
        return EXIT_BAD_INPUT
    why = skip_reason(packed, cfg.skip_non_global, cfg.allowlist)
    if why:
        print(f"{ip_text(packed)}: {why}; the integration never looks it up")
        return EXIT_OK
    ip = ip_text(lookup_address(packed))
    outcome = run.lookup(ip)
    if isinstance(outcome, Found):
        print(format_check(ip, outcome, cfg))
        return EXIT_OK
    if isinstance(outcome, Deferred):
        print(f"{ip}: not looked up now: {outcome.why}", file=sys.stderr)
    else:
        print(f"{ip}: VirusTotal error {outcome.error.code}: {outcome.error.description}", file=sys.stderr)
    return EXIT_UNDELIVERED

# SPDX-License-Identifier: MIT
"""The entry points: integratord's run (one alert), and the analyst commands (analyst.py).

    custom-virustotal_ip ALERT_FILE API_KEY HOOK_URL [debug] [OPTIONS_FILE] [TIMEOUT] [RETRIES] ...
    custom-virustotal_ip.py --check IP [--api-key KEY] [--options FILE]
    custom-virustotal_ip.py --status
    custom-virustotal_ip.py --drain          # cron or a systemd timer, every minute, as user wazuh
    custom-virustotal_ip.py --stop-workers   # the uninstall: stop the lookup workers, wait for them

Exit status: wazuh.EXIT_* (0 done or nothing to do, 1 internal error or interrupted, 2 unusable
command line or alert, 3 not delivered, 4 refused: the state directory or integrations.log is a
symbolic link, or an analyst command run as root finds no wazuh user to become). No traceback
is ever printed: main() turns any error into one line in integrations.log (a refusal of an
analyst command: on stderr only).
"""
from __future__ import annotations

import posix      # not os: see codec.py
import sys
import time

from . import settings
from .codec import shown
from .wazuh import (
    EXIT_BAD_INPUT,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_REFUSED,
    InputError,
    NoLookup,
    RefusedError,
    integrations_log,
    parse_integratord_argv,
    read_alert,
    target_of,
)


def wazuh_home() -> str:
    """<home> from this file's place: <home>/integrations/virustotal_ip/cli.py. The wrapper
    and the entry point put the physical path of integrations/ on sys.path (cd -P, realpath),
    so __file__ needs no resolving of its own."""
    if __file__.startswith("/"):
        return __file__.rsplit("/", 3)[0]
    import os
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))


def run_integratord(args: list, home: str, started: float) -> int:
    log = integrations_log(home)
    try:
        opts = parse_integratord_argv(args)
        log.debug_enabled = opts["debug"]
        if opts["debug"]:
            print("# Running VirusTotal IP script")
        alert = read_alert(opts["alert"])
    except InputError as exc:
        log.error(str(exc))
        return EXIT_BAD_INPUT
    if opts["debug"]:              # nothing of this is built on the non-debug (cache-hit) path
        print(f"# Opening alert file at '{opts['alert']}' with '{alert}'")
        log.debug(f"alert file {shown(opts['alert'])}: alert {shown(alert.get('id'))}, options file "
                  f"{shown(opts['options'] or None)}, timeout {opts['timeout']} s, retries {opts['retries']}")
    cfg = settings.load(home, opts["options"], log)
    target = target_of(alert, cfg)
    if isinstance(target, NoLookup):
        # Nothing more is loaded or opened for these (no SQLite): most alerts of a noisy
        # trigger carry a private or allowlisted address.
        (log.warning if target.warning else log.info)(target.message)
        return EXIT_OK
    from .lookup import Lookup, Outbox, handle_alert
    from .state import open_state
    state = open_state(home, log)
    run = Lookup(cfg=cfg, log=log, state=state, api_key=opts["api_key"] or cfg.api_key,
                 timeout=opts["timeout"], retries=opts["retries"],
                 started=started, time_budget=opts["timeout"] * (opts["retries"] + 1))

    def job() -> dict:
        """What a lookup worker needs to look this alert up as this run would (worker.py), made
        on a miss only. integratord deletes the <options> file after the run: its object goes."""
        options = settings.read_json_object(opts["options"], "options file", Quiet()) if opts["options"] else None
        return {"api_key": run.api_key, "timeout": opts["timeout"], "retries": opts["retries"],
                "debug": opts["debug"], "options": options}
    return handle_alert(run, Outbox(home=home, cfg=cfg, log=log, state=state, debug=opts["debug"]), target, job)


class Quiet:
    """A log for what was already reported once: its warnings are not repeated."""

    def warning(self, msg: str) -> None:
        pass


def report_crash(exc: BaseException, what: str, home: str | None = None) -> None:
    """One line in integrations.log for an unexpected error: its type and where."""
    where = exc.__traceback__
    while where is not None and where.tb_next is not None:
        where = where.tb_next
    place = (f"{where.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]} line {where.tb_lineno}"
             if where is not None else "unknown place")
    integrations_log(home or wazuh_home()).error(f"{what} {type(exc).__name__} at {place}: {shown(str(exc), 200)}")


def main(argv: list) -> int:
    started = time.monotonic()
    posix.umask(0o007)   # cache, lock and log files are for root and the wazuh group only
    home = wazuh_home()
    analyst = len(argv) > 1 and argv[1].startswith("-")
    try:
        if analyst:
            from .analyst import run_cli      # not loaded on integratord's path
            return run_cli(argv[1:], home, started)
        return run_integratord(argv[1:], home, started)
    except RefusedError as exc:
        # Nothing was done. An analyst reads it on stderr, not in the log: root may not have
        # become wazuh, and the log may be the link refused.
        if analyst:
            print(f"error: {exc}", file=sys.stderr)
        else:
            integrations_log(home).error(str(exc))
        return EXIT_REFUSED
    except KeyboardInterrupt:
        integrations_log(home).error("interrupted (SIGINT); stopped")
        return EXIT_INTERNAL
    except Exception as exc:  # the last line of defence: one log line, never a traceback
        report_crash(exc, "internal error", home)
        return EXIT_INTERNAL
    except BaseException as exc:
        from .deadline import DeadlineExceeded    # the watchdog only a lookup arms
        if not isinstance(exc, DeadlineExceeded):
            raise                                 # SystemExit: argparse's usage errors and --help
        integrations_log(home).error("the run's time bound (timeout x (retries + 1)) was reached; stopped")
        return EXIT_INTERNAL


def main_and_exit(argv: list) -> None:
    """The wrapper's entry point: main(), then exit without the interpreter's teardown of
    every module and object (about a tenth of a cache hit). Nothing is lost by skipping it:
    logs are written unbuffered, SQLite commits as it goes, and stdio is flushed here."""
    status = main(argv)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    posix._exit(status)

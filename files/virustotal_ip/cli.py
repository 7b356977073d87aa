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
    report_crash,
    target_of,
    wazuh_home,
)

__all__ = ["main", "main_and_exit", "wazuh_home"]


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
        (log.warning if target.warning else log.info)(target.message)
        return EXIT_OK
    # Imported only now: most alerts of a noisy trigger carry a private or allowlisted address,
    # and end above without loading SQLite and the rest (a measured fifth of such a run).
    from .run import look_up_alert
    return look_up_alert(home, opts, cfg, target, log, started)


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

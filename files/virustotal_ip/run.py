# SPDX-License-Identifier: MIT
"""integratord's run of one alert once its address is known (cli.py read the alert): a cache
hit is sent here; a miss is handed to the lookup worker, or settled in the foreground by the
worker's own code (lookup_mode inline; debug, so that the result is printed where the
administrator reads it; a queue that cannot be written). No usable state: no request can be
counted, so none is made, and the alert's error event says why.
"""
from __future__ import annotations

from . import settings
from . import state as st
from .lookup import Lookup
from .wazuh import EXIT_OK, EXIT_UNDELIVERED, Delivery, DeliveryError, EventTooLargeError, Log, Quiet, Target
from .worker import Crew, hand_off, look_up_now, slots, undelivered


def look_up_alert(home: str, opts: dict, cfg, target: Target, log: Log, started: float) -> int:
    """The exit status of the run for `target` (wazuh.EXIT_*)."""
    delivery = Delivery(home=home, cfg=cfg, log=log, debug=opts["debug"])
    try:
        state = st.open_state(home, log)
    except st.StateError as exc:
        return undelivered(delivery, log, target.source, f"{exc}; not looked up")
    run = Lookup(cfg=cfg, log=log, state=state, api_key=opts["api_key"] or cfg.api_key,
                 timeout=opts["timeout"], retries=opts["retries"],
                 started=started, time_budget=opts["timeout"] * (opts["retries"] + 1))
    crew = Crew(state=state, delivery=delivery, log=log, lookup_for=lambda _seconds_left: run)
    found = run.from_cache(target.ip)
    if found is not None:
        try:
            delivery.verdict(found.entry, target.source, cached=True)
        except (DeliveryError, EventTooLargeError) as exc:
            log.error(f"{target.ip}: {exc}")
            return EXIT_UNDELIVERED
        return EXIT_OK
    if cfg.lookup_mode == "worker" and not opts["debug"]:
        status = hand_off(run, crew, target.source, lambda: worker_job(run, opts))
        if status is not None:
            return status
    return look_up_now(crew, target.source, slots(cfg))


def worker_job(run: Lookup, opts: dict) -> dict:
    """What a lookup worker needs to look the alert up as this run would (worker.main), made
    on a miss only. integratord deletes the <options> file after the run: its object goes."""
    options = settings.read_json_object(opts["options"], "options file", Quiet()) if opts["options"] else None
    return {"api_key": run.api_key, "timeout": opts["timeout"], "retries": opts["retries"],
            "debug": opts["debug"], "options": options}

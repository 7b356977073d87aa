"""VirusTotal failing in every way docs/virustotal-api.md lists, the network, and analysisd.

An error is an error event (rule 199904), never a verdict; the run always ends within
timeout x (retries + 1) + 2 s; an undeliverable result is kept for --drain.
"""
from __future__ import annotations

import socket

import pytest
from harness import API_KEY, sample_alert


def only_event(r) -> dict:
    assert r.rc == 0, r.log
    [(_, msg)] = r.events()
    assert list(msg) == ["virustotal_ip", "integration"]     # no original_full_log with errors
    return msg["virustotal_ip"]


@pytest.mark.parametrize("status,code,expected", [
    (401, "WrongCredentialsError", "WrongCredentialsError"),
    (401, "UserNotActiveError", "UserNotActiveError"),
    (403, "ForbiddenError", "ForbiddenError"),
    (400, "BadRequestError", "BadRequestError"),
])
def test_permanent_vt_errors_become_one_error_event_without_retry(home, vt, status, code, expected):
    vt.fail(status=status, code=code, message="nope")
    e = only_event(home.run())
    assert e == {"error": expected, "description": "nope",
                 "source": {"alert_id": "1753101678.8211", "rule": "100003", "ip": "64.62.197.132"}}
    assert len(vt.requests) == 1
    assert len(home.waiting()) == 0


def test_wrong_api_key_is_reported_as_vt_reports_it(home, vt):
    e = only_event(home.run(api_key="not-the-key"))
    assert e["error"] == "WrongCredentialsError"


def test_vt_error_message_repeating_the_key_reaches_neither_the_log_nor_the_event(home, vt):
    # VT v3's error format (docs/virustotal-api.md, "Errors"), its message quoting the key it was sent
    vt.fail(status=401, code="WrongCredentialsError", message=f"Wrong API key {API_KEY}; {API_KEY} is not valid")
    r = home.run()
    e = only_event(r)
    assert e["description"] == "Wrong API key [api key]; [api key] is not valid"
    assert "WrongCredentialsError: Wrong API key [api key]" in r.log
    assert API_KEY not in home.log_path.read_text()
    assert [raw for raw in r.messages if API_KEY.encode() in raw] == []
    assert API_KEY not in r.stdout + r.stderr


def test_ip_unknown_to_virustotal_is_found_0_and_cached(home, vt):
    r = home.run(sample_alert("8.8.4.4"))
    e = r.event()["virustotal_ip"]
    assert (e["found"], e["verdict"], e["source"]["ip"]) == (0, "unknown", "8.8.4.4")
    assert home.run(sample_alert("8.8.4.4")).event()["virustotal_ip"]["cached"] is True
    assert len(vt.requests) == 1


def test_404_without_not_found_code_is_an_error_not_a_verdict(home, vt):
    vt.fail(status=404, raw="<html>404 from a proxy</html>")
    assert only_event(home.run())["error"] == "404"


@pytest.mark.parametrize("status,code", [(500, "InternalError"), (503, "TransientError"),
                                         (504, "DeadlineExceededError")])
def test_server_errors_are_retried_then_reported_and_deferred(home, vt, status, code):
    vt.fail(status=status, code=code, message="try later")
    e = only_event(home.run(timeout=5, retries=2))
    assert e["error"] == code
    assert len(vt.requests) == 3          # retries + 1
    assert [ip for ip, _, _ in home.waiting()] == ["64.62.197.132"]


def test_html_error_page_is_reported_with_its_http_status(home, vt):
    vt.fail(status=502, raw="<html><body>Bad gateway</body></html>")
    e = only_event(home.run(retries=0))
    assert (e["error"], e["description"]) == ("502", "HTTP 502 from VirusTotal")


@pytest.mark.parametrize("spec,why", [
    ({"status": 200, "raw": ""}, "VirusTotal answered 200 without a JSON object"),
    ({"status": 200, "raw": "<html>hello</html>"}, "VirusTotal answered 200 without a JSON object"),
    ({"body": {"data": {"id": "x"}}}, "no data.attributes object"),
    ({"body": {"data": []}}, "no data.attributes object"),
    ({"body": {"data": {"attributes": {"last_analysis_stats": []}}}}, "wrong type"),
    ({"body": {"data": {"attributes": {"last_analysis_stats": {"malicious": "11"}}}}}, "not a count"),
    ({"body": {"data": {"attributes": {"last_analysis_stats": {"malicious": -1}}}}}, "not a count"),
    ({"body": {"data": {"attributes": {"reputation": "bad"}}}}, "reputation is not an integer"),
    ({"body": {"data": {"attributes": {"tags": "tor"}}}}, "wrong type"),
    ({"body": {"data": {"attributes": {"last_analysis_date": "yesterday"}}}}, "not an epoch time"),
    ({"body": {"data": {"attributes": {"last_analysis_date": 10**30}}}}, "not an epoch time"),
    ({"status": 200, "raw": "[" * 50000}, "VirusTotal answered 200 without a JSON object"),
    ({"status": 200, "raw": '{"data": {"attributes": {"reputation": 1' + "0" * 5000 + "}}}"},
     "VirusTotal answered 200 without a JSON object"),
], ids=["empty", "html", "no-attributes", "data-list", "stats-list", "count-string", "count-negative",
        "reputation-string", "tags-string", "date-string", "date-huge", "deep-json", "huge-int"])
def test_malformed_200_answers_are_errors_never_verdicts(home, vt, spec, why):
    vt.fail(**spec)
    e = only_event(home.run())
    assert e["error"] == "MalformedResponse" and why in e["description"]
    assert home.sql("SELECT COUNT(*) FROM cache") == [(0,)]


def test_missing_optional_attributes_default_to_nothing_found(home, vt):
    vt.fail(body={"data": {"type": "ip_address", "id": "64.62.197.132", "attributes": {}}})
    e = home.run().event()["virustotal_ip"]
    assert (e["verdict"], e["counts"], e["age_days"], e["as_owner"]) == \
        ("unknown", {"malicious": 0, "suspicious": 0}, None, "")


def test_huge_whois_and_per_engine_results_are_not_forwarded(home, vt):
    vt.fixtures["64.62.197.132"]["attributes"]["whois"] = "x" * 200000
    vt.fixtures["64.62.197.132"]["attributes"]["tags"] = [f"tag{i}" for i in range(500)]
    r = home.run()
    [raw] = r.messages
    assert len(raw) < 8000
    e = r.event()["virustotal_ip"]
    assert "whois" not in e and "last_analysis_results" not in e and len(e["tags"]) == 32


def test_redirects_are_not_followed_so_the_key_stays_home(home, vt):
    vt.fail(status=302, code="Found")
    assert only_event(home.run())["error"] == "Found"
    assert len(vt.requests) == 1


def test_connection_refused_is_an_error_event_within_the_time_bound(home, vt):
    # Bound but not listening: connections are refused, and no other process (another test's
    # server, in parallel) can take the port meanwhile, as it could after a close().
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        home.config({"api_url": f"http://127.0.0.1:{s.getsockname()[1]}/api/v3"})
        r = home.run(timeout=1, retries=2)
    e = only_event(r)
    assert e["error"] == "ConnectionError" and "cannot reach VirusTotal" in e["description"]
    assert r.elapsed < 1 * 3 + 2


@pytest.mark.parametrize("spec", [{"delay": 30}, {"hang": True}, {"drip": 0.3}],
                         ids=["slow", "no-answer", "dribbled-body"])
def test_vt_that_never_finishes_answering_ends_the_run_within_the_bound(home, vt, spec):
    vt.fail(**spec)
    r = home.run(timeout=1, retries=1)
    e = only_event(r)
    assert e["error"] == "Timeout"
    assert r.elapsed <= 1 * (1 + 1) + 2, r.elapsed
    assert [ip for ip, _, _ in home.waiting()] == ["64.62.197.132"]


@pytest.mark.parametrize("mode", ["inline", "worker"])
def test_missing_queue_socket_exits_3_and_keeps_the_result_for_drain(home, vt, mode):
    """Inline, the run says it could not deliver (exit 3); with the lookup worker the run only
    queued the alert (exit 0) and the worker, which could not deliver, keeps it."""
    home.config({"api_url": vt.url, "lookup_mode": mode})
    home.close_queue(unlink=True)
    r = home.run()
    assert (r.rc, r.stderr) == (3 if mode == "inline" else 0, "")
    assert "is missing (is wazuh-analysisd running?)" in r.log
    assert [ip for ip, _, _ in home.waiting()] == ["64.62.197.132"]
    home.open_queue()
    r = home.cli("--drain")
    assert r.rc == 0
    e = r.event()["virustotal_ip"]
    assert (e["deferred"], e["cached"], e["source"]["alert_id"]) == (True, True, "1753101678.8211")
    assert len(vt.requests) == 1


@pytest.mark.parametrize("mode", ["inline", "worker"])
def test_an_error_event_analysisd_did_not_take_exits_3_and_is_not_kept(home, vt, mode):
    """Exit 3 is "not delivered"; only what can be resent is kept: an error event for a lasting
    VirusTotal error (a wrong key) is not, the next alert reports it again (README, exit table)."""
    home.config({"api_url": vt.url, "lookup_mode": mode})
    home.close_queue(unlink=True)
    r = home.run(api_key="not-the-key")
    assert (r.rc, r.stderr) == (3 if mode == "inline" else 0, "")
    assert "WrongCredentialsError" in r.log and "is missing (is wazuh-analysisd running?)" in r.log
    assert home.waiting() == []


@pytest.mark.parametrize("mode", ["inline", "worker"])
def test_analysisd_down_with_socket_file_present_exits_3(home, vt, mode):
    home.config({"api_url": vt.url, "lookup_mode": mode})
    home.close_queue(unlink=False)               # the file stays; nobody reads it
    r = home.run()
    assert (r.rc, r.stderr) == (3 if mode == "inline" else 0, "")
    assert "refused the message (wazuh-analysisd is down)" in r.log

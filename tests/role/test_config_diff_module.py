"""The module config_diff (plugins/modules/config_diff.py): the change to the integration's
JSON configuration as a diff for `--diff`, with the API key masked wherever it appears."""
from __future__ import annotations

import json
import sys

from harness import REPO

sys.path.insert(0, str(REPO / "plugins" / "modules"))
from config_diff import MASK, NEW_KEY, diff

PATH = "/var/ossec/etc/custom-virustotal_ip.json"


def config(key: str, **values) -> str:
    return json.dumps({"api_key": key, "mal_strong_min": 3, **values}, indent=2) + "\n"


def test_a_changed_threshold_is_shown_and_the_unchanged_key_masked_on_both_sides():
    result = diff(config("k" * 64), config("k" * 64, mal_strong_min=5), PATH)
    assert result["changed"]
    shown = result["diff"]["before"] + result["diff"]["after"]
    assert "k" * 64 not in shown and shown.count(f'"api_key": "{MASK}"') == 2
    assert '"mal_strong_min": 3' in result["diff"]["before"] and '"mal_strong_min": 5' in result["diff"]["after"]


def test_a_new_key_alone_is_a_change_and_says_so_without_either_key():
    result = diff(config("old-key-0123456789"), config("new-key-9876543210"), PATH)
    assert result["changed"]
    shown = json.dumps(result)
    assert "old-key-0123456789" not in shown and "new-key-9876543210" not in shown
    assert f'"api_key": "{NEW_KEY}"' in result["diff"]["after"]


def test_the_same_text_is_no_change():
    assert not diff(config("k"), config("k"), PATH)["changed"]


def test_a_first_install_shows_the_whole_file_with_the_key_masked():
    result = diff(None, config("secret-key-abcdef"), PATH)
    assert result["changed"] and result["diff"]["before"] == ""
    assert "secret-key-abcdef" not in result["diff"]["after"] and MASK in result["diff"]["after"]


def test_a_file_that_is_not_json_is_not_shown_even_where_it_holds_the_key_elsewhere():
    broken = '{"api_key": secret-key-abcdef, "note": "secret-key-abcdef"'
    result = diff(broken, config("secret-key-abcdef"), PATH)
    assert "secret-key-abcdef" not in json.dumps(result)
    assert "not a JSON object: not shown" in result["diff"]["before"]


def test_the_key_is_masked_where_it_appears_outside_api_key_and_json_escaped():
    key = 'k"ey\\with-escapes'
    result = diff(config(key, api_url=f"https://proxy.example/{key}"), config(key, mal_strong_min=4), PATH)
    shown = result["diff"]["before"] + result["diff"]["after"]
    assert json.dumps(key)[1:-1] in config(key)                    # how the key is written in the file
    assert json.dumps(key)[1:-1] not in shown and key not in shown
    assert f'"api_url": "https://proxy.example/{MASK}"' in result["diff"]["before"]

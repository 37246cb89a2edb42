"""Timeouts, intervals and rates refuse NaN, infinity and negative values.

Settings took key_cache_ttl_s = nan, graceful_timeout_s = -1 or inf and
key_rate_per_s = nan. Each bad value is given through load_settings (as an
ENGRAM_* variable, so through the same coercion a flag or file gets) and must raise
SettingsError naming the key, the allowed range and an example; good values load.
"""

from __future__ import annotations

import pytest

from engram.config import SettingsError, load_settings

FLOAT_KEYS = ("key_rate_per_s", "key_cache_ttl_s", "graceful_timeout_s", "consolidation_interval_s")


@pytest.mark.parametrize("key", FLOAT_KEYS)
@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "-1", "1e12"])
def test_bad_float_setting_is_refused(tmp_path, key, raw):
    with pytest.raises(SettingsError) as info:
        load_settings(env={f"ENGRAM_{key.upper()}": raw, "ENGRAM_DATA_DIR": str(tmp_path)})
    message = str(info.value)
    assert message.startswith(f"{key} (from env ENGRAM_{key.upper()}):")
    assert "allowed:" in message and "finite" in message
    assert f"example: {key} = " in message


@pytest.mark.parametrize("key, raw", [("key_cache_ttl_s", "0"), ("graceful_timeout_s", "0"), ("key_rate_per_s", "0.5"),
                                      ("consolidation_interval_s", "60")])
def test_good_float_setting_loads(tmp_path, key, raw):
    settings, sources = load_settings(env={f"ENGRAM_{key.upper()}": raw})
    assert getattr(settings, key) == float(raw)


@pytest.mark.parametrize("key", ["key_rate_per_s", "consolidation_interval_s"])
def test_zero_rate_or_interval_is_refused(key):
    with pytest.raises(SettingsError, match=rf"^{key} \(from env ENGRAM_{key.upper()}\):"):
        load_settings(env={f"ENGRAM_{key.upper()}": "0"})

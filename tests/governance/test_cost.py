"""Cost in integer nano-USD, the decimal header format, UTC budget periods, rate-limit header durations."""

from __future__ import annotations

import calendar

from gateway.config import Price
from gateway.governance.cost import PriceRates, format_usd, period_id, seconds_to_rollover
from gateway.governance.headers import format_duration
from providers.base import Usage


def test_cost_is_exact_in_nano_usd():
    rates = PriceRates(Price(input=0.15, output=0.60, cached_input=0.075))
    usage = Usage(prompt_tokens=1000, completion_tokens=500, cached_tokens=400)
    # 600 * 0.15 + 400 * 0.075 + 500 * 0.60 = 90 + 30 + 300 = 420 USD per million -> 420_000 nano-USD
    assert rates.cost_nanos(usage) == 420_000
    assert PriceRates(Price(input=0.0375, output=0.15)).cost_nanos(Usage(prompt_tokens=1)) == 38  # 37.5 rounds up
    assert PriceRates(Price(input=2.5, output=10)).cost_nanos(Usage(prompt_tokens=3, completion_tokens=7)) == 77_500


def test_cached_tokens_default_to_the_input_price_and_never_exceed_the_prompt():
    rates = PriceRates(Price(input=1.0, output=0.0))
    assert rates.cost_nanos(Usage(prompt_tokens=10, cached_tokens=50)) == 10_000


def test_sum_of_many_costs_has_no_drift():
    rates = PriceRates(Price(input=0.15, output=0.60))
    total = sum(rates.cost_nanos(Usage(prompt_tokens=7, completion_tokens=3)) for _ in range(100_000))
    assert total == 100_000 * 2_850


def test_format_usd_is_a_plain_decimal():
    assert format_usd(15_000) == "0.000015"
    assert format_usd(1) == "0.000000001"
    assert format_usd(0) == "0"
    assert format_usd(12_340_000_000) == "12.34"
    assert "e" not in format_usd(7)


def test_periods_roll_over_at_utc_midnight_and_month_start():
    t = calendar.timegm((2025, 12, 31, 23, 59, 30))
    assert period_id("day", t) == "2025-12-31" and period_id("month", t) == "2025-12"
    assert seconds_to_rollover("day", t) == 30
    assert seconds_to_rollover("month", t) == 30
    assert seconds_to_rollover("month", calendar.timegm((2024, 2, 1, 0, 0, 0))) == 29 * 86400


def test_reset_durations_look_like_openais():
    assert format_duration(20) == "20ms"
    assert format_duration(6000) == "6s"
    assert format_duration(1500) == "1.5s"
    assert format_duration(60_000) == "1m0s"
    assert format_duration(-5) == "0ms"

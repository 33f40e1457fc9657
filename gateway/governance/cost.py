"""Cost in integer nano-USD, and the UTC budget periods.

Prices are USD per million tokens, so one token costs ``price * 10**6`` pico-USD: exact for any price
with up to six decimals. A request's cost is summed in pico-USD and rounded (half up) once to
nano-USD, the unit spend and budgets are kept in, so totals never drift.
"""

from __future__ import annotations

import calendar
import time
from decimal import ROUND_HALF_UP, Decimal

from gateway.config import Price
from providers.base import Usage

NANOS_PER_USD = 1_000_000_000
_PICO_PER_NANO = 1000


def _pico_rate(usd_per_million: float) -> Decimal:
    return Decimal(str(usd_per_million)) * 1_000_000


class PriceRates:
    """A price as exact pico-USD per token (built once per price)."""

    __slots__ = ("input", "cached", "output")

    def __init__(self, price: Price) -> None:
        self.input = _pico_rate(price.input)
        self.cached = _pico_rate(price.cached_input) if price.cached_input is not None else self.input
        self.output = _pico_rate(price.output)

    def cost_nanos(self, usage: Usage) -> int:
        cached = min(max(0, usage.cached_tokens), max(0, usage.prompt_tokens))
        uncached = max(0, usage.prompt_tokens) - cached
        pico = self.input * uncached + self.cached * cached + self.output * max(0, usage.completion_tokens)
        return int((pico / _PICO_PER_NANO).to_integral_value(ROUND_HALF_UP))


def format_usd(nanos: int) -> str:
    """A plain decimal string (never scientific notation): 15000 -> '0.000015'."""
    sign = "-" if nanos < 0 else ""
    whole, frac = divmod(abs(nanos), NANOS_PER_USD)
    text = f"{whole}.{frac:09d}".rstrip("0").rstrip(".")
    return sign + text


def usd(nanos: int) -> float:
    return nanos / NANOS_PER_USD


# -- budget periods (UTC) -------------------------------------------------------------------------

def period_id(period: str, now: float | None = None) -> str:
    t = time.gmtime(time.time() if now is None else now)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}" if period == "day" else f"{t.tm_year:04d}-{t.tm_mon:02d}"


def seconds_to_rollover(period: str, now: float | None = None) -> float:
    now = time.time() if now is None else now
    t = time.gmtime(now)
    if period == "day":
        start = calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0))
        return start + 86400 - now
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return calendar.timegm((year, month, 1, 0, 0, 0)) - now


def period_ttl_seconds(period: str) -> int:
    """How long a period's counter is kept: the period plus a day."""
    return 2 * 86400 if period == "day" else 32 * 86400

"""Load-balancing strategies: shares, rotation, load, latency with exploration, cost."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from gateway.config import Deployment, ModelGroup, Price
from gateway.routing.balancer import EXPLORE_SHARE, Balancer


def group(strategy: str, *weights: float, **kw) -> ModelGroup:
    deployments = tuple(Deployment(id=f"d{i}", model_group="g", provider="p", model=f"m{i}", weight=w, **kw)
                        for i, w in enumerate(weights))
    return ModelGroup(name="g", deployments=deployments, strategy=strategy)


def everyone(d: Deployment) -> bool:
    return True


def picks(balancer: Balancer, g: ModelGroup, n: int, available=everyone) -> Counter:
    return Counter(balancer.order(g, available)[0].id for _ in range(n))


@pytest.mark.parametrize("weights", [(3, 1), (1, 1, 2), (5, 3, 2), (0.7, 0.3)])
def test_weighted_shares_over_2000_requests(weights):
    g = group("weighted", *weights)
    counts = picks(Balancer(lambda d: None), g, 2000)
    total = sum(weights)
    for i, w in enumerate(weights):
        assert abs(counts[f"d{i}"] / 2000 - w / total) < 0.05


def test_weighted_is_smooth_and_skips_unavailable():
    b = Balancer(lambda d: None)
    g = group("weighted", 5, 1, 1)
    sequence = [b.order(g, everyone)[0].id for _ in range(7)]
    assert sequence == ["d0", "d0", "d1", "d0", "d2", "d0", "d0"]  # nginx's smooth order, not d0 x5 in a row
    counts = picks(b, g, 600, available=lambda d: d.id != "d0")
    assert set(counts) == {"d1", "d2"} and abs(counts["d1"] - counts["d2"]) <= 1


def test_weight_zero_is_a_backup_only():
    b = Balancer(lambda d: None)
    g = group("weighted", 1, 0)
    assert picks(b, g, 50) == {"d0": 50}
    assert [d.id for d in b.order(g, everyone)] == ["d0", "d1"]  # still there for a retry


def test_round_robin_takes_turns():
    b = Balancer(lambda d: None)
    g = group("round_robin", 1, 1, 1)
    assert [b.order(g, everyone)[0].id for _ in range(6)] == ["d0", "d1", "d2", "d0", "d1", "d2"]


def test_least_busy_goes_to_the_fewest_in_flight():
    b = Balancer(lambda d: None)
    g = group("least_busy", 1, 1, 1)
    b.stat("d0").in_flight, b.stat("d1").in_flight, b.stat("d2").in_flight = 4, 1, 2
    assert [d.id for d in b.order(g, everyone)] == ["d1", "d2", "d0"]


def test_latency_prefers_the_fastest_and_still_explores():
    b = Balancer(lambda d: None, rng=random.Random(7))
    g = group("latency", 1, 1, 1)
    assert b.order(g, everyone)[0].id == "d0"  # unmeasured deployments are measured first
    for dep, ms in (("d0", 300), ("d1", 40), ("d2", 120)):
        for _ in range(20):
            b.stat(dep).observe_latency(ms)
    counts = picks(b, g, 4000)
    assert counts["d1"] / 4000 > 1 - EXPLORE_SHARE
    assert counts["d0"] > 0 and counts["d2"] > 0  # a recovered deployment gets traffic again
    for _ in range(30):
        b.stat("d0").observe_latency(10)  # d0 recovered
    assert picks(b, g, 100).most_common(1)[0][0] == "d0"


def test_cost_picks_the_cheapest_and_breaks_ties_by_weight():
    prices = {"m0": Price(5, 15), "m1": Price(0.15, 0.6), "m2": Price(0.15, 0.6)}
    b = Balancer(lambda d: prices.get(d.model))
    g = group("cost", 1, 1, 3)
    assert [d.id for d in b.order(g, everyone)][:1] == ["d2"]
    assert b.order(g, lambda d: d.id != "d2")[0].id == "d1"
    g_unpriced = ModelGroup(name="g", strategy="cost", deployments=(
        Deployment(id="x", model_group="g", provider="p", model="unknown"),
        Deployment(id="y", model_group="g", provider="p", model="m0")))
    assert b.order(g_unpriced, everyone)[0].id == "y"  # an unknown price is never the cheapest


def test_exclude_and_the_carry_over_of_counters():
    b = Balancer(lambda d: None)
    g = group("least_busy", 1, 1)
    assert [d.id for d in b.order(g, everyone, exclude={"d0": None})] == ["d1"]
    b.stat("d0").in_flight = 3
    again = Balancer(lambda d: None, previous=b)
    assert again.stat("d0").in_flight == 3

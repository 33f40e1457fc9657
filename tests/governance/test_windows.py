"""The in-process sliding log (``LocalWindows``): exact rpm/tpm, reservations, budgets, retry times."""

from __future__ import annotations

from gateway.governance.windows import BudgetLimit, LocalWindows, Scope


class Clock:
    def __init__(self, t: float = 1_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def windows(clock: Clock) -> LocalWindows:
    return LocalWindows(60_000, clock)


def test_rpm_is_exact_in_any_60_second_window():
    clock = Clock()
    w = windows(clock)
    key = Scope("key", "k", rpm=3)
    assert [w.admit([key], [], f"m{i}", 0).admitted for i in range(4)] == [True, True, True, False]
    clock.t += 30
    assert not w.admit([key], [], "m5", 0).admitted
    clock.t += 29.999
    assert not w.admit([key], [], "m6", 0).admitted  # the first three are 59.999 s old
    clock.t += 0.001
    assert w.admit([key], [], "m7", 0).admitted  # exactly 60 s: they left the window


def test_a_refused_request_is_never_charged_in_any_scope():
    clock = Clock()
    w = windows(clock)
    key, team = Scope("key", "k", rpm=10), Scope("team", "t", rpm=2)
    assert w.admit([key, team], [], "a", 0).admitted
    assert w.admit([key, team], [], "b", 0).admitted
    verdict = w.admit([key, team], [], "c", 0)
    assert not verdict.admitted and verdict.refusal()[:2] == (1, "rpm")
    assert verdict.states[0].count == 2  # the key's window did not count the refused request


def test_retry_after_is_when_enough_leaves_the_window():
    clock = Clock()
    w = windows(clock)
    key = Scope("key", "k", rpm=2)
    w.admit([key], [], "a", 0)
    clock.t += 10
    w.admit([key], [], "b", 0)
    clock.t += 5
    verdict = w.admit([key], [], "c", 0)
    assert verdict.refusal() == (0, "rpm", 45_000)  # "a" leaves 45 s from now


def test_tpm_reserves_then_settles_to_real_usage():
    clock = Clock()
    w = windows(clock)
    key = Scope("key", "k", tpm=100)
    assert w.admit([key], [], "a", 60).admitted
    assert not w.admit([key], [], "b", 60).admitted  # 60 + 60 > 100 while "a" is in flight
    w.settle([key], [], "a", 10, 0)  # "a" used only 10
    assert w.admit([key], [], "b", 60).admitted
    verdict = w.admit([key], [], "c", 60)
    assert not verdict.admitted and verdict.refusal()[1] == "tpm"
    assert verdict.states[0].total == 70


def test_a_reservation_larger_than_the_limit_passes_an_empty_window_capped():
    w = windows(Clock())
    key = Scope("key", "k", tpm=100)
    verdict = w.admit([key], [], "a", 5_000)
    assert verdict.admitted and verdict.states[0].total == 100
    assert not w.admit([key], [], "b", 1).admitted


def test_settle_after_the_reservation_left_the_window_charges_now():
    clock = Clock()
    w = windows(clock)
    key = Scope("key", "k", tpm=100)
    w.admit([key], [], "a", 10)
    clock.t += 61
    w.settle([key], [], "a", 80, 0)
    assert not w.admit([key], [], "b", 30).admitted


def test_budget_admits_below_and_refuses_at_or_above():
    w = windows(Clock())
    budget = BudgetLimit("key", "k", "key:k:2025-01-01", limit_nanos=1000, period="day", ttl=10)
    assert w.admit([], [budget], "a", 0).admitted
    w.settle([], [budget], "a", 0, 999)
    assert w.admit([], [budget], "b", 0).admitted  # 999 < 1000: admitted, and it may cross
    w.settle([], [budget], "b", 0, 500)
    verdict = w.admit([], [budget], "c", 0)
    assert not verdict.admitted and verdict.budget_index == 0


def test_forget_idle_drops_empty_windows():
    clock = Clock()
    w = windows(clock)
    w.admit([Scope("key", "k", rpm=5, tpm=50)], [], "a", 5)
    clock.t += 61
    w.forget_idle()
    assert w.windows == {}

"""The plan types and the replay engine: hand-computed cases for every rule, both forms agree, properties."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from advisor.plan import (
    Bid,
    Fallback,
    MarketPaths,
    Plan,
    PlanError,
    Reservation,
    Workload,
    load_document,
    replay,
    replay_batch,
    replay_batch_many,
    save_document,
)

SPOT, SPOT2 = "aws:us-east-1a:g2.2xlarge:spot", "aws:us-east-1b:g2.2xlarge:spot"
OD = "aws:us-east-1a:g2.2xlarge:on_demand"


def paths(mean: list[list[float]], peak: list[list[float]] | None = None,
          avail: list[list[float]] | None = None, markets: tuple[str, ...] = (SPOT, OD)) -> MarketPaths:
    """One scenario from per-market hourly lists."""
    m = np.array(mean, dtype=float)[None]
    p = m if peak is None else np.array(peak, dtype=float)[None]
    a = np.full_like(m, np.nan) if avail is None else np.array(avail, dtype=float)[None]
    return MarketPaths(markets, m, p, a)


def test_on_demand_after_guard_pays_overhead_and_pro_rata_final_hour() -> None:
    w = Workload(hours=3.5, deadline_hours=10, nodes=2, restart_overhead=0.25)
    plan = Plan(fallback=(Fallback(OD),), guard_margin_hours=1.0)
    r = replay(w, plan, paths([[9.0] * 10, [2.0] * 10]))
    # guard fires at t=6 (3.75 >= 4 - 1); runs 0.75 + 1 + 1 + 0.75 hours of work at 2.0 x 2 nodes
    assert r.finished and r.finish_hour == pytest.approx(9.75)
    assert r.cost == pytest.approx(2.0 * 2 * 3.75)
    assert r.hours_by_market == {OD: pytest.approx(3.75)}
    late = replay(w, Plan(fallback=(Fallback(OD),), guard_margin_hours=0.0), paths([[9.0] * 10, [2.0] * 10]))
    assert not late.finished and late.finish_hour is None  # the hourly guard fires too late with no margin


def test_spike_preempts_and_loses_work_since_checkpoint() -> None:
    w = Workload(hours=4, deadline_hours=20, checkpoint_every=2.0, restart_overhead=0.25)
    mean = [0.5, 0.5, 0.5, 0.8, 0.5, 0.5, 0.5] + [0.5] * 13
    peak = [0.5, 0.5, 0.5, 5.0, 0.5, 0.5, 0.5] + [0.5] * 13
    plan = Plan(bids=(Bid(SPOT, 1.0),), fallback=(Fallback(OD),))
    r = replay(w, plan, paths([mean, [3.0] * 20], [peak, [3.0] * 20]))
    # 0.75 + 1 + 1 (checkpoint at 2, 0.75 unsaved) | spike: lose 0.75, wait | 0.75 + 1 + 0.25
    assert r.preemptions == 1
    assert r.finish_hour == pytest.approx(6.25)
    assert r.cost == pytest.approx(0.5 * (1 + 1 + 1 + 1 + 1 + 0.25))
    assert r.hours_by_market == {SPOT: pytest.approx(5.25)}
    above = replay(w, Plan(bids=(Bid(SPOT, 6.0),)), paths([mean, [3.0] * 20], [peak, [3.0] * 20]))
    assert above.preemptions == 0 and above.finish_hour == pytest.approx(4.25)
    assert above.cost == pytest.approx(0.5 * 3 + 0.8 + 0.5 * 0.25)  # pays the market price, not the limit


def test_guard_moves_voluntarily_without_losing_work() -> None:
    w = Workload(hours=6, deadline_hours=8, checkpoint_every=10.0, restart_overhead=0.5)
    plan = Plan(bids=(Bid(SPOT, 1.0),), fallback=(Fallback(OD),), guard_margin_hours=0.0)
    # spot runs t=0 (0.5), t=1 (1): remaining 4.5; at t=2: 4.5 + 0.5 >= 6 -> no; t=3 waits? spot ok all along
    r = replay(w, plan, paths([[0.5] * 8, [3.0] * 8], [[0.5, 0.5, 2.0, 2.0, 0.5, 0.5, 0.5, 0.5], [3.0] * 8]))
    # t=2 spot above limit: preempted, lose 1.5 (no checkpoint yet) -> remaining 6, and 6.5 >= 6: guard at t=2
    assert r.preemptions == 1
    assert not r.finished  # 6 h of work + overhead from t=2 cannot fit in 6 h
    kept = replay(w, Plan(bids=(Bid(SPOT, 1.0),), fallback=(Fallback(OD),), guard_margin_hours=0.0),
                  paths([[0.5] * 8, [3.0] * 8]))
    assert kept.finished and kept.preemptions == 0


def test_late_limit_raises_the_bids_once_the_slack_is_down_to_the_late_margin() -> None:
    w = Workload(hours=4, deadline_hours=10, restart_overhead=0.0)
    market = paths([[3.0] * 10, [4.0] * 10])  # spot sits at 3, above the first limit, all along
    low = Plan(bids=(Bid(SPOT, 1.5),), fallback=(Fallback(OD),))
    waited = replay(w, low, market)
    assert waited.hours_by_market == {OD: pytest.approx(4.0)} and waited.cost == pytest.approx(16.0)  # t = 6..9
    raised = replay(w, replace(low, late_limit=5.0, late_margin_hours=3.0), market)
    # slack left 10 - t - 4 <= 3 from t = 3: the bid rises to 5 and runs t = 3..6 at the market's 3
    assert raised.hours_by_market == {SPOT: pytest.approx(4.0)} and raised.cost == pytest.approx(12.0)
    assert raised.finish_hour == pytest.approx(7.0)


def test_a_bid_held_when_its_limit_rises_keeps_running_without_a_restart() -> None:
    w = Workload(hours=3, deadline_hours=5, restart_overhead=0.25)
    market = paths([[1.0] + [3.0] * 4, [4.0] * 5], [[1.0] + [3.0] * 4, [4.0] * 5])
    plan = Plan(bids=(Bid(SPOT, 1.5),), fallback=(Fallback(OD),), late_limit=5.0, late_margin_hours=1.6)
    r = replay(w, plan, market)
    # t=0 restart on spot (0.75 done): slack left at t=1 is 4 - 2.25 - 0.25 = 1.5 <= 1.6, so the limit rises to 5
    # before the price does; the job keeps its place and ends at 3.25 with no preemption
    assert r.preemptions == 0 and r.finish_hour == pytest.approx(3.25)
    assert r.cost == pytest.approx(1.0 + 3.0 + 3.0 + 3.0 * 0.25)
    assert replay(w, plan.without_late_limit(), market).preemptions == 1


def test_a_day_waiting_below_on_demand_raises_the_bids_before_the_slack_runs_down() -> None:
    w = Workload(hours=4, deadline_hours=20, restart_overhead=0.0)
    plan = Plan(bids=(Bid(SPOT, 1.5),), fallback=(Fallback(OD),), late_limit=5.0, late_margin_hours=3.0,
                late_after_hours=5.0)
    level = paths([[3.0] * 20, [4.0] * 20])  # a new level: above the first limit, below on-demand, all along
    early = replay(w, plan, level)
    # waits t = 0..4 at a price below on-demand; the limit rises at t = 5 and the job runs t = 5..8 at 3
    assert early.hours_by_market == {SPOT: pytest.approx(4.0)} and early.finish_hour == pytest.approx(9.0)
    # by the slack alone the limit rises at t = 13 (20 - 13 - 4 <= 3)
    assert replay(w, plan.without_late_limit(), level).cost == pytest.approx(16.0)
    assert replay(w, replace(plan, late_after_hours=None), level).finish_hour == pytest.approx(17.0)
    surge = paths([[4.5] * 10 + [1.0] * 10, [4.0] * 20])  # above on-demand for 10 h, then below the first limit
    waited = replay(w, plan, surge)  # hours above on-demand are waited out, not counted: t = 10..13 at 1
    assert waited.cost == pytest.approx(4.0) and waited.finish_hour == pytest.approx(14.0)
    # a ladder counts an hour only when every zone it bids on is below on-demand: raised with SPOT2 at 4.5 first, it
    # would buy an hour dearer than on-demand
    ladder = replace(plan, bids=(Bid(SPOT2, 1.5), Bid(SPOT, 1.5)))
    zones = paths([[3.0] * 20, [4.5] * 6 + [3.0] * 14, [4.0] * 20], markets=MARKETS3)
    late = replay(w, ladder, zones)  # counts from t = 6: raised at t = 11, runs SPOT2 t = 11..14 at 3
    assert late.hours_by_market == {SPOT2: pytest.approx(4.0)} and late.finish_hour == pytest.approx(15.0)
    assert late.cost == pytest.approx(12.0)  # counted from t = 0, it would have run t = 5..8 at 4.5


def test_riding_prices_above_on_demand_caps_the_limits_at_it_once_the_excess_paid_reaches_the_budget() -> None:
    w = Workload(hours=6, deadline_hours=20, restart_overhead=0.0)
    plan = Plan(bids=(Bid(SPOT, 9.0),), fallback=(Fallback(OD),), dear_excess_hours=1.5)
    market = paths([[6.0] * 10 + [1.0] * 10, [4.0] * 20])  # 1.5x on-demand for 10 h (0.5 h of it over), then calm
    rode = replay(w, replace(plan, dear_excess_hours=None), market)
    assert rode.cost == pytest.approx(36.0) and rode.finish_hour == pytest.approx(6.0)  # the limit rides the level
    capped = replay(w, plan, market)  # t = 0..2 at 6 (1.5 h over), then capped at 4: out until t = 10, t = 10..12 at 1
    assert capped.cost == pytest.approx(21.0) and capped.finish_hour == pytest.approx(13.0)
    assert capped.preemptions == 1
    raised = replace(plan, late_limit=9.5, late_margin_hours=19.0)  # raised at t = 0: no cap after a raise
    assert replay(w, raised, market).cost == pytest.approx(36.0)
    # a level just above on-demand costs little to ride: 1.1x for 10 h spends 0.6 h of the budget in the job's 6 h
    mild = replay(w, plan, paths([[4.4] * 10 + [1.0] * 10, [4.0] * 20]))
    assert mild.cost == pytest.approx(26.4) and mild.preemptions == 0
    # the run resets when the price comes back under on-demand: 1.5x, 1x, 1.5x, ... never adds up to 1.5 h over
    blips = replay(w, plan, paths([[6.0, 4.0] * 10, [4.0] * 20]))
    assert blips.cost == pytest.approx(30.0) and blips.preemptions == 0


def test_keeping_pace_buys_on_demand_early_and_returns_to_spot() -> None:
    w = Workload(hours=4, deadline_hours=12, restart_overhead=0.0, checkpoint_every=0.0)
    plan = Plan(bids=(Bid(SPOT, 2.0),), fallback=(Fallback(OD),), guard_margin_hours=1.0)
    gap = paths([[1.0] + [9.0] * 7 + [1.0] * 4, [4.0] * 12])  # spot at t = 0, out t = 1..7, back from t = 8
    waited = replay(w, plan, gap)  # waits t = 1..7; the guard fires at t = 8 (3 h left of work, 4 h to go, 1 h margin)
    assert waited.hours_by_market == {SPOT: 1.0, OD: 3.0} and waited.cost == pytest.approx(13.0)
    paced = replay(w, replace(plan, keep_pace=True), gap)
    # over an hour behind the line t x 4/12 first at t = 7 (2.33 > 1 done + 1): one on-demand hour, then within the
    # hour at t = 8 (2.67 <= 2 + 1): back to spot, t = 8..9
    assert paced.timeline == [(0, SPOT, False), (1, None, True), *[(t, None, False) for t in range(2, 7)],
                              (7, OD, False), (8, SPOT, False), (9, SPOT, False)]
    assert paced.cost == pytest.approx(7.0) and paced.finish_hour == pytest.approx(10.0)
    with pytest.raises(PlanError, match="plan.keep_pace: must be true or false"):
        Plan(keep_pace="yes")


def test_patience_waits_for_the_zone_that_blinked_before_taking_a_later_one() -> None:
    w = Workload(hours=6, deadline_hours=20, restart_overhead=0.5, checkpoint_every=0.0)
    plan = Plan(bids=(Bid(SPOT, 2.0), Bid(SPOT2, 2.0)), fallback=(Fallback(OD),))
    markets = (SPOT, SPOT2, OD)
    blinks = paths([[1.0, 1.0, 9.0, 1.0, 1.0, 9.0] + [1.0] * 14, [1.2] * 20, [4.0] * 20], markets=markets)
    moved = replay(w, plan, blinks)  # out at t = 2: a restart on 1b, which it keeps (its hour costs 1.2)
    assert moved.hours_by_market == {SPOT: 2.0, SPOT2: 5.0} and moved.cost == pytest.approx(8.0)
    patient = replay(w, replace(plan, patience_hours=1.0), blinks)  # waits out each blink on 1a: two hours lost
    assert patient.hours_by_market == {SPOT: 7.5} and patient.cost == pytest.approx(7.5)
    assert patient.finish_hour == pytest.approx(9.5) and patient.preemptions == 2
    out = paths([[1.0, 1.0] + [9.0] * 18, [1.2] * 20, [4.0] * 20], markets=markets)  # 1a out for good from t = 2
    handed = replay(w, replace(plan, patience_hours=2.0), out)  # waits t = 2, 3; takes 1b at t = 4
    assert [step[1] for step in handed.timeline[:5]] == [SPOT, SPOT, None, None, SPOT2]
    assert handed.cost == pytest.approx(2.0 + 1.2 * 5)
    with pytest.raises(PlanError, match="plan.patience_hours: must be >= 0"):
        Plan(patience_hours=-1.0)


def test_switching_takes_the_zone_that_turned_cheaper_back_or_forward() -> None:
    w = Workload(hours=6, deadline_hours=20, restart_overhead=0.5, checkpoint_every=0.0)
    plan = Plan(bids=(Bid(SPOT, 5.0), Bid(SPOT2, 5.0)), fallback=(Fallback(OD),))
    market = paths([[1.0, 9.0, 9.0, 1.0] + [1.0] * 16, [4.0] * 20, [8.0] * 20], markets=(SPOT, SPOT2, OD))
    stayed = replay(w, plan, market)  # 1a out at t = 1: on 1b for the rest, at 4 $/h
    assert stayed.hours_by_market == {SPOT: 1.0, SPOT2: 6.0} and stayed.cost == pytest.approx(25.0)
    back = replay(w, replace(plan, switch_below=0.8), market)  # 1a at 1 < 0.8 x 4 at t = 3: a restart, and back
    assert [step[1] for step in back.timeline] == [SPOT, SPOT2, SPOT2] + [SPOT] * 5  # 5.5 h on 1a, 2 h on 1b
    assert back.cost == pytest.approx(5.5 + 8.0) and back.preemptions == 1  # the move back is voluntary
    assert (stayed.restarts, back.restarts) == (2, 3)  # the start, the preemption, and the move back
    assert replay(w, replace(plan, switch_below=0.2), market).cost == pytest.approx(25.0)  # 1 is not below 0.8
    # forward: 1a climbs to 4.5 $/h (under its limit) at t = 2 while 1b stays at 3: the job moves down the list
    climb = paths([[1.0, 1.0] + [4.5] * 18, [3.0] * 20, [8.0] * 20], markets=(SPOT, SPOT2, OD))
    assert replay(w, plan, climb).cost == pytest.approx(1.0 + 1.0 + 4.5 * 4.5)  # stays on 1a
    ahead = replay(w, replace(plan, switch_below=0.8), climb)  # 3 < 0.8 x 4.5: to 1b at t = 2
    assert ahead.hours_by_market == {SPOT: 2.0, SPOT2: 5.0} and ahead.cost == pytest.approx(2.0 + 3.0 * 5)
    with pytest.raises(PlanError, match=r"plan.switch_below: must be in \(0, 1\]"):
        Plan(switch_below=1.5)


def test_after_the_guard_a_zone_that_returns_is_taken_while_the_slack_absorbs_a_preemption() -> None:
    w = Workload(hours=6, deadline_hours=12, restart_overhead=0.25, checkpoint_every=1.0)
    plan = Plan(bids=(Bid(SPOT, 2.0),), fallback=(Fallback(OD),), guard_margin_hours=2.0)
    market = paths([[9.0] * 5 + [1.0] * 7, [4.0] * 12])  # spot out to t = 4, back at 1 $/h from t = 5
    settled = replay(w, plan, market)  # the guard fires at t = 4 (6.25 >= 8 - 2): on-demand to the end
    assert settled.hours_by_market == {OD: 6.25} and settled.cost == pytest.approx(25.0)
    # at t = 5 the slack left, 7 - 5.25 h = 1.75 h, covers a move there (0.25) and a preemption (1 + 0.25)
    back = replay(w, replace(plan, return_below=0.8), market)
    assert [step[1] for step in back.timeline] == [None] * 4 + [OD] + [SPOT] * 6
    assert back.cost == pytest.approx(4.0 + 5.5) and back.finish_hour == pytest.approx(10.5)
    assert replay(w, replace(plan, return_below=0.2), market).cost == pytest.approx(25.0)  # 1 is not below 0.8
    late = replay(w, replace(plan, guard_margin_hours=1.0, return_below=0.8), market)  # fires at t = 5 instead
    assert late.hours_by_market == {OD: 6.25}  # with 1 h of slack a preemption on spot would miss the deadline
    # preempted at t = 7 after two hours there: 0.75 h since the checkpoint lost, and the deadline still holds
    lost = paths([[9.0] * 5 + [1.0] * 2 + [9.0] * 5, [4.0] * 12])
    caught = replay(w, replace(plan, return_below=0.8), lost)
    assert [step[1] for step in caught.timeline] == [None] * 4 + [OD, SPOT, SPOT] + [OD] * 5
    assert caught.finished and caught.finish_hour == pytest.approx(11.5) and caught.preemptions == 1
    # ...and the work that preemption loses counts before another zone is taken: 1b, open at t = 7 only, would leave
    # 0.75 h of slack for a move (0.25) and a preemption (1.25), and it fails at t = 8
    two = replace(plan, bids=(Bid(SPOT, 2.0), Bid(SPOT2, 2.0)), return_below=0.8)
    blink = paths([[9.0] * 5 + [1.0] * 2 + [9.0] * 5, [9.0] * 7 + [1.0] + [9.0] * 4, [4.0] * 12],
                  markets=(SPOT, SPOT2, OD))
    held = replay(w, two, blink)
    assert [step[1] for step in held.timeline] == [None] * 4 + [OD, SPOT, SPOT] + [OD] * 5 and held.finished
    with pytest.raises(PlanError, match=r"plan.return_below: must be in \(0, 1\]"):
        Plan(return_below=0.0)


def test_late_limit_and_margin_come_together_and_the_margin_is_not_below_the_guard() -> None:
    with pytest.raises(PlanError, match="plan.late_limit"):
        Plan(bids=(Bid(SPOT, 1.0),), late_limit=2.0)
    with pytest.raises(PlanError, match="plan.late_margin_hours: must be >= guard_margin_hours"):
        Plan(bids=(Bid(SPOT, 1.0),), guard_margin_hours=3.0, late_limit=2.0, late_margin_hours=1.0)
    with pytest.raises(PlanError, match="plan.late_after_hours: must be >= 1 and come with a late_limit"):
        Plan(bids=(Bid(SPOT, 1.0),), late_after_hours=24.0)
    with pytest.raises(PlanError, match="plan.late_after_hours"):
        Plan(bids=(Bid(SPOT, 1.0),), late_limit=2.0, late_margin_hours=1.0, late_after_hours=0.5)
    with pytest.raises(PlanError, match="plan.dear_excess_hours: must be > 0"):
        Plan(bids=(Bid(SPOT, 1.0),), dear_excess_hours=0.0)


def test_stays_on_current_bid_while_eligible() -> None:
    w = Workload(hours=3, deadline_hours=10, restart_overhead=0.25)
    plan = Plan(bids=(Bid(SPOT, 1.0), Bid(SPOT2, 1.0)))
    peak = [[2.0, 0.5, 0.5, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5, 0.5]]
    r = replay(w, plan, paths([[0.4] * 10, [0.6] * 10], [p + [0.5] * 5 for p in peak], markets=(SPOT, SPOT2)))
    assert r.hours_by_market == {SPOT2: pytest.approx(3.25)}  # started on SPOT2 at t=0 and stayed


def test_gang_needs_capacity_for_every_node() -> None:
    w = Workload(hours=2, deadline_hours=6, nodes=4, restart_overhead=0.0)
    avail = [[3, 4, 4, 4, 4, 4], [np.nan] * 6]
    r = replay(w, Plan(bids=(Bid(SPOT, 1.0),)), paths([[0.5] * 6, [3.0] * 6], avail=avail))
    assert r.finish_hour == pytest.approx(3.0) and r.cost == pytest.approx(0.5 * 4 * 2)


def test_reservation_charged_up_front_with_pause_and_return_credits() -> None:
    w = Workload(hours=4, deadline_hours=12, nodes=2, restart_overhead=0.25, credit_value=0.5)
    res = Reservation(market="mithril:us-central5-a:h100-80gb.sxm.8x:spot", tier="high", instances=3, start_hour=0,
                      hours=10, unit_price=10.0, pause_credit=4.0, return_credit=5.0)
    markets = (SPOT, OD, res.market)
    r = replay(w, Plan(reservation=res, fallback=(Fallback(OD),)), paths([[1.0] * 12] * 3, markets=markets))
    # runs 0.75 + 1 + 1 + 1 + 0.25: done at 4.25 after 5 reserved hours; returns hours 5..9 of 3 instances
    assert r.finish_hour == pytest.approx(4.25)
    assert r.credits == pytest.approx(0.5 * (4.0 * 1 * 5 + 5.0 * 3 * 5))
    assert r.cost == pytest.approx(300 - 47.5)
    assert r.market_cost == 0.0
    with pytest.raises(PlanError, match="gang of 4"):
        replay(Workload(hours=4, deadline_hours=12, nodes=4), Plan(reservation=res), paths([[1.0] * 12] * 3,
                                                                                          markets=markets))


def test_checkpoint_every_zero_never_loses_work() -> None:
    w = Workload(hours=3, deadline_hours=20, checkpoint_every=0.0, restart_overhead=0.0)
    peak = [0.5, 0.5, 5.0, 0.5, 0.5, 0.5] + [0.5] * 14
    r = replay(w, Plan(bids=(Bid(SPOT, 1.0),)), paths([[0.5] * 20, [3.0] * 20], [peak, [3.0] * 20]))
    assert r.preemptions == 1 and r.finish_hour == pytest.approx(4.0)


def test_bad_fields_are_named() -> None:
    with pytest.raises(PlanError, match=r"workload.hours: must be a number > 0 \(got -3\)"):
        Workload(hours=-3, deadline_hours=10)
    with pytest.raises(PlanError, match="bid.market"):
        Bid("not-a-market", 1.0)
    with pytest.raises(PlanError, match=r"limit_price: must be > 0"):
        Bid(SPOT, 0)
    with pytest.raises(PlanError, match=r"reservation.hours: must be 3..336"):
        Reservation(SPOT, "high", 1, 0, 400, 1, 0, 0)


def test_documents_round_trip_json_and_yaml(tmp_path: Path) -> None:
    w = Workload(hours=48, deadline_hours=96, markets=(SPOT,))
    plan = Plan(bids=(Bid(SPOT, 0.65),), fallback=(Fallback(OD),), guard_margin_hours=4.0)
    for name in ("p.json", "p.yaml"):
        save_document(tmp_path / name, plan, w)
        assert load_document(tmp_path / name) == (w, plan)
    (tmp_path / "bad.json").write_text(json.dumps({"plan": {"bids": [{"market": SPOT, "limit": 1}]}}))
    with pytest.raises(PlanError, match=r"bad.json: plan.bids\[0\]: unknown field\(s\) limit"):
        load_document(tmp_path / "bad.json")


# ---- the vectorized form agrees with the reference, path by path ----

MARKETS3 = (SPOT, SPOT2, OD)


@st.composite
def cases(draw):
    hours = draw(st.integers(8, 30))
    n = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    mean = rng.uniform(0.1, 2.0, (n, 3, hours))
    peak = mean * rng.choice([1.0, 1.0, 3.0], (n, 3, hours))
    avail = rng.choice([np.nan, 0, 1, 2, 4], (n, 3, hours))
    avail[:, 2, :] = np.where(rng.random((n, hours)) < 0.1, 0, np.nan)
    p = MarketPaths(MARKETS3, mean, peak, avail)
    w = Workload(hours=draw(st.sampled_from([1.0, 2.5, 4.0, 7.25, 12.0])), deadline_hours=hours,
                 nodes=draw(st.integers(1, 3)), checkpoint_every=draw(st.sampled_from([0.0, 0.5, 1.0, 3.0])),
                 restart_overhead=draw(st.sampled_from([0.0, 0.25, 0.5])), credit_value=0.7)
    bids = tuple(Bid(m, draw(st.sampled_from([0.3, 0.8, 1.5, 9.0]))) for m in draw(
        st.lists(st.sampled_from([SPOT, SPOT2]), unique=True, max_size=2)))
    fallback = tuple(Fallback(m) for m in draw(st.lists(st.sampled_from(list(MARKETS3)), unique=True, max_size=2)))
    res = None
    if draw(st.booleans()):
        res = Reservation(OD, "low", draw(st.integers(w.nodes, 4)), draw(st.integers(0, 6)), draw(st.integers(3, 8)),
                          5.0, 1.0, 2.0)
    guard, late = draw(st.sampled_from([0.0, 1.0, 2.5])), draw(st.sampled_from([None, 0.0, 2.0, 6.0]))
    dear, pace = draw(st.sampled_from([None, 0.3, 1.0, 2.0])), draw(st.booleans())
    patience, back = draw(st.sampled_from([0.0, 0.0, 1.0, 3.0])), draw(st.sampled_from([None, None, 0.5, 0.9, 1.0]))
    ret = draw(st.sampled_from([None, None, 0.6, 1.0]))
    if late is None:
        return w, Plan(bids, res, fallback, guard, dear_excess_hours=dear, keep_pace=pace, patience_hours=patience,
                       switch_below=back, return_below=ret), p
    return w, Plan(bids, res, fallback, guard, draw(st.sampled_from([0.8, 1.5, 9.0])), guard + late,
                   draw(st.sampled_from([None, 1.0, 3.0])), dear, pace, patience, back, ret), p


@settings(max_examples=300, deadline=None)
@given(cases())
def test_batch_agrees_with_reference(case) -> None:
    w, plan, p = case
    batch = replay_batch(w, plan, p)
    for s in range(p.n_scenarios):
        ref = replay(w, plan, p, s)
        assert batch.cost[s] == pytest.approx(ref.cost, abs=1e-9)
        assert bool(batch.finished[s]) == ref.finished
        assert batch.preemptions[s] == ref.preemptions and batch.restarts[s] == ref.restarts
        assert batch.remaining_hours[s] == pytest.approx(ref.remaining_hours, abs=1e-9)
        if ref.finished:
            assert batch.finish_hour[s] == pytest.approx(ref.finish_hour)
        else:
            assert math.isnan(batch.finish_hour[s])
        assert {k: v for k, v in zip(batch.labels, batch.hours[s], strict=True) if v} == pytest.approx(
            ref.hours_by_market)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32 - 1), st.permutations(range(3)), st.sampled_from([0.5, 0.8, 1.0]),
       st.sampled_from([None, (2.0, 2.0, None)]), st.sampled_from([None, 1.0]), st.sampled_from([None, 0.9]))
def test_switching_among_three_zones_agrees_with_the_reference(seed, order, below, late, dear, ret) -> None:
    # three bids, so "the first other bid priced below" has a choice to get wrong
    rng, spots = np.random.default_rng(seed), (SPOT, SPOT2, "aws:us-east-1c:g2.2xlarge:spot")
    mean = rng.uniform(0.2, 2.0, (3, 4, 24))
    avail = rng.choice([np.nan, 0, 2], (3, 4, 24))
    avail[:, 3, :] = np.nan
    p = MarketPaths((*spots, OD), mean, mean * rng.choice([1.0, 2.0], (3, 4, 24)), avail)
    w = Workload(hours=10.0, deadline_hours=24, restart_overhead=0.25, checkpoint_every=1.0)
    plan = Plan(tuple(Bid(spots[k], 1.8) for k in order), fallback=(Fallback(OD),), guard_margin_hours=1.0,
                late_limit=late and late[0], late_margin_hours=late and late[1], dear_excess_hours=dear,
                switch_below=below, return_below=ret)
    batch = replay_batch(w, plan, p)
    for s in range(3):
        ref = replay(w, plan, p, s)
        assert batch.cost[s] == pytest.approx(ref.cost, abs=1e-9) and batch.preemptions[s] == ref.preemptions
        assert batch.restarts[s] == ref.restarts


@settings(max_examples=100, deadline=None)
@given(cases(), st.lists(st.tuples(st.sampled_from([0.3, 0.8, 1.5, 9.0]), st.sampled_from([0.0, 1.0, 2.5]),
                                   st.sampled_from([None, (1.5, 0.0, None), (9.0, 4.0, 2.0)]),
                                   st.sampled_from([None, 0.5, 1.0]), st.booleans(), st.sampled_from([0.0, 2.0]),
                                   st.sampled_from([None, 0.8]), st.sampled_from([None, 0.7])), min_size=1,
                         max_size=4))
def test_many_plans_in_one_pass_agree_with_one_at_a_time(case, variants) -> None:
    w, plan, p = case
    plans = [Plan(tuple(Bid(b.market, lim * (1 + i)) for i, b in enumerate(plan.bids)), plan.reservation,
                  plan.fallback, margin, *((late[0], margin + late[1], late[2]) if late else (None, None, None)), dear,
                  pace, patience, back, ret)
             for lim, margin, late, dear, pace, patience, back, ret in variants]  # with and without each rule at once
    for one, many in zip([replay_batch(w, q, p) for q in plans], replay_batch_many(w, plans, p), strict=True):
        for field in ("cost", "finished", "finish_hour", "preemptions", "hours", "credits", "restarts"):
            np.testing.assert_allclose(getattr(many, field), getattr(one, field), atol=1e-9)


# ---- properties ----

@settings(max_examples=150, deadline=None)
@given(cases(), st.floats(1.0, 5.0))
def test_raising_the_limit_never_leaves_more_work_on_one_market(case, factor: float) -> None:
    w, plan, p = case
    assume(plan.bids)
    w = _half_the_window(w)
    low = Plan(bids=plan.bids[:1])
    high = Plan(bids=(Bid(low.bids[0].market, low.bids[0].limit_price * factor),))
    assert np.all(replay_batch(w, high, p).remaining_hours <= replay_batch(w, low, p).remaining_hours + 1e-9)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(11, 24), st.sampled_from([0.5, 1.0, 2.0]), st.sampled_from([0.5, 1.0]))
def test_returning_after_the_guard_never_misses_a_deadline_an_open_fallback_keeps(seed, deadline, every, below) -> None:
    # three zones that blink often, and on-demand always there: the guard at the safe margin never misses, and nor
    # does a return after it, however often the zones it returns to fail
    rng, spots = np.random.default_rng(seed), (SPOT, SPOT2, "aws:us-east-1c:g2.2xlarge:spot")
    mean = rng.uniform(0.2, 2.0, (4, 4, deadline))
    mean[:, 3, :] = 3.0
    avail = rng.choice([np.nan, 0.0], (4, 4, deadline))
    avail[:, 3, :] = np.nan
    p = MarketPaths((*spots, OD), mean, mean, avail)
    w = Workload(hours=10.0, deadline_hours=deadline, restart_overhead=0.25, checkpoint_every=every)
    plan = Plan(tuple(Bid(m, 2.0) for m in spots), fallback=(Fallback(OD),), guard_margin_hours=1.0 + every,
                return_below=below)
    assert replay_batch(w, plan, p).finished.all()
    assert all(replay(w, plan, p, k).finished for k in range(4))


def _half_the_window(w: Workload) -> Workload:
    """The workload with half its window's hours of work, saved every moment: work the window cannot hold fires the
    guard at hour 0 (with no fallback, nothing runs after it), which would leave nothing to compare; and with work
    lost back to a checkpoint, a limit that rides longer can lose more than one stopped by the guard keeps (0.5 h
    done at a limit of 1.5 kept when the guard stopped the job, 2.5 h done at 3.0 lost to a preemption before the
    3-h checkpoint)."""
    return replace(w, hours=w.horizon / 2, checkpoint_every=0.0)


@settings(max_examples=150, deadline=None)
@given(cases(), st.floats(1.0, 5.0), st.sampled_from([0.0, 2.0, 6.0]), st.sampled_from([None, 1.0, 3.0]))
def test_a_late_limit_never_leaves_more_work_on_one_market(case, factor: float, late: float,
                                                            after: float | None) -> None:
    w, plan, p = case
    assume(plan.bids)
    w = _half_the_window(w)
    spot_only = MarketPaths(p.markets, p.mean, p.peak, np.where(np.arange(3)[None, :, None] == 2, 0.0, p.avail))
    low = Plan(bids=plan.bids[:1], fallback=(Fallback(OD),))  # on-demand's price counts the wait, never its hours
    high = replace(low, late_limit=plan.bids[0].limit_price * factor, late_margin_hours=late, late_after_hours=after)
    lo, hi = replay_batch(w, low, spot_only), replay_batch(w, high, spot_only)
    assert np.all(hi.remaining_hours <= lo.remaining_hours + 1e-9)


@settings(max_examples=150, deadline=None)
@given(cases())
def test_guard_covering_overhead_and_checkpoint_never_misses_with_on_demand(case) -> None:
    w, plan, p = case
    od_always = MarketPaths(p.markets, p.mean, p.peak, np.where(np.arange(3)[None, :, None] == 2, np.nan, p.avail))
    if w.hours + w.restart_overhead > w.deadline_hours:
        return
    margin = 1.0 + w.checkpoint_every
    safe = Plan(bids=plan.bids, fallback=(Fallback(OD),), guard_margin_hours=margin, keep_pace=plan.keep_pace)
    assert replay_batch(w, safe, od_always).finished.all()  # keeping pace or not


def test_hours_before_a_zones_first_record_are_unknown_not_out(tmp_path: Path) -> None:
    import pandas as pd
    from conftest import spot_row, write_normalized

    from advisor import store
    from advisor.forecast import Forecaster
    from advisor.plan import load_history

    # zone b's records begin two days after zone a's; both always have capacity
    a, b = (f"aws:{z}:g2.2xlarge:spot" for z in ("us-east-1a", "us-east-1b"))
    hours = [f"2015-03-{1 + h // 24:02d}T{h % 24:02d}:00:00Z" for h in range(24 * 6)]
    rows = [spot_row(ts, 0.1, 4, zone="us-east-1a") for ts in hours]
    rows += [spot_row(ts, 0.1, 4, zone="us-east-1b") for ts in hours[48:]]
    con = store.connect(tmp_path / "h.duckdb")
    store.ingest_files(con, [write_normalized(tmp_path / "z.csv", rows)])
    history = load_history(con, [a, b], pd.Timestamp("2015-03-01"), 24 * 6)
    assert np.isnan(history.avail[0, 1, :48]).all() and (history.avail[0, 1, 48:] == 4).all()
    assert not history.usable(1, 1.0, 1)[0, :48].any()  # no price there: nothing to bid on
    assert Forecaster(n_paths=50).fit(history).prob_capacity(b, 1, 24).min() > 0.9



def test_hours_inside_a_silence_are_unknown_not_the_last_record_held(tmp_path: Path) -> None:
    import pandas as pd
    from conftest import spot_row, write_normalized

    from advisor import store
    from advisor.plan import load_history

    # zone a: one trace for two days (out at its end), ten silent days, another trace; zone b reports throughout
    a, b = (f"aws:{z}:g2.2xlarge:spot" for z in ("us-east-1a", "us-east-1b"))
    days = pd.date_range("2015-03-01", periods=24 * 14, freq="h")
    rows = [spot_row(f"{t:%Y-%m-%dT%H:%M:%SZ}", 0.1, 0 if i == 47 else 4) for i, t in enumerate(days[:48])]
    rows += [spot_row(f"{t:%Y-%m-%dT%H:%M:%SZ}", 0.2, 4) for t in days[-48:]]
    rows += [spot_row(f"{t:%Y-%m-%dT%H:%M:%SZ}", 0.3, 4, zone="us-east-1b") for t in days]
    con = store.connect(tmp_path / "s.duckdb")
    store.ingest_files(con, [write_normalized(tmp_path / "s.csv", rows)])
    history = load_history(con, [a, b], pd.Timestamp("2015-03-01"), 24 * 14)
    gap = slice(48, 24 * 12)
    assert np.isnan(history.mean[0, 0, gap]).all() and np.isnan(history.avail[0, 0, gap]).all()
    assert (history.mean[0, 0, :48] == 0.1).all() and (history.mean[0, 0, -48:] == 0.2).all()
    assert (history.mean[0, 1] == 0.3).all()  # a market that kept reporting is untouched
    # past the end of a's records the hours are unknown too, however long the window runs on
    longer = load_history(con, [a, b], pd.Timestamp("2015-03-01"), 24 * 30)
    assert np.isnan(longer.mean[0, 0, 24 * 14 + 1:]).all() and np.isnan(longer.mean[0, 1, 24 * 14 + 1:]).all()

"""The moves after the MIP: each takes the chosen plan to a variant that training prices within a stated tolerance
(insurance taken on a near tie) or below it by a stated gain (a bet on the forecast), meeting the target as often and
within the budget. Every tolerance is a constant here with what it was measured on.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from advisor.optimize.candidates import NONE, Candidate, as_limit, finite_peaks, ladder_name
from advisor.optimize.scoring import score_more
from advisor.plan import Bid, MarketPaths, Plan, Workload
from advisor.units import format_usd

# Training cost a higher limit (`_retune_limit`) or zones behind the chosen bid (`_broaden`) may add, per unit of
# work / slack, and still replace the chosen plan as insurance: 2% at a deadline of 1.25x the work, 0.5% at 2x, 0.25%
# at 3x. Measured on AWS 2015 g2.2xlarge (limits): mean cost / hindsight 1.242 -> 1.229, 96-h jobs at slack 1.25
# 1.071 -> 1.000 of the best static plan; a flat 2% at every slack lost as much at slack 4 (paying spikes the job
# could have waited out) as it won at 1.25. On spot-availability 2022 (zones): 1.489 -> 1.423, and a flat 1% at every
# slack cost GCP H100 1.342 -> 1.349 (this: 1.343) in extra moves at loose deadlines.
INSURANCE_TOLERANCE = 0.005
# ...and up to this much more for zones behind that price like the chosen ones (`_priced_alike`): such a zone costs no
# more an hour, only the restarts of moving to it, and a short history judges it by a few runs. Measured where zones
# of one type post one price and only capacity differs (spot-availability, 2 days of history at the first start):
# 2022 p3.2xlarge mean cost / hindsight 1.463 -> 1.404 (Greedy 1.382; 96 h due in 192 h 1.126 -> 1.001 of the
# hindsight-best static plan: 28 October, 2b alone, then 2a came back while 2b stayed out), p3.16xlarge 1.478 -> 1.444
# (Greedy 1.417); GCP H100 1.322 -> 1.325 (gangs of 4 and 8 at slack 2-4, 0.5-1.8% each: equal-priced zones there
# cost gang restarts); the same at 20%; 2023, the four-zone case and single-zone AWS 2015 unchanged.
ALIKE_TOLERANCE = 0.05
# With slack of THRIFT_SPARE x the work or more, the limit moves the other way (`_retune_limit`): down, as far as
# training costs at most THRIFT_TOLERANCE x slack / work more (1.5% at a deadline of 4x the work). Training ties
# limits that no recorded spike separates; with days to spare, a spike the history did not show is cheaper waited
# out than paid (AWS 2015 g2.2xlarge, 96 h due in 384 h from 19 July: 0.2 to 1.95 $/h within 1% in training; the
# August surge then cost 0.65-1.95 20.5 $, 0.2 10.0 $).
THRIFT_SPARE = 3.0
THRIFT_TOLERANCE = 0.005
# ...but never below this multiple of the market's median hourly peak price in training: a bid that close stakes the
# job on the level holding (AWS 2015 c3.xlarge: a calm level of 0.032 $/h drifted to 0.046 within weeks; lowered to
# 0.04 from 0.13, 96 h due in 384 h from 8 April cost 8.26 $ instead of 4.09).
THRIFT_FLOOR = 2.0
# A ladder's limits move down too (`_lower_ladder_limits`), at any slack, as far as training costs at most this much
# more: a ladder's limit is also its cue to leave a zone whose price climbs for one still below it, at the price of a
# restart rather than on-demand hours, and training scenarios tie such limits within a few percent. Measured on the
# four-zone AWS 2015 g2.2xlarge case: mean cost / hindsight 1.096 -> 1.072 (the same at 6%; 1.075 at 1.5%); 24-h
# jobs due in 30 h 1.097 -> 1.035 (16 July: 1b, first in the ladder, climbed from 0.09 to 0.13-0.22 $/h, a limit of
# 0.39 rode it at 3.15 $, one of 0.19 moved to 1c/1d at 0.07-0.08: 1.90 $).
LADDER_TOLERANCE = 0.03
# Training cost a smaller guard margin (`_lower_guard`) may add and still replace the chosen one. Found on
# spot-availability 2022 when weeks of phantom hours (before the spot records began) had both zones out: margins of
# 2, 4 and 8 h within 0.02% in training for 48 h due in 60 h; the 8 h the MIP took cost 143.8 $ where 2 h cost 88.7.
GUARD_TOLERANCE = 0.001
INSURANCE_CAP = 1.5  # x the on-demand price: above it a spike hour costs half again the on-demand hour it replaces
# A late limit (`_raise_late`, up to INSURANCE_CAP) takes over once the slack left beyond the guard margin is down to
# this share of it, on deadlines with at least LATE_MIN_ROOM_HOURS of such slack. Measured on AWS 2015 (38 starts,
# 9 workloads) as a fixed rule on the advisor's plans: a quarter cut c3.xlarge's cost 0.8% and g2.2xlarge's 0.3%;
# half cut c3's 1.4% and raised g2's 0.2%. Which starts gain, training does not tell (its predicted saving and the
# realized one were unrelated), so the move is insurance taken on a training tie, not a bet taken on a forecast.
LATE_SHARE = 0.25
LATE_MIN_ROOM_HOURS = 4.0
# ...or, for limits below on-demand, once no bid has run for this many hours in a row while every bid market was priced
# below on-demand: a level between the limits and on-demand that holds a whole day (past the daily cycle) is taken
# for a new level, not a spike to wait out, and with every zone below on-demand the raised ladder's first zone costs
# less than on-demand too. (A limit at or above on-demand that has not run for a day faced spikes above on-demand:
# AWS 2015 m3.medium, not used in tuning, 1.114 -> 1.119 when those counted too: from 13 June a limit of 0.07 $/h,
# on-demand 0.067, raised after a day of peaks at 0.077, paid a mean of 0.045 $/h where waiting paid 0.026.)
# Measured on AWS 2015 (`python benchmarks/backtests.py`): c3.xlarge 1.277 -> 1.271 x hindsight, 96 h due in 384 h
# 1.106 -> 1.041 of the best static plan (from 26 April a limit of 0.13 ran 30 h before the level moved to 0.10-0.25
# $/h for a week, then 69 h went on-demand), 48 h due in 192 h 1.036 -> 1.025; g2.2xlarge 1.200 either way, 96 h due
# in 384 h 1.018 -> 1.009; the four-zone g2 case unchanged (counting an hour with any one zone below on-demand: 1.073
# -> 1.075, a ladder raised after a day out from 15 August paid 13.9 $ where waiting paid 9.5 $). Counting every hour
# out, whatever the price, paid g2's August surge (96 h due in 384 h 1.061); 12 h paid g2's shorter spells (24 h due
# in 96 h 0.901 -> 0.935).
LATE_AFTER_HOURS = 24.0
# Keeping pace (`_keep_pace`) is a bet on the forecast, not insurance: it buys fallback hours early that waiting might
# have made unnecessary, so training must price it this much lower than the chosen plan. Measured on every case of
# `python benchmarks/backtests.py` (mean cost / hindsight, without pace -> any training saving -> 3%; before the line
# allowed an hour's lag, PACE_LAG_HOURS, which moved c3 to 1.228 and r3 to 1.262): c3.xlarge 1.271
# -> 1.223 -> 1.218 (slack 1.25: 1.000 / 1.008 / 1.000 of the best static plan -> 0.887 / 0.893 / 0.884); g2.2xlarge
# 1.200 -> 1.188 -> 1.195; spot-availability 2022 1.404 -> 1.360 -> 1.364 (Greedy 1.382); 2023 1.291 -> 1.296 ->
# 1.291; gcp-h100 1.325 -> 1.306 (P90 1.559 -> 1.843) -> 1.309 (P90 1.559); r3.large 1.290 -> 1.295 (P90 1.695 ->
# 1.867) -> 1.288; m3.medium, d2.8xlarge and the four-zone g2 case within 0.001.
PACE_GAIN = 0.03
# Patience (`_be_patient`): a ladder of zones hops to the next one whenever the zone it runs in blinks, and pays a
# restart (and a gang's lost work) each time; waiting a few hours for the zone instead is nearly free when the slack is
# days. The hours tried, and like keeping pace a bet on the forecast, taken only when training prices it this much
# lower (each longer patience this much lower again). Measured on every case of `python benchmarks/backtests.py` (mean
# cost / hindsight, without -> any training saving -> 3%): gcp-h100 1.308 -> 1.303 (P90 1.559 -> 2.008) -> 1.299 (P90
# 1.559; 12 h due in 24 h / 48 h on four nodes 1.056 / 1.051 -> 1.043 / 1.031 of the best static plan, 48 h due in
# 192 h on eight 1.053 -> 1.044); spot-availability 2022 1.364 -> 1.411 -> 1.364; AWS 2015 g2, c3, the four- and
# five-zone cases, m3, r3, d2 and 2023 the same at 3%. The cheapest patience 3% lower, not the shortest: gcp-h100
# 1.301, P90 1.732. Where it was not tuned: gcp-h100 with the starts 6 h later 1.354 -> 1.347 (no workload worse);
# 2022 p2.8xlarge 1.535 -> 1.537, p2.xlarge and p3.16xlarge the same. (All before ladders moved back up,
# `candidates.SWITCH_BELOW` at 0.8 for earlier zones only; with it, gcp-h100 1.270 -> 1.265.)
PATIENCE_HOURS = (1.0, 2.0, 4.0, 8.0)
PATIENCE_GAIN = 0.03


@dataclass
class Training:
    """What candidates are scored on: the training paths (outage copies included), their weights `q`, the weights
    without the assumed outages (`plain`: what a budget holds) and the paths before the copies (`plain_paths`)."""

    paths: MarketPaths
    q: np.ndarray
    plain: np.ndarray
    plain_paths: MarketPaths


def refine(w: Workload, pool: list[Candidate], cands: list[Candidate], cost: np.ndarray, meet: np.ndarray,
            t: Training, index: int, cap: float,
            move_limits: bool = True) -> tuple[list[Candidate], np.ndarray, np.ndarray, int, list[str]]:
    """The moves after the MIP, in order: zones behind the chosen bids (`_broaden`), a smaller guard margin on a
    training tie (`_lower_guard`), the limits retuned (`_retune_limit`), a late limit (`_raise_late`, unless not
    `move_limits`), keeping pace (`_keep_pace`), patience (`_be_patient`); each within the budget and meeting the
    target as often. Plans a move needs that the rounds left unscored are scored first and appended. Returns the
    candidates, their (candidate x scenario) cost and deadline met, the final choice and a note per move made."""
    budget = math.inf if w.budget is None else w.budget
    notes: list[str] = []

    def score(extra: list[Candidate]) -> None:
        nonlocal cands, cost, meet
        cands, cost, meet = score_more(w, cands, cost, meet, extra, t.paths)

    score(_unscored(pool, cands, _extends(cands[index])) + _headed_by(cands[index], pool))
    alike = _priced_alike(t.plain_paths, cands[index].plan.bids)
    moved = _broaden(w, cands, cost, meet, t.q, index, cost @ t.plain <= budget, alike)
    if moved != index:
        notes.append(_broaden_note(cands, cost, t.q, index, moved))
    index = moved
    score(_unscored(pool, cands, _at_other_guards(cands[index])))
    moved = _lower_guard(w, cands, cost, meet, t.q, index, cost @ t.plain <= budget)
    if moved != index:
        notes.append(_guard_note(cands, cost, t.q, index, moved))
    index = moved
    score(_unscored(pool, cands, _at_other_limits(cands[index])))
    floors = {b.market: THRIFT_FLOOR * _median_peak(t.plain_paths, b.market) for b in cands[index].plan.bids}
    moved = _retune_limit(w, cands, cost, meet, t.q, t.plain, index, cap, floors, cost @ t.plain <= budget)
    if moved != index:
        notes.append(_retune_note(w, cands, cost, t.plain, t.q, index, moved))
    index = moved
    if move_limits and any(_price_moved(t.plain_paths, b.market) for b in cands[index].plan.bids):
        score(_late_variant(w, cands[index], cap))
    moved = _raise_late(w, cands, cost, meet, t.q, index, cost @ t.plain <= budget)
    if moved != index:
        notes.append(_late_note(cands, cost, t.q, index, moved))
    index = moved
    score(_paced_variant(cands[index]))
    moved = _keep_pace(w, cands, cost, meet, t.q, index, cost @ t.plain <= budget)
    if moved != index:
        notes.append(_pace_note(cands, cost, t.q, index, moved))
    index = moved
    score(_patient_variants(cands[index]))
    moved = _be_patient(w, cands, cost, meet, t.q, index, cost @ t.plain <= budget)
    if moved != index:
        notes.append(_patience_note(cands, cost, t.q, index, moved))
    return cands, cost, meet, moved, notes


def _paced_variant(chosen: Candidate) -> list[Candidate]:
    """`chosen` keeping pace (none for a reservation, a plan without bids or fallback, or one that keeps it)."""
    plan = chosen.plan
    if not plan.bids or not plan.fallback or plan.reservation or plan.keep_pace:
        return []
    return [replace(chosen, plan=replace(plan, keep_pace=True))]


def _keep_pace(w: Workload, cands: list[Candidate], cost: np.ndarray, meet: np.ndarray, q: np.ndarray,
               index: int, affordable: np.ndarray) -> int:
    """The chosen plan keeping pace when training prices it at least PACE_GAIN lower (a negative tolerance) and it
    meets the target as often; else the chosen plan."""
    return _variant_within(w, cands, cost, meet, q, index, -PACE_GAIN, affordable,
                           lambda c: c.keep_pace and replace(c, keep_pace=False) == cands[index].plan)


def _pace_note(cands: list[Candidate], cost: np.ndarray, q: np.ndarray, chosen: int, paced: int) -> str:
    """What `_keep_pace` did and the training cost it saved."""
    saved = 1 - float(cost[paced] @ q) / float(cost[chosen] @ q)
    return (f"keeps pace: an hour it would wait while over an hour behind the line elapsed x work / deadline runs "
            f"on {cands[paced].plan.fallback[0].market} instead, and returns to the bids once back within the hour; "
            f"{saved:.1%} lower expected cost in training")


def _patient_variants(chosen: Candidate) -> list[Candidate]:
    """`chosen` waiting each of PATIENCE_HOURS for a zone that blinked (none for fewer than two bids, or a patient
    plan)."""
    plan = chosen.plan
    if len(plan.bids) < 2 or plan.patience_hours:
        return []
    return [replace(chosen, plan=replace(plan, patience_hours=h)) for h in PATIENCE_HOURS]


def _be_patient(w: Workload, cands: list[Candidate], cost: np.ndarray, meet: np.ndarray, q: np.ndarray,
                index: int, affordable: np.ndarray) -> int:
    """The chosen plan at the shortest patience that training prices at least PATIENCE_GAIN lower, and at each longer
    one that is that much lower again, meeting the target as often; else the chosen plan. Each hour more is a bet
    that the zone comes back, so it must earn its keep."""
    plan, mean, best = cands[index].plan, cost @ q, index
    ok = _no_worse(w, cost, meet, q, q, index, 0.0, affordable)
    patient = [int(p) for p in np.flatnonzero(ok)
               if cands[p].plan.patience_hours > 0 and replace(cands[p].plan, patience_hours=0.0) == plan]
    for p in sorted(patient, key=lambda p: cands[p].plan.patience_hours):
        if mean[p] <= mean[best] * (1 - PATIENCE_GAIN):
            best = p
    return best


def with_patience_rechosen(w: Workload, cands: list[Candidate], cost: np.ndarray, meet: np.ndarray, t: Training,
                           index: int, plans: list[Plan]) -> tuple[list[Candidate], np.ndarray, np.ndarray, list[Plan]]:
    """Each of `plans` (variants of candidate `index`) at the patience `_be_patient` chooses for it, its own reset
    first: patience is the last move, and a wait spends slack that a late limit, a switch or a return after the guard
    protects, so the plan without one of those is what the advisor would recommend only once patience is decided again
    without it."""
    budget = math.inf if w.budget is None else w.budget
    bases = [replace(cands[index], plan=replace(p, patience_hours=0.0)) for p in plans]
    first = len(cands)
    cands, cost, meet = score_more(w, cands, cost, meet, bases + [v for b in bases for v in _patient_variants(b)],
                                   t.paths)
    affordable = cost @ t.plain <= budget
    return cands, cost, meet, [cands[_be_patient(w, cands, cost, meet, t.q, first + i, affordable)].plan
                               for i in range(len(bases))]


def _patience_note(cands: list[Candidate], cost: np.ndarray, q: np.ndarray, chosen: int, patient: int) -> str:
    """What `_be_patient` did and the training cost it saved."""
    saved = 1 - float(cost[patient] @ q) / float(cost[chosen] @ q)
    return (f"patience: a job that a market drops waits up to {cands[patient].plan.patience_hours:g} h for it (or an "
            f"earlier one) before it takes a later one, saving the restarts of hopping; {saved:.1%} lower expected "
            f"cost in training")


def _broaden(w: Workload, cands: list[Candidate], cost: np.ndarray, meet: np.ndarray, q: np.ndarray, index: int,
             affordable: np.ndarray, alike: frozenset[str] = frozenset()) -> int:
    """The chosen bids with the most zones behind them (the same bids first, in order, at the same limits; its guard
    and reservation) that training prices at most INSURANCE_TOLERANCE x work / slack more, or ALIKE_TOLERANCE more
    when every zone added is in `alike` (priced like the chosen ones), and that meet the target as often; the
    cheapest of those. A zone waited on costs nothing until the ones before it fail, and in training only the
    restarts of moving to it when the first zone blinks; it is insurance against a first zone out longer than the
    history showed, worth most near a tight deadline (an exact tie the solver already settles this way)."""
    chosen = cands[index]
    head = list(chosen.plan.bids)
    if not head:
        return index
    mean, best = cost @ q, index
    tolerance = INSURANCE_TOLERANCE / _spare(w)
    usual = _no_worse(w, cost, meet, q, q, index, tolerance, affordable)
    for p in np.flatnonzero(_no_worse(w, cost, meet, q, q, index, max(ALIKE_TOLERANCE, tolerance), affordable)):
        c = cands[p]
        if (list(c.plan.bids[:len(head)]) == head and c.guard == chosen.guard and c.reservation == chosen.reservation
                and (usual[p] or all(b.market in alike for b in c.plan.bids[len(head):]))
                and (len(c.plan.bids), -mean[p]) > (len(cands[best].plan.bids), -mean[best])):
            best = p
    return best


def _priced_alike(paths: MarketPaths, bids: tuple[Bid, ...]) -> frozenset[str]:
    """The spot markets whose median training price is within 1% of the dearest bid's market or below (capacity-only
    series, with no price, are alike): a zone behind them costs no more an hour than the zones before it."""
    if not bids:
        return frozenset()
    top = max(_median_peak(paths, b.market) for b in bids)
    return frozenset(m for m in paths.markets if m.endswith(":spot") and _median_peak(paths, m) <= top * 1.01)


def _lower_guard(w: Workload, cands: list[Candidate], cost: np.ndarray, meet: np.ndarray, q: np.ndarray, index: int,
                 affordable: np.ndarray) -> int:
    """The chosen bids and reservation at the smallest guard margin that training prices at most GUARD_TOLERANCE
    more and that meets the target as often. Where training ties margins (spot scarce in every scenario, so the
    job runs on on-demand whatever the margin), the smaller one keeps more of the window for spot if it comes back;
    the margin's own job, the deadline, is held by the P(meet) test."""
    chosen, best = cands[index], index
    for p in np.flatnonzero(_no_worse(w, cost, meet, q, q, index, GUARD_TOLERANCE, affordable)):
        c = cands[p]
        if c.plan.bids == chosen.plan.bids and c.reservation == chosen.reservation and c.guard < cands[best].guard:
            best = p
    return best


def _guard_note(cands: list[Candidate], cost: np.ndarray, q: np.ndarray, chosen: int, guarded: int) -> str:
    """What `_lower_guard` did and the training cost it added."""
    extra = float(cost[guarded] @ q) / float(cost[chosen] @ q) - 1
    return (f"guard margin lowered from {cands[chosen].guard:g} h to {cands[guarded].guard:g} h: training ties them "
            f"({extra:+.2%} expected cost), and the smaller margin keeps more of the window for spot if it comes "
            f"back; the deadline is met as often")


def _broaden_note(cands: list[Candidate], cost: np.ndarray, q: np.ndarray, chosen: int, broad: int) -> str:
    """What `_broaden` added and the training cost it added."""
    added = [b.market for b in cands[broad].plan.bids[len(cands[chosen].plan.bids):]]
    extra = float(cost[broad] @ q) / float(cost[chosen] @ q) - 1
    return (f"added {', '.join(added)} behind the chosen bids: a zone waited on costs nothing until the ones before it "
            f"fail, and a first zone out longer than the history showed is what it is for; {extra:+.1%} expected cost "
            f"in training")


def _retune_limit(w: Workload, cands: list[Candidate], cost: np.ndarray, meet: np.ndarray, q: np.ndarray,
                  plain: np.ndarray, index: int, cap: float, floors: dict[str, float] | None = None,
                  affordable: np.ndarray | None = None) -> int:
    """A single bid's limit moved as far as training allows, the same market, guard and reservation, meeting the target
    as often: up to `cap` costing at most INSURANCE_TOLERANCE x work / slack more, or, with THRIFT_SPARE x the work
    of slack or more, down (not below its market's `floors` price) costing at most THRIFT_TOLERANCE x slack / work
    more. A limit no training spike reached costs nothing more in training but rides out the spike the history never
    showed, worth most near a tight deadline, where a preemption sends the rest of the job to on-demand; with days to
    spare, waiting that spike out is cheaper than paying it. Costs are weighed with `plain` (no assumed outages: with
    its market out, every limit costs the same). A ladder's limits only move down (`_lower_ladder_limits`). Only
    `affordable` candidates (within the budget) are moved to."""
    chosen, floors = cands[index], floors or {}
    affordable = np.ones(len(cands), dtype=bool) if affordable is None else affordable
    if len(chosen.plan.bids) > 1:
        return _lower_ladder_limits(w, cands, cost, meet, q, index, floors, affordable)
    if not chosen.plan.bids:
        return index
    spare = _spare(w)
    up = spare < THRIFT_SPARE
    tolerance = INSURANCE_TOLERANCE / spare if up else THRIFT_TOLERANCE * spare
    best, limit = index, chosen.plan.bids[0].limit_price
    floor_price = floors.get(chosen.plan.bids[0].market, 0.0)
    for p in np.flatnonzero(_no_worse(w, cost, meet, q, plain, index, tolerance, affordable)):
        if not _same_bids(cands[p], chosen):
            continue
        other = cands[p].plan.bids[0].limit_price
        if (limit < other <= cap + 1e-9) if up else (floor_price <= other < limit):
            best, limit = p, other
    return best


def _lower_ladder_limits(w: Workload, cands: list[Candidate], cost: np.ndarray, meet: np.ndarray, q: np.ndarray,
                         index: int, floors: dict[str, float], affordable: np.ndarray) -> int:
    """The chosen ladder with every limit as low or lower, none below its market's `floors` price, the same zones in
    the same order, guard and reservation, costing at most LADDER_TOLERANCE more in training (outages included: a
    limit under a backup zone's price drops that zone) and meeting the target as often; the lowest such top limit.
    When the zone it is on climbs past the limit, a ladder moves to the next zone still below it for a restart, where
    a higher limit would have paid the climb."""
    chosen = cands[index]
    limits = np.array([b.limit_price for b in chosen.plan.bids])
    lowest = np.array([floors.get(b.market, 0.0) for b in chosen.plan.bids])
    best, top = index, limits.max()
    for p in np.flatnonzero(_no_worse(w, cost, meet, q, q, index, LADDER_TOLERANCE, affordable)):
        if not _same_bids(cands[p], chosen):
            continue
        other = np.array([b.limit_price for b in cands[p].plan.bids])
        if (other <= limits + 1e-12).all() and (other >= lowest - 1e-12).all() and other.max() < top:
            best, top = p, other.max()
    return best


def _late_variant(w: Workload, chosen: Candidate, cap: float) -> list[Candidate]:
    """`chosen` with its bids raised to `cap` once the slack left beyond its guard margin is down to LATE_SHARE of
    it, or (limits below on-demand) after LATE_AFTER_HOURS waiting with every bid market below on-demand (none for a
    reservation, a limit at the cap already, or under LATE_MIN_ROOM_HOURS of such slack)."""
    plan = chosen.plan
    room = w.deadline_hours - w.hours - plan.guard_margin_hours
    if (not plan.bids or plan.reservation or plan.late_limit is not None or room < LATE_MIN_ROOM_HOURS
            or max(b.limit_price for b in plan.bids) >= cap * (1 - 1e-9)):
        return []
    margin = plan.guard_margin_hours + LATE_SHARE * room
    below = max(b.limit_price for b in plan.bids) < cap / INSURANCE_CAP  # every limit below on-demand
    return [replace(chosen, plan=replace(plan, late_limit=as_limit(cap, up=False), late_margin_hours=margin,
                                         late_after_hours=LATE_AFTER_HOURS if below else None))]


def _price_moved(paths: MarketPaths, market: str) -> bool:
    """Whether a market's price moved in training: a late limit is no insurance on a posted price, or none."""
    peaks = finite_peaks(paths, market)
    return bool(peaks.size) and bool(peaks.max() > peaks.min())


def _raise_late(w: Workload, cands: list[Candidate], cost: np.ndarray, meet: np.ndarray, q: np.ndarray,
                index: int, affordable: np.ndarray) -> int:
    """The chosen plan with a late limit (`_late_variant`) when training prices it at most INSURANCE_TOLERANCE more
    and it meets the target as often; else the chosen plan. Bids kept low while the slack is ample wait out what a
    high limit would pay; once most of it is gone a preemption, or a level that settles above the limit, sends the
    rest of the job to on-demand, which the raised limit (a second price: the market is paid, not the limit) beats.
    The same insurance `_retune_limit` buys at a tight deadline, bought for the end of a loose one."""
    return _variant_within(w, cands, cost, meet, q, index, INSURANCE_TOLERANCE, affordable,
                           lambda c: c.late_limit is not None and c.without_late_limit() == cands[index].plan)


def _variant_within(w: Workload, cands: list[Candidate], cost: np.ndarray, meet: np.ndarray, q: np.ndarray,
                    index: int, tolerance: float, affordable: np.ndarray, is_variant: Callable[[Plan], bool]) -> int:
    """The first candidate whose plan `is_variant` of the chosen one, within `tolerance` of its training cost (below
    zero: at least that much cheaper), within the budget and meeting the target as often; else the chosen one."""
    for p in np.flatnonzero(_no_worse(w, cost, meet, q, q, index, tolerance, affordable)):
        if is_variant(cands[p].plan):
            return int(p)
    return index


def _late_note(cands: list[Candidate], cost: np.ndarray, q: np.ndarray, chosen: int, raised: int) -> str:
    """What `_raise_late` did and the training cost it added."""
    plan = cands[raised].plan
    extra = float(cost[raised] @ q) / float(cost[chosen] @ q) - 1
    waited = (f", or after {plan.late_after_hours:g} h waiting on prices below the fallback's"
              if plan.late_after_hours else "")
    return (f"limits rise to {format_usd(plan.late_limit)} once the slack left is {plan.late_margin_hours:g} "
            f"h{waited}: near the deadline a preemption, and at any time a price level that settles above the limit, "
            f"would send the rest of the job to on-demand; {extra:+.1%} expected cost in training")


def capped(c: Candidate, od_price: float, w: Workload) -> Candidate:
    """`c` with its limits falling to on-demand once riding prices above it has cost what leaving costs
    (`switch_cost_hours`), when any limit is above on-demand."""
    if c.plan.bids and max(b.limit_price for b in c.plan.bids) > od_price * (1 + 1e-9):
        return replace(c, plan=replace(c.plan, dear_excess_hours=switch_cost_hours(w)))
    return c


def switch_cost_hours(w: Workload) -> float:
    """What leaving a bid priced above on-demand costs, in on-demand hours: a restart there, the work lost since the
    last checkpoint (half an interval on average), and a restart back on spot later.

    Why this is when limits above on-demand (up to 3x, to ride an excursion rather than be preempted by it) fall to
    it: riding costs the excess over on-demand each hour and leaving costs this once, so riding until the excess paid
    equals it (the ski-rental rule) pays at most about twice what the better choice would have, made knowing how long
    the excursion lasts. AWS 2015 d2.8xlarge (not used in tuning), 28 April: a limit of 3x on-demand rode 10.50 $/h,
    1.9x on-demand, into a plateau that held 40 h; capped after 12 h in a row above on-demand (the rule before), it
    paid 60 $ over on-demand, under this rule 10 $. `python benchmarks/backtests.py`, 12 h -> this: d2.8xlarge 1.116 ->
    1.113 x hindsight, slack 1.25 against the docs' rule 1.088 / 1.045 / 1.023 -> 1.016 / 1.008 / 1.004; r3.large
    1.262 -> 1.256; m3.medium 1.113 -> 1.114; every other case the same. Twice this budget: d2 1.113, m3 1.116.
    Lifting the cap once the excursion ends (each excursion its own rental, so the next can be ridden): r3 1.259, m3
    1.114 (P90 1.426 -> 1.417), d2 and g2 the same; the cap stays for good."""
    return 2 * w.restart_overhead + w.checkpoint_every / 2


def _spare(w: Workload) -> float:
    """The slack as a multiple of the work: (deadline - work) / work."""
    return max(w.deadline_hours - w.hours, 1e-9) / w.hours


def _no_worse(w: Workload, cost: np.ndarray, meet: np.ndarray, q: np.ndarray, weights: np.ndarray, index: int,
              tolerance: float, affordable: np.ndarray) -> np.ndarray:
    """The candidates a move after the MIP may go to (bool per candidate): `affordable` (within the budget), meeting
    the deadline as often as the chosen one (or the target), costing at most `tolerance` more under `weights`."""
    rate, mean = meet @ q, cost @ weights
    floor = min(w.target_probability, float(rate[index])) - 1e-12
    return affordable & (rate >= floor) & (mean <= float(mean[index]) * (1 + tolerance))


def _median_peak(paths: MarketPaths, market: str) -> float:
    """A market's median hourly peak price over the scenarios (0 where no price is known)."""
    peaks = finite_peaks(paths, market)
    return float(np.median(peaks)) if peaks.size else 0.0


def _same_bids(c: Candidate, chosen: Candidate) -> bool:
    """`c` bids on `chosen`'s markets in its order, at any limits, with its guard and reservation."""
    return ([b.market for b in c.plan.bids] == [b.market for b in chosen.plan.bids] and c.guard == chosen.guard
            and c.reservation == chosen.reservation)


def _retune_note(w: Workload, cands: list[Candidate], cost: np.ndarray, plain: np.ndarray, q: np.ndarray,
                 chosen: int, retuned: int) -> str:
    """What `_retune_limit` did and why, with the training cost it added (weighed as it was weighed)."""
    def limits(p: int) -> str:
        return ", ".join(format_usd(b.limit_price) for b in cands[p].plan.bids)

    ladder = len(cands[chosen].plan.bids) > 1
    weights = q if ladder else plain
    extra = float(cost[retuned] @ weights) / float(cost[chosen] @ weights) - 1
    slack = w.deadline_hours - w.hours
    if ladder:
        return (f"limits lowered from {limits(chosen)} to {limits(retuned)}: a ladder leaves a zone whose price climbs "
                f"past its limit for the next zone still below it, at the cost of a restart; {extra:+.1%} expected "
                f"cost in training")
    if cands[retuned].plan.bids[0].limit_price > cands[chosen].plan.bids[0].limit_price:
        return (f"limit raised from {limits(chosen)} to {limits(retuned)} as insurance against a spike the history "
                f"did not show: {extra:+.1%} expected cost in training, with {slack:g} h of slack to wait out a "
                f"preemption")
    return (f"limit lowered from {limits(chosen)} to {limits(retuned)}: with {slack:g} h of slack a spike the "
            f"history did not show is cheaper waited out than paid; {extra:+.1%} expected cost in training")


def _unscored(pool: list[Candidate], cands: list[Candidate], keep: Callable[[Candidate], bool]) -> list[Candidate]:
    """The pool's candidates that `keep` accepts and the rounds left unscored (other guards than the base one are
    scored for the best few ladders only): what a move after the MIP may need scored first."""
    seen = {id(c) for c in cands}
    return [c for c in pool if id(c) not in seen and keep(c)]


def _extends(chosen: Candidate) -> Callable[[Candidate], bool]:
    """Ladders starting with `chosen`'s bids at their limits, with more zones behind, same guard and reservation."""
    head = chosen.plan.bids
    return lambda c: (bool(head) and len(c.plan.bids) > len(head) and c.plan.bids[:len(head)] == head
                      and c.guard == chosen.guard and c.reservation == chosen.reservation)


def _headed_by(chosen: Candidate, pool: list[Candidate]) -> list[Candidate]:
    """Ladders headed by a chosen single bid: it, then the other zones of each ladder in the pool, in that ladder's
    order at its limits, with the chosen guard. The pool's ladders start with the zone that looks cheapest per hour
    obtained, so a bid chosen elsewhere (a zone never out in a short history) has no zones behind it there."""
    if len(chosen.plan.bids) != 1 or chosen.reservation != NONE:
        return []
    head, seen, out = chosen.plan.bids, {(c.plan.bids, c.guard) for c in pool}, {}
    for c in pool:
        bids = head + tuple(b for b in c.plan.bids if b.market != head[0].market)
        if len(c.plan.bids) > 1 and len(bids) > 1 and (bids, chosen.guard) not in seen and bids not in out:
            out[bids] = Candidate(replace(chosen.plan, bids=bids), ladder_name(bids), chosen.guard, NONE)
    return list(out.values())


def _at_other_guards(chosen: Candidate) -> Callable[[Candidate], bool]:
    """`chosen`'s bids at their limits and its reservation, at another guard margin."""
    return lambda c: (bool(chosen.plan.bids) and c.plan.bids == chosen.plan.bids and c.guard != chosen.guard
                      and c.reservation == chosen.reservation)


def _at_other_limits(chosen: Candidate) -> Callable[[Candidate], bool]:
    """`chosen`'s markets in its order at any limits, with its guard and reservation."""
    return lambda c: bool(chosen.plan.bids) and _same_bids(c, chosen)

"""The replay engine: what a plan costs and whether it meets its deadline, hour by hour (DESIGN.md).

This module is the single source of truth for a plan's cost. `replay` is the plain reference for one path;
`replay_batch` is the same rules vectorized over many scenario paths (the optimizer calls it thousands of times),
and tests prove they agree. `Ledger` holds the per-hour accounting (restart overhead, checkpoint loss on
preemption, pro-rata final hour, reservation credits) so strategies that are not plans (Uniform Progress) are
costed by the same code.

Rules, at t = 0 .. deadline-1: stop when no work remains (unused reservation hours are returned); the guard (`remaining
+ restart_overhead >= hours_left - guard_margin`) switches to fallback mode for good; the same test at `late_margin`
raises every bid's limit to `late_limit` for good (a bid held keeps running, no restart), and so do `late_after` hours
in a row without a bid running, outside the guard, while every bid market was priced below the first fallback (a level
above the limits but below on-demand that holds that long is no spike to wait out); before any raise, once the bids run
in a row of hours priced above the first fallback have cost `dear_excess` of its hours more than it (the sum over those
hours of price / fallback price - 1), every limit is capped at the fallback's price for good, each hour (riding an
excursion is worth it until what it has cost equals the price of leaving it), and no raise follows; an active
reservation is always used first; otherwise stay on the current bid while it is eligible, else take the first eligible
bid; otherwise wait. With `keep_pace`, outside the guard, an hour that would wait while the work done is more than
PACE_LAG_HOURS behind the line `t x hours / deadline` runs the first usable fallback instead, and a job on a fallback
stays there until it is within that lag of the line at `t + 2 x restart_overhead` (Uniform Progress's catch-up with its
hysteresis), then returns to the bids. With `patience`, a bid ranked after the last one run is taken only once no bid
has run for that many hours in a row. With `switch_below`, a job on a bid that holds moves to the first other eligible
bid whose hourly price is below `switch_below` x the current one's. With `return_below`, in fallback mode the job still
runs a bid priced below `return_below` x the first fallback's price (the one it holds, else the first eligible) while
the slack left covers a preemption there (`checkpoint_every + restart_overhead`, plus a restart to move). Moving markets
costs `restart_overhead`; a preemption (the current spot market is no longer eligible at its limit, or lost capacity)
also loses the work since the last checkpoint, while a voluntary move checkpoints first. Pauses are whole hours here, so
every pause meets the 1-hour minimum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from advisor.plan.paths import MarketPaths
from advisor.plan.types import Plan, PlanError, Reservation, Workload

EPS = 1e-9
# How far behind the uniform-progress line a job keeping pace may fall before it buys fallback hours: an hour, the
# decisions' grain. Compared exactly (as Uniform Progress does), one restart after a spike put a job at slack 1.25
# behind by 0.05 h, and the catch-up at 0.2 h an hour held it on on-demand 7 h (AWS 2015 r3.large, 24 h due in 30 h
# from 10 July: 1.77 $ against 0.51 $ waiting). `python benchmarks/backtests.py`, 0 -> 1 h: r3.large 1.288 -> 1.262 x
# hindsight (P90 1.874 -> 1.741), c3.xlarge 1.218 -> 1.228, GCP H100 1.309 -> 1.308, spot-availability 2022 and 2023
# the same (1.364, 1.291); 0.5 h: r3 1.264, c3 1.232.
PACE_LAG_HOURS = 1.0
RESERVED = " (reserved)"


@dataclass(frozen=True)
class Slot:
    """A place the job can run in one hour: a market in a role (bid at a limit, fallback) or the reservation."""

    role: str  # "bid" | "fallback" | "reservation"
    label: str  # market key; the reservation is "<market> (reserved)"
    market: int  # index into the paths; -1 for the reservation
    limit: float = math.inf


@dataclass
class ReplayResult:
    """The outcome of one replay (USD; hours are gang wall-hours)."""

    cost: float
    finished: bool
    finish_hour: float | None
    preemptions: int
    hours_by_market: dict[str, float] = field(default_factory=dict)
    restarts: int = 0  # hours that began with the restart overhead: the first start, preemptions, moves
    remaining_hours: float = 0.0  # work left at the deadline (0 when finished)
    timeline: list[tuple[int, str | None, bool]] = field(default_factory=list)  # (hour, where it ran, preempted)
    market_cost: float = 0.0
    reservation_cost: float = 0.0
    credits: float = 0.0

    def to_dict(self) -> dict:
        return {"cost": self.cost, "finished": self.finished, "finish_hour": self.finish_hour,
                "hours_by_market": self.hours_by_market, "preemptions": self.preemptions, "restarts": self.restarts,
                "remaining_hours": self.remaining_hours,
                "market_cost": self.market_cost, "reservation_cost": self.reservation_cost, "credits": self.credits}


def plan_slots(plan: Plan, paths: MarketPaths) -> tuple[list[Slot], list[Slot], Slot | None]:
    """The plan's bid slots, fallback slots and reservation slot, resolved against the paths."""
    bids = [Slot("bid", b.market, paths.index(b.market), b.limit_price) for b in plan.bids]
    fallbacks = [Slot("fallback", f.market, paths.index(f.market)) for f in plan.fallback]
    res = plan.reservation
    return bids, fallbacks, (Slot("reservation", res.market + RESERVED, -1) if res else None)


def check_fits(workload: Workload, plan: Plan, paths: MarketPaths) -> None:
    """Raise PlanError when the paths are too short for the deadline or a reservation cannot hold the gang."""
    if paths.hours < workload.horizon:
        raise PlanError(f"the price paths cover {paths.hours} h but the deadline needs {workload.horizon} h. "
                        f"To fix: shorten the deadline or use a later --start / more history")
    res = plan.reservation
    if res is not None and res.instances < workload.nodes:
        raise PlanError(f"reservation.instances: a gang of {workload.nodes} nodes needs >= {workload.nodes} "
                        f"(got {res.instances})")


class Ledger:
    """Per-hour accounting for one job on one path: progress, checkpoints, preemptions, cost."""

    def __init__(self, workload: Workload, paths: MarketPaths, scenario: int = 0) -> None:
        self.w, self.paths, self.s = workload, paths, scenario
        self.remaining = float(workload.hours)
        self.since_ckpt = 0.0
        self.current: Slot | None = None
        self.market_cost = 0.0
        self.preemptions = self.restarts = 0
        self.hours_by: dict[str, float] = {}
        self.reserved_steps = 0
        self.finish_hour: float | None = None
        self.timeline: list[tuple[int, str | None, bool]] = []

    @property
    def done(self) -> bool:
        return self.remaining <= EPS

    def usable(self, slot: Slot, t: int) -> bool:
        """Whether a market slot can run hour t: peak price <= its limit and capacity for the gang all hour."""
        if slot.role == "reservation":
            return True
        cap = self.paths.avail[self.s, slot.market, t]
        peak = self.paths.peak[self.s, slot.market, t]
        return bool(peak <= slot.limit and (math.isnan(cap) or cap >= self.w.nodes))

    def step(self, t: int, choice: Slot | None) -> None:
        """Run hour t on `choice` (None: wait), after settling a preemption or a voluntary move."""
        if choice is not None and not self.usable(choice, t):
            raise ValueError(f"hour {t}: {choice.label} cannot run (above its limit or no capacity)")
        current = self.current
        preempted = current is not None and not self.usable(current, t)
        if preempted:
            self.remaining += self.since_ckpt  # work since the last checkpoint is lost
            self.since_ckpt = 0.0
            self.preemptions += 1
        elif current is not None and (choice is None or choice.label != current.label):
            self.since_ckpt = 0.0  # a voluntary move checkpoints first
        self.current = choice
        self.timeline.append((t, None if choice is None else choice.label, preempted))
        if choice is None:
            return
        restart = preempted or current is None or current.label != choice.label
        self.restarts += restart
        gain = 1.0 - self.w.restart_overhead if restart else 1.0
        finishing = gain >= self.remaining - EPS
        used = (self.w.restart_overhead if restart else 0.0) + self.remaining if finishing else 1.0
        work = self.remaining if finishing else gain
        if choice.role == "reservation":
            self.reserved_steps += 1
        else:
            self.market_cost += float(self.paths.mean[self.s, choice.market, t]) * self.w.nodes * used
        self.hours_by[choice.label] = self.hours_by.get(choice.label, 0.0) + used
        self.remaining -= work
        self.since_ckpt = _after_checkpoint(self.since_ckpt + work, self.w.checkpoint_every)
        if finishing:
            self.remaining, self.finish_hour = 0.0, t + used

    def result(self, reservation: Reservation | None) -> ReplayResult:
        res_cost, credits = reservation_charges(reservation, self.w, self.reserved_steps, self.finish_hour)
        return ReplayResult(cost=self.market_cost + res_cost, finished=self.done, finish_hour=self.finish_hour,
                            preemptions=self.preemptions, hours_by_market=dict(self.hours_by), restarts=self.restarts,
                            remaining_hours=max(self.remaining, 0.0), timeline=list(self.timeline),
                            market_cost=self.market_cost, reservation_cost=res_cost, credits=credits)


def _after_checkpoint(since: float, every: float) -> float:
    if every <= 0:
        return 0.0
    return since - every * math.floor((since + EPS) / every)


def reservation_charges(res: Reservation | None, w: Workload, reserved_steps: int | np.ndarray,
                        finish_hour: float | None | np.ndarray) -> tuple:
    """(net cost, credits): paid up front, less pause credit for the instances beyond the gang while it runs on
    the reservation and return credit for every instance-hour left once the job is done, valued at credit_value.
    Works on scalars and on arrays (NaN finish_hour = not finished)."""
    if res is None:
        return 0.0, 0.0
    gross = res.unit_price * res.instances * res.hours
    pause = res.pause_credit * (res.instances - w.nodes) * np.asarray(reserved_steps, dtype=float)
    finish = np.asarray(np.nan if finish_hour is None else finish_hour, dtype=float)
    stop = np.ceil(np.nan_to_num(finish - EPS, nan=np.inf))
    returned = np.clip(res.end_hour - np.maximum(stop, res.start_hour), 0, res.hours)
    credits = w.credit_value * (pause + res.return_credit * res.instances * returned)
    if np.ndim(credits) == 0:
        credits = float(credits)
    return gross - credits, credits


def replay(workload: Workload, plan: Plan, paths: MarketPaths, scenario: int = 0) -> ReplayResult:
    """Replay `plan` on one path (the reference implementation of DESIGN.md's rules)."""
    check_fits(workload, plan, paths)
    bids, fallbacks, res_slot = plan_slots(plan, paths)
    res = plan.reservation
    job = Ledger(workload, paths, scenario)
    deadline, guard, raise_pending = workload.horizon, False, plan.late_margin_hours is not None
    after, waited = plan.late_after_hours or math.inf, 0
    dear_budget, dear, lowered, first = plan.dear_excess_hours or math.inf, 0.0, False, bids
    pace, ro = workload.hours / deadline, workload.restart_overhead  # the uniform-progress line's slope
    rank, idle = len(bids), 0  # the bids up to the last one run (all, before any), and hours since a bid ran
    for t in range(deadline):
        if job.done:
            break
        if job.remaining + ro >= (deadline - t) - plan.guard_margin_hours:
            guard = True
        if raise_pending and (waited >= after or job.remaining + ro >= (deadline - t) - plan.late_margin_hours):
            raise_pending, dear_budget = False, math.inf
            bids = _moved(job, bids, [replace(b, limit=max(b.limit, plan.late_limit)) for b in bids])
        if not lowered and dear >= dear_budget:
            lowered, raise_pending = True, False
        if lowered:
            od = float(paths.mean[scenario, fallbacks[0].market, t])
            bids = _moved(job, bids, [replace(b, limit=min(b.limit, od)) for b in first])
        lagged = workload.hours - job.remaining + PACE_LAG_HOURS + EPS  # the work done, plus the lag allowed
        if res is not None and res.start_hour <= t < res.end_hour:
            choice = res_slot
        elif guard or (plan.keep_pace and job.current in fallbacks and (t + 2 * ro) * pace > lagged):
            choice = _first_eligible(job, fallbacks, t)
            back = _returned(job, bids, fallbacks, plan.return_below, deadline - t, t) if guard else None
            choice = choice if back is None else back
        elif job.current in bids and job.usable(job.current, t):
            choice = _switched(job, bids, plan.switch_below, t)
        else:
            choice = _first_eligible(job, bids if idle >= plan.patience_hours else bids[:rank], t)
            if choice is None and plan.keep_pace and t * pace > lagged:
                choice = _first_eligible(job, fallbacks, t)
        job.step(t, choice)
        rank, idle = (bids.index(choice) + 1, 0) if choice in bids else (rank, idle + 1)
        out = choice is None and not guard and _below_fallback(paths, scenario, bids, fallbacks, t)
        waited = waited + 1 if out else 0
        excess = _excess_over_fallback(paths, scenario, choice, fallbacks, t) if choice in bids else 0.0
        dear = dear + excess if excess > 0 else 0.0
    return job.result(res)


def _switched(job: Ledger, bids: list[Slot], below: float | None, t: int) -> Slot:
    """The bid a job on an eligible bid runs hour t: the first other eligible bid priced below `below` x the current
    one's, else the current one."""
    if below is None:
        return job.current
    bar = below * float(job.paths.mean[job.s, job.current.market, t])
    other = _first_priced_below(job, [b for b in bids if b is not job.current], bar, t)
    return job.current if other is None else other


def _returned(job: Ledger, bids: list[Slot], fallbacks: list[Slot], below: float | None, hours_left: int,
              t: int) -> Slot | None:
    """In guard mode, the bid a job runs hour t instead of the fallback: the one it holds, else the first eligible,
    priced below `below` x the first fallback's price, while the slack left absorbs a preemption there (None: none)."""
    if below is None or not fallbacks:
        return None
    dropped = job.current is not None and not job.usable(job.current, t)  # the work since the checkpoint is lost
    bar = below * float(job.paths.mean[job.s, fallbacks[0].market, t])
    room = hours_left - job.remaining - dropped * job.since_ckpt
    loss = job.w.checkpoint_every + job.w.restart_overhead  # a preemption: the work since a checkpoint, a restart
    if job.current in bids and room >= loss and _first_priced_below(job, [job.current], bar, t) is not None:
        return job.current
    return _first_priced_below(job, bids, bar, t) if room >= loss + job.w.restart_overhead else None


def _first_priced_below(job: Ledger, slots: list[Slot], bar: float, t: int) -> Slot | None:
    """The first of `slots` that can run hour t at an hourly price below `bar`, or None."""
    price = job.paths.mean[job.s, :, t]
    return next((s for s in slots if job.usable(s, t) and float(price[s.market]) < bar), None)


def _first_eligible(job: Ledger, slots: list[Slot], t: int) -> Slot | None:
    """The first of `slots` that can run hour t, or None."""
    return next((s for s in slots if job.usable(s, t)), None)


def _moved(job: Ledger, bids: list[Slot], new: list[Slot]) -> list[Slot]:
    """`new` bid slots (the same markets at other limits); a bid held keeps its place among them."""
    if job.current in bids:
        job.current = new[bids.index(job.current)]
    return new


def _excess_over_fallback(paths: MarketPaths, s: int, slot: Slot, fallbacks: list[Slot], t: int) -> float:
    """How much dearer than the first fallback `slot`'s market is at hour t, in the fallback's hours (its price / the
    fallback's - 1); 0 when not dearer, with no fallback, or with no price."""
    if not fallbacks:
        return 0.0
    excess = excess_ratio(paths.mean[s, slot.market, t], paths.mean[s, fallbacks[0].market, t])
    return float(excess) if excess > 0 else 0.0


def excess_ratio(price: np.ndarray | float, fallback: np.ndarray | float) -> np.ndarray:
    """price / fallback - 1 where the fallback's price is positive, else 0 (both engines read dear hours through it,
    so they sum the same floats)."""
    price, fallback = np.asarray(price, dtype=float), np.asarray(fallback, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(fallback > 0, price / np.where(fallback > 0, fallback, 1.0) - 1, 0.0)


def _below_fallback(paths: MarketPaths, s: int, bids: list[Slot], fallbacks: list[Slot], t: int) -> bool:
    """Whether every bid market's price at hour t is below the first fallback's (False with no fallback, or no
    price): raised then, a ladder's first usable bid costs less than on-demand."""
    if not fallbacks:
        return False
    od = paths.mean[s, fallbacks[0].market, t]
    return all(paths.mean[s, b.market, t] < od for b in bids)

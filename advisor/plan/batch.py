"""The replay rules of `advisor.plan.replay`, vectorized over many scenario paths at once.

Same meaning, different form: numpy arrays over scenarios replace the per-path loop state, one hour at a time.
The optimizer scores candidate plans with this; tests check it against the reference `replay` path by path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from advisor.plan.paths import MarketPaths
from advisor.plan.replay import EPS, PACE_LAG_HOURS, check_fits, excess_ratio, plan_slots, reservation_charges
from advisor.plan.types import Plan, Workload


@dataclass
class BatchResult:
    """Per-scenario outcomes: arrays of length n_scenarios; `hours` is (n_scenarios, len(labels))."""

    cost: np.ndarray
    finished: np.ndarray
    finish_hour: np.ndarray  # NaN where the deadline was missed
    preemptions: np.ndarray
    hours: np.ndarray
    labels: list[str]
    remaining_hours: np.ndarray
    market_cost: np.ndarray
    reservation_cost: np.ndarray
    credits: np.ndarray
    restarts: np.ndarray  # hours that began with the restart overhead: the first start, preemptions, moves

    @property
    def probability_meet_deadline(self) -> float:
        return float(self.finished.mean())


def _first_usable(usable: np.ndarray, offset: int = 0) -> np.ndarray:
    """Index (+ offset) of the first True along the last axis, -1 where none; a loop over the few slots is far
    cheaper than argmax over a short last axis."""
    first = np.full(usable.shape[:-1], -1)
    for j in range(usable.shape[-1] - 1, -1, -1):
        first = np.where(usable[..., j], offset + j, first)
    return first


def _cheaper_bid(cur: np.ndarray, bar: np.ndarray, usable: np.ndarray, n_bid: int, slot_base: np.ndarray,
                 price: np.ndarray, price_base: np.ndarray) -> np.ndarray:
    """Per row, the first bid other than `cur` that is usable and priced below `bar` (-1: none)."""
    out = np.full(cur.shape, -1)
    for k in range(n_bid - 1, -1, -1):
        hit = usable.take(slot_base + k) & (cur != k) & (price.take(price_base + k) < bar)
        out = np.where(hit, k, out)
    return out


def replay_batch(workload: Workload, plan: Plan, paths: MarketPaths) -> BatchResult:
    """Replay `plan` on every scenario of `paths` (vectorized; agrees with `replay` on each path)."""
    return replay_batch_many(workload, [plan], paths)[0]


def same_structure(plan: Plan) -> tuple:
    """What plans must share to be replayed together: bid markets in order, fallbacks and reservation."""
    return tuple(b.market for b in plan.bids), plan.fallback, plan.reservation


def replay_batch_many(workload: Workload, plans: list[Plan], paths: MarketPaths,
                      by_market: bool = True) -> list[BatchResult]:
    """`replay_batch` of several plans that differ only in limits, margins (guard, late), pace, patience and
    switching, in one pass over the hours (plans x scenarios rows): the hour loop's fixed cost is paid once instead of
    once per plan. Without `by_market` the hours per market are left at zero (scoring needs only cost and deadline
    met)."""
    if len({same_structure(p) for p in plans}) != 1:
        raise ValueError("replay_batch_many needs plans with the same bid markets, fallbacks and reservation")
    plan = plans[0]
    for p in plans:
        check_fits(workload, p, paths)
    bids, fallbacks, res_slot = plan_slots(plan, paths)
    slots = bids + fallbacks
    n_bid, n_mkt = len(bids), len(slots)
    res = plan.reservation
    reserved = n_mkt  # slot index of the reservation
    labels = list(dict.fromkeys([s.label for s in slots] + ([res_slot.label] if res_slot else [])))
    key_of = np.array([labels.index(s.label) for s in slots] + [labels.index(res_slot.label) if res_slot else -1]
                      + [-1], dtype=int)  # index -1 (waiting) maps to key -1
    column = np.array([labels.index(s.label) for s in slots] + ([labels.index(res_slot.label)] if res_slot else []),
                      dtype=int)

    n_paths, n_plans, deadline, nodes = paths.n_scenarios, len(plans), workload.horizon, workload.nodes
    n = n_paths * n_plans  # row = plan k, scenario s at k * n_paths + s
    ro, every = workload.restart_overhead, workload.checkpoint_every
    margin = np.repeat([p.guard_margin_hours for p in plans], n_paths)
    midx = np.array([s.market for s in slots], dtype=int)
    limits = np.array([[b.limit_price for b in p.bids] + [s.limit for s in fallbacks] for p in plans], dtype=float)
    # (hours, rows, slots) so each hour is one contiguous block
    cap = paths.avail[:, midx, :deadline]
    has_cap = np.isnan(cap) | (cap >= nodes)

    def usable_at(limits: np.ndarray) -> np.ndarray:
        """(hours, rows, slots): peak within `limits` (plans x scenarios x slots x hours, or broadcast) and capacity."""
        ok = (paths.peak[None, :, midx, :deadline] <= limits) & has_cap[None]
        return ok.reshape(n, n_mkt, deadline).transpose(2, 0, 1)

    rows = np.arange(n)
    scenario_of = rows % n_paths
    usable = usable_at(limits[:, None, :, None])
    # (hours, rows), for every hour at once: the first usable fallback and bid slot, or -1 (wait)
    fallback_pick = _first_usable(usable[:, :, n_bid:n_mkt], n_bid)
    bid_pick = _first_usable(usable[:, :, :n_bid])
    usable_flat = usable.reshape(deadline, n * n_mkt)
    # plans with a late limit: the same slots at the raised limits, used by a row once its slack is down to the
    # late margin (-inf: never)
    phased = n_bid > 0 and any(p.late_margin_hours is not None for p in plans)
    late, low = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)  # raised; capped (below)
    if phased:
        late_margin = np.repeat([-np.inf if p.late_margin_hours is None else p.late_margin_hours for p in plans],
                                n_paths)
        raised = limits.copy()
        raised[:, :n_bid] = np.maximum(limits[:, :n_bid], [[p.late_limit or 0.0] for p in plans])
        usable_late = usable_at(raised[:, None, :, None])
        bid_pick_late = _first_usable(usable_late[:, :, :n_bid])
        usable_late_flat = usable_late.reshape(deadline, n * n_mkt)
        # ...or once it has waited `late_after` hours in a row, outside the guard, with every bid market priced below
        # the first fallback: (hours, scenarios)
        late_after = np.repeat([p.late_after_hours or np.inf for p in plans], n_paths)
        waited = np.zeros(n)
        below = np.zeros((deadline, n_paths), dtype=bool)
        if fallbacks:
            bid_mean = paths.mean[:, [b.market for b in bids], :deadline]
            below = (bid_mean < paths.mean[:, None, fallbacks[0].market, :deadline]).all(axis=1).T
    # plans that cap their limits at the first fallback's price once bids run in a row of dear hours have cost
    # `dear_excess` of its hours more (before any raise): the same slots at the capped limits, hour by hour, and the
    # (hours, scenario x bid) excess of each bid market's price over the fallback's, in the fallback's hours
    capped = n_bid > 0 and bool(fallbacks) and any(p.dear_excess_hours is not None for p in plans)
    if capped:
        dear_budget = np.repeat([p.dear_excess_hours or np.inf for p in plans], n_paths)
        od_mean = paths.mean[:, fallbacks[0].market, :deadline]  # (scenarios, hours)
        ceiling = np.full((n_paths, n_mkt, deadline), np.inf)
        ceiling[:, :n_bid] = od_mean[:, None, :]
        usable_low = usable_at(np.fmin(limits[:, None, :, None], ceiling[None]))
        bid_pick_low = _first_usable(usable_low[:, :, :n_bid])
        usable_low_flat = usable_low.reshape(deadline, n * n_mkt)
        dear_at = excess_ratio(paths.mean[:, midx[:n_bid], :deadline], od_mean[:, None, :]).transpose(2, 0, 1).reshape(
            deadline, n_paths * n_bid)
        dear = np.zeros(n)
        dear_base = scenario_of * n_bid
    # plans that keep pace: over the lag behind the uniform-progress line (slope `pace`), a waiting hour runs the
    # first fallback
    paced = bool(fallbacks) and any(p.keep_pace for p in plans)
    pace, pace_row = workload.hours / deadline, np.repeat([p.keep_pace for p in plans], n_paths)
    # patient plans: a bid ranked at or after `rank` (one past the last bid run) waits until no bid has run for
    # `patience` hours
    patient = n_bid > 1 and any(p.patience_hours > 0 for p in plans)
    if patient:
        patience = np.repeat([p.patience_hours for p in plans], n_paths)
        rank, idle = np.full(n, n_bid), np.zeros(n)
    # plans that switch: a row on a bid that holds takes the first other usable bid priced below `switch_below` x the
    # current one's
    switching = n_bid > 1 and any(p.switch_below is not None for p in plans)
    if switching:
        below_row = np.repeat([-np.inf if p.switch_below is None else p.switch_below for p in plans], n_paths)
    # plans that return from the guard: a row in guard mode runs a bid priced below `return_below` x the first
    # fallback's price while its slack absorbs a preemption there
    returning = n_bid > 0 and bool(fallbacks) and any(p.return_below is not None for p in plans)
    if returning:
        return_row = np.repeat([-np.inf if p.return_below is None else p.return_below for p in plans], n_paths)
        loss = every + ro
    # prices do not depend on the plan: (hours, scenario x slot), read at scenario = row % n_paths
    price_flat = (paths.mean[:, midx, :deadline] * nodes).transpose(2, 0, 1).reshape(deadline, n_paths * n_mkt)

    rem = np.full(n, float(workload.hours))
    since = np.zeros(n)
    cur = np.full(n, -1)
    guard = np.zeros(n, dtype=bool)
    cost = np.zeros(n)
    pre = np.zeros(n, dtype=int)
    starts = np.zeros(n, dtype=int)
    res_steps = np.zeros(n, dtype=int)
    hours = np.zeros((n, len(labels)))
    finish = np.full(n, np.nan)
    slot_base, price_base = rows * n_mkt, scenario_of * n_mkt
    # slot (-1 waiting .. n_mkt the reservation) -> a column that exists, read where it does not matter; a table
    # lookup is ~10x cheaper than np.clip on every hour. Both tables are read at slot + 1.
    column_of = np.clip(np.arange(-1, n_mkt + 1), 0, max(n_mkt - 1, 0))
    is_bid = np.arange(-1, n_mkt + 1) >= 0
    is_bid[n_bid + 1:] = False
    # work drops by at most an hour an hour, so no row can be done before this hour
    first_done = max(int(np.floor(workload.hours - 1.0)), 0)

    for t in range(deadline):
        active = rem > EPS
        if t >= first_done and not active.any():
            break
        # a finished row's guard is never read again
        guard |= rem + ro >= (deadline - t) - margin
        # the slot held last hour is usable this hour (a reservation always is)
        held = cur + 1
        was = held > 0
        held_at = slot_base + column_of.take(held)
        holds = usable_flat[t].take(held_at) if n_mkt else np.zeros(n, dtype=bool)
        bid_first = bid_pick[t]
        if phased:
            late |= ((rem + ro >= (deadline - t) - late_margin) | (waited >= late_after)) & ~low
            holds = np.where(late, usable_late_flat[t].take(held_at), holds)
            bid_first = np.where(late, bid_pick_late[t], bid_first)
        if capped:
            low |= (dear >= dear_budget) & ~late
            holds = np.where(low, usable_low_flat[t].take(held_at), holds)
            bid_first = np.where(low, bid_pick_low[t], bid_first)
        if patient:
            bid_first = np.where((bid_first < rank) | (idle >= patience), bid_first, -1)
        if res is not None:
            holds |= cur >= n_mkt
        if res is not None and res.start_hour <= t < res.end_hour:
            choice = np.full(n, reserved)
        else:
            stay = is_bid.take(held) & holds
            fallen = guard
            if paced:
                lagged = workload.hours - rem + PACE_LAG_HOURS + EPS  # the work done, plus the lag allowed
                fallen = guard | (pace_row & (cur >= n_bid) & (cur < n_mkt) & ((t + 2 * ro) * pace > lagged))
            back_now = returning and bool(guard.any())  # (no row returns before its guard fires)
            if switching or back_now:
                now = usable_flat[t]  # each row's usable slots under its limits this hour (raised, capped)
                if phased:
                    now = np.where(np.repeat(late, n_mkt), usable_late_flat[t], now)
                if capped:
                    now = np.where(np.repeat(low, n_mkt), usable_low_flat[t], now)
                held_price = price_flat[t].take(price_base + column_of.take(cur + 1))
            if back_now:
                room = (deadline - t) - rem - np.where(was & ~holds, since, 0.0)  # less the work a preemption loses
                bar = return_row * price_flat[t].take(price_base + n_bid)
                entered = _cheaper_bid(np.full(n, -1), bar, now, n_bid, slot_base, price_flat[t], price_base)
                back = np.where(stay & (held_price < bar) & (room >= loss), cur,
                                np.where(room >= loss + ro, entered, -1))
            if switching:
                bar = below_row * held_price
                cheaper = np.where(stay, _cheaper_bid(cur, bar, now, n_bid, slot_base, price_flat[t], price_base), -1)
                bid_first = np.where(cheaper >= 0, cheaper, bid_first)
                stay &= cheaper < 0
            choice = np.where(fallen, fallback_pick[t], np.where(stay, cur, bid_first))
            if paced:
                choice = np.where((choice < 0) & pace_row & (t * pace > lagged), fallback_pick[t], choice)
            if back_now:
                choice = np.where(guard & (back >= 0), back, choice)
        choice = np.where(active, choice, -1)
        if patient:
            ran = (choice >= 0) & (choice < n_bid)
            rank, idle = np.where(ran, choice + 1, rank), np.where(ran, 0.0, idle + 1)
        if phased:
            waited = np.where((choice < 0) & ~guard & below[t].take(scenario_of), waited + 1, 0.0)
        if capped:
            on_bid = (choice >= 0) & (choice < n_bid)
            excess = dear_at[t].take(dear_base + np.where(on_bid, choice, 0))
            dear = np.where(on_bid & (excess > 0), dear + excess, 0.0)

        had = active & was
        preempted = had & ~holds
        rem += np.where(preempted, since, 0.0)
        pre += preempted
        moved = key_of.take(cur) != key_of.take(choice)
        since[preempted | (had & moved)] = 0.0

        run = choice >= 0
        restart = run & (moved | preempted)
        starts += restart
        gain = np.where(restart, 1.0 - ro, run)  # 0 where it does not run
        fin = run & (gain >= rem - EPS)
        used = np.where(fin, np.where(restart, ro, 0.0) + rem, 1.0)
        work = np.where(fin, rem, gain)
        on_market = run & (choice < n_mkt) if res is not None else run
        step_price = price_flat[t].take(price_base + column_of.take(choice + 1)) if n_mkt else np.zeros(n)
        cost += np.where(on_market, step_price * used, 0.0)
        if by_market:
            hours[rows[run], column[choice[run]]] += used[run]  # one cell per row: no repeated index
        if res is not None:
            res_steps += choice == reserved
        rem -= work  # a finishing row's work is all of what remained: rem - rem = 0
        since += work
        if every > 0:
            since -= every * np.floor((since + EPS) / every)
        else:
            since[:] = 0.0
        finish = np.where(fin, t + used, finish)
        cur = np.where(active, choice, cur)

    finished = rem <= EPS
    res_cost, credits = reservation_charges(res, workload, res_steps, finish)
    res_cost = np.broadcast_to(np.asarray(res_cost, dtype=float), (n,)).copy()
    credits = np.broadcast_to(np.asarray(credits, dtype=float), (n,)).copy()
    total, remaining = cost + res_cost, np.maximum(rem, 0.0)
    out = []
    for k in range(n_plans):
        part = slice(k * n_paths, (k + 1) * n_paths)
        out.append(BatchResult(cost=total[part], finished=finished[part], finish_hour=finish[part],
                               preemptions=pre[part], hours=hours[part], labels=labels,
                               remaining_hours=remaining[part], market_cost=cost[part],
                               reservation_cost=res_cost[part], credits=credits[part], restarts=starts[part]))
    return out

"""Scoring candidate plans: the replay engine over scenario paths, with uncertain work split over its quantiles.

Every cost the optimizer compares comes from here, and so from `advisor.plan`'s replay: plans of one structure are
replayed together, and `score_in_rounds` spends the full guard-margin grid only on the ladders worth it.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from advisor.backtest.strategies import safe_margin
from advisor.optimize.candidates import NONE, Candidate
from advisor.plan import BatchResult, MarketPaths, Plan, Workload, replay_batch_many, same_structure

WORK_QUANTILES = (0.1, 0.3, 0.5, 0.7, 0.9)


def work_levels(workload: Workload) -> list[float]:
    """Work hours per scenario group: just `hours`, or five quantiles of the lognormal through hours_p90."""
    if not workload.hours_p90 or workload.hours_p90 <= workload.hours:
        return [workload.hours]
    from scipy.special import ndtri

    sigma = math.log(workload.hours_p90 / workload.hours) / ndtri(0.9)
    return [round(workload.hours * math.exp(sigma * ndtri(q)), 2) for q in WORK_QUANTILES]


def replay_uncertain(workload: Workload, plan: Plan, paths: MarketPaths) -> BatchResult:
    """`replay_batch` with the scenarios split evenly over the work levels (one level: a plain replay)."""
    return replay_uncertain_many(workload, [plan], paths)[0]


def replay_uncertain_many(workload: Workload, plans: list[Plan], paths: MarketPaths,
                          by_market: bool = True) -> list[BatchResult]:
    """`replay_uncertain` of plans of one structure (see `same_structure`) in one pass per work level."""
    levels = work_levels(workload)
    if len(levels) == 1:
        return replay_batch_many(workload, plans, paths, by_market)
    parts: list[list[tuple[np.ndarray, BatchResult]]] = [[] for _ in plans]
    index = np.arange(paths.n_scenarios)
    for k, hours in enumerate(levels):
        sel = index[index % len(levels) == k]
        sub = MarketPaths(paths.markets, paths.mean[sel], paths.peak[sel], paths.avail[sel], paths.start)
        level = replace(workload, hours=hours, hours_p90=None)
        for j, result in enumerate(replay_batch_many(level, plans, sub, by_market)):
            parts[j].append((sel, result))
    return [_merge(part, paths.n_scenarios) for part in parts]


def replay_grouped(workload: Workload, plans: list[Plan], paths: MarketPaths, chunk: int = 16,
                   by_market: bool = True) -> list[BatchResult]:
    """`replay_uncertain` of every plan, those of one structure replayed together (`chunk` at a time)."""
    groups: dict[tuple, list[int]] = {}
    for i, plan in enumerate(plans):
        groups.setdefault(same_structure(plan), []).append(i)
    out: list[BatchResult | None] = [None] * len(plans)
    for members in groups.values():
        for c in range(0, len(members), chunk):
            ids = members[c:c + chunk]
            batch = replay_uncertain_many(workload, [plans[i] for i in ids], paths, by_market)
            for i, result in zip(ids, batch, strict=True):
                out[i] = result
    return out


def _merge(parts: list[tuple[np.ndarray, BatchResult]], n: int) -> BatchResult:
    labels = list(dict.fromkeys(label for _, r in parts for label in r.labels))
    out = {k: np.zeros(n) for k in ("cost", "finish_hour", "market_cost", "reservation_cost", "credits",
                                    "remaining_hours")}
    finished, pre, hours = np.zeros(n, dtype=bool), np.zeros(n, dtype=int), np.zeros((n, len(labels)))
    starts = np.zeros(n, dtype=int)
    for sel, r in parts:
        for k in out:
            out[k][sel] = getattr(r, k)
        finished[sel], pre[sel], starts[sel] = r.finished, r.preemptions, r.restarts
        for j, label in enumerate(r.labels):
            hours[sel, labels.index(label)] = r.hours[:, j]
    return BatchResult(finished=finished, preemptions=pre, hours=hours, labels=labels, restarts=starts, **out)


def score_more(w: Workload, cands: list[Candidate], cost: np.ndarray, meet: np.ndarray, extra: list[Candidate],
                train: MarketPaths) -> tuple[list[Candidate], np.ndarray, np.ndarray]:
    """`cands` with `extra` appended, scored on the same training scenarios (indices of `cands` unchanged)."""
    if not extra:
        return cands, cost, meet
    results = replay_grouped(w, [c.plan for c in extra], train, by_market=False)
    return (cands + extra, np.vstack([cost] + [r.cost[None] for r in results]),
            np.vstack([meet] + [r.finished[None] for r in results]))


def score_in_rounds(w: Workload, pool: list[Candidate], train: MarketPaths, q: np.ndarray,
                     keep: int = 5) -> tuple[list[Candidate], np.ndarray, np.ndarray]:
    """Replay every ladder and reservation at the base guard margin, then the other margins for the best
    `keep` ladders only; returns the candidates scored with their (candidate x scenario) cost and deadline met."""
    base = safe_margin(w)
    first = [c for c in pool if c.ladder == NONE or c.guard == base]
    def score(group: list[Candidate]) -> dict[int, BatchResult]:
        return dict(zip((id(c) for c in group), replay_grouped(w, [c.plan for c in group], train, by_market=False),
                        strict=True))

    scored = score(first)

    def merit(c: Candidate) -> tuple[float, float]:
        r = scored[id(c)]
        return (float(r.finished @ q < w.target_probability), float(r.cost @ q))

    best = {c.ladder for c in sorted((c for c in first if c.ladder != NONE), key=merit)[:keep]}
    second = [c for c in pool if c.ladder in best and c.guard != base]
    scored.update(score(second))
    cands = first + second
    return (cands, np.stack([scored[id(c)].cost for c in cands]),
            np.stack([scored[id(c)].finished for c in cands]))

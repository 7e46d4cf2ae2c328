"""What the recommended plan is compared with, each replayed on the same evaluation scenarios: the baselines
(on-demand only, the best single bid, reservation only, the docs' rule), the plan without each optional rule it uses,
and the two reservation tiers (which one the plan would take, and why)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from advisor.backtest.strategies import Universe, docs_rule_plan
from advisor.optimize.candidates import NONE, Candidate
from advisor.optimize.refine import Training, with_patience_rechosen
from advisor.optimize.scoring import replay_uncertain
from advisor.plan import BatchResult, MarketPaths, Plan, Workload

FIXED_LIMITS = "recommended, without the late limit"  # the alternative that shows what the late limit buys
UNPACED = "recommended, without keeping pace"  # ...and what keeping pace buys
HASTY = "recommended, moving zones at once"  # ...and what patience buys
STAYING = "recommended, staying in a zone while it holds"  # ...and what switching buys
SETTLED = "recommended, staying on the fallback once it runs"  # ...and what returning after the guard buys


@dataclass
class Outcome:
    """A plan and its replay on the evaluation scenarios."""

    name: str
    plan: Plan
    result: BatchResult

    @property
    def cost(self) -> dict[str, float]:
        c = self.result.cost
        return {"mean": float(c.mean()), "p50": float(np.quantile(c, 0.5)), "p90": float(np.quantile(c, 0.9))}

    @property
    def probability(self) -> float:
        return self.result.probability_meet_deadline

    @property
    def restarts(self) -> dict[str, float]:
        """Hours begun with the restart overhead per job (the first start, preemptions, moves): median and P90."""
        r = self.result.restarts
        return {"p50": float(np.quantile(r, 0.5)), "p90": float(np.quantile(r, 0.9))}


def alternative_outcomes(w: Workload, cands: list[Candidate], cost: np.ndarray, meet: np.ndarray, t: Training,
                         index: int, universe: Universe, fresh: MarketPaths) -> list[Outcome]:
    """The baselines and the chosen plan (candidate `index`) without each rule it uses, patience decided again for
    each but the one without patience, replayed on the evaluation scenarios `fresh`."""
    plans = baseline_plans(w, cands, cost, meet, t.q, universe, t.paths)
    without = without_each_rule(cands[index].plan)
    redecided = [name for name in without if name != HASTY]  # a plan without patience keeps the rest
    *_, patient = with_patience_rechosen(w, cands, cost, meet, t, index, [without[name] for name in redecided])
    plans.update(without | dict(zip(redecided, patient, strict=True)))
    return [Outcome(name, plan, replay_uncertain(w, plan, fresh)) for name, plan in plans.items()]


def baseline_plans(w: Workload, cands: list[Candidate], cost: np.ndarray, meet: np.ndarray, q: np.ndarray,
                   universe: Universe, paths: MarketPaths) -> dict[str, Plan]:
    """The baselines by name: on-demand only, the single bid and the reservation cheapest in training among those
    meeting the target, and the docs' rule (limit = on-demand price)."""
    rate = meet @ q
    mean = np.where(rate >= w.target_probability, cost @ q, np.inf)
    out = {"on-demand only": cands[0].plan}
    singles = [p for p, c in enumerate(cands)  # one bid at one limit: the late limit is the advisor's own
               if c.ladder != NONE and len(c.plan.bids) == 1 and c.plan.late_limit is None]
    if singles:
        out["best single bid"] = cands[min(singles, key=lambda p: (mean[p], -rate[p]))].plan
    reserved = [p for p, c in enumerate(cands) if c.reservation != NONE]
    if reserved:
        out["reservation only"] = cands[min(reserved, key=lambda p: (mean[p], -rate[p]))].plan
    if universe.spot:
        out["docs rule (limit = on-demand price)"] = docs_rule_plan(w, universe, paths)
    return out


def without_each_rule(plan: Plan) -> dict[str, Plan]:
    """The plan without each optional rule it uses (late limit, pace, patience, switching, returning after the
    guard), by name: replayed on the evaluation scenarios beside it (patience decided again for the others), they show
    what each rule buys."""
    variants = {FIXED_LIMITS: plan.without_late_limit(), UNPACED: replace(plan, keep_pace=False),
                HASTY: replace(plan, patience_hours=0.0), STAYING: replace(plan, switch_below=None),
                SETTLED: replace(plan, return_below=None)}
    return {name: variant for name, variant in variants.items() if variant != plan}


def _reservation_reason(w: Workload, outcomes: dict[str, Outcome]) -> str | None:
    tiers = {o.plan.reservation.tier: o for o in outcomes.values() if o.plan.reservation}
    if len(tiers) < 2:
        return None
    hi, lo = tiers["high"], tiers["low"]
    better = "high" if hi.cost["mean"] < lo.cost["mean"] else "low"
    credits = hi.result.credits.mean()
    return (f"{better} flexibility: on the evaluation scenarios a high-flexibility reservation nets "
            f"${hi.cost['mean']:,.0f} (credits worth ${credits:,.0f} at credit_value {w.credit_value:g}) against "
            f"${lo.cost['mean']:,.0f} for low; " + ("pauses and early returns earn back more than the higher price"
                                                   if better == "high" else "the work uses the reservation nearly "
                                                   "in full, so the lower unit price wins"))


def reservation_reason(w: Workload, cands: list[Candidate], cost: np.ndarray, meet: np.ndarray, q: np.ndarray,
                       fresh: MarketPaths) -> str | None:
    """Why the plan would take the reservation tier it would: both tiers' cheapest candidates, on the evaluation
    scenarios (None unless both tiers are offered)."""
    return _reservation_reason(w, _tier_outcomes(w, cands, cost, meet, q, fresh))


def _tier_outcomes(w: Workload, cands: list[Candidate], cost: np.ndarray, meet: np.ndarray, q: np.ndarray,
                   fresh: MarketPaths) -> dict[str, Outcome]:
    """The cheapest reservation candidate of each tier, replayed on the evaluation scenarios."""
    out = {}
    for tier in ("high", "low"):
        idx = [p for p, c in enumerate(cands) if c.plan.reservation and c.plan.reservation.tier == tier]
        if idx:
            best = min(idx, key=lambda p: (float(meet[p] @ q < w.target_probability), cost[p] @ q))
            out[tier] = Outcome(tier, cands[best].plan, replay_uncertain(w, cands[best].plan, fresh))
    return out

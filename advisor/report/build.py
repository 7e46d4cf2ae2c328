"""The JSON report: versioned, validated against the schema shipped beside this file, written atomically.

It holds `workload` and `plan` exactly as `advisor replay` reads them, so a report can itself be replayed.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from advisor.optimize import Outcome, Recommendation
from advisor.plan import Plan, to_dict
from advisor.store import MarketKey

SCHEMA_VERSION = "1.0"


def schema() -> dict:
    """The report's JSON Schema."""
    return json.loads(resources.files("advisor.report").joinpath("report.schema.json").read_text())


def bid_commands(plan: Plan, nodes: int) -> list[str]:
    """`ml instance create` lines for the plan's Mithril bids (limits are per instance-hour)."""
    out = []
    for bid in plan.bids:
        key = MarketKey.parse(bid.market)
        if key.provider == "mithril":
            out.append(f"ml instance create -i {key.instance_type} -r {key.location} -m {bid.limit_price:.2f} "
                       f"-N {nodes}")
    return out


def _iso(ts: Any) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _outcome(o: Outcome) -> dict:
    return {"name": o.name, "plan": to_dict(o.plan), "cost": o.cost, "probability_meet_deadline": o.probability}


def assumptions(rec: Recommendation) -> list[str]:
    w = rec.workload
    out = [
        f"Costs and P(meet deadline) come from replaying each plan on {rec.n_eval} forecast scenarios that the "
        f"optimizer did not see (it chose among {rec.candidates} candidate plans on {rec.n_train} others).",
        f"The forecast is fitted on the {len(rec.universe.spot + rec.universe.on_demand)} markets listed in data, "
        f"hourly, from {_iso(rec.history_start)} to {_iso(rec.as_of)}; nothing after as_of is used.",
        "Spot hours cost the hour's time-weighted mean price; an hour is held only if its peak price is within the "
        "limit and capacity for the whole gang held all hour (second-price: you pay the market, not your limit).",
        f"Every (re)start costs {w.restart_overhead:g} h; a preemption loses the work since the last checkpoint "
        f"(every {w.checkpoint_every:g} h); on-demand list prices hold over the window.",
        f"Reservation credits are valued at {w.credit_value:g} per dollar (Mithril-only credit, expires after "
        f"6 months).",
    ]
    if rec.outage_chance:
        out.append(f"In choosing, each spot market bid on was taken to be out for the whole job with chance "
                   f"{rec.outage_chance:.0%} (a stockout longer than the history showed; raised in proportion when "
                   f"the history is shorter than a week), so a plan that stakes the job on one zone pays for that "
                   f"risk; the costs above leave that chance out.")
    if rec.chosen.plan.late_limit is not None:
        out.append("Raising the limits late is taken to keep a running instance (its bid's limit changed in place); "
                   "where a provider can only take a new bid, a running job keeps the first limit until preempted "
                   "(--fixed-limits plans without the raise).")
    if rec.chosen.plan.dear_excess_hours is not None:
        out.append(f"Capping the limits is taken to lower (or cancel) the bids once riding prices above on-demand has "
                   f"cost, in a row of such hours, {rec.chosen.plan.dear_excess_hours:g} h of on-demand more than "
                   f"on-demand would have (what leaving costs: two restarts and half a checkpoint interval); the "
                   f"instance stops then, as if preempted, and the job waits for spot at or below on-demand, or falls "
                   f"back.")
    if rec.chosen.plan.keep_pace:
        out.append("Keeping pace is taken to run the job on the first fallback, its spot bids withdrawn, in the hours "
                   "the plan catches up, and to place the bids again (after a checkpoint) once the work is back "
                   "within an hour of the line.")
    if rec.chosen.plan.patience_hours and len(rec.chosen.plan.bids) > 1:
        out.append(f"Patience is taken to keep the job's bid in the market that dropped it (or an earlier one) and "
                   f"to place the bid in a later market only once no bid has run for "
                   f"{rec.chosen.plan.patience_hours:g} h; a SkyPilot managed job re-provisions at once through "
                   f"`resources.ordered` (the first entry with capacity), so the wait takes a wrapper or a hand.")
    if rec.chosen.plan.switch_below is not None and len(rec.chosen.plan.bids) > 1:
        out.append(f"Switching is taken to checkpoint the job, release its instance and bid in the other market once "
                   f"that market's price is below {rec.chosen.plan.switch_below:.0%} of the price paid; "
                   f"SkyPilot does not move a running job, so that takes a wrapper or a hand.")
    if rec.chosen.plan.return_below is not None and rec.chosen.plan.bids and rec.chosen.plan.fallback:
        out.append(f"Returning after the guard is taken to checkpoint the job on the fallback and bid again once a "
                   f"market's price is below {rec.chosen.plan.return_below:.0%} of the fallback's, while the slack "
                   f"left covers a restart there and a preemption (a checkpoint interval and a restart back); "
                   f"SkyPilot does not move a job off on-demand, so that takes a wrapper or a hand.")
    if w.hours_p90:
        out.append(f"The work is uncertain: a lognormal with median {w.hours:g} h and P90 {w.hours_p90:g} h.")
    return out + rec.notes


def build_report(rec: Recommendation) -> dict:
    """The report dict; raises jsonschema.ValidationError if it does not match the shipped schema."""
    od = next((a for a in rec.alternatives if a.name == "on-demand only"), None)
    chosen = rec.chosen
    report = {
        "schema_version": SCHEMA_VERSION,
        "workload": to_dict(rec.workload),
        "plan": to_dict(chosen.plan),
        "probability_meet_deadline": chosen.probability,
        "cost": chosen.cost,
        "restarts": chosen.restarts,
        "savings_vs_on_demand": ({"usd": od.cost["mean"] - chosen.cost["mean"],
                                  "fraction": 1 - chosen.cost["mean"] / od.cost["mean"]}
                                 if od and od.cost["mean"] > 0 else {"usd": 0.0, "fraction": 0.0}),
        "alternatives": [_outcome(a) for a in rec.alternatives],
        "bid_commands": bid_commands(chosen.plan, rec.workload.nodes),
        "reservation_reason": rec.reservation_reason,
        "data": {"markets": list(rec.universe.spot + rec.universe.on_demand), "from": _iso(rec.history_start),
                 "as_of": _iso(rec.as_of),
                 "scenarios": {"train": rec.n_train, "evaluation": rec.n_eval, "seed": rec.seed}},
        "solver": {"name": rec.solution.solver, "status": rec.solution.status,
                   "seconds": round(rec.solution.seconds, 3), "candidates": rec.candidates,
                   "note": rec.solution.note},
        "assumptions": assumptions(rec),
    }
    report = json.loads(json.dumps(report, default=float))
    _check_finite(report)
    jsonschema.validate(report, schema())
    return report


def _check_finite(obj: Any) -> None:
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError("report holds a non-finite number")
    if isinstance(obj, dict):
        for v in obj.values():
            _check_finite(v)
    if isinstance(obj, list):
        for v in obj:
            _check_finite(v)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a file so that readers see the old or the new content, never half of it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)

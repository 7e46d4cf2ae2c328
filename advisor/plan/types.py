"""Workload, plan and reservation: small validated dataclasses that load from and save to JSON and YAML.

A plan's meaning is fixed by DESIGN.md ("The plan, and what it means hour by hour") and implemented once, in
`advisor.plan.replay`. Validation errors name the field: `workload.hours: must be > 0 (got -3)`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from advisor.errors import AdvisorError
from advisor.store.catalog import MarketKey


class PlanError(AdvisorError):
    """A workload or plan field is missing or out of range; the message names it."""


def _check(ok: bool, where: str, message: str, value: object) -> None:
    if not ok:
        raise PlanError(f"{where}: {message} (got {value!r})")


def _market(where: str, text: object) -> str:
    _check(isinstance(text, str), where, "must be a market key", text)
    try:
        MarketKey.parse(text)
    except ValueError as exc:
        raise PlanError(f"{where}: {exc}") from None
    return text


@dataclass(frozen=True)
class Workload:
    """One job: gang wall-hours of work, a deadline, and how the job tolerates interruption.

    `hours` is the gang's wall-hours (GPU-hours / (nodes x gpus_per_node)); `deadline_hours` counts from `start`.
    `hours_p90` is the 90th percentile of the work when it is uncertain (early stop or overrun).
    """

    hours: float
    deadline_hours: float
    nodes: int = 1
    gpu: str | None = None
    gpus_per_node: int = 8
    instance_type: str | None = None
    start: str | None = None
    checkpoint_every: float = 1.0
    restart_overhead: float = 0.25
    target_probability: float = 0.95
    budget: float | None = None
    credit_value: float = 1.0
    providers: tuple[str, ...] = ()
    markets: tuple[str, ...] = ()
    hours_p90: float | None = None

    def __post_init__(self) -> None:
        w = "workload"
        _check(_num(self.hours) and self.hours > 0, f"{w}.hours", "must be a number > 0", self.hours)
        _check(_num(self.deadline_hours) and self.deadline_hours >= 1, f"{w}.deadline_hours", "must be >= 1 hour",
               self.deadline_hours)
        _check(isinstance(self.nodes, int) and self.nodes >= 1, f"{w}.nodes", "must be a whole number >= 1",
               self.nodes)
        _check(isinstance(self.gpus_per_node, int) and self.gpus_per_node >= 1, f"{w}.gpus_per_node",
               "must be a whole number >= 1", self.gpus_per_node)
        _check(_num(self.checkpoint_every) and self.checkpoint_every >= 0, f"{w}.checkpoint_every",
               "must be >= 0 hours", self.checkpoint_every)
        _check(_num(self.restart_overhead) and 0 <= self.restart_overhead < 1, f"{w}.restart_overhead",
               "must be in [0, 1) hours", self.restart_overhead)
        _check(_num(self.target_probability) and 0 < self.target_probability <= 1, f"{w}.target_probability",
               "must be in (0, 1]", self.target_probability)
        _check(_num(self.credit_value) and 0 <= self.credit_value <= 1, f"{w}.credit_value", "must be in [0, 1]",
               self.credit_value)
        _check(self.budget is None or (_num(self.budget) and self.budget > 0), f"{w}.budget", "must be > 0",
               self.budget)
        _check(self.hours_p90 is None or (_num(self.hours_p90) and self.hours_p90 >= self.hours), f"{w}.hours_p90",
               "must be >= hours", self.hours_p90)
        for i, m in enumerate(self.markets):
            _market(f"{w}.markets[{i}]", m)

    @property
    def gpu_hours(self) -> float:
        return self.hours * self.nodes * self.gpus_per_node

    @property
    def horizon(self) -> int:
        """Whole hours the replay runs for."""
        return int(math.floor(self.deadline_hours))


def _num(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Bid:
    """A spot bid: hold `market` while its price is <= `limit_price` ($/instance-hour)."""

    market: str
    limit_price: float

    def __post_init__(self) -> None:
        _market("bid.market", self.market)
        _check(_num(self.limit_price) and self.limit_price > 0, f"bid {self.market}: limit_price", "must be > 0",
               self.limit_price)


@dataclass(frozen=True)
class Fallback:
    """A market to run on once the guard fires, at any price while it has capacity."""

    market: str

    def __post_init__(self) -> None:
        _market("fallback.market", self.market)


@dataclass(frozen=True)
class Reservation:
    """Reserved capacity: `instances` on `market` for `hours` from `start_hour`, charged up front."""

    market: str
    tier: str
    instances: int
    start_hour: int
    hours: int
    unit_price: float
    pause_credit: float
    return_credit: float

    def __post_init__(self) -> None:
        r = "reservation"
        _market(f"{r}.market", self.market)
        _check(self.tier in ("high", "low"), f"{r}.tier", "must be high or low", self.tier)
        _check(isinstance(self.instances, int) and self.instances >= 1, f"{r}.instances", "must be >= 1",
               self.instances)
        _check(isinstance(self.start_hour, int) and self.start_hour >= 0, f"{r}.start_hour", "must be >= 0",
               self.start_hour)
        _check(isinstance(self.hours, int) and 3 <= self.hours <= 336, f"{r}.hours", "must be 3..336", self.hours)
        for name in ("unit_price", "pause_credit", "return_credit"):
            value = getattr(self, name)
            _check(_num(value) and value >= 0, f"{r}.{name}", "must be >= 0", value)

    @property
    def end_hour(self) -> int:
        return self.start_hour + self.hours


@dataclass(frozen=True)
class Plan:
    """Bids in order, an optional reservation, fallbacks in order, and the guard margin (hours). Optionally a late
    limit: once the slack left is down to `late_margin_hours` (or, with `late_after_hours`, once no bid has run for that
    many hours in a row while every bid market was priced below the first fallback), every bid's limit rises to at least
    `late_limit`. Optionally, with `dear_excess_hours`, once bids run in a row of hours priced above the first fallback
    have cost that many of the fallback's hours more than it, every limit falls to at most its price for good (unless
    already raised, and no raise after it): rent until the rent paid equals the price of leaving. With `keep_pace`, an
    hour the job would wait while over an hour behind the uniform-progress line (elapsed x work / deadline) runs the
    first fallback instead, until it is back within the hour (Uniform Progress's catch-up, Wu et al., NSDI '24): slack
    bought back early lets later hours return to spot. With `patience_hours`, a job that has run on a bid takes a bid
    ranked after it only once no bid has run for that many hours in a row: a zone that blinks is waited for, not left
    for a later zone and the restarts of moving (0: move at once). With `switch_below`, a job on a bid moves to the
    first eligible bid, in the plan's order, whose hourly price is below `switch_below` x the current one's (a voluntary
    move: a checkpoint, then a restart): a zone left when it failed is taken back when it returns, and a zone that
    turned cheaper than the one held is taken. With `return_below`, once the guard has fired the job still runs a bid
    priced below `return_below` x the first fallback's price (the one it holds, else the first eligible) while the
    slack left would absorb a preemption there (the work since a checkpoint and a restart, plus a restart to move): on
    the fallback the slack no longer shrinks, so a zone that returns is worth taking back."""

    bids: tuple[Bid, ...] = ()
    reservation: Reservation | None = None
    fallback: tuple[Fallback, ...] = ()
    guard_margin_hours: float = 0.0
    late_limit: float | None = None
    late_margin_hours: float | None = None
    late_after_hours: float | None = None
    dear_excess_hours: float | None = None
    keep_pace: bool = False
    patience_hours: float = 0.0
    switch_below: float | None = None
    return_below: float | None = None

    def __post_init__(self) -> None:
        _check(_num(self.guard_margin_hours) and self.guard_margin_hours >= 0, "plan.guard_margin_hours",
               "must be >= 0", self.guard_margin_hours)
        _check((self.late_limit is None) == (self.late_margin_hours is None), "plan.late_limit",
               "needs late_margin_hours, and the other way round", self.late_limit)
        _check(self.late_limit is None or (_num(self.late_limit) and self.late_limit > 0), "plan.late_limit",
               "must be > 0", self.late_limit)
        _check(self.late_margin_hours is None or (_num(self.late_margin_hours)
                                                  and self.late_margin_hours >= self.guard_margin_hours),
               "plan.late_margin_hours", "must be >= guard_margin_hours", self.late_margin_hours)
        _check(self.late_after_hours is None or (self.late_limit is not None and _num(self.late_after_hours)
                                                 and self.late_after_hours >= 1),
               "plan.late_after_hours", "must be >= 1 and come with a late_limit", self.late_after_hours)
        _check(self.dear_excess_hours is None or (_num(self.dear_excess_hours) and self.dear_excess_hours > 0),
               "plan.dear_excess_hours", "must be > 0", self.dear_excess_hours)
        _check(isinstance(self.keep_pace, bool), "plan.keep_pace", "must be true or false", self.keep_pace)
        _check(_num(self.patience_hours) and self.patience_hours >= 0, "plan.patience_hours", "must be >= 0",
               self.patience_hours)
        _check(self.switch_below is None or (_num(self.switch_below) and 0 < self.switch_below <= 1),
               "plan.switch_below", "must be in (0, 1]", self.switch_below)
        _check(self.return_below is None or (_num(self.return_below) and 0 < self.return_below <= 1),
               "plan.return_below", "must be in (0, 1]", self.return_below)
        seen = [b.market for b in self.bids]
        _check(len(set(seen)) == len(seen), "plan.bids", "must not repeat a market", seen)

    def without_late_limit(self) -> Plan:
        """The same plan with every limit fixed for the whole job."""
        return replace(self, late_limit=None, late_margin_hours=None, late_after_hours=None)

    def markets(self) -> list[str]:
        """Every priced market the plan may run on (bids, then fallbacks), without repeats; a reservation is
        prepaid, so its market needs no price history."""
        return list(dict.fromkeys([b.market for b in self.bids] + [f.market for f in self.fallback]))


def _build(cls: type, data: Any, where: str) -> Any:
    _check(isinstance(data, dict), where, "must be a mapping", data)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise PlanError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise PlanError(f"{where}: {exc}") from None


def workload_from_dict(data: dict) -> Workload:
    data = dict(data)
    for key in ("providers", "markets"):
        if key in data:
            data[key] = tuple(data[key] or ())
    for key in ("nodes", "gpus_per_node"):
        if isinstance(data.get(key), float) and data[key].is_integer():
            data[key] = int(data[key])
    return _build(Workload, data, "workload")


def plan_from_dict(data: dict) -> Plan:
    _check(isinstance(data, dict), "plan", "must be a mapping", data)
    data = dict(data)
    bids = tuple(_build(Bid, b, f"plan.bids[{i}]") for i, b in enumerate(data.pop("bids", []) or []))
    fallback = tuple(_build(Fallback, f, f"plan.fallback[{i}]") for i, f in enumerate(data.pop("fallback", []) or []))
    res = data.pop("reservation", None)
    reservation = _build(Reservation, res, "plan.reservation") if res is not None else None
    return _build(Plan, {**data, "bids": bids, "fallback": fallback, "reservation": reservation}, "plan")


def to_dict(obj: Workload | Plan) -> dict:
    """JSON-ready dict of a workload or plan (tuples as lists)."""
    return json.loads(json.dumps(asdict(obj)))


def _read_mapping(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as exc:
        raise AdvisorError(f"{path}: cannot read: {exc.strerror}") from None
    as_yaml = path.suffix.lower() in (".yaml", ".yml")
    try:
        doc = yaml.safe_load(text) if as_yaml else json.loads(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise AdvisorError(f"{path}: not valid {'YAML' if as_yaml else 'JSON'}: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        raise AdvisorError(f"{path}: expected a mapping")
    return doc


def load_workload(path: str | Path) -> Workload:
    """Read a workload from JSON or YAML: the workload's own fields, or a document with a `workload` key."""
    path = Path(path)
    doc = _read_mapping(path)
    try:
        return workload_from_dict(doc.get("workload", doc))
    except PlanError as exc:
        raise PlanError(f"{path}: {exc}") from None


def load_document(path: str | Path) -> tuple[Workload | None, Plan]:
    """Read a plan, or a report/document holding `workload` and `plan`, from JSON or YAML."""
    path = Path(path)
    doc = _read_mapping(path)
    try:
        if "plan" in doc:
            workload = workload_from_dict(doc["workload"]) if doc.get("workload") else None
            return workload, plan_from_dict(doc["plan"])
        return None, plan_from_dict(doc)
    except PlanError as exc:
        raise PlanError(f"{path}: {exc}") from None


def save_document(path: str | Path, plan: Plan, workload: Workload | None = None) -> None:
    """Write `{workload, plan}` as JSON or YAML (by extension), atomically."""
    path = Path(path)
    doc: dict[str, Any] = {"plan": to_dict(plan)}
    if workload is not None:
        doc = {"workload": to_dict(workload), **doc}
    as_yaml = path.suffix.lower() in (".yaml", ".yml")
    text = yaml.safe_dump(doc, sort_keys=False) if as_yaml else json.dumps(doc, indent=2)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + "\n")
    tmp.replace(path)


__all__ = ["Bid", "Fallback", "Plan", "PlanError", "Reservation", "Workload", "load_document", "load_workload",
           "plan_from_dict", "save_document", "to_dict", "workload_from_dict"]

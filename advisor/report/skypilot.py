"""SkyPilot task YAML: read a workload's GPU, gang size and clouds from it; write the plan back into it.

Writing keeps every field the user had and fills `config.mithril.limit_price` (the first Mithril bid's limit,
$/instance-hour) and `resources.ordered` (bids, then fallbacks, each as `infra` + `use_spot`; fields already under
`resources` stay shared defaults). An `any_of` set is replaced, since SkyPilot takes one or the other.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from advisor.errors import AdvisorError
from advisor.plan import Plan, Workload
from advisor.store import MarketKey


def read_task(path: str | Path) -> dict:
    """The task YAML as a dict; a one-line error names the file when it cannot be read."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise AdvisorError(f"{path}: not a readable SkyPilot task YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        raise AdvisorError(f"{path}: a SkyPilot task must be a mapping")
    return doc


def workload_fields(task: dict, path: str = "task") -> dict[str, Any]:
    """Workload fields a task implies: gpu and gpus_per_node from `accelerators`, nodes, providers (its infra)."""
    res = task.get("resources") or {}
    acc = res.get("accelerators")
    places = _infras(res)
    where = {"providers": places} if places else {}
    if acc is None and res.get("instance_type"):  # the type fixes the GPUs; its zones compete
        return {"instance_type": str(res["instance_type"]), "nodes": int(task.get("num_nodes", 1)), **where}
    if isinstance(acc, dict) and len(acc) == 1:
        gpu, count = next(iter(acc.items()))
    elif isinstance(acc, str):
        gpu, _, count = acc.partition(":")
        count = count or 1
    elif isinstance(acc, list | dict) and len(acc) > 1:
        raise AdvisorError(f"{path}: resources.accelerators {acc!r}: the advisor plans for one GPU type at a time; "
                           f"give one, e.g. H100:8, and run it once per type to compare")
    else:
        raise AdvisorError(f"{path}: resources.accelerators must look like H100:8 (got {acc!r})")
    try:
        fields: dict[str, Any] = {"gpu": str(gpu), "gpus_per_node": int(count), "nodes": int(task.get("num_nodes", 1))}
    except (TypeError, ValueError):
        raise AdvisorError(f"{path}: resources.accelerators {acc!r} or num_nodes is not a number") from None
    return fields | where


def _infras(res: dict) -> tuple[str, ...]:
    """Where a task's resources may run, as `cloud[/region[/zone]]`: each `any_of` / `ordered` entry's `infra` or
    `cloud` (the shared one under `resources` where an entry names none), or the shared one alone; () when some
    choice names no cloud."""
    def cloud(entry: dict) -> str | None:
        named = entry.get("infra") or entry.get("cloud") or res.get("infra") or res.get("cloud")
        return str(named).strip("/").lower() if named else None

    entries = [e for key in ("any_of", "ordered") for e in res.get(key) or [] if isinstance(e, dict)]
    found = [cloud(e) for e in entries] if entries else [cloud({})]
    return () if None in found else tuple(dict.fromkeys(found))


def _entry(market: str, regions: dict[str, str]) -> dict:
    key = MarketKey.parse(market)
    region = regions.get(market) or key.location
    infra = f"{key.provider}/{region}" + (f"/{key.location}" if key.location != region else "")
    return {"infra": infra, "use_spot": key.kind == "spot"}


def new_task(workload: Workload) -> dict:
    """The task a workload given by flags implies, for `write_task` to fill: its accelerators (or instance type) and
    gang size."""
    res: dict[str, Any] = {"accelerators": f"{workload.gpu}:{workload.gpus_per_node}"} if workload.gpu else {}
    if workload.instance_type:
        res["instance_type"] = workload.instance_type
    return {"num_nodes": workload.nodes, "resources": res}


def write_task(task: dict, plan: Plan, regions: dict[str, str]) -> dict:
    """A copy of the task with the plan filled in (see the module docstring)."""
    out = copy.deepcopy(task)
    res = out.setdefault("resources", {})
    ordered = [_entry(b.market, regions) for b in plan.bids] + [_entry(f.market, regions) for f in plan.fallback]
    res["ordered"] = list({e["infra"] + str(e["use_spot"]): e for e in ordered}.values())
    res.pop("any_of", None)
    mithril = [b for b in plan.bids if b.market.startswith("mithril:")]
    if mithril:
        out.setdefault("config", {}).setdefault("mithril", {})["limit_price"] = round(mithril[0].limit_price, 2)
    return out


def dump_task(task: dict) -> str:
    return yaml.safe_dump(task, sort_keys=False)

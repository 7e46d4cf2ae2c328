"""Workload and plan types, hourly market paths, and the replay engine that gives a plan its meaning."""

from advisor.plan.batch import BatchResult, replay_batch, replay_batch_many, same_structure
from advisor.plan.paths import MarketPaths, load_history, paths_from_hourly, run_starts
from advisor.plan.replay import Ledger, ReplayResult, Slot, replay, reservation_charges
from advisor.plan.types import (
    Bid,
    Fallback,
    Plan,
    PlanError,
    Reservation,
    Workload,
    load_document,
    load_workload,
    plan_from_dict,
    save_document,
    to_dict,
    workload_from_dict,
)

__all__ = ["BatchResult", "Bid", "Fallback", "Ledger", "MarketPaths", "Plan", "PlanError", "ReplayResult",
           "Reservation", "Slot", "Workload", "load_document", "load_history", "load_workload", "paths_from_hourly",
           "plan_from_dict", "replay", "replay_batch", "replay_batch_many", "reservation_charges", "run_starts",
           "same_structure",
           "save_document", "to_dict", "workload_from_dict"]

"""The scenario MIP (PuLP) that picks the plan.

Sets: candidates p (each a bid ladder l(p), a guard margin g(p) and a reservation r(p)), training scenarios s.
Data (from the replay engine): c[p] = weighted mean cost of p over the scenarios (weights q[s], summing to 1);
m[p, s] = 1 if p meets the deadline in s; b[p] = p's mean cost under the budget's weights (by default c[p]; the
advisor leaves its assumed outages out of it, as out of the costs it reports).

Variables: u[l], v[g], w[r] in {0, 1}, the structural choices; x[p] in {0, 1}, the plan; z[s] in {0, 1}, scenario
s counted as met.

    minimize    sum_p c[p] x[p]
    subject to  sum_l u[l] = sum_g v[g] = sum_r w[r] = sum_p x[p] = 1
                x[p] <= u[l(p)],  x[p] <= v[g(p)],  x[p] <= w[r(p)]          (a plan is made of its pieces)
                z[s] <= sum_p m[p, s] x[p]                                   (met only if the plan meets it)
                sum_s q[s] z[s] >= target                                    (chance constraint)
                sum_p b[p] x[p] <= budget                                     (when a budget is given)

Recourse (the fallback hours each scenario buys once the guard fires) is inside c and m: the replay engine
prices it exactly, scenario by scenario, instead of a linear stand-in.

Plans that tie (a limit no scenario's price reaches, a guard that never fires, a market that never had capacity in
training) are common; among the plans that meet the constraints at the optimal cost the one bidding on the most
markets wins (in a tie it can only gain: the markets it waits on cost nothing unless they turn usable), then the
first candidate, so CBC and HiGHS return the same plan.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pulp

from advisor.errors import AdvisorError
from advisor.optimize.candidates import Candidate


class InfeasibleError(AdvisorError):
    """No plan meets the request; the message gives the nearest request that can be met."""


@dataclass(frozen=True)
class Solution:
    """The chosen candidate's index, the solver's status and how long it took."""

    index: int
    status: str
    solver: str
    seconds: float
    note: str | None = None


SOLVERS = ("auto", "cbc", "highs")
TIE = 1e-7  # relative difference in mean cost below which two plans tie


def resolve_solver(name: str) -> str:
    """`auto`: HiGHS when highspy is installed (in-process, ~6x faster than CBC on the benchmark's MIP), else the
    CBC that ships with PuLP; `cbc` and `highs` as asked."""
    if name not in SOLVERS:
        raise AdvisorError(f"--solver {name!r}: one of {', '.join(SOLVERS)}")
    if name == "auto":
        return "highs" if pulp.HiGHS(msg=False).available() else "cbc"
    return name


def _solver(name: str, time_limit: float) -> pulp.LpSolver:
    """The solver asked for the exact optimum (no relative gap: HiGHS stops at 1e-4 by default), which the tie rule
    in `solve` is anchored on."""
    if name == "highs":
        solver = pulp.HiGHS(msg=False, timeLimit=time_limit, gapRel=0.0)
        if not solver.available():
            raise AdvisorError("--solver highs needs highspy. To fix: pip install highspy (or use --solver cbc)")
        return solver
    with warnings.catch_warnings():  # PuLP 3.3 deprecates the bundled CBC; it is still the one CBC it ships
        warnings.simplefilter("ignore", DeprecationWarning)
        return pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit, gapRel=0.0)


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Send file descriptor 1 to /dev/null: HiGHS prints its banner from C++ whatever msg says, and stdout may be
    carrying a JSON report."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no file descriptor 1 (a detached process): nothing to protect
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def solve(candidates: list[Candidate], cost: np.ndarray, meet: np.ndarray, target: float,
          budget: float | None = None, solver: str = "auto", time_limit: float = 30.0,
          weights: np.ndarray | None = None, budget_weights: np.ndarray | None = None) -> Solution:
    """Solve the MIP above (scenario weights uniform unless given; the budget holds the mean cost under
    `budget_weights`, default the same weights); raises InfeasibleError when no candidate (or mix of pieces)
    satisfies it."""
    started = time.perf_counter()
    solver = resolve_solver(solver)
    n_p, n_s = meet.shape
    q = np.full(n_s, 1.0 / n_s) if weights is None else np.asarray(weights, float) / np.sum(weights)
    model = pulp.LpProblem("advisor_plan", pulp.LpMinimize)
    x = [model.add_variable(f"x_{p}", cat="Binary") for p in range(n_p)]
    z = [model.add_variable(f"z_{s}", cat="Binary") for s in range(n_s)]
    pieces = {}
    for kind in ("ladder", "guard", "reservation"):
        ids = sorted({str(getattr(c, kind)) for c in candidates})
        var = {i: model.add_variable(f"{kind[0]}_{k}", cat="Binary") for k, i in enumerate(ids)}
        model += pulp.lpSum(var.values()) == 1, f"one_{kind}"
        for p, c in enumerate(candidates):
            model += x[p] <= var[str(getattr(c, kind))], f"{kind}_{p}"
        pieces[kind] = var
    model += pulp.lpSum(x) == 1, "one_plan"
    mean_cost = cost @ q
    model += pulp.lpSum(float(mean_cost[p]) * x[p] for p in range(n_p))
    for s in range(n_s):
        model += z[s] <= pulp.lpSum(x[p] for p in np.flatnonzero(meet[:, s])), f"met_{s}"
    model += pulp.lpSum(float(q[s]) * z[s] for s in range(n_s)) >= target - 1e-9, "chance"
    budget_cost = mean_cost if budget_weights is None else cost @ (budget_weights / np.sum(budget_weights))
    if budget is not None:
        model += pulp.lpSum(float(budget_cost[p]) * x[p] for p in range(n_p)) <= budget, "budget"
    with _quiet_stdout():
        status = model.solve(_solver(solver, time_limit))
    seconds = time.perf_counter() - started
    chosen = [p for p in range(n_p) if (x[p].value() or 0) > 0.5]
    if status == pulp.LpStatusInfeasible or not chosen:
        raise InfeasibleError("no plan satisfies the request")
    feasible = (meet @ q >= target - 1e-9) & (budget_cost <= (np.inf if budget is None else budget))
    index = first_tied(mean_cost, feasible, chosen[0], [-len(c.plan.bids) for c in candidates])
    if model.sol_status == pulp.LpSolutionIntegerFeasible:  # stopped by the time limit with an incumbent
        return Solution(index, "Feasible", solver, seconds,
                        f"the solver stopped at its {time_limit:g}s limit; this is the best plan found")
    return Solution(index, pulp.LpStatus[status], solver, seconds)


def first_tied(mean_cost: np.ndarray, feasible: np.ndarray, chosen: int, preference: list[int]) -> int:
    """Among the feasible candidates whose mean cost ties the solver's choice, the one of least `preference`, then
    the first: which of several equally good plans a solver returns is its own affair."""
    tied = feasible & (np.abs(mean_cost - mean_cost[chosen]) <= TIE * max(abs(float(mean_cost[chosen])), 1.0))
    if not tied[chosen]:
        return chosen
    return int(min(np.flatnonzero(tied), key=lambda p: (preference[p], p)))

"""The optimizer: candidate plans scored by the replay engine, a PuLP scenario MIP, the moves after it, `recommend`."""

from advisor.optimize.recommend import Outcome, Recommendation, recommend
from advisor.optimize.scoring import replay_uncertain, work_levels
from advisor.optimize.solver import InfeasibleError, Solution, solve

__all__ = ["InfeasibleError", "Outcome", "Recommendation", "Solution", "recommend", "replay_uncertain", "solve",
           "work_levels"]

"""The optimizer: candidate plans scored by the replay engine, a PuLP scenario MIP, and `recommend`."""

from advisor.optimize.recommend import Outcome, Recommendation, recommend, replay_uncertain, work_levels
from advisor.optimize.solver import InfeasibleError, Solution, solve

__all__ = ["InfeasibleError", "Outcome", "Recommendation", "Solution", "recommend", "replay_uncertain", "solve",
           "work_levels"]

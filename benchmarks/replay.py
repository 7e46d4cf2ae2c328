"""Replay speed: vectorized path-replays per second for a 336-h horizon over 10 markets (target >= 10,000/s),
and the reference (plain) replay for comparison, in one run.

    python benchmarks/replay.py --scenarios 2000
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from advisor.plan import Bid, Fallback, MarketPaths, Plan, Reservation, Workload, replay, replay_batch


def synthetic_paths(n: int, hours: int = 336, markets: int = 10, seed: int = 0) -> MarketPaths:
    rng = np.random.default_rng(seed)
    names = tuple(f"p{i}:loc{i}:it:{'spot' if i < markets - 2 else 'on_demand'}" for i in range(markets))
    base = np.exp(rng.normal(0, 0.4, (n, markets, hours)).cumsum(axis=2) * 0.05)
    mean = 2.0 * base
    peak = mean * np.where(rng.random((n, markets, hours)) < 0.05, 4.0, 1.1)
    avail = np.where(rng.random((n, markets, hours)) < 0.03, 0.0, np.nan)
    return MarketPaths(names, mean, peak, avail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    paths = synthetic_paths(args.scenarios)
    w = Workload(hours=200, deadline_hours=336, nodes=2, checkpoint_every=1.0)
    plan = Plan(bids=tuple(Bid(m, 2.5) for m in paths.markets[:6]),
                reservation=Reservation(paths.markets[0], "high", 2, 100, 48, 20.0, 10.0, 12.0),
                fallback=(Fallback(paths.markets[-1]), Fallback(paths.markets[-2])), guard_margin_hours=3.0)
    replay_batch(w, plan, synthetic_paths(10))  # warm up
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        batch = replay_batch(w, plan, paths)
        times.append(time.perf_counter() - t)
    vec, best = float(np.median(times)), min(times)
    k = min(200, args.scenarios)
    t = time.perf_counter()
    for s in range(k):
        replay(w, plan, paths, s)
    ref = (time.perf_counter() - t) / k
    print(f"vectorized: {args.scenarios} paths x 336 h x 10 markets: median {vec:.3f}s = "
          f"{args.scenarios / vec:,.0f} path-replays/s, best {args.scenarios / best:,.0f}/s (target >= 10,000)")
    print(f"reference:  {1 / ref:,.0f} path-replays/s; vectorized is {ref * args.scenarios / vec:.0f}x faster")
    print(f"P(meet deadline) {batch.probability_meet_deadline:.3f}, mean cost {batch.cost.mean():.0f}")


if __name__ == "__main__":
    main()

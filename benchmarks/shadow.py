"""How often the mirror phase's prediction comparison catches a disagreeing shadow, and how often it
wrongly stops an agreeing one: 1,000 simulated mirror phases per scenario, judged by the app's own
`shared.domain.shadow.compare` and the rollout's inconclusive limit.

What an analysis is: one window of `--window` mirrored requests (for example one mirrored request per second
over a 60 s bake); the engine judges all the rows since the phase began at each analysis, so the sample
grows by a window per analysis, up to `--limit` analyses (the plan's `inconclusive_limit`), after which the
rollout rolls back for lack of a decision. Each request is one row; the champion's class is 1 with
probability 0.5 and the shadow answers the other class with the scenario's probability (as the local
service's `flipRate` fault does). The gate is the policy's: `max_disagreement` 0.05 at 95 % one-sided
confidence, `min_rows` 100.

Printed: per scenario, the share of phases the comparison failed (caught), passed, or left undecided, and
the mean rows at the decision; then the same at single fixed sample sizes; then the fallback without the id
column (rows compared as distributions only), which cannot see flips that keep the class mix.

    python benchmarks/shadow.py [--phases 1000] [--window 60] [--limit 10] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.domain.policy import ShadowGate
from shared.domain.ports import CollectedPrediction
from shared.domain.shadow import compare

GATE = ShadowGate(max_disagreement=0.05, confidence=0.95, min_rows=100)
SCENARIOS = (0.0, 0.03, 0.10)
NOW = datetime(2026, 12, 7, tzinfo=UTC)


class Rows:
    """Rows made once per id and label, drawn by index: a simulated request costs a draw, not an object."""

    def __init__(self, most: int) -> None:
        self.made = {ids: [[CollectedPrediction(id=f"r{i}:0" if ids else None, time=NOW, label=str(label))
                            for label in (0, 1)] for i in range(most)] for ids in (True, False)}

    def draw(self, rng: random.Random, n: int, flip: float, start: int, ids: bool = True
             ) -> tuple[list[CollectedPrediction], list[CollectedPrediction]]:
        """n requests from index `start`: the champion's class is 1 with probability 0.5, the shadow answers
        the other class with probability `flip`."""
        made, champion, shadow = self.made[ids], [], []
        for index in range(start, start + n):
            label = int(rng.random() < 0.5)
            other = 1 - label if rng.random() < flip else label
            champion.append(made[index][label])
            shadow.append(made[index][other])
        return champion, shadow


def phase(pool: Rows, rng: random.Random, flip: float, window: int, limit: int, ids: bool = True
          ) -> tuple[str, int]:
    """One mirror phase: its outcome (caught, passed, undecided) and the rows it had at the end."""
    champion: list[CollectedPrediction] = []
    shadow: list[CollectedPrediction] = []
    for _ in range(limit):
        more = pool.draw(rng, window, flip, len(champion), ids)
        champion += more[0]
        shadow += more[1]
        result = compare(champion, shadow, GATE).result
        if result != "inconclusive":
            return ("caught" if result == "fail" else "passed"), len(shadow)
    return "undecided", len(shadow)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phases", type=int, default=1000)
    parser.add_argument("--window", type=int, default=60, help="mirrored requests per analysis")
    parser.add_argument("--limit", type=int, default=10, help="analyses before a rollout gives up (rolls back)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    sizes = (100, 200, 400, 800)
    pool = Rows(max(args.window * args.limit, *sizes))
    started = time.perf_counter()

    print(f"Mirror phases: {args.phases} per scenario; an analysis every {args.window} mirrored requests (rows "
          f"cumulative), at most {args.limit} analyses; gate max_disagreement {GATE.max_disagreement:.0%}, "
          f"{GATE.confidence:.0%} one-sided, min_rows {GATE.min_rows}.\n")
    print("| shadow disagrees on | caught (rolled back) | passed (takes traffic) | undecided after "
          f"{args.limit} | mean rows at decision |")
    print("|---|---|---|---|---|")
    for flip in SCENARIOS:
        outcomes = [phase(pool, rng, flip, args.window, args.limit) for _ in range(args.phases)]
        share = {name: sum(o == name for o, _ in outcomes) / args.phases for name in ("caught", "passed", "undecided")}
        decided = [n for o, n in outcomes if o != "undecided"]
        mean = f"{statistics.fmean(decided):.0f}" if decided else "-"
        print(f"| {flip:.0%} | {share['caught']:.1%} | {share['passed']:.1%} | {share['undecided']:.1%} | {mean} |")

    print(f"\nOne analysis at a fixed sample size ({args.phases} each): share failed (caught) / passed.\n")
    print("| shadow disagrees on | " + " | ".join(f"n = {n}" for n in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for flip in SCENARIOS:
        cells = []
        for n in sizes:
            results = [compare(*pool.draw(rng, n, flip, 0), GATE).result for _ in range(args.phases)]
            cells.append(f"{results.count('fail') / args.phases:.1%} / {results.count('pass') / args.phases:.1%}")
        print(f"| {flip:.0%} | " + " | ".join(cells) + " |")

    print("\nWithout the id column (rows compared as distributions; flips both ways keep the class mix): "
          f"{args.phases} phases.\n")
    print("| shadow disagrees on | caught | passed | undecided |")
    print("|---|---|---|---|")
    for flip in (0.0, 0.10):
        outcomes = [phase(pool, rng, flip, args.window, args.limit, ids=False) for _ in range(args.phases)]
        share = {name: sum(o == name for o, _ in outcomes) / args.phases for name in ("caught", "passed", "undecided")}
        print(f"| {flip:.0%} | {share['caught']:.1%} | {share['passed']:.1%} | {share['undecided']:.1%} |")
    print(f"\nBenchmark ran in {time.perf_counter() - started:.0f} s (seed {args.seed}).")


if __name__ == "__main__":
    main()

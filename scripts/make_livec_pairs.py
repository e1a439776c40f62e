"""Make data/sample/livec/pairs.csv: pairs of LIVE-C photos whose human ratings clearly differ.

Each LIVE-C photo's MOS is the mean of about 175 people's 0-100 ratings (standard error about
1.5 points), so when two photos' MOS differ by at least MIN_GAP points, people as a group clearly
preferred the higher one. Pairs are drawn at random with a fixed seed; run from the repo root:
    python scripts/make_livec_pairs.py
"""

from pathlib import Path

import numpy as np
import pandas as pd

LIVEC = Path("data/sample/livec")
PAIRS = 1000
MIN_GAP = 20.0


def main() -> None:
    ratings = pd.read_csv(LIVEC / "labels.csv").sort_values("file").reset_index(drop=True)
    rng = np.random.default_rng(0)
    chosen: set[tuple[int, int]] = set()
    while len(chosen) < PAIRS:
        first, second = (int(index) for index in rng.choice(len(ratings), size=2, replace=False))
        if abs(ratings.at[first, "mos"] - ratings.at[second, "mos"]) >= MIN_GAP:
            chosen.add((first, second) if ratings.at[first, "mos"] > ratings.at[second, "mos"] else (second, first))
    pairs = pd.DataFrame(
        [{"series": "livec-mos", "preferred": f"images/{ratings.at[p, 'file']}", "other": f"images/{ratings.at[o, 'file']}"} for p, o in sorted(chosen)]
    )
    pairs.to_csv(LIVEC / "pairs.csv", index=False)
    print(f"{len(pairs)} pairs -> {LIVEC / 'pairs.csv'}")


if __name__ == "__main__":
    main()

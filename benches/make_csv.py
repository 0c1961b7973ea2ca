#!/usr/bin/env python3
"""Writes the CSV that `benches/csv_compare.py` reads: ROWS records of 20 float columns, one
text column of a few levels (some quoted, holding commas), a sprinkling of empty cells, and a
numeric target `y`.

    python3 benches/make_csv.py big.csv --rows 1000000

Deterministic for a given --seed; needs only NumPy.
"""
import argparse

import numpy as np

LEVELS = ['"north, upper"', "south", '"east, by the river"', "west", "centre"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--empty", type=float, default=0.001,
                        help="fraction of float cells left empty")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    columns = 20
    chunk = 100_000
    with open(args.path, "w", newline="") as out:
        out.write(",".join([f"f{j}" for j in range(columns)] + ["region", "y"]) + "\n")
        for start in range(0, args.rows, chunk):
            n = min(chunk, args.rows - start)
            x = rng.normal(size=(n, columns)) * rng.uniform(0.5, 20.0, size=columns)
            level = rng.integers(0, len(LEVELS), size=n)
            y = x[:, :5].sum(axis=1) + 3.0 * level + rng.normal(size=n)
            text = np.char.mod("%.6f", x).astype(object)
            text[rng.random(size=(n, columns)) < args.empty] = ""
            region = np.array(LEVELS, dtype=object)[level]
            ys = np.char.mod("%.4f", y).astype(object)
            lines = [",".join(row) for row in np.column_stack([text, region, ys]).tolist()]
            out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

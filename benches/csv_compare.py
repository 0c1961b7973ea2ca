#!/usr/bin/env python3
"""Reads one CSV three ways, side by side in one run, and prints wall time and peak resident
memory of each (BENCHMARKS.md, "Data at scale"):

1. `pandas.read_csv(FILE)` with its default C engine (the time of the call; the memory of the
   whole Python process, as a user sees it);
2. `backprop train` for one epoch of a tiny network (the whole command: read, type, split,
   encode, train, report);
3. `backprop predict --out` with the model that run saved (read, encode, predict, write).

    python3 benches/make_csv.py big.csv --rows 1000000
    python3 benches/csv_compare.py big.csv --target y --repeat 2 -- --missing mean

Arguments after `--` go to `train`. The binary is target/release/backprop unless --backprop
says otherwise; each measurement is a fresh process (peak RSS from wait4). With --parquet, the
file is also written as Parquet (by pandas and pyarrow, untimed) and `pandas.read_parquet` is
measured beside `backprop train` on it.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

PANDAS = """
import sys, time
import pandas as pd
t = time.perf_counter()
frame = pd.read_csv(sys.argv[1]) if sys.argv[1].endswith(".csv") else pd.read_parquet(sys.argv[1])
print(time.perf_counter() - t)
"""

TO_PARQUET = """
import sys
import pandas as pd
pd.read_csv(sys.argv[1]).to_parquet(sys.argv[2])
"""


def run(command):
    """Runs `command` as a child whose rusage is its own: (wall s, peak RSS MB, stdout)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            try:
                os.execvp(command[0], command)
            finally:
                os._exit(127)
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"{' '.join(command)} failed:\n{err.read().decode()}")
        return wall, usage.ru_maxrss / 1024, out.read().decode()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file")
    parser.add_argument("--target", default="y")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--backprop", default="target/release/backprop")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--parquet", action="store_true",
                        help="also compare pandas.read_parquet and train on a Parquet copy")
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    args.train_args = argv[split + 1:]
    size = os.path.getsize(args.file) / 1e6
    print(f"{args.file}: {size:.0f} MB")
    work = tempfile.mkdtemp()
    model = os.path.join(work, "model.safetensors")
    train = [args.backprop, "train", "--data", args.file, "--target", args.target,
             "--epochs", "1", "--hidden", "8", "--quiet", "--save", model, *args.train_args]
    predict = [args.backprop, "predict", "--model", model, "--data", args.file,
               "--out", os.path.join(work, "predictions.csv")]
    rows = []
    parquet = os.path.join(work, "data.parquet")
    if args.parquet:
        run([args.python, "-c", TO_PARQUET, args.file, parquet])
    for attempt in range(args.repeat):
        if args.parquet:
            wall, rss, out = run([args.python, "-c", PANDAS, parquet])
            rows.append(("pandas.read_parquet", attempt, float(out.strip()), wall, rss))
            swap = {args.file: parquet, model: model + ".parquet-model"}
            wall, rss, _ = run([swap.get(a, a) for a in train])
            rows.append(("backprop train parquet", attempt, wall, wall, rss))
        wall, rss, out = run([args.python, "-c", PANDAS, args.file])
        rows.append(("pandas.read_csv", attempt, float(out.strip()), wall, rss))
        wall, rss, _ = run(train)
        rows.append(("backprop train (1 epoch)", attempt, wall, wall, rss))
        wall, rss, _ = run(predict)
        rows.append(("backprop predict --out", attempt, wall, wall, rss))
    print(f"{'what':28} {'run':>3} {'seconds':>8} {'process s':>9} {'peak MB':>8}")
    for what, attempt, seconds, wall, rss in rows:
        print(f"{what:28} {attempt:>3} {seconds:>8.2f} {wall:>9.2f} {rss:>8.0f}")


if __name__ == "__main__":
    main()

"""What fitting through Python costs over `backprop train`: the same 120,000 pre-encoded
records (20 numeric features, a numeric target), the same network and settings, no validation,
on the CPU backend in float32. `train`'s figure is the training time it reports (its epochs,
their losses); Python's is the wall clock of the whole `fit` call (checks, the one conversion of
the data, the network's creation, the epochs, the fitted attributes).

    python benches/python_fit.py [--records N] [--epochs E] [--repeats R] [--bin target/release/backprop]

Needs the package installed (`pip install ./python`) and a release build of the binary.
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import tempfile
import time

import numpy as np

import backprop

parser = argparse.ArgumentParser()
parser.add_argument("--records", type=int, default=120_000)
parser.add_argument("--features", type=int, default=20)
parser.add_argument("--hidden", type=int, default=64)
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--batch", type=int, default=200)
parser.add_argument("--repeats", type=int, default=3)
parser.add_argument("--bin", default=str(pathlib.Path(__file__).resolve().parents[1] / "target" / "release" / "backprop"))
args = parser.parse_args()

rng = np.random.default_rng(0)
X = rng.standard_normal((args.records, args.features)).astype(np.float32)
w = rng.standard_normal(args.features).astype(np.float32)
y = np.tanh(X @ w / np.sqrt(args.features)).astype(np.float32)
y = (y - y.mean()) / y.std()

with tempfile.TemporaryDirectory() as tmp:
    csv = pathlib.Path(tmp) / "records.csv"
    header = ",".join([f"x{j}" for j in range(args.features)] + ["y"])
    np.savetxt(csv, np.column_stack([X, y]), delimiter=",", header=header, comments="", fmt="%.7g")
    cli_seconds = []
    for _ in range(args.repeats):
        metrics = pathlib.Path(tmp) / "m.json"
        subprocess.run(
            [args.bin, "train", "--data", str(csv), "--target", "y", "--split", "random",
             "--val-fraction", "0", "--test-fraction", "0", "--backend", "cpu",
             "--hidden", str(args.hidden), "--epochs", str(args.epochs), "--batch", str(args.batch),
             "--lr", "0.01", "--quiet", "--metrics", str(metrics)],
            check=True, capture_output=True,
        )
        cli_seconds.append(json.loads(metrics.read_text())["training_seconds"])

python_seconds = []
for _ in range(args.repeats):
    reg = backprop.MLPRegressor(
        hidden_layer_sizes=(args.hidden,), activation="logistic", solver="sgd", momentum=0.0,
        learning_rate_init=0.01, alpha=0.0, batch_size=args.batch, max_iter=args.epochs,
        n_iter_no_change=np.inf, random_state=0, device="cpu",
    )
    started = time.perf_counter()
    reg.fit(X, y)
    python_seconds.append(time.perf_counter() - started)

cli, py = statistics.median(cli_seconds), statistics.median(python_seconds)
print(json.dumps({
    "records": args.records, "features": args.features, "hidden": args.hidden,
    "epochs": args.epochs, "batch": args.batch,
    "train_reported_seconds": cli_seconds, "python_fit_seconds": python_seconds,
    "median_train_s": round(cli, 3), "median_python_s": round(py, 3),
    "python_over_train": round(py / cli - 1, 4),
}, indent=2))

"""Does `backprop train` match or beat scikit-learn's MLP, and is it faster?

usage: python3 benches/sklearn_compare.py [--binary PATH] [--datasets iris,wine,...]
           [--repeats N] [--epochs N] [--batch N] [--patience N] [--lr LR] [--init I]
           [--backend B] [--extra FLAGS] [--tolerance T] [--noise K] [--json FILE]

For each of scikit-learn's bundled data sets (iris, wine, breast_cancer, digits: classification;
diabetes: regression) the records are split once (random_state 0, stratified for classes) into
60% training, 20% validation and 20% test CSVs. scikit-learn fits
`make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(100,)))` (MLPRegressor with a
standardised target for diabetes), defaults otherwise, on the training records; backprop trains
on the same records with the same settings (100 ReLU hidden units, Adam at 0.001, batch 200,
all 200 epochs with no early stopping, scikit-learn's initialisation `--init glorot-uniform`;
`--patience N` stops backprop on the validation set instead). Both are scored on the test set:
accuracy (and macro F1), or R² (and RMSE).

Each side runs once per seed (0 to --repeats - 1; the split stays seed 0); the table shows the
means, their difference and its standard error over the seeds. Two trainers running the same
algorithm land either side of each other by about that much, so the verdict allows --noise (2)
standard errors: a data set is `ok` when backprop's mean accuracy / R² is not below
scikit-learn's by more than --tolerance plus that allowance (--noise 0: strictly at or above),
AND its mean wall time (the whole process, CSV reading included) is below scikit-learn's fit +
predict time. Exit status 1 when any data set is not ok.

Build the binary first (`cargo build --release`), then rerun from the repository root.
"""
import argparse
import csv
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn import datasets
from sklearn.compose import TransformedTargetRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, f1_score, mean_squared_error, r2_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

REPO = Path(__file__).resolve().parent.parent
DATASETS = {
    "iris": datasets.load_iris,
    "wine": datasets.load_wine,
    "breast_cancer": datasets.load_breast_cancer,
    "digits": datasets.load_digits,
    "diabetes": datasets.load_diabetes,
}
REGRESSION = {"diabetes"}


def load(name):
    """Features, target, sanitised feature names and (for classes) the class names."""
    d = DATASETS[name]()
    names = [re.sub(r"[^A-Za-z0-9]+", "_", str(n)).strip("_") for n in d.feature_names]
    assert len(set(names)) == len(names) and "target" not in names, names
    if name in REGRESSION:
        return d.data, d.target, names, None
    classes = [f"d{c}" for c in d.target_names] if name == "digits" else list(d.target_names)
    return d.data, d.target, names, [str(c) for c in classes]


def split(x, y, regression):
    """60/20/20 train/validation/test, random_state 0, stratified for classes."""
    strat = None if regression else y
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=0.2, random_state=0, stratify=strat)
    strat = None if regression else y_rest
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=0.25, random_state=0, stratify=strat)
    return {"train": (x_train, y_train), "val": (x_val, y_val), "test": (x_test, y_test)}


def write_csv(path, names, x, y, classes):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(names + ["target"])
        for row, t in zip(x, y):
            label = classes[int(t)] if classes else repr(float(t))
            w.writerow([repr(float(v)) for v in row] + [label])


def scores(regression, y_true, y_pred):
    """(primary, secondary): (accuracy, macro F1) or (R², RMSE)."""
    if regression:
        return r2_score(y_true, y_pred), float(np.sqrt(mean_squared_error(y_true, y_pred)))
    return accuracy_score(y_true, y_pred), f1_score(y_true, y_pred, average="macro")


def run_sklearn(parts, regression, seed):
    x_fit, y_fit = parts["train"]
    x_test, y_test = parts["test"]
    if regression:
        mlp = make_pipeline(StandardScaler(), MLPRegressor(hidden_layer_sizes=(100,), random_state=seed))
        model = TransformedTargetRegressor(regressor=mlp, transformer=StandardScaler())
    else:
        model = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(100,), random_state=seed))
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x_fit, y_fit)
    y_pred = model.predict(x_test)
    return scores(regression, y_test, y_pred), time.perf_counter() - start


def backprop_command(args, workdir, regression, seed):
    d = Path(workdir)
    cmd = [str(args.binary), "train", "--data", str(d / "train.csv"), "--val", str(d / "val.csv"),
           "--test", str(d / "test.csv"), "--target", "target", "--hidden", "100",
           "--activation", "relu", "--optimizer", "adam",
           "--loss", "mse" if regression else "cross-entropy",
           "--epochs", str(args.epochs), "--batch", str(args.batch), "--init", args.init,
           "--backend", args.backend, "--seed", str(seed), "--quiet",
           "--metrics", str(d / f"out_seed{seed}.json")]
    if args.patience > 0:
        cmd += ["--patience", str(args.patience)]
    if args.lr is not None:
        cmd += ["--lr", str(args.lr)]
    return cmd + shlex.split(args.extra)


def run_backprop(cmd, regression):
    """((primary, secondary), seconds), or None after printing stderr when the run fails."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        print(f"backprop failed (exit {proc.returncode}): {shlex.join(cmd)}\n{proc.stderr}",
              file=sys.stderr)
        return None
    m = json.loads(Path(cmd[cmd.index("--metrics") + 1]).read_text())
    if regression:
        return (m["test_r2"]["target"], m["test_rmse_original_units"]["target"]), seconds
    return (m["test_accuracy"], m["test_macro_f1"]), seconds


def compare(name, args, root):
    x, y, names, classes = load(name)
    regression = name in REGRESSION
    parts = split(x, y, regression)
    workdir = tempfile.mkdtemp(prefix=f"{name}_", dir=root)
    for part, (xs, ys) in parts.items():
        write_csv(os.path.join(workdir, f"{part}.csv"), names, xs, ys, classes)
    res = {"dataset": name, "records": [len(parts[p][1]) for p in ("train", "val", "test")],
           "metrics": ["R2", "RMSE"] if regression else ["accuracy", "macro_F1"],
           "sklearn": [], "backprop": [], "workdir": workdir,
           "command": shlex.join(backprop_command(args, workdir, regression, 0))}
    for seed in range(args.repeats):
        s_scores, s_time = run_sklearn(parts, regression, seed)
        res["sklearn"].append({"seed": seed, "scores": list(s_scores), "seconds": s_time})
        out = run_backprop(backprop_command(args, workdir, regression, seed), regression)
        if out is None:
            res["verdict"] = "backprop failed"
            return res
        res["backprop"].append({"seed": seed, "scores": list(out[0]), "seconds": out[1]})
    for side in ("sklearn", "backprop"):
        runs = res[side]
        res[side + "_mean"] = {"scores": np.mean([r["scores"] for r in runs], axis=0).tolist(),
                               "seconds": float(np.mean([r["seconds"] for r in runs]))}
    # The standard error of the difference of the two means of the first metric: how far
    # apart two equally good trainers' means land by the seeds alone.
    first = [np.array([r["scores"][0] for r in res[side]]) for side in ("sklearn", "backprop")]
    res["difference_se"] = float(np.sqrt(sum(v.var(ddof=1) / len(v) for v in first))) \
        if args.repeats > 1 else 0.0
    res["verdict"] = verdict(res, args.tolerance, args.noise * res["difference_se"])
    return res


def verdict(res, tolerance, noise):
    """ok when backprop's mean metric is not below scikit-learn's by more than `tolerance` plus
    `noise` (the seeds' spread: --noise standard errors of the difference) and it is faster."""
    s, b = res["sklearn_mean"], res["backprop_mean"]
    failed = []
    if b["scores"][0] < s["scores"][0] - tolerance - noise:
        failed.append(f"{res['metrics'][0]} worse")
    if b["seconds"] >= s["seconds"]:
        failed.append("slower")
    return "ok" if not failed else ", ".join(failed)


def table(results):
    lines = ["| data set | records (train/val/test) | metric | scikit-learn | backprop "
             "| difference ± SE | scikit-learn time (s) | backprop time (s) | verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        recs = "/".join(str(n) for n in r["records"])
        metric = " / ".join(r["metrics"])
        if "backprop_mean" not in r:
            lines.append(f"| {r['dataset']} | {recs} | {metric} | | | | | | {r['verdict']} |")
            continue
        s, b = r["sklearn_mean"], r["backprop_mean"]
        fmt = lambda v: " / ".join(f"{x:.4f}" for x in v["scores"])
        difference = b["scores"][0] - s["scores"][0]
        lines.append(f"| {r['dataset']} | {recs} | {metric} | {fmt(s)} | {fmt(b)} | "
                     f"{difference:+.4f} ± {r['difference_se']:.4f} | "
                     f"{s['seconds']:.3f} | {b['seconds']:.3f} | {r['verdict']} |")
    return "\n".join(lines)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--binary", type=Path, default=REPO / "target/release/backprop")
    p.add_argument("--datasets", default=",".join(DATASETS),
                   help="comma-separated subset of " + ",".join(DATASETS))
    p.add_argument("--repeats", type=int, default=50, help="seeds 0..N-1 on both sides")
    p.add_argument("--init", default="glorot-uniform", help="backprop's --init")
    p.add_argument("--noise", type=float, default=2.0,
                   help="standard errors of the difference a mean may fall short by (0: strict)")
    p.add_argument("--extra", default="", help="more backprop train flags, e.g. '--lr-schedule cosine'")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--batch", type=int, default=200)
    p.add_argument("--patience", type=int, default=0,
                   help="backprop's --patience on the validation set (0: none, as scikit-learn's defaults)")
    p.add_argument("--lr", default=None, help="backprop's --lr (default: its `auto`, 0.001 for adam)")
    p.add_argument("--backend", default="cpu")
    p.add_argument("--tolerance", type=float, default=0.0,
                   help="how far below scikit-learn's accuracy / R² still counts as ok")
    p.add_argument("--json", type=Path, help="write the full results here")
    args = p.parse_args()
    args.datasets = [d for d in args.datasets.split(",") if d]
    unknown = set(args.datasets) - set(DATASETS)
    if unknown:
        p.error(f"unknown data sets {sorted(unknown)}; choose from {','.join(DATASETS)}")
    if not args.binary.is_file():
        p.error(f"no binary at {args.binary}: run `cargo build --release` first")
    return args


def main():
    args = parse_args()
    root = Path(tempfile.gettempdir()) / "skl"
    root.mkdir(exist_ok=True)
    results = [compare(name, args, root) for name in args.datasets]
    print(table(results))
    print(f"\nmeans over {args.repeats} seed(s); time: scikit-learn fit + predict, "
          "backprop the whole process")
    print(f"reproduce ({results[0]['dataset']}, seed 0; CSVs kept):\n  {results[0]['command']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all(r["verdict"] == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

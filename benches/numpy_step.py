"""The CPU figure to beat: the seeds' batched training step vectorised in NumPy.

usage: python3 benches/numpy_step.py [--dtype float32|float64] [--steps N] BxIxHxO ...

Sigmoid hidden and output layers, error terms, and the mean outer-product updates applied in
place, exactly the step `backprop bench` times. Prints the median and spread per step.
"""
import argparse
import time

import numpy as np


def step(x, t, w_ih, w_ho, lr):
    h = 1 / (1 + np.exp(-(x @ w_ih)))
    y = 1 / (1 + np.exp(-(h @ w_ho)))
    output_error_term = (t - y) * y * (1 - y)
    hidden_error_term = (output_error_term @ w_ho.T) * h * (1 - h)
    scale = lr / x.shape[0]
    w_ho += scale * (h.T @ output_error_term)
    w_ih += scale * (x.T @ hidden_error_term)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("sizes", nargs="+")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--steps", type=int, default=20)
    a = p.parse_args()
    rng = np.random.default_rng(0)
    for size in a.sizes:
        b, i, h, o = (int(v) for v in size.split("x"))
        dt = np.dtype(a.dtype)
        x = rng.uniform(-1, 1, (b, i)).astype(dt)
        t = rng.uniform(0, 1, (b, o)).astype(dt)
        w_ih = rng.normal(0, i**-0.5, (i, h)).astype(dt)
        w_ho = rng.normal(0, h**-0.5, (h, o)).astype(dt)
        for _ in range(3):
            step(x, t, w_ih, w_ho, 0.1)
        times = []
        for _ in range(a.steps):
            start = time.perf_counter()
            step(x, t, w_ih, w_ho, 0.1)
            times.append(time.perf_counter() - start)
        times.sort()
        med = times[len(times) // 2]
        flops = 4 * b * i * h + 6 * b * h * o
        print(f"{size} {a.dtype}: median {med * 1e3:.2f} ms (min {times[0] * 1e3:.2f}, max {times[-1] * 1e3:.2f}), {flops / med / 1e9:.1f} GFLOP/s")


if __name__ == "__main__":
    main()

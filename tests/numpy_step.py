"""The seeds' formulas in NumPy, for checking `backprop step` through .npz files.

usage: python3 numpy_step.py W.npz X.npy T.npy LR sigmoid|identity D.npz RTOL ATOL

Recomputes the batched backward pass of seed 004 (deltas averaged over records) in float64
and exits non-zero if D.npz differs by more than RTOL (relative) + ATOL (absolute).
"""
import sys

import numpy as np


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def main(w_path, x_path, t_path, lr, output, d_path, rtol, atol):
    weights_npz = np.load(w_path)
    if "weights_input_to_hidden" in weights_npz:
        names = ["weights_input_to_hidden", "weights_hidden_to_output"]
        delta_names = ["delta_w_i_h", "delta_w_h_o"]
    else:
        k = 1
        while f"weights_hidden{k}_to_output" not in weights_npz:
            k += 1
        names = ["weights_input_to_hidden1"]
        names += [f"weights_hidden{i}_to_hidden{i + 1}" for i in range(1, k)]
        names += [f"weights_hidden{k}_to_output"]
        delta_names = ["delta_w_i_h1"] + [f"delta_w_h{i}_h{i + 1}" for i in range(1, k)]
        delta_names += [f"delta_w_h{k}_o"]
    weights = [weights_npz[n].astype(np.float64) for n in names]
    x = np.atleast_2d(np.load(x_path).astype(np.float64))
    n_records = x.shape[0]
    target = np.load(t_path).astype(np.float64).reshape(n_records, -1)

    # Forward pass: hidden_layer_out = sigmoid(np.dot(x, weights_input_to_hidden)), ...
    layer_outputs = []
    layer_in = x
    for i, w in enumerate(weights):
        out = np.dot(layer_in, w.reshape(w.shape[0], -1))
        if i < len(weights) - 1 or output == "sigmoid":
            out = sigmoid(out)
        layer_outputs.append(out)
        layer_in = out

    # Backward pass: output_error_term, then hidden_error_term layer by layer.
    y = layer_outputs[-1]
    error = target - y
    term = error * y * (1 - y) if output == "sigmoid" else error
    terms = [term]
    for i in range(len(weights) - 2, -1, -1):
        w_next = weights[i + 1].reshape(weights[i + 1].shape[0], -1)
        h = layer_outputs[i]
        hidden_error = np.dot(terms[0], w_next.T)
        terms.insert(0, hidden_error * h * (1 - h))

    deltas = np.load(d_path)
    worst = 0.0
    for i, name in enumerate(delta_names):
        layer_input = x if i == 0 else layer_outputs[i - 1]
        expected = (lr * np.dot(layer_input.T, terms[i]) / n_records).reshape(weights[i].shape)
        got = deltas[name]
        if got.shape != expected.shape:
            print(f"{name}: shape {got.shape}, expected {expected.shape}")
            return 1
        if not np.allclose(got, expected, rtol=rtol, atol=atol):
            print(f"{name}: max abs difference {np.max(np.abs(got - expected)):.3e}")
            return 1
        worst = max(worst, float(np.max(np.abs(got - expected))))
    print(f"agree: {len(delta_names)} deltas, max abs difference {worst:.3e}")
    return 0


if __name__ == "__main__":
    a = sys.argv[1:]
    sys.exit(main(a[0], a[1], a[2], float(a[3]), a[4], a[5], float(a[6]), float(a[7])))

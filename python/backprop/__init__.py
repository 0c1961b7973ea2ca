"""backprop: scikit-learn's MLPClassifier and MLPRegressor trained with WGSL compute shaders
on any GPU that Vulkan, Metal or DX12 reaches, proven against a CPU reference, and on the CPU
where there is no GPU.

>>> from backprop import MLPClassifier
>>> clf = MLPClassifier(hidden_layer_sizes=(64,), device="auto")   # doctest: +SKIP
"""

import atexit
import json
import os
import tempfile

import numpy as np

# Mesa's Vulkan drivers ask for a display while wgpu lists the adapters and print
# "XDG_RUNTIME_DIR is invalid or not set" without a desktop session; any directory quiets
# them (the command line does the same).
os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())

from . import _backprop  # noqa: E402
from ._estimators import MLPClassifier, MLPRegressor, load  # noqa: E402

__all__ = ["MLPClassifier", "MLPRegressor", "devices", "load", "step"]
__version__ = _backprop.VERSION

# The GPUs that fits share stay open for the process; at exit their compiled pipelines go to
# the disk cache for the next one.
atexit.register(_backprop.release_devices)


def devices():
    """The GPU adapters wgpu reaches here, as ``backprop info`` lists them: one dictionary
    each (name, device_type, backend, driver, software, limits, features)."""
    return json.loads(_backprop.devices_json())


def step(weights, X, T, learning_rate, *, biases=None, hidden="sigmoid", output="sigmoid",
         loss="mse", device="cpu", adapter=None):
    """The seeds' exercise: the deltas one batch makes, ``delta_w_i_h``, …, ``delta_w_h_o``
    (and ``delta_b_h``, …, with ``biases``), as NumPy arrays; the weights are inputs x
    outputs, as the seeds store them. On the CPU in float64 (the reference) unless
    ``device`` says "gpu" (float32).

    >>> import numpy as np
    >>> d = step([np.array([[0.5, -0.6], [0.1, -0.2], [0.1, 0.7]]), np.array([[0.1], [-0.3]])],
    ...          np.array([[0.5, 0.1, -0.2]]), np.array([[0.6]]), 0.5)
    >>> np.round(d["delta_w_h_o"].ravel(), 8)
    array([0.00804047, 0.00555918])
    """
    as_2d = lambda a: np.atleast_2d(np.ascontiguousarray(a, dtype=np.float64))
    weights = [np.ascontiguousarray(w, dtype=np.float64).reshape(np.shape(w)[0], -1) for w in weights]
    biases = None if biases is None else [np.ascontiguousarray(b, dtype=np.float64).ravel() for b in biases]
    return _backprop.step(weights, as_2d(X), as_2d(T), float(learning_rate), biases=biases,
                          hidden=hidden, output=output, loss=loss, device=device, adapter=adapter)

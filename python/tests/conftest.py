"""What the tests share: where the `backprop` binary is (for the command-line round trips), and
whether a GPU test may skip."""

import os
import pathlib
import shutil

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def gpu_required():
    """CI sets BACKPROP_REQUIRE_GPU=1: a GPU test then fails instead of skipping."""
    return os.environ.get("BACKPROP_REQUIRE_GPU") == "1"


@pytest.fixture(scope="session")
def cli():
    """The `backprop` binary: $BACKPROP_BIN (the Rust test that runs pytest sets it), else the
    repository's debug build, else the one on PATH."""
    for candidate in (
        os.environ.get("BACKPROP_BIN"),
        REPO / "target" / "debug" / "backprop",
        shutil.which("backprop"),
    ):
        if candidate and pathlib.Path(candidate).is_file():
            return str(candidate)
    if os.environ.get("BACKPROP_REQUIRE_CLI") == "1":
        pytest.fail("no `backprop` binary: build it with `cargo build` or set BACKPROP_BIN")
    pytest.skip("no `backprop` binary to round-trip models with")


@pytest.fixture(scope="session")
def lavapipe():
    """The name of a GPU adapter to test on (Mesa's llvmpipe in CI), or a skip."""
    import backprop

    names = [d["name"] for d in backprop.devices()]
    for name in names:
        if "llvmpipe" in name.lower():
            return "llvmpipe"
    if names:
        return names[0]
    if gpu_required():
        pytest.fail("BACKPROP_REQUIRE_GPU=1 but wgpu finds no adapter (install mesa-vulkan-drivers)")
    pytest.skip("no GPU adapter")

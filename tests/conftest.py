"""Shared test configuration: float64 for JAX and the location of the shared data."""

import os
from pathlib import Path

import jax
import pytest
from _nrnmod import nrn_mods  # noqa: F401  (session fixture)

jax.config.update("jax_enable_x64", True)

_DATA = Path(__file__).parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the shared real data (../shared/data from the repository root).

    Skips the test when the folder is absent, except under CI=true where that fails.
    """
    if not _DATA.is_dir():
        msg = (
            f"Shared data folder not found at {_DATA} (expected ../shared/data next to the "
            "repository); tests that need real data are skipped."
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + " CI=true: the data must be present.")
        pytest.skip(msg)
    return _DATA

"""Hypothesis profiles for the property tests, and a fixture that compiles small specs.

    pytest tests/properties                                         # "ci": few examples
    TRICK_HYPOTHESIS_PROFILE=thorough pytest tests/properties       # many more

The profile is loaded when this folder is collected; tests whose examples are expensive
(training runs, quadratures) take a fixed fraction of the profile's `max_examples`.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=20,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    max_examples=400,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("TRICK_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def compile_spec(tmp_path_factory):
    """compile_spec(shape, *model_lines, train="loss mse", data="") -> trick Program.

    The spec reads a tiny `file` source (absolute path, so spec text compiles from any
    folder); `loss mse` avoids the check of the output width against the data's classes.
    """
    import trick

    folder = tmp_path_factory.mktemp("property_specs")
    data = folder / "d.npz"
    np.savez(data, x=np.zeros((4, 2), np.float32), y=np.zeros(4, np.int64))

    def compile_(shape, *lines: str, train: str = "loss mse", data_clauses: str = ""):
        dims = ", ".join(str(d) for d in shape)
        body = "\n".join(f"    {line}" for line in lines)
        text = (
            f"spec property\n"
            f'data {{ source file "{data}"{"; " + data_clauses if data_clauses else ""} }}\n'
            f"model {{\n    input [{dims}]\n{body}\n}}\n"
            f"train {{ {train} }}\n"
        )
        return trick.compile(text)

    return compile_

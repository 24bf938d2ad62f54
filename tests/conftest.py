"""Test configuration: every notebook and test runs in quick mode, with a non-interactive plotting backend.

Set here, at import time, so the kernels nbval starts for the notebooks inherit them.
"""

import os

os.environ["COURSE_QUICK"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")


import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _seeded_torch():
    """Every test starts from the same random state, so a test's random inputs do not depend on which tests ran
    before it (or on which worker runs it under `pytest -n`)."""
    torch.manual_seed(0)

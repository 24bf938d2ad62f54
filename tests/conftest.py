"""Test configuration: every notebook and test runs in quick mode, with a non-interactive plotting backend.

Set here, at import time, so the kernels nbval starts for the notebooks inherit them.
"""

import os

os.environ["COURSE_QUICK"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")

"""``python -m ebmcore``: see :mod:`ebmcore.cli.main`."""

from __future__ import annotations

import os
import sys

# OpenMP threads that spin while waiting collapse throughput when other processes share the
# cores; sleeping waiters cost little on an idle machine.  Must be
# set before torch loads; an explicit OMP_WAIT_POLICY from the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ebmcore.cli.main import main  # after the environment is set

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())

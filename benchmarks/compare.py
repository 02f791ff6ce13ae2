"""The heatengine-versus-peers comparison (same as ``heatengine bench``).

Run from the repository root: ``python -m benchmarks.compare --taps 10000000``. Peers
beyond Polars need ``pip install -e ".[bench]"``.
"""

from __future__ import annotations

import sys

from heatengine.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))

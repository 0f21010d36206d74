"""What every probe does first: note the start time, put the bundle on sys.path, read its inputs.

A probe adds its own directory to sys.path and imports this before anything else.
argv: bundle directory, JSON file with the probe's inputs.
"""

import json
import sys
import time

started = time.time()  # wall clock, compared with the parent's spawn time
clock = time.perf_counter()
bundle, inputs_path = sys.argv[1], sys.argv[2]
sys.path.insert(0, bundle)
with open(inputs_path, encoding="utf-8") as stream:
    inputs = json.load(stream)

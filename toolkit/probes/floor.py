"""What a naive module-scope template does: joblib.load, then predict one record.

argv: bundle directory, JSON file with {"artifact", "task", "input_format", "features", "records"}.
"""

import json
import os
import sys
import time

sys.path.append(os.path.dirname(os.path.abspath(__file__)))  # -I leaves this directory off sys.path
from probe_start import clock, inputs, started  # noqa: E402

import joblib  # noqa: E402

if inputs["input_format"] == "dataframe":
    import pandas

    def model_input(records):
        return pandas.DataFrame(records, columns=inputs["features"])
else:
    import numpy

    def model_input(records):
        return numpy.array([[record[name] for name in inputs["features"]] for record in records], dtype=float)

imported = time.perf_counter()
model = joblib.load(inputs["artifact"])
loaded = time.perf_counter()
call = model.predict_proba if inputs["task"] == "classification" else model.predict
call(model_input(inputs["records"]))
answered = time.perf_counter()

print(json.dumps({
    "started": started,
    "imports": imported - clock,
    "load": loaded - imported,
    "first_request": answered - loaded,
    "total_in_process": answered - clock,
}))

"""Entry script: a vectorised fraud score per transaction; run() gets a pandas DataFrame."""

import numpy as np

RISK = {"DE": 0.1, "FR": 0.1, "US": 0.2, "BR": 0.5, "IN": 0.4}


def init():
    global night
    night = np.array([1.0 if h < 6 else 0.0 for h in range(24)])


def run(mini_batch):
    score = (np.log1p(mini_batch["amount"]) / 10 + mini_batch["country"].map(RISK).fillna(0.3)
             + night[mini_batch["hour"].to_numpy()] * 0.3)
    out = mini_batch[["transaction_id"]].copy()
    out["score"] = score.round(4)
    return out  # one row per input row: appended space-separated, in input order

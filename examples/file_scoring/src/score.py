"""Entry script: score review files with a sentiment model loaded once per worker process."""

import argparse
import json
import math
import os

from tokenize_text import tokens  # a sibling module: the code folder is importable

model = None


def init():
    global model
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    args, _ = parser.parse_known_args()  # sys.argv also holds PRS switches, as on Azure
    with open(os.path.join(args.model, "weights.json")) as f:
        model = json.load(f)


def run(mini_batch):
    results = []
    for path in mini_batch:
        with open(path) as f:
            words = tokens(f.read())
        z = model["bias"] + sum(model["weights"].get(w, 0.0) for w in words)
        p = 1 / (1 + math.exp(-z))
        label = "positive" if p >= model["threshold"] else "negative"
        results.append(f"{os.path.basename(path)} {p:.4f} {label}")
    return results

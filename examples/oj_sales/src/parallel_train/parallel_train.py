"""Train one small sales model per (Store, Brand): a parallel job with partition_keys.

run() gets all rows of one key combination and the mini_batch_context naming it. The model is a
least-squares fit of the target on its own lagged values and the price (numpy only), saved as
JSON in --model_folder. It returns [] (no rows to append): with error_threshold -1 that is
Azure's "many models" idiom.
"""

import argparse
import json
import os

import numpy as np

from azureml_user.parallel_run import EntryScript

args = None


def init():
    global args
    parser = argparse.ArgumentParser()
    parser.add_argument("--drop_cols", default="")
    parser.add_argument("--target_col", required=True)
    parser.add_argument("--date_col", required=True)
    parser.add_argument("--lagging_orders", default="1")
    parser.add_argument("--model_folder", required=True)
    args, _ = parser.parse_known_args()
    os.makedirs(args.model_folder, exist_ok=True)


def run(input_data, mini_batch_context):
    key = mini_batch_context.partition_key_value
    logger = EntryScript().logger
    df = input_data.sort_values(args.date_col)
    target = df[args.target_col].to_numpy(dtype=float)
    drop = {c for c in args.drop_cols.split(",") if c}
    extra = [c for c in df.columns
             if c not in drop | {args.target_col, args.date_col} and df[c].dtype.kind in "if"]
    lags = [int(x) for x in args.lagging_orders.split(",") if x]
    start = max(lags)
    columns = [np.ones(len(target) - start)]
    columns += [target[start - lag:len(target) - lag] for lag in lags]
    columns += [df[c].to_numpy(dtype=float)[start:] for c in extra]
    features = np.column_stack(columns)
    y = target[start:]
    coef, *_ = np.linalg.lstsq(features, y, rcond=None)
    rmse = float(np.sqrt(np.mean((features @ coef - y) ** 2)))
    name = "_".join(str(v) for v in key.values())
    model = {"key": key, "features": ["intercept", *[f"lag{lag}" for lag in lags], *extra],
             "coefficients": [round(float(c), 6) for c in coef], "rmse": round(rmse, 3),
             "rows": int(len(df))}
    with open(os.path.join(args.model_folder, f"model_{name}.json"), "w") as f:
        json.dump(model, f, indent=1)
    logger.info("trained %s on %d rows, rmse %.1f", key, len(df), rmse)
    return []

"""Test entry script for tables: returns the rows it got, or one row per key group
("store-brand:rows:sum of qty:dtype kind of store")."""

import argparse
import os

args = None


def init():
    global args
    p = argparse.ArgumentParser()
    p.add_argument("--marks", default=None)
    p.add_argument("--crash-on-id", type=int, default=None)  # the process dies (os._exit)
    p.add_argument("--fail-store", default=None)  # run() raises for this store key ...
    p.add_argument("--fail-while", default=None)  # ... while this file exists
    args, _ = p.parse_known_args()


def run(mini_batch, mini_batch_context=None):
    if args.marks:
        key = getattr(mini_batch_context, "partition_key_value", None) or {}
        with open(os.path.join(args.marks, f"{os.getpid()}.txt"), "a") as f:
            f.write(f"{len(mini_batch)}|{sorted(key.items())}\n")
    if mini_batch_context is not None and mini_batch_context.partition_key_value:
        key = mini_batch_context.partition_key_value
        if key["store"] == args.fail_store and os.path.exists(args.fail_while or "."):
            raise ValueError(f"no model for store {key['store']}")
        # the store column's dtype kind: "i" for an int64 column, "O" for text
        return [f"{key['store']}-{key['brand']}:{len(mini_batch)}:{mini_batch['qty'].sum()}"
                f":{mini_batch['store'].dtype.kind}"]
    if args.crash_on_id is not None and (mini_batch["id"] == args.crash_on_id).any():
        os._exit(3)
    out = mini_batch[["id"]].copy()
    out["double"] = mini_batch["x"] * 2
    return out

"""Test entry script for tables: returns the rows it got, or one row per key group."""

import argparse
import os

args = None


def init():
    global args
    p = argparse.ArgumentParser()
    p.add_argument("--marks", default=None)
    p.add_argument("--crash-on-id", type=int, default=None)  # the process dies (os._exit)
    args, _ = p.parse_known_args()


def run(mini_batch, mini_batch_context=None):
    if args.marks:
        key = getattr(mini_batch_context, "partition_key_value", None) or {}
        with open(os.path.join(args.marks, f"{os.getpid()}.txt"), "a") as f:
            f.write(f"{len(mini_batch)}|{sorted(key.items())}\n")
    if mini_batch_context is not None and mini_batch_context.partition_key_value:
        key = mini_batch_context.partition_key_value
        return [f"{key['store']}-{key['brand']}:{len(mini_batch)}:{mini_batch['qty'].sum()}"]
    if args.crash_on_id is not None and (mini_batch["id"] == args.crash_on_id).any():
        os._exit(3)
    out = mini_batch[["id"]].copy()
    out["double"] = mini_batch["x"] * 2
    return out

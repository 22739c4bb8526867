"""A test entry script whose behaviour is chosen by program arguments.

--mode echo|none|dict|short|raise|segv|hang|exit   what run() does for triggered items
--trigger NAME[,NAME]   file names (basenames) that misbehave; empty = every item
--once DIR              misbehave only the first time an item is seen (a marker per item)
--marks DIR             record pids of init() and run() calls (init.txt, run.txt, items.txt)
                        and the parent pid of each init() (parents.txt)
--init-fail / --init-sleep S
"""

import argparse
import os
import signal
import time

args = None


def _mark(name, text):
    if args.marks:
        with open(os.path.join(args.marks, name), "a") as f:
            f.write(text + "\n")


def init():
    global args
    p = argparse.ArgumentParser()
    p.add_argument("--mode", default="echo")
    p.add_argument("--trigger", default="")
    p.add_argument("--once", default=None)
    p.add_argument("--marks", default=None)
    p.add_argument("--init-fail", action="store_true")
    p.add_argument("--init-sleep", type=float, default=0.0)
    p.add_argument("--sleep", type=float, default=0.0)
    args, _ = p.parse_known_args()
    _mark("init.txt", str(os.getpid()))
    _mark("parents.txt", str(os.getppid()))
    if args.init_sleep:
        time.sleep(args.init_sleep)
    if args.init_fail:
        raise RuntimeError("model file is corrupt")


def _triggered(name):
    if args.trigger and name not in args.trigger.split(","):
        return False
    if args.once:
        marker = os.path.join(args.once, name + ".seen")
        if os.path.exists(marker):
            return False
        with open(marker, "w"):
            pass
    return True


def run(mini_batch):
    names = [os.path.basename(p) for p in mini_batch]
    _mark("run.txt", str(os.getpid()))
    for name in names:
        _mark("items.txt", name)
    if args.sleep:
        time.sleep(args.sleep)
    mode = args.mode
    if mode in ("raise", "segv", "hang", "exit") and any(_triggered(n) for n in names):
        if mode == "raise":
            raise ValueError(f"cannot score {names[0]}")
        if mode == "segv":
            os.kill(os.getpid(), signal.SIGSEGV)
        if mode == "hang":
            while True:
                time.sleep(1)
        if mode == "exit":
            os._exit(3)
    if mode == "none":
        return None
    if mode == "dict":
        return {"n": len(names)}
    if mode == "short":
        return names[:-1]
    return names

"""``daskprs status RUN_DIR``: counts, failures by error type, where the outputs are."""

from __future__ import annotations

import json
import os
import shlex
from collections import Counter

from .rundir import Journal, RunDir


def summarize(run_dir: str) -> str:
    rd = RunDir(run_dir)
    meta = rd.read_job()
    n = int(meta.get("mini_batches") or 0)  # None: stopped while staging partition_keys
    ok: set[int] = set()
    tried: set[int] = set()
    attempts = 0
    ends = []
    starts = 0
    for rec in Journal.replay(rd.journal):
        if rec.get("t") == "chunk":
            for row in rec["rows"]:
                attempts += 1
                tried.add(row[0])
                if row[2] == "ok":
                    ok.add(row[0])
        elif rec.get("t") == "start":
            starts += 1
        elif rec.get("t") == "end":
            ends.append(rec)
    failed: dict[int, dict] = {}
    if os.path.isfile(rd.dead_letters):
        with open(rd.dead_letters, encoding="utf-8") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("status") != "partial":
                    failed[entry["index"]] = entry
    still_failed = {i: e for i, e in failed.items() if i not in ok}
    unfinished = len(tried - ok - set(still_failed))
    last = ends[-1] if ends else None
    state = last["status"] if last and starts == len(ends) else "interrupted or running"
    lines = [
        f"run dir:      {rd.path}",
        f"job:          {meta.get('daskprs_job')}",
        f"status:       {state}" + (f" ({last['reason']})" if last and last.get("reason") else ""),
        f"mini-batches: {n} total, {len(ok)} succeeded, {len(still_failed)} failed, "
        + (f"{unfinished} unfinished (tried, a retry due), " if unfinished else "")
        + f"{n - len(tried | ok | set(still_failed))} not run "
        f"({attempts} tries over {starts} attempt(s))",
    ]
    by_type = Counter(e.get("error_type") for e in still_failed.values())
    if by_type:
        lines.append("failures by error type:")
        for etype, count in by_type.most_common():
            example = next(e for e in still_failed.values() if e.get("error_type") == etype)
            said = " ".join(str(example.get("message") or "").split())  # one line
            said = said if len(said) <= 200 else said[:197] + "..."
            lines.append(f"  {etype}: {count}  e.g. [{example['id']}] {said}")
    for name, path in (meta.get("outputs") or {}).items():
        lines.append(f"output {name}: {path}")
    if len(ok) < n:
        lines.append(f"resume: daskprs resume {shlex.quote(rd.path)}")
    return "\n".join(lines)

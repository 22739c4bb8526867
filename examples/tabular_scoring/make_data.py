"""Generate the tabular demo: ~5 MB of transactions in 3 monthly CSV files behind an MLTable."""

import csv
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))


def main(rows_per_month: int = 40_000, seed: int = 3) -> None:
    rng = random.Random(seed)
    folder = os.path.join(HERE, "data", "transactions")
    os.makedirs(folder, exist_ok=True)
    tid = 0
    for month in ("2026-08", "2026-09", "2026-10"):
        with open(os.path.join(folder, f"{month}.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["transaction_id", "amount", "country", "hour", "merchant"])
            for _ in range(rows_per_month):
                w.writerow([tid, round(rng.lognormvariate(3, 1.2), 2),
                            rng.choice(["DE", "FR", "US", "BR", "IN"]), rng.randrange(24),
                            f"merchant-{rng.randrange(500)}"])
                tid += 1
    with open(os.path.join(folder, "MLTable"), "w") as f:
        f.write("paths:\n  - pattern: ./*.csv\ntransformations:\n  - read_delimited:\n"
                "      delimiter: ','\n      header: all_files_same_headers\n")
    print(f"wrote {3 * rows_per_month} transactions to {folder}")


if __name__ == "__main__":
    main()

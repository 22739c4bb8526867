"""Write oj_sales_data/oj_sales_data.csv: weekly orange-juice sales per store and brand.

Small synthetic data (3 stores x 3 brands x 30 weeks) with a price effect and a seasonal
pattern, so each (Store, Brand) model has something to learn. Deterministic: run it again and
the file is the same.
"""

import os

import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
STORES = [1000, 1001, 1002]
BRANDS = ["dominicks", "minute.maid", "tropicana"]
WEEKS = 30


def make() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    weeks = pd.date_range("2026-01-05", periods=WEEKS, freq="7D")
    rows = []
    for store in STORES:
        for b, brand in enumerate(BRANDS):
            base = 9000 + 1500 * b + 40 * (store - 1000)
            for w, week in enumerate(weeks):
                price = round(2.0 + 0.4 * b + rng.uniform(-0.3, 0.3), 2)
                advert = int(rng.random() < 0.3)
                quantity = int(base - 1800 * price + 900 * advert
                               + 600 * np.sin(w / 4) + rng.normal(0, 150))
                rows.append({"WeekStarting": week.date().isoformat(), "Store": store,
                             "Brand": brand, "Quantity": quantity, "Advert": advert,
                             "Price": price, "Revenue": round(quantity * price, 2)})
    return pd.DataFrame(rows)


if __name__ == "__main__":
    out = os.path.join(HERE, "oj_sales_data", "oj_sales_data.csv")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    make().to_csv(out, index=False)
    print(f"wrote {out}")

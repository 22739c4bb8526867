"""Split a CSV into KEY1/KEY2/.../part.csv folders and write an MLTable that reads them back.

The key columns are not kept in the files: the MLTable's extract_columns_from_partition_format
recovers them from the folder names, which is what a parallel job's partition_keys use.
"""

import argparse
import os

import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data_source", required=True)
    parser.add_argument("--partition_keys", required=True)
    parser.add_argument("--tabular_output_data", required=True)
    args = parser.parse_args()

    keys = [k.strip() for k in args.partition_keys.split(",") if k.strip()]
    df = pd.read_csv(args.data_source)
    out = args.tabular_output_data
    os.makedirs(out, exist_ok=True)
    for values, group in df.groupby(keys, sort=True):
        values = values if isinstance(values, tuple) else (values,)
        folder = os.path.join(out, *(str(v) for v in values))
        os.makedirs(folder, exist_ok=True)
        group.drop(columns=keys).to_csv(os.path.join(folder, "part.csv"), index=False)
    layout = "/".join("{" + k + "}" for k in keys) + "/{file_name}.csv"
    with open(os.path.join(out, "MLTable"), "w") as f:
        f.write(
            "paths:\n"
            f"  - pattern: ./{'/'.join('*' for _ in keys)}/*.csv\n"
            "transformations:\n"
            "  - read_delimited:\n"
            "      delimiter: ','\n"
            "      header: all_files_same_headers\n"
            f"  - extract_columns_from_partition_format: '{layout}'\n"
        )
    print(f"partitioned {len(df)} rows by {', '.join(keys)} into {out}")


if __name__ == "__main__":
    main()

"""Writes tests/data/mixed.parquet, the Parquet file tests/data_formats.rs reads: pyarrow's
own writer (as pandas uses it), several row groups, zstd, dictionary-encoded strings, nulls in
every kind of column, and one nested column. Every value follows a formula of the row index
`i`, which the Rust test recomputes. Rerun with `python3 tests/data/make_parquet.py` (needs
pyarrow)."""

import datetime
import decimal
import pathlib

import pyarrow as pa
import pyarrow.parquet as pq

N = 230
rows = range(N)
table = pa.table(
    {
        "count": pa.array([i * 3 if i % 7 else None for i in rows], pa.int64()),
        "small": pa.array([i % 100 - 50 for i in rows], pa.int8()),
        "ratio": pa.array([i / 8 for i in rows], pa.float32()),
        "big": pa.array([3_000_000_000 + i for i in rows], pa.uint32()),
        "huge": pa.array([2**63 + 2**11 * i for i in rows], pa.uint64()),
        "flag": pa.array([i % 2 == 0 for i in rows], pa.bool_()),
        "kind": pa.array(
            [["alpha", "beta", "gamma"][i % 3] if i % 11 else None for i in rows]
        ).dictionary_encode(),
        "day": pa.array(
            [datetime.date(2020, 1, 1) + datetime.timedelta(days=i) for i in rows],
            pa.date32(),
        ),
        "at": pa.array(
            [datetime.datetime(2020, 1, 1) + datetime.timedelta(hours=i) for i in rows],
            pa.timestamp("ms"),
        ),
        "price": pa.array(
            [decimal.Decimal(i * 125) / 100 for i in rows], pa.decimal128(10, 2)
        ),
        "tags": pa.array([[i, i + 1] for i in rows], pa.list_(pa.int32())),
        "target": pa.array([2.0 * i / 8 + (i % 3) for i in rows], pa.float64()),
    }
)
pq.write_table(
    table,
    pathlib.Path(__file__).with_name("mixed.parquet"),
    row_group_size=64,
    compression="zstd",
)

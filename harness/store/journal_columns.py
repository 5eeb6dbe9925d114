"""Read a trail's journal column-wise: the whole file parsed at once by pyarrow's JSON reader, rather than one
`json.loads` per line. Why: the report and `harness status` read every journal of a sweep, and 1,000 trails × 1,000
steps is a million lines — about half a minute line by line, a few seconds this way.

What it returns is what `harness.store.journal.iter_records` yields: the complete lines up to the first torn or corrupt
one, with "nan"/"inf" strings as floats. pyarrow vouches only for a file it parses whole into numeric columns, one
record per line, so a journal with a corrupt or blank line, a record spread over lines, or a string value (a diverged
trail's "nan") is read line by line by iter_records instead, with its exact semantics. Imported only by the readers
(pyarrow is not a trail's business).
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import List, Optional

import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.types as patypes

from harness.store.journal import JOURNAL_NAME, read_records
from harness.store.safe_files import read_bytes

# a line with nothing but blanks: json.loads refuses it (the line reader stops there), pyarrow skips it
_BLANK = b" \t\r\f\v"
_BLANK_LINE = re.compile(rb"\n[ \t\r\f\v]*\n")  # after the first line (a literal first: a fast search)
# one file is one block: the parallelism is across files, where there is any
_READ = pajson.ReadOptions(use_threads=False)
_STEPS_ONLY = pajson.ParseOptions(explicit_schema=pa.schema([("step", pa.int64())]),
                                  unexpected_field_behavior="ignore")


def _complete_lines(path: Path) -> bytes:
    """The journal's bytes up to its last newline (a torn last line is not a record); empty when there is none."""
    try:
        data = read_bytes(path)  # a link or a FIFO is refused, never followed or waited on
    except FileNotFoundError:
        return b""
    return data[: data.rfind(b"\n") + 1]


def _parse(data: bytes, steps_only: bool) -> Optional[pa.Table]:
    """The complete lines parsed by pyarrow, or None when only the line reader can read them faithfully."""
    if data[:1] in _BLANK or data[:1] == b"\n" or _BLANK_LINE.search(data):
        return None
    try:
        table = pajson.read_json(io.BytesIO(data), read_options=_READ,
                                 parse_options=_STEPS_ONLY if steps_only else None)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # a corrupt line, a string among numbers
        return None
    if table.num_rows != data.count(b"\n"):  # an object across lines, or two on one: not one record per line
        return None
    if "step" not in table.column_names or not patypes.is_integer(table.schema.field("step").type) \
            or table.column("step").null_count:
        return None
    numeric = (patypes.is_integer, patypes.is_floating, patypes.is_null)
    if not all(any(test(field.type) for test in numeric) for field in table.schema):
        return None
    return table


def read_table(run_dir: Path | str, steps_only: bool = False) -> pa.Table:
    """The journal as one pyarrow table: a column per key, a row per record, nulls where a record lacks a key
    (`steps_only`: the step column alone, which parses twice as fast). An absent journal is an empty table."""
    data = _complete_lines(Path(run_dir) / JOURNAL_NAME)
    if not data:
        return pa.table({"step": pa.array([], pa.int64())})
    table = _parse(data, steps_only)
    if table is not None:
        return table
    import pandas as pd

    records = read_records(run_dir)  # the line reader's semantics, where pyarrow cannot vouch for the file
    if steps_only:
        return pa.table({"step": pa.array([int(r["step"]) for r in records], pa.int64())})
    if not records:
        return pa.table({"step": pa.array([], pa.int64())})
    return pa.Table.from_pandas(pd.DataFrame.from_records(records), preserve_index=False)


def read_steps(run_dir: Path | str) -> List[int]:
    """The step of each record, in order."""
    return read_table(run_dir, steps_only=True).column("step").to_pylist()

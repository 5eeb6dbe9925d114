"""A trail table as plain aligned text: one line per trail, for sweeps too large for a boxed table.

Why: Rich measures and wraps every cell of a boxed table, about a millisecond per row, so a 1,000-trail
`harness status` would spend a second drawing boxes; aligned columns take milliseconds and stay greppable.
"""

from __future__ import annotations

from typing import Dict, Sequence

from rich.text import Text

PLAIN_ABOVE = 100  # rows beyond which `harness status` lists trails as plain text


def plain_table(rows: Sequence[Dict[str, object]], title: str, columns: Sequence[str]) -> Text:
    """The title, a header line and one line per row, columns padded to their widest cell (the last one not)."""
    cells = [[str(row.get(c, "") or "") for c in columns] for row in rows]
    widths = [max([len(c)] + [len(line[i]) for line in cells]) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=False)).rstrip()

    return Text("\n".join([title, line(columns), *(line(values) for values in cells)]))

"""Where a benchmark's figures go: one markdown file (under reports/ by default), also printed."""

from __future__ import annotations

from pathlib import Path
from typing import List


def publish(lines: List[str], out: Path | str) -> None:
    """Write the report's lines to `out`, making its folder if missing, and print them."""
    text = "\n".join(lines)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")
    print(text)

"""The README's embedding example, extracted so tests run it exactly as written."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- embedding-example:"


def embedding_example() -> str:
    text = (ROOT / "README.md").read_text()
    after = text[text.index(MARKER):]
    match = re.search(r"```python\n(.*?)```", after, re.S)
    assert match is not None, "no python block after the embedding-example marker"
    return match.group(1)

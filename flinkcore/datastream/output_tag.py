"""``OutputTag``: names a side output (``yield tag, value`` / ``get_side_output(tag)``)."""

from __future__ import annotations

from typing import Any

from flinkcore.runtime.operators.base import SideOutputTag

__all__ = ["OutputTag"]


class OutputTag(SideOutputTag):
    """A side output, identified by its name (``type_info`` is optional)."""

    def __init__(self, tag_id: str, type_info: Any = None) -> None:
        super().__init__(tag_id)
        self.type_info = type_info

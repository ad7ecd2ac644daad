"""``extend=none``: the trained model as it is (the default; result rows are unchanged)."""

from __future__ import annotations

from lengen.extend.base import Extension, register


@register
class NoExtension(Extension):
    name = "none"
    summary = "the trained model as it is (default)"

    def install(self, model, original_length: int | None = None) -> None:
        self.original_length = None

    def columns(self) -> dict:
        return {}

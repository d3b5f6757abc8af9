"""User text on a page: escaped for Markdown, and URL values capped before anything parses them.

Streamlit renders messages as Markdown, so ``__import__`` typed by a user would show as a
bold "import"; :func:`md` makes any text render literally. :func:`url_value` is the one
length cap for values read from the URL (the URL module applies it to every value before
parsing): a value above :data:`MAX_URL_VALUE` characters is refused with a short message
that does not repeat it.
"""

from __future__ import annotations

import re

from ebmcore.energies import ValidationError, quote

__all__ = ["MAX_URL_VALUE", "md", "url_value"]

MAX_URL_VALUE = 2000  # characters: the longest formula (ebmcore's MAX_LENGTH) fits
# The characters that open Markdown (or Streamlit's LaTeX and HTML) spans anywhere in a line;
# the rest of ASCII punctuation only acts at the start of a line, which a message never has.
_PUNCT = re.compile(r"([\\`*_{}\[\]<>#|~$])")


def md(text: object) -> str:
    """``text`` with every Markdown-active character backslash-escaped (renders as typed).

    CommonMark lets any ASCII punctuation be escaped; only the characters that open a span
    inside a line are, so messages stay readable in their source; newlines become spaces,
    keeping a message on one line.
    """
    return _PUNCT.sub(r"\\\1", " ".join(str(text).split()))


def url_value(name: str, value: str) -> str:
    """``value`` when it is short enough, else ValidationError naming ``name`` (not the value)."""
    if len(value) > MAX_URL_VALUE:
        raise ValidationError(f"{name} is too long ({len(value):,} characters, limit "
                         f"{MAX_URL_VALUE:,}): {quote(value, 20)}")
    return value

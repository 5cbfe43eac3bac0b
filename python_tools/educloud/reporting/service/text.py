"""What a report holds, made safe to show: data, never control sequences.

A report comes from anyone. Shown on a moderator's terminal or in a mail, a control
character (ESC starting a terminal sequence, a carriage return overwriting the line, a C1
CSI), a bidi override reversing what follows or an invisible format character would
make the text say something else than what is stored. `visible` writes each of them as
its escape (\\x1b, \\u202e), so the moderator reads exactly what was sent; every other
character, markup brackets included, is left as it is.
"""

from __future__ import annotations

import unicodedata

# Control (Cc), format (Cf: bidi embeddings, overrides and isolates, zero-width
# characters), lone surrogates (Cs, which no terminal or encoder can take) and the line and
# paragraph separators (Zl, Zp).
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str, *, keep_newlines: bool = False) -> str:
    """`text` with every control, format or separator character written as its escape
    (line breaks kept with `keep_newlines`); every other character unchanged."""
    out: list[str] = []
    for char in text:
        if char == "\n" and keep_newlines:
            out.append(char)
        elif unicodedata.category(char) in _HIDDEN_CATEGORIES:
            out.append(_escape(char))
        else:
            out.append(char)
    return "".join(out)


def has_hidden(text: str, *, allowed: str = "") -> bool:
    """Whether `text` holds a control, format or separator character not in `allowed`."""
    return any(
        unicodedata.category(char) in _HIDDEN_CATEGORIES and char not in allowed for char in text
    )

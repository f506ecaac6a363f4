"""OSC 1.0 address patterns, matched without backtracking.

python-osc turns a pattern into a backtracking regular expression: every `*` multiplied
the work, so one 24-byte packet with a dozen stars froze the whole node for seconds (and
twenty stars for hours). Here a pattern is cut into segments at '/', each segment into
tokens, and a segment is matched by carrying the set of reachable positions in the address
segment forward one token at a time (as the bits of an int). The work is at most
tokens × address length, whatever the pattern, and a pattern is at most MAX_PATTERN long.

The grammar (OSC 1.0): `?` one character; `*` any run of characters (never crossing '/');
`[abc]`, `[a-z]`, `[!abc]` one character in (or, with '!' first, not in) the set, where
'-' between two characters is a range and elsewhere itself; `{foo,bar}` one of the
strings, taken literally. Everything else is itself. A '[' or '{' not closed within its
segment makes the pattern malformed.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from livevace.control.ratelog import shorten
from livevace.errors import UserError

MAX_PATTERN = 1024
"""Longest pattern matched (every parameter listed in one {…} takes under 400)."""

WILDCARDS = re.compile(r"[*?\[\]{}]")


class PatternError(UserError):
    """An address pattern that cannot be matched (malformed or too long)."""


@dataclass(frozen=True)
class _Star:
    pass


@dataclass(frozen=True)
class _Chars:
    """One character: '?' (anything), or a [set] with its single chars and ranges."""

    chars: frozenset[str]
    ranges: tuple[tuple[str, str], ...]
    negate: bool

    def __contains__(self, c: str) -> bool:
        inside = c in self.chars or any(lo <= c <= hi for lo, hi in self.ranges)
        return inside != self.negate


@dataclass(frozen=True)
class _Strings:
    """Literal text, or a {brace,list}: any one of the options."""

    options: tuple[str, ...]


_Token = _Star | _Chars | _Strings
ANY = _Chars(frozenset(), (), True)
STAR = _Star()


def has_wildcards(address: str) -> bool:
    return WILDCARDS.search(address) is not None


def _char_set(body: str) -> _Chars:
    negate = body.startswith("!")
    body = body[1:] if negate else body
    chars: set[str] = set()
    ranges = []
    i = 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            ranges.append((body[i], body[i + 2]))  # a reversed range holds nothing
            i += 3
        else:
            chars.add(body[i])
            i += 1
    return _Chars(frozenset(chars), tuple(ranges), negate)


def _closing(segment: str, i: int, close: str, whole: str) -> int:
    end = segment.find(close, i + 1)
    if end < 0:
        raise PatternError(f"{segment[i]!r} without {close!r} in {shorten(whole)!r}")
    return end


def _tokens(segment: str, whole: str) -> tuple[_Token, ...]:
    out: list[_Token] = []
    literal = ""
    i = 0
    while i < len(segment):
        c = segment[i]
        token: _Token | None = None
        if c == "*":
            token = STAR
        elif c == "?":
            token = ANY
        elif c == "[":
            end = _closing(segment, i, "]", whole)
            token, i = _char_set(segment[i + 1:end]), end
        elif c == "{":
            end = _closing(segment, i, "}", whole)
            token, i = _Strings(tuple(dict.fromkeys(segment[i + 1:end].split(",")))), end
        else:
            literal += c
        i += 1
        if token is None:
            continue
        if literal:
            out.append(_Strings((literal,)))
            literal = ""
        if not (token is STAR and out and out[-1] is STAR):  # '**' is '*'
            out.append(token)
    if literal:
        out.append(_Strings((literal,)))
    return tuple(out)


@functools.lru_cache(maxsize=4096)
def _positions(text: str) -> dict[str, int]:
    """Per character of `text`, the bit mask of the positions where it occurs (address
    segments are the node's own route names, so this cache stays small)."""
    masks: dict[str, int] = {}
    for i, c in enumerate(text):
        masks[c] = masks.get(c, 0) | 1 << i
    return masks


def _starts(text: str, s: str) -> int:
    """Bit mask of the positions where `text` continues with `s`."""
    mask = 0
    i = text.find(s)
    while i >= 0:
        mask |= 1 << i
        i = text.find(s, i + 1)
    return mask


def _match_segment(tokens: tuple[_Token, ...], text: str) -> bool:
    """Bit i of `reach`: the tokens so far can match text[:i]."""
    n = len(text)
    reach = 1
    for token in tokens:
        if isinstance(token, _Star):
            reach = ((1 << (n + 1)) - 1) & ~((reach & -reach) - 1)  # the lowest bit and up
        elif isinstance(token, _Chars):
            mask = sum(m for c, m in _positions(text).items() if c in token)
            reach = (reach & mask) << 1
        else:
            step = 0
            for s in token.options:
                step |= (reach & _starts(text, s)) << len(s)
            reach = step
        if not reach:
            return False
    return bool(reach >> n & 1)


class Pattern:
    """A compiled address pattern; `matches` remembers each segment it tried, so testing
    it against every route costs each distinct route segment once."""

    def __init__(self, text: str) -> None:
        if len(text) > MAX_PATTERN:
            raise PatternError(f"an address pattern of {len(text)} characters (at most "
                               f"{MAX_PATTERN}) ignored")
        self._segments = tuple(_tokens(s, text) for s in text.split("/"))
        self._seen: dict[tuple[int, str], bool] = {}

    def matches(self, address: str) -> bool:
        parts = address.split("/")
        if len(parts) != len(self._segments):
            return False
        for i, part in enumerate(parts):
            key = (i, part)
            if key not in self._seen:
                self._seen[key] = _match_segment(self._segments[i], part)
            if not self._seen[key]:
                return False
        return True


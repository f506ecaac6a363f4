"""OSC address patterns: our matcher against a slow reference on random patterns, and
adversarial patterns (one of which froze the node for seconds, or hours) at a running node."""

from __future__ import annotations

import fnmatch
import itertools
import logging
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from livevace.control.addresses import COMMANDS
from livevace.control.patterns import MAX_PATTERN, Pattern, PatternError
from livevace.params import REGISTRY
from test_control_support import oscsend, presets, running  # noqa: F401

LETTERS = "abc_"
text = st.text(LETTERS, max_size=6)
char_set = st.builds(
    lambda negate, items: "[" + ("!" if negate else "") + "".join(items) + "]",
    st.booleans(),
    st.lists(st.one_of(st.sampled_from(LETTERS),
                       st.builds("{}-{}".format, st.sampled_from("abc"), st.sampled_from("abc"))),
             min_size=1, max_size=3))
braces = st.builds(lambda options: "{" + ",".join(options) + "}",
                   st.lists(st.text(LETTERS, max_size=3), min_size=1, max_size=3))
token = st.one_of(st.sampled_from(LETTERS), st.just("*"), st.just("?"), char_set, braces)


def instance(token: str) -> st.SearchStrategy[str]:
    """Text the token may well match (a set's letter may be one it excludes)."""
    if token == "*":
        return st.text(LETTERS, max_size=3)
    if token == "?" or token.startswith("["):
        return st.sampled_from(LETTERS)
    if token.startswith("{"):
        return st.sampled_from(token[1:-1].split(","))
    return st.just(token)


@st.composite
def pattern_and_address(draw: st.DrawFn) -> tuple[str, str]:
    """1-3 segments of tokens (at most 3 brace groups: the reference expands them), and an
    address: random, or (half the time) spelled from the pattern's tokens."""
    segments = draw(st.lists(st.lists(token, max_size=6), min_size=1, max_size=3).filter(
        lambda segs: sum(t.startswith("{") for s in segs for t in s) <= 3))
    if draw(st.booleans()):
        words = draw(st.lists(text, min_size=1, max_size=3))
    else:
        words = ["".join(draw(instance(t)) for t in s) for s in segments]
    return "/" + "/".join("".join(s) for s in segments), "/" + "/".join(words)


def reference(pattern: str, address: str) -> bool:
    """Slow and obviously right on short inputs: expand the braces, then fnmatch each
    segment (its *, ?, [..] and [!..] are OSC's; '/' never reaches fnmatch)."""
    parts = []
    rest = pattern
    while "{" in rest:
        head, _, tail = rest.partition("{")
        options, _, rest = tail.partition("}")
        parts += [[head], options.split(",")]
    parts.append([rest])
    segments = address.split("/")
    for choice in itertools.product(*parts):
        expanded = "".join(choice).split("/")
        if len(expanded) == len(segments) and all(
                fnmatch.fnmatchcase(s, p) for s, p in zip(segments, expanded)):
            return True
    return False


@settings(max_examples=3000, deadline=None)
@given(pattern_and_address())
def test_matcher_agrees_with_the_reference(case):
    pattern, address = case
    assert Pattern(pattern).matches(address) == reference(pattern, address), case


ADVERSARIAL = [
    "/livevace/" + "*" * 13 + "!",                    # the 24-byte packet of the issue
    "/livevace/" + "*" * 20 + "!",                    # hours with a backtracking matcher
    "/livevace/" + "*?" * 500 + "!",
    "/livevace/" + "*a" * 500,
    "/livevace/" + "*[a-z]" * 160 + "!",
    "/livevace/" + "{" * 300 + "seed" + "}" * 300,    # nested braces
    "/livevace/{" + ",".join(f"s{i}" for i in range(180)) + ",seed}",  # a huge brace list
    "/livevace/" + "*" * 1000 + "seed",
    "/" + "*/" * 400 + "*",
    "/livevace/" + "*" * 65000,                       # over MAX_PATTERN: refused
    "/livevace/" + "[" * 900,
]


def test_adversarial_patterns_are_matched_or_refused():
    """Every pattern against every address the node answers, in bounded time (a generous
    10 s in all, for what took hours before)."""
    routes = [p.address for p in REGISTRY] + [c.address for c in COMMANDS]
    began = time.monotonic()
    for pattern in ADVERSARIAL:
        try:
            p = Pattern(pattern)
        except PatternError:
            assert len(pattern) > MAX_PATTERN or "[" in pattern
            continue
        matched = [a for a in routes if p.matches(a)]
        assert matched == (["/livevace/seed"] if pattern.endswith("seed}") or
                           pattern.endswith("*seed") else []), pattern
    assert time.monotonic() - began < 10


def test_one_star_packet_no_longer_freezes_the_node(running, caplog):
    """liblo's oscsend sends the packets of the issue to a running node; it goes on answering
    (the 20-star one took hours), logs the refused ones, and a brace list still works."""
    caplog.set_level(logging.WARNING, "livevace.osc")
    r = running()
    began = time.monotonic()
    for pattern in ADVERSARIAL:
        if len(pattern) < 4000:
            oscsend(r.port, pattern, "f", "1")
        else:
            r.client.send(pattern, 1.0)
    r.client.send("/livevace/{" + ",".join(f"s{i}" for i in range(100)) + ",seed}", 7)
    r.client.sync()
    assert time.monotonic() - began < 30  # generous: each pattern is milliseconds now
    assert r.store.get("seed") == 7
    assert "65010 characters (at most 1024)" in caplog.text
    assert "'[' without ']'" in caplog.text

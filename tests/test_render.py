"""clean_line and clean_text skip the escape-sequence regex for text without an introducer: they
must say exactly what the regex applied to every text says."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from archiver import render

SEQUENCE = re.compile(render._ESCAPE_SEQUENCE)
# Introducers, terminators, parameter bytes, breaks, bidi and plain letters: sequences form often.
ALPHABET = st.sampled_from([*"\x1b\x9b\x90\x98\x9d\x9e\x9f\x07\x9c\\[]PX^_;0?m \n\r\u2028\u202eaZ", "é", "\U0001f3b5"])


@settings(max_examples=400, deadline=None)
@given(text=st.text(ALPHABET, max_size=40))
def test_clean_line_and_text_equal_the_regex_on_everything(text: str) -> None:
    assert render.clean_line(text) == SEQUENCE.sub("", text).translate(render._LINE)
    assert render.clean_text(text) == SEQUENCE.sub("", text).replace("\r\n", "\n").translate(render._TEXT)


def test_every_sequence_starts_with_an_introducer() -> None:
    """The shortcut's premise, checked on the pattern itself: no match begins elsewhere."""
    starts = {chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000
              and SEQUENCE.match(chr(c) + "[0m\x07\x1b\\")}
    assert starts == set(render._INTRODUCERS)

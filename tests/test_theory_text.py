"""The family's theory sections: present, Markdown with balanced maths, naming what they cover."""

from __future__ import annotations

import pytest

from ebmcore.sampling.theory import SECTIONS, section


@pytest.mark.parametrize("name,words", [("underdamped", ["BAOAB", "friction", "Cov"]),
                                        ("annealed", ["Tweedie", "mode weights"]),
                                        ("stepwise", ["MALA", "HMC", "leapfrog"])])
def test_sections(name, words):
    text = section(name)
    assert text.startswith("### ") and all(w in text for w in words)
    assert text.count("$$") % 2 == 0 and text.replace("$$", "").count("$") % 2 == 0
    assert set(SECTIONS) == {"underdamped", "annealed", "stepwise"}

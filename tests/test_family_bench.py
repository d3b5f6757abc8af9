"""The family bench: rows for underdamped and annealed Langevin beside SGLD, as ratios."""

from __future__ import annotations

import math

from ebmcore.bench.core import load_benches


def test_family_rows_carry_ratios_to_sgld_of_the_same_run():
    rows = load_benches()["family"](True)
    runs = {(r["target"], r["impl"]) for r in rows if r["bench"] == "family run"}
    for target in ("gaussian", "mixture"):
        assert {(target, s) for s in ("sgld", "underdamped", "annealed")} <= runs
    for r in rows:
        assert r["rate"] > 0 and math.isfinite(r["vs_sgld"])
        if r["impl"] in ("sgld", "sgld fast (in place)"):
            assert r["vs_sgld"] == 1.0

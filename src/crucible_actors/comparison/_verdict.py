"""The words of a comparison: one sentence per pair of groups and one over all of them.

:func:`verdict` says, for one candidate against its baseline, the means, the difference
with the interval of the test that decided, the p-value, the effect size and which is
better, or, when the difference may be noise, the smallest difference the comparison
could have detected; :func:`overall` sums the pairs up. Differences of 0/1 scores are in
percentage points.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._result import GroupSummary, PairComparison

__all__ = ["EFFECT_SYMBOLS", "overall", "verdict"]


def _fmt(x: float | None, digits: int = 4) -> str:
    return "n/a" if x is None else f"{x:.{digits}g}"


def _amount(x: float | None, binary: bool, signed: bool = False) -> str:
    """A difference: in points (percentage points) for 0/1 scores."""
    if x is None:
        return "n/a"
    if binary:
        return f"{x * 100:+.1f} points" if signed else f"{x * 100:.1f} points"
    return f"{'+' if signed and x >= 0 else ''}{_fmt(x)}"


def _ci_text(ci: Sequence[float | None] | None, level: float, binary: bool = False) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return ""
    if binary:
        return f", {round(level * 100):d}% CI [{ci[0] * 100:+.1f}, {ci[1] * 100:+.1f}]"
    return f", {round(level * 100):d}% CI [{_fmt(ci[0], 3)}, {_fmt(ci[1], 3)}]"


#: The symbol of each effect size, as the verdicts and tables print it.
EFFECT_SYMBOLS: Final = {"cohens_dz": "d_z", "cohens_d": "d", "cohens_h": "h"}


def verdict(
    base: GroupSummary,
    cand: GroupSummary,
    test: str,
    entry: dict[str, Any],
    effect: dict[str, Any],
    mde: float | None,
    *,
    level: float,
    binary: bool,
    higher_is_better: bool,
) -> tuple[str, str | None]:
    """Return the sentence for ``cand`` against ``base``, and the better one's label.

    ``entry`` is the deciding ``test``'s result, ``effect`` the effect size and ``mde``
    the minimum detectable effect (None when the difference is significant). The label
    is None when the difference may be noise.
    """
    from ._design import TEST_NAMES

    diff = entry.get("estimate")
    significant = bool(entry.get("significant"))
    ci = _ci_text(entry.get("confidence_interval"), level, binary)
    head = (
        f"{cand.label} vs {base.label}: mean {_fmt(cand.mean)} vs {_fmt(base.mean)} "
        f"({_amount(diff, binary, signed=True)}{ci})"
    )
    p_text = entry.get("interpretation") or "Not computable (p undefined)"
    adjusted = " after correction" if "p_value_adjusted" in entry else ""
    extra = ""
    if test == "mcnemar":
        b, c = entry["discordant"]
        extra = f" (b = {b}, c = {c})"
    elif "seed_sd" in entry:
        runs = entry.get("runs") or []
        extra = f" (seed SD {_fmt(entry['seed_sd'], 3)}; {'+'.join(map(str, runs))} runs)"
    eff = (
        f"effect size {effect['interpretation']} "
        f"({EFFECT_SYMBOLS.get(effect['name'], effect['name'])} = {_fmt(effect['value'], 3)}"
        f"{_ci_text(effect.get('ci'), level)})"
    )
    better: str | None = None
    if significant and diff is not None and diff != 0:
        better = cand.label if (diff > 0) == higher_is_better else base.label
        worse = base.label if better == cand.label else cand.label
        tail = f"{better} is better than {worse}."
    else:
        tail = "The difference may be noise"
        if mde is not None:
            tail += f"; this comparison could not detect differences under {_amount(mde, binary)}"
        tail += "."
    return (
        f"{head}; {p_text} by {TEST_NAMES.get(test, test)}{extra}{adjusted}; {eff}. {tail}",
        better,
    )


def overall(
    groups: list[GroupSummary], ref: int, comparisons: list[PairComparison], best: bool
) -> str:
    """Return one sentence over all comparisons; ``best``: the reference is the best group."""
    base = groups[ref]
    if len(comparisons) == 1 and not best:
        return comparisons[0].verdict
    beaten = [c.candidate for c in comparisons if c.better == c.candidate]
    worse = [c.candidate for c in comparisons if c.better == base.label]
    unclear = [c.candidate for c in comparisons if c.better is None]
    if best:
        head = f"Best: {base.label} (mean {_fmt(base.mean)})."
        if not unclear and not beaten:
            return f"{head} It is significantly better than every other point."
        parts = [head]
        if worse:
            parts.append(f"Significantly better than: {', '.join(worse)}.")
        if unclear:
            parts.append(
                f"Not significantly different from: {', '.join(unclear)} "
                "(the difference may be noise)."
            )
        return " ".join(parts)
    parts = []
    if beaten:
        parts.append(f"better: {', '.join(beaten)}")
    if worse:
        parts.append(f"worse: {', '.join(worse)}")
    if unclear:
        parts.append(f"not significantly different: {', '.join(unclear)}")
    return f"Against the baseline {base.label}: " + "; ".join(parts) + "."

"""``crucible-actors compare``: is run B really better than run A, or is it noise?

``compare RUN_A RUN_B [RUN_C ...]`` tests every run against RUN_A; ``compare --sweep ID``
ranks the points of a sweep and tests each against the best. Per-example scores come
from the runs' outputs (``--metric``), paired by ``id`` when every output has a unique one
(``--pair-by FIELD`` names another key, ``--unpaired`` opts out); ``--cluster-by``,
``--repeats`` and ``--cv-ratio`` describe the data so the right test is used (see
``docs/statistics.md``). ``--format`` picks a text table (default), Markdown, JSON or a
self-contained HTML page; ``-o FILE`` writes it to a file. See :mod:`crucible_actors.comparison`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    import argparse

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``compare`` command."""
    from ..comparison import FORMATS, REPEATS
    from ..stats import CORRECTIONS

    p = sub.add_parser(
        "compare",
        help="compare stored runs (or the points of a sweep) statistically",
        description="Compare runs on a per-example score: every run against the first, "
        "or with --sweep every point against the best.",
    )
    p.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="runs; the first is the baseline")
    p.add_argument("--sweep", metavar="ID", help="compare the points of this sweep")
    p.add_argument("--metric", metavar="NAME", help="the per-example score field of the outputs")
    p.add_argument(
        "--pair-by",
        metavar="FIELD",
        help="pair examples across runs by this field (default: id, when unique in every run)",
    )
    p.add_argument(
        "--unpaired", action="store_true", help="do not pair the examples, even by a unique id"
    )
    p.add_argument(
        "--cluster-by",
        metavar="FIELD",
        help="examples sharing this field (a passage, a document) are dependent: "
        "cluster-robust tests",
    )
    p.add_argument(
        "--repeats",
        choices=REPEATS,
        default="seeds",
        help="what the repeated runs of a sweep point are: training/run seeds (default; "
        "run-to-run variance counts) or eval-time samples (averaged per example)",
    )
    p.add_argument(
        "--cv-ratio",
        type=float,
        metavar="RATIO",
        help="the scores are per-fold CV results with n_test/n_train = RATIO (0.25 for "
        "5-fold): use the corrected resampled t-test",
    )
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (0.05)")
    p.add_argument(
        "--correction",
        choices=CORRECTIONS,
        default="holm",
        help="multiple-comparison correction across the comparisons (holm)",
    )
    p.add_argument(
        "--lower-is-better", action="store_true", help="a lower score is better (e.g. a loss)"
    )
    p.add_argument(
        "--store",
        metavar="URL",
        help="store URL (default: CRUCIBLE_STORE_URL or sqlite:///./.crucible/crucible.db)",
    )
    p.set_defaults(func=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare the runs; 0 on success, 2 on bad input (unknown run, no scores, ...)."""
    from ..comparison import CompareOptions, Comparison, compare, compare_sweep, render
    from ..store import open_store
    from ._format import store_url

    if bool(args.sweep) == bool(args.run_ids):
        print(
            "error: compare needs either two or more RUN_IDs or --sweep ID (not both)",
            file=sys.stderr,
        )
        return 2
    url = store_url(args.store)

    async def main(options: CompareOptions) -> Comparison:
        async with open_store(url) as store:
            if args.sweep:
                return await compare_sweep(store, args.sweep, options)
            return await compare(store, args.run_ids, options)

    try:
        options = CompareOptions(
            metric=args.metric,
            pair_by=args.pair_by,
            unpaired=args.unpaired,
            cluster_by=args.cluster_by,
            repeats=args.repeats,
            test_train_ratio=args.cv_ratio,
            alpha=args.alpha,
            correction=args.correction,
            higher_is_better=not args.lower_is_better,
        )
        result = anyio.run(main, options, backend="trio")
    except ValueError as exc:  # an option out of range, from the statistics
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = render(result, args.format)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0

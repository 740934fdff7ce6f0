"""`python -m core compare`: groups of runs scored on the same networks, each group against the first, with a
paired bootstrap interval over source images (core.compare)."""

from __future__ import annotations

import argparse
import json

from core.errors import WeightSpaceError


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `compare`."""
    p = sub.add_parser(
        "compare", help="paired comparison of runs on one zoo split, with a bootstrap interval",
        description="Score every run on the same zoo split and compare each group with the first: the difference "
                    "of their mean per-network scores (inr-classify: accuracy; generalization: squared error) "
                    "with a percentile bootstrap interval that resamples source images (all INRs of an image "
                    "together) where the zoo records them, else networks. A group's score is the mean over its "
                    "runs (seeds); the interval resamples networks, not training seeds, so with few seeds it "
                    "understates a recipe's uncertainty. Example: compare A=runs/a-s0,runs/a-s1 "
                    "B=runs/b-s0,runs/b-s1 --zoo REFIT")
    p.add_argument("groups", nargs="+", metavar="GROUP",
                   help="NAME=RUN[,RUN…] (runs scored as one group, e.g. the seeds of a recipe) or a single RUN")
    p.add_argument("--zoo", default=None, help="zoo directory (default: the first run's own zoo)")
    p.add_argument("--split", default="test", help="train, val, test or all (default test)")
    p.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (default 10000)")
    p.add_argument("--confidence", type=float, default=0.95, help="interval's confidence level (default 0.95)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resamples")
    p.add_argument("--json", action="store_true")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=run)
    return p


def parse_groups(specs: list[str]) -> dict[str, list[str]]:
    """`NAME=RUN,RUN` / `RUN` arguments → {name: run paths}, names unique and in order."""
    groups: dict[str, list[str]] = {}
    for spec in specs:
        name, sep, paths = spec.partition("=")
        if not sep:
            name, paths = spec, spec
        runs = [p for p in paths.split(",") if p]
        if not name or not runs:
            raise WeightSpaceError(f"{spec!r}: a group is NAME=RUN[,RUN…] or RUN")
        if name in groups:
            raise WeightSpaceError(f"group {name!r} is given twice")
        groups[name] = runs
    return groups


def _number(value: float, signed: bool = False) -> str:
    """Four decimals, or three significant digits for small values (a regression's squared errors)."""
    sign = "+" if signed else ""
    return f"{value:{sign}.4f}" if value == 0 or abs(value) >= 0.01 else f"{value:{sign}.3e}"


def run(args: argparse.Namespace) -> int:
    """Score the groups and print each one's mean and its paired difference with the first."""
    from core.compare import paired_difference, score_groups, source_clusters
    from core.runs import load_run
    from core.zoo import Zoo

    paths = parse_groups(args.groups)
    groups = {name: [load_run(p) for p in members] for name, members in paths.items()}
    first = next(iter(groups.values()))[0]
    zoo = Zoo.open(args.zoo or first.config.zoo)
    split = None if args.split == "all" else args.split
    rows, scores = score_groups(groups, zoo, split, args.device, progress=not args.json)
    clusters, unit = source_clusters(zoo, rows)
    base = scores[0]
    diffs = [paired_difference(base.per_network, g.per_network, clusters, confidence=args.confidence,
                               resamples=args.resamples, seed=args.seed, names=(base.name, g.name))
             for g in scores[1:]]
    metric, task = first.task.network_score, first.task
    if args.json:
        print(json.dumps({"task": first.config.task, "score": metric, "split": args.split, "zoo": str(zoo.dir),
                          "networks": len(rows), "resampled": unit,
                          "groups": [{"name": g.name, "runs": g.paths, "mean": float(g.per_network.mean()),
                                      "run_means": g.run_means.tolist()} for g in scores],
                          "differences": [d.to_dict() for d in diffs]}))
        return 0
    better = "higher" if task.network_score_greater_is_better else "lower"
    images = f", {len(set(clusters))} {unit}s" if unit != "network" else ""
    print(f"{first.config.task} on {args.split} of {zoo.dir} ({len(rows)} networks{images}); "
          f"score: {metric} ({better} is better)")
    width = max(len(g.name) for g in scores)
    for g in scores:
        each = ", ".join(_number(v) for v in g.run_means)
        spread = f" ± {_number(g.run_means.std(ddof=1))}" if len(g.run_means) > 1 else ""
        print(f"  {g.name:<{width}}  {_number(g.per_network.mean())}{spread}  ({len(g.paths)} run(s): {each})")
    if diffs:
        print(f"paired differences, {100 * args.confidence:g} % bootstrap interval over {unit}s "
              f"({args.resamples} resamples):")
    for d in diffs:
        print(f"  {d.b} − {d.a}: {_number(d.mean, True)}  [{_number(d.low, True)}, {_number(d.high, True)}]")
    return 0

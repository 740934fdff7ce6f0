"""Compare optimisers on held-out inner problems: table (Markdown), loss curves (PNG via PIL, HTML via plotly)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch

from core.l2o.meta import rollout
from core.l2o.optimizers import FunctionalOptimizer
from core.l2o.problems import EVAL_SPECS, ProblemSpec, sample_problem

EVAL_SEED = 20_240_601  # never used by meta-training (which draws seeds from random.Random(config.seed))
METRICS = ("train_loss", "test_loss", "test_acc")


def compare(optimizers: dict[str, FunctionalOptimizer], specs: Sequence[ProblemSpec] = EVAL_SPECS,
            steps: Sequence[int] = (50, 200), networks: int = 5, seed: int = EVAL_SEED, eval_every: int = 10,
            log=None) -> dict:
    """Roll out every optimiser on every problem (same inits and minibatch stream per problem).

    Returns {"problems": [label…], "steps": [...], "results": {label: {opt: {"curve_steps", "curve_mean",
    "curve_std", "at": {T: {metric: (mean, std)}}, "seconds"}}}}; statistics are over the `networks` inner
    networks (independent initialisations) of a problem.
    """
    t_max = max(steps)
    out: dict = {"problems": [], "steps": list(steps), "networks": networks, "results": {}}
    for spec in specs:
        label = spec.label()
        out["problems"].append(label)
        per = out["results"][label] = {}
        for name, opt in optimizers.items():
            problem = sample_problem(spec, networks, seed, dtype=_dtype(opt), held_out=True)
            r = rollout(opt, problem, t_max, eval_every=eval_every, eval_at=steps)
            curve = r["train_loss"]  # [len, B]
            per[name] = {
                "curve_steps": r["steps"],
                "curve_mean": _nan_list(curve.mean(1)),
                "curve_std": _nan_list(curve.std(1)),
                "at": {int(t): {m: (float(v[m].mean()), float(v[m].std())) for m in METRICS}
                       for t, v in r["at"].items()},
                "seconds": r["seconds"],
            }
            if log is not None:
                a = per[name]["at"][min(steps)]
                acc = f"acc {a['test_acc'][0]:.4f} " if math.isfinite(a["test_acc"][0]) else ""
                log(f"{label:28s} {name:14s} T={min(steps)} train {a['train_loss'][0]:.4f} "
                    f"test {a['test_loss'][0]:.4f} {acc}({r['seconds']:.1f}s)")
    return out


def _dtype(opt: FunctionalOptimizer) -> torch.dtype:
    p = next(iter(opt.parameters()), None)
    return p.dtype if p is not None else torch.float32


def _nan_list(t: torch.Tensor) -> list[float]:
    return [float(v) if math.isfinite(float(v)) else float("nan") for v in t]


def markdown_table(report: dict) -> str:
    """One row per (problem, optimiser); columns train loss / test loss / test acc at each T (mean ± std)."""
    steps = report["steps"]
    head = ["problem", "optimiser"] + [f"{m} @{t}" for t in steps for m in ("train loss", "test loss", "test acc")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label in report["problems"]:
        per = report["results"][label]
        best = {(t, m): min(per, key=lambda n: _key(per[n]["at"][t][m][0], m)) for t in steps for m in METRICS}
        for name, r in per.items():
            cells = [label, name]
            for t in steps:
                for m in METRICS:
                    mean, std = r["at"][t][m]
                    if not math.isfinite(mean) and m == "test_acc":  # INR fits have no accuracy
                        cells.append("—")
                        continue
                    s = f"{mean:.3f} ± {std:.3f}" if m != "test_acc" else f"{100 * mean:.1f} ± {100 * std:.1f}"
                    cells.append(f"**{s}**" if best[(t, m)] == name else s)
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _key(v: float, metric: str) -> float:
    if not math.isfinite(v):
        return math.inf
    return -v if metric == "test_acc" else v


COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]


def loss_curves_png(report: dict, path: str | Path, panel: tuple[int, int] = (420, 300)) -> Path:
    """Draw training-loss curves (log scale, mean ± std band) with PIL: one panel per problem."""
    from PIL import Image, ImageDraw, ImageFont

    problems = report["problems"]
    cols = min(2, len(problems))
    rows = math.ceil(len(problems) / cols)
    pw, ph = panel
    img = Image.new("RGB", (cols * pw, rows * ph + 30), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    names = list(next(iter(report["results"].values())).keys())
    for i, label in enumerate(problems):
        ox, oy = (i % cols) * pw, (i // cols) * ph
        left, top, right, bottom = ox + 50, oy + 22, ox + pw - 12, oy + ph - 28
        per = report["results"][label]
        vals = [v for r in per.values() for v in r["curve_mean"] if math.isfinite(v) and v > 0]
        lo, hi = math.log10(max(min(vals), 1e-4)), math.log10(max(vals))
        hi = max(hi, lo + 1e-3)
        t_max = max(max(r["curve_steps"]) for r in per.values())

        def xy(t: float, v: float) -> tuple[float, float]:
            y = math.log10(min(max(v, 10 ** lo), 10 ** hi))
            return left + (right - left) * t / t_max, bottom - (bottom - top) * (y - lo) / (hi - lo)

        draw.rectangle([left, top, right, bottom], outline=(120, 120, 120))
        draw.text((left, oy + 5), label, fill="black", font=font)
        for e in range(math.floor(lo), math.ceil(hi) + 1):
            for m in (1, 2, 5):
                v = m * 10 ** e
                if 10 ** lo <= v <= 10 ** hi:
                    _, y = xy(0, v)
                    draw.line([left, y, right, y], fill=(230, 230, 230))
                    draw.text((ox + 4, y - 6), f"{v:g}", fill="black", font=font)
        for t in report["steps"]:
            x, _ = xy(t, 1)
            draw.line([x, top, x, bottom], fill=(200, 200, 200))
            draw.text((x - 8, bottom + 4), str(t), fill="black", font=font)
        for j, (name, r) in enumerate(per.items()):
            colour = COLOURS[j % len(COLOURS)]
            pts = [xy(t, v) for t, v in zip(r["curve_steps"], r["curve_mean"]) if math.isfinite(v)]
            if len(pts) > 1:
                draw.line(pts, fill=colour, width=2)
    x = 10
    for j, name in enumerate(names):
        colour = COLOURS[j % len(COLOURS)]
        draw.line([x, rows * ph + 15, x + 20, rows * ph + 15], fill=colour, width=3)
        draw.text((x + 24, rows * ph + 9), name, fill="black", font=font)
        x += 34 + 7 * len(name)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def loss_curves_html(report: dict, path: str | Path) -> Path:
    """The same curves as an interactive plotly HTML file (log-y, one subplot per problem)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    problems = report["problems"]
    cols = min(2, len(problems))
    rows = math.ceil(len(problems) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=problems)
    for i, label in enumerate(problems):
        for j, (name, r) in enumerate(report["results"][label].items()):
            c = COLOURS[j % len(COLOURS)]
            fig.add_trace(go.Scatter(x=r["curve_steps"], y=r["curve_mean"], name=name, legendgroup=name,
                                     showlegend=i == 0, line=dict(color=f"rgb{c}")),
                          row=i // cols + 1, col=i % cols + 1)
    fig.update_yaxes(type="log", title_text="train loss")
    fig.update_xaxes(title_text="inner step")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(str(path), include_plotlyjs=True)
    return path

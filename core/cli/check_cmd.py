"""`python -m core check PATH`: list a checkpoint's weight-space symmetries and verify that each preserves
the function (float64, random group elements, outputs compared before/after).

`--activation` states the hidden activation. For a file that does not record one (a bare state_dict)
it defines the network; for a file that does, the declared activation only decides which symmetries are
*claimed*, and the network still runs with its recorded activation — so a wrong declaration (a ReLU
network declared tanh) makes the sign-flip check fail instead of passing silently.
Exit status: 0 all checks pass, 1 any check fails, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import math


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `check` sub-command."""
    from core.cli.inspect_cmd import add_activation_arguments

    p = sub.add_parser("check", help="list a checkpoint's symmetries and verify each preserves its function",
                       description=(__doc__ or "").strip().split("\n\n")[0])
    p.add_argument("path", help="checkpoint file")
    add_activation_arguments(p)
    p.add_argument("--trials", type=int, default=5, help="random group elements per symmetry (default 5)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)
    return p


def declare_activation(arch, fn: str, slope: float = 0.01, w0: float = 30.0):
    """A copy of `arch` whose hidden activations (those before the last weight layer) are all `fn`."""
    from core.network.spec import Activation, Architecture

    last = arch.weight_layers()[-1] if arch.weight_layers() else len(arch.ops)
    new = Activation(fn, slope=slope, w0=w0)
    ops = tuple(new if isinstance(op, Activation) and i < last else op for i, op in enumerate(arch.ops))
    return Architecture(ops, arch.input_shape)


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def run(args: argparse.Namespace) -> int:
    """Print the symmetries and the per-symmetry errors; exit 0 (all pass) or 1 (any fails)."""
    from core.errors import WeightSpaceError
    from core.io import load_network
    from core.network.spec import Network
    from core.symmetry import admitted_symmetries, check_function_preservation, constant_output
    from core.symmetry.check import CONSTANT_OUTPUT_WARNING

    if args.trials < 1:
        raise WeightSpaceError("--trials must be at least 1")
    net = load_network(args.path, None, w0=args.w0, slope=args.slope, input_size=args.input_size)
    arch = net.architecture
    assume, note = None, None
    if any(op.fn == "unknown" for op in arch.activations()):
        if args.activation is None:
            arch.check_known_activations()  # raises UnknownActivationError: exit 2
        net = Network(arch.with_activation(args.activation, slope=args.slope, w0=args.w0), net.params, net.meta)
        note = (f"activation {args.activation} taken from --activation alone: the file does not record one, so "
                "nothing in it can contradict the declaration (a wrong one is caught only for files that record "
                "their activation: the export format, traced modules, recognised formats)")
    elif args.activation is not None:
        declared = declare_activation(arch, args.activation, slope=args.slope, w0=args.w0)
        if declared != arch:
            assume = declared
            recorded = ", ".join(sorted({op.describe() for op in arch.activations()})) or "none"
            note = (f"declared activation {args.activation} differs from the recorded {recorded}: "
                    "checking the declared symmetries against the recorded network")
    report = admitted_symmetries(assume if assume is not None else net.architecture)
    results = check_function_preservation(net, trials=args.trials, seed=args.seed, assume=assume)
    ok = all(r.passed for r in results)
    # a pass on a network whose output ignores its input (e.g. every ReLU dead) tests little: say so
    constant = bool(results) and constant_output(net, seed=args.seed)
    warning = CONSTANT_OUTPUT_WARNING if constant else None
    if args.json:
        print(json.dumps({
            "file": net.meta.get("file"),
            "num_parameters": net.num_parameters,
            "note": note,
            "warning": warning,
            "symmetries": report.to_dict(),
            "checks": [{"symmetry": r.symmetry, "max_abs_error": _finite(r.max_abs_error),
                        "max_rel_error": _finite(r.max_rel_error), "passed": r.passed, "admitted": r.admitted}
                       for r in results],
            "trials": args.trials,
            "seed": args.seed,
            "passed": ok,
        }))
        return 0 if ok else 1
    print(f"network: {net.meta.get('file', args.path)} ({net.num_parameters:,} parameters)")
    if note:
        print(f"note: {note}")
    print(f"symmetries: {report.describe()}")
    if not results:
        print("nothing to check")
        return 0
    print(f"{'symmetry':<12} {'max abs error':>14} {'max rel error':>14}  result")
    for r in results:
        print(f"{r.symmetry:<12} {r.max_abs_error:>14.3e} {r.max_rel_error:>14.3e}  {'pass' if r.passed else 'FAIL'}")
    verdict = "all checks passed" if ok else "some checks FAILED"
    print(f"{verdict} ({args.trials} trials per symmetry, seed {args.seed})")
    if warning:
        print(f"warning: {warning}")
    return 0 if ok else 1

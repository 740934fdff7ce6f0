"""Zoo generation speed: INRs/second with mean PSNR (batched SIREN fitting) and CNNs/second."""

from __future__ import annotations

import argparse
import json
import tempfile
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", default="mnist5k", help="INR image source (default mnist5k)")
    parser.add_argument("--inrs", type=int, default=512, help="INRs to fit (default 512; 5000 for the full target)")
    parser.add_argument("--cnns", type=int, default=128, help="CNNs to train on digits (default 128; 0 skips)")
    parser.add_argument("--cnn-images", default="digits",
                        help="CNN image source: digits (8×8) or mnist5k (28×28, the MNIST CNN zoo)")
    parser.add_argument("--cnn-sweep", choices=["basic", "full"], default="basic", help="CNN hyperparameter sweep")
    parser.add_argument("--cnn-checkpoints", type=int, default=1,
                        help="snapshots per CNN run (networks = --cnns × this; the rate counts networks)")
    parser.add_argument("--cnn-max-epochs", type=int, default=16)
    parser.add_argument("--cnn-train-eval-limit", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="INRs fitted at once (default: by image size and width, 16 at 28×28 with width 32)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: one per CPU core)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    """Build a throw-away INR zoo and CNN zoo and print the measured rates (CNNs: networks, snapshots included)."""
    from core.bench.machine import machine_info
    from core.zoo import build_cnn_zoo, build_inr_zoo

    result: dict = {"benchmark": "zoo", "machine": machine_info()}
    with tempfile.TemporaryDirectory() as tmp:
        if args.inrs > 0:
            t0 = time.perf_counter()
            zoo = build_inr_zoo(f"{tmp}/inr", images=args.images, count=args.inrs, batch_size=args.batch_size,
                                chunk_size=max(1, -(-args.inrs // max(1, args.workers or 2))), workers=args.workers,
                                progress=not args.json)
            dt = time.perf_counter() - t0
            t = zoo.table
            result["inr"] = {"count": len(t), "seconds": dt, "inrs_per_s": len(t) / dt,
                             "mean_psnr": float(t["psnr"].mean()), "min_psnr": float(t["psnr"].min()),
                             "mean_steps": float(t["steps"].mean()),
                             "projected_5000_s": 5000 / (len(t) / dt)}
        if args.cnns > 0:
            t0 = time.perf_counter()
            zoo = build_cnn_zoo(f"{tmp}/cnn", images=args.cnn_images, count=args.cnns, workers=args.workers,
                                sweep=args.cnn_sweep, checkpoints=args.cnn_checkpoints,
                                max_epochs=args.cnn_max_epochs, train_eval_limit=args.cnn_train_eval_limit,
                                chunk_size=max(1, min(32, -(-args.cnns // max(1, args.workers or 2)))),
                                progress=not args.json)
            dt = time.perf_counter() - t0
            t = zoo.table
            result["cnn"] = {"images": args.cnn_images, "count": len(t), "runs": args.cnns, "seconds": dt,
                             "cnns_per_s": len(t) / dt, "mean_test_accuracy": float(t["test_accuracy"].mean()),
                             "test_accuracy_range": [float(t["test_accuracy"].min()), float(t["test_accuracy"].max())],
                             "projected_1000_s": 1000 / (len(t) / dt), "projected_10000_s": 10000 / (len(t) / dt)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"zoo generation ({result['machine']['summary']}):")
        if "inr" in result:
            r = result["inr"]
            print(f"  INRs: {r['count']} in {r['seconds']:.1f} s = {r['inrs_per_s']:.2f} INRs/s, "
                  f"mean PSNR {r['mean_psnr']:.2f} dB (min {r['min_psnr']:.2f}), mean steps {r['mean_steps']:.0f}; "
                  f"5,000 would take {r['projected_5000_s']:.0f} s")
        if "cnn" in result:
            r = result["cnn"]
            print(f"  CNNs: {r['count']} in {r['seconds']:.1f} s = {r['cnns_per_s']:.2f} CNNs/s, test accuracy "
                  f"{r['test_accuracy_range'][0]:.2f}–{r['test_accuracy_range'][1]:.2f}; "
                  f"1,000 would take {r['projected_1000_s']:.0f} s, 10,000 {r['projected_10000_s'] / 60:.1f} min")
    return 0

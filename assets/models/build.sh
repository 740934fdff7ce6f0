#!/usr/bin/env bash
# Rebuild every bundled pretrained run (run from the repository root). Each line is one documented command; the
# script takes a few hours on a 2-core CPU (the MNIST-5k runs, 35 epochs for the editors, take most of it).
# One thread per run (OMP_NUM_THREADS=1) is faster on a shared 2-core machine and is what the INR runs
# were trained with (the two CNN runs, from 2026-11, with torch's default threads; thread counts shift training
# results by about 1e-3). `evaluate` reproduces the stored metrics with any thread count.
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# MNIST-5k (28 × 28) editors and classifier on the rebuilt mnist5k-inr zoo (DWSNets recipe)
python -m core train inr-edit --edit dilate --model ng-t --probes 128 --zoo assets/zoos/mnist5k-inr --out assets/models/inr-edit-dilate-mnist5k-ng-t --hidden 32 --layers 3 --epochs 35 --patience 6 --batch-size 64 --lr 3e-3 --overwrite --quiet
python -m core train inr-edit --edit erode --model ng-t --probes 128 --zoo assets/zoos/mnist5k-inr --out assets/models/inr-edit-erode-mnist5k-ng-t --hidden 32 --layers 3 --epochs 35 --patience 6 --batch-size 64 --lr 3e-3 --overwrite --quiet
python -m core train inr-classify --model ng-t --probes 64 --zoo assets/zoos/mnist5k-inr --out assets/models/inr-classify-mnist5k-ng-t --hidden 32 --layers 2 --epochs 30 --patience 6 --batch-size 32 --lr 3e-3 --overwrite --quiet
python -m core train inr-classify --model scalegmn --probes 128 --zoo assets/zoos/mnist5k-inr --out assets/models/inr-classify-mnist5k-scalegmn --hidden 32 --layers 2 --epochs 30 --patience 6 --batch-size 32 --lr 3e-3 --overwrite --quiet
# the probe-free MNIST-5k classifier reading canonical forms (seed 0 of the five in docs/benchmarks/inr_learning.md; ~35 min)
python -m core train inr-classify --model ng-gnn --canonical --render-loss 10 --augment ng --zoo assets/zoos/mnist5k-inr --out assets/models/inr-classify-mnist5k-ng-gnn-canonical --hidden 32 --layers 2 --epochs 60 --patience 10 --batch-size 32 --lr 3e-3 --overwrite --quiet
# the MNIST-5k embedder (seed 2 of the three measured in docs/benchmarks/inr_learning.md; ~50 min of one thread)
python -m core train embed --objective function --model ng-gnn --probes 128 --zoo assets/zoos/mnist5k-inr --out assets/models/embed-mnist5k-ng-gnn --seed 2 --hidden 64 --layers 2 --epochs 50 --patience 6 --batch-size 32 --lr 3e-3 --overwrite --quiet
# 8 × 8 digits runs on the rebuilt digits-inr zoo
python -m core train inr-edit --edit dilate --model ng-gnn --zoo assets/zoos/digits-inr --out assets/models/inr-edit-dilate-ng-gnn --hidden 32 --layers 3 --epochs 35 --patience 6 --batch-size 64 --lr 3e-3 --overwrite --quiet
python -m core train inr-edit --edit erode --model ng-gnn --zoo assets/zoos/digits-inr --out assets/models/inr-edit-erode-ng-gnn --hidden 32 --layers 3 --epochs 35 --patience 6 --batch-size 64 --lr 3e-3 --overwrite --quiet
python -m core train inr-classify --model ng-gnn --probes 16 --zoo assets/zoos/digits-inr --out assets/models/inr-classify-ng-gnn --hidden 32 --layers 2 --epochs 40 --batch-size 32 --lr 3e-3 --patience 0 --overwrite --quiet
python -m core train inr-classify --model scalegmn-b --probes 16 --augment ng --zoo assets/zoos/digits-inr --out assets/models/inr-classify-scalegmn-b --hidden 32 --layers 2 --epochs 25 --batch-size 32 --lr 3e-3 --patience 0 --overwrite --quiet
python -m core train embed --objective function --model ng-gnn --probes 16 --zoo assets/zoos/digits-inr --out assets/models/embed-ng-gnn --hidden 32 --layers 2 --epochs 30 --patience 6 --batch-size 32 --lr 3e-3 --overwrite --quiet
# CNN zoos
OMP_NUM_THREADS=1 python -m core train generalization --model ng-gnn --zoo assets/zoos/cnn-mnist --out assets/models/generalization-ng-gnn --hidden 32 --layers 3 --probes 16 --epochs 20 --batch-size 32 --lr 3e-3 --overwrite --quiet
# two more seeds of it: `predict … --ensemble` reports their spread as the prediction's uncertainty
OMP_NUM_THREADS=1 python -m core train generalization --model ng-gnn --zoo assets/zoos/cnn-mnist --out assets/models/generalization-ng-gnn-seed1 --seed 1 --hidden 32 --layers 3 --probes 16 --epochs 20 --batch-size 32 --lr 3e-3 --overwrite --quiet
OMP_NUM_THREADS=1 python -m core train generalization --model ng-gnn --zoo assets/zoos/cnn-mnist --out assets/models/generalization-ng-gnn-seed2 --seed 2 --hidden 32 --layers 3 --probes 16 --epochs 20 --batch-size 32 --lr 3e-3 --overwrite --quiet
python -m core train embed --model ng-gnn --zoo assets/zoos/cnn-digits --out assets/models/embed-cnn-ng-gnn --hidden 32 --layers 2 --epochs 20 --batch-size 32 --lr 3e-3 --overwrite --quiet
# the Zoo explorer's bundled cache: each embedder's embeddings of the zoo it was trained on (instant first maps)
rm -rf assets/embeddings
python -m core embed assets/models/embed-mnist5k-ng-gnn assets/zoos/mnist5k-inr --cache assets/embeddings
python -m core embed assets/models/embed-ng-gnn assets/zoos/digits-inr --cache assets/embeddings
python -m core embed assets/models/embed-cnn-ng-gnn assets/zoos/cnn-digits --cache assets/embeddings

#!/usr/bin/env bash
# Rebuild every bundled pretrained run (run from the repository root). Each line is one documented command;
# epochs are kept small so the whole script finishes in about half an hour on an idle 2-core CPU.
set -euo pipefail
python -m core train inr-edit --edit dilate --model ng-gnn --zoo assets/zoos/digits-inr --out assets/models/inr-edit-dilate-ng-gnn --hidden 32 --layers 3 --epochs 10 --lr 3e-3 --overwrite --quiet
python -m core train inr-edit --edit erode --model ng-gnn --zoo assets/zoos/digits-inr --out assets/models/inr-edit-erode-ng-gnn --hidden 32 --layers 3 --epochs 6 --lr 3e-3 --overwrite --quiet
python -m core train generalization --model ng-gnn --zoo assets/zoos/cnn-digits --out assets/models/generalization-ng-gnn --hidden 32 --layers 3 --epochs 20 --batch-size 32 --lr 3e-3 --overwrite --quiet
python -m core train inr-classify --model ng-gnn --probes 16 --zoo assets/zoos/digits-inr --out assets/models/inr-classify-ng-gnn --hidden 32 --layers 2 --epochs 40 --batch-size 32 --lr 3e-3 --patience 0 --overwrite --quiet
python -m core train inr-classify --model scalegmn-b --probes 16 --zoo assets/zoos/digits-inr --out assets/models/inr-classify-scalegmn-b --hidden 32 --layers 2 --epochs 25 --batch-size 32 --lr 3e-3 --patience 0 --overwrite --quiet
python -m core train embed --model ng-gnn --probes 16 --zoo assets/zoos/digits-inr --out assets/models/embed-ng-gnn --hidden 32 --layers 2 --epochs 10 --batch-size 32 --lr 3e-3 --overwrite --quiet
python -m core train embed --model ng-gnn --zoo assets/zoos/cnn-digits --out assets/models/embed-cnn-ng-gnn --hidden 32 --layers 2 --epochs 20 --batch-size 32 --lr 3e-3 --overwrite --quiet

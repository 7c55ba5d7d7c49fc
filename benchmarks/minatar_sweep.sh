#!/usr/bin/env bash
# The one-key sweep of the MinAtar benchmark on one game: one PPG arm with one setting changed at a time, 3 seeds,
# 2M steps, one run at a time (one core). Each setting writes under benchmarks/results/sweeps/MinAtar-<Game>/<key>_<value>/
# and resumes from its run files; copy the main benchmark's ppo run files of seeds 0-2 there for the report's
# comparison (the loop does it). E_pi = 1 and arch = detach are the main benchmark's ppg-e1 and ppg-detach arms.
# Usage: bash benchmarks/minatar_sweep.sh GAME [ARM] [SEEDS]    e.g. bash benchmarks/minatar_sweep.sh Asterix-v1 ppg-e4
# (DRY_RUN=1 prints the commands instead; it still makes the folders)
set -uo pipefail
cd "$(dirname "$0")/.."
game=${1:?game, e.g. Asterix-v1}
arm=${2:-ppg-e4}
seeds=${3:-3}
# folder|--ppg overrides separated by ";" (YAML values); E_pi moves with E_V, as in the arms
settings=(
  "n_epochs_2|n_epochs=2;n_value_epochs=2" "n_epochs_8|n_epochs=8;n_value_epochs=8"
  "n_policy_iterations_4|n_policy_iterations=4" "n_policy_iterations_32|n_policy_iterations=32"
  "n_aux_epochs_2|n_aux_epochs=2" "n_aux_epochs_9|n_aux_epochs=9"
  "beta_clone_0.3|beta_clone=0.3" "beta_clone_3.0|beta_clone=3.0"
  "aux_batch_size_256|aux_batch_size=256" "aux_batch_size_4096|aux_batch_size=4096"
  "arch_shared|policy_kwargs={arch: shared}"
)
# Each setting is read against ppo and the arm itself on the same seeds of the main benchmark: they must exist
for seed in $(seq 0 $((seeds - 1))); do
  for baseline in ppo "$arm"; do
    file="benchmarks/results/run_files/MinAtar/$game/${baseline}_seed$seed.csv"
    [ -f "$file" ] || { echo "run the main benchmark's $baseline seed $seed on $game first: $file is missing" >&2; exit 2; }
  done
done
for setting in "${settings[@]}"; do
  name=${setting%%|*}
  out="benchmarks/results/sweeps/MinAtar-${game%-v1}/$name"
  mkdir -p "$out/run_files/MinAtar/$game"
  for seed in $(seq 0 $((seeds - 1))); do
    cp -n "benchmarks/results/run_files/MinAtar/$game/ppo_seed$seed.csv" "$out/run_files/MinAtar/$game/"
  done
  overrides=()
  IFS=';' read -ra pairs <<< "${setting#*|}"
  for pair in "${pairs[@]}"; do overrides+=(--ppg "$pair"); done
  ${DRY_RUN:+echo} env OMP_NUM_THREADS=1 nice -n 10 python benchmarks/compare.py --env "MinAtar/$game" --seeds "$seeds" --arms "$arm" \
    "${overrides[@]}" --timesteps 2000000 --jobs 1 --eval-freq 100000 --eval-episodes 10 --out "$out"
done

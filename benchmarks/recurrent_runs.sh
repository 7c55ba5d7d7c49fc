#!/usr/bin/env bash
# The recurrent benchmark's runs on one core, one (env, arm, seed) at a time: CartPoleNoVel-v1, then
# PendulumNoVel-v1, then LunarLanderNoVel-v3 (at LUNAR_STEPS, rl_zoo3's 5M by default). In each env, every seed of
# RecurrentPPG and RecurrentPPO comes first, then the third arm (RecurrentPPO with PPG's epochs, the slowest), so an
# interrupted queue has the main comparison. The loop resumes from the run files.
# Usage: bash benchmarks/recurrent_runs.sh [SEEDS] [LUNAR_STEPS]
set -uo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-5}
lunar_steps=${2:-5000000}
# env:timesteps:eval-freq (rl_zoo3's budgets; Pendulum's episodes are 200 steps, so it evaluates half as often)
for spec in CartPoleNoVel-v1:100000:5120 PendulumNoVel-v1:100000:10240 "LunarLanderNoVel-v3:$lunar_steps:50000"; do
  IFS=: read -r env timesteps eval_freq <<< "$spec"
  for arms in "ppg-lstm ppo-lstm" "ppo-lstm-ppg-epochs"; do
    for seed_count in $(seq 1 "$seeds"); do
      for arm in $arms; do
        OMP_NUM_THREADS=1 nice -n 10 python benchmarks/compare.py --env "$env" --seeds "$seed_count" --arms "$arm" \
          --timesteps "$timesteps" --jobs 1 --eval-freq "$eval_freq" --eval-episodes 10
      done
    done
  done
done

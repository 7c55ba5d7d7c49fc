#!/usr/bin/env bash
# The MinAtar benchmark's `ppo-long` runs on one core, seed-major over the four games: PPO trained for a CPU-time
# budget, the slowest PPG arm's mean training time on the game (`ppg-e8`'s: the `train s` column of
# results/MinAtar/<game>.md), rounded up: 1,300 s on Asterix, 1,650 s on Breakout (wall-clock), 1,550 s
# on Freeway, 2,100 s on SpaceInvaders (wall-clock). A run's wall-clock is never below its CPU time, so a CPU
# budget covers the wall-clock games too. The loop resumes from the run files, and reruns a run made with a
# shorter budget. Usage: bash benchmarks/minatar_long_runs.sh [SEEDS]
set -uo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-5}
for seed_count in $(seq 1 "$seeds"); do
  for spec in Asterix-v1:1300 Breakout-v1:1650 Freeway-v1:1550 SpaceInvaders-v1:2100; do
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/compare.py --env "MinAtar/${spec%%:*}" --seeds "$seed_count" \
      --arms ppo-long --train-seconds "${spec##*:}" --jobs 1 --eval-freq 100000 --eval-episodes 10
  done
done

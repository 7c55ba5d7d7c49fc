#!/usr/bin/env bash
# The MinAtar benchmark's runs, one (game, arm, seed) at a time, seed-major, for one worker: run it twice, with
# worker 0 and 1, one per core, or once as worker "all" (every pair, the arms that decide the packaged entry first)
# when the other core is busy; workers "e8" and "aux2" run the `ppg-e8` and `ppg-aux2` arms of the rule's step 3,
# and worker "controls" the PPO controls: `ppo-e8` (PPO with `ppg-e8`'s epochs) and `ppo-dual` (PPO with `dual`'s
# separate trunks); worker "heldout" runs the entry `ppg` and its control `ppo-e8` on Seaquest, the game nothing is
# chosen on. Each (game, arm) belongs to one worker, so two never run the same run; the loop resumes from the run
# files.
# Usage: bash benchmarks/minatar_runs.sh WORKER [SEEDS] [EXTRA compare.py args]
set -uo pipefail
cd "$(dirname "$0")/.."
worker=${1:?worker 0, 1, all, e8, aux2, controls or heldout}
seeds=${2:-5}
shift $(( $# < 2 ? $# : 2 ))
case $worker in
  0) pairs="Asterix-v1:ppo Asterix-v1:ppg-e1 Asterix-v1:ppg-e4 Asterix-v1:ppg-detach Breakout-v1:ppg-e1" ;;
  1) pairs="Freeway-v1:ppo Freeway-v1:ppg-e1 Freeway-v1:ppg-e4 Freeway-v1:ppg-detach SpaceInvaders-v1:ppg-e1" ;;
  all) pairs="Asterix-v1:ppg-detach Freeway-v1:ppg-detach Freeway-v1:ppg-e1 Asterix-v1:ppo Freeway-v1:ppo
       Asterix-v1:ppg-e4 Freeway-v1:ppg-e4 Asterix-v1:ppg-e1 Breakout-v1:ppg-e1 SpaceInvaders-v1:ppg-e1" ;;
  # Step 3 of the entry rule: the arm the sweep found, on the four games (Asterix's seeds 0 to 2 are the sweep's)
  e8) pairs="Asterix-v1:ppg-e8 Breakout-v1:ppg-e8 Freeway-v1:ppg-e8 SpaceInvaders-v1:ppg-e8" ;;
  aux2) pairs="Breakout-v1:ppg-aux2 Freeway-v1:ppg-aux2 SpaceInvaders-v1:ppg-aux2 Asterix-v1:ppg-aux2" ;;
  controls) pairs="Asterix-v1:ppo-e8 Asterix-v1:ppo-dual Breakout-v1:ppo-e8 Breakout-v1:ppo-dual Freeway-v1:ppo-e8
       Freeway-v1:ppo-dual SpaceInvaders-v1:ppo-e8 SpaceInvaders-v1:ppo-dual" ;;
  # The held-out check of the entry (the `ppg` arm, `ppg-e8`'s settings; `ppg-e4`, the entry before it, has its runs
  # there too) and of its control
  heldout) pairs="Seaquest-v1:ppg Seaquest-v1:ppo-e8" ;;
  *) echo "worker must be 0, 1, all, e8, aux2, controls or heldout, got $worker" >&2; exit 2 ;;
esac
for seed_count in $(seq 1 "$seeds"); do
  for pair in $pairs; do
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/compare.py --env "MinAtar/${pair%%:*}" --seeds "$seed_count" \
      --arms "${pair##*:}" --timesteps 2000000 --jobs 1 --eval-freq 100000 --eval-episodes 10 "$@"
  done
done

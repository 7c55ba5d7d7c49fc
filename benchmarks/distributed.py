"""
Data-parallel scaling on LunarLander-v3 with the packaged ppg.yml entry: 1 rank x 16 envs against 2 ranks x 8 envs,
the same global batch (envs, minibatch and aux minibatch sizes split over the ranks), each run through
``torchrun -m sb3_ppg.zoo train``.

    python benchmarks/distributed.py scaling --timesteps 1000000 --seeds 0 1 2 --out benchmarks/results/distributed
    python benchmarks/distributed.py allreduce --repeats 200

``scaling`` writes one row per run to ``OUT/scaling.csv`` (ranks, envs per rank, seed, wall seconds, global env
steps per second, the mean return of rank 0's last 100 episodes); each run's log folder (rank 0's monitor files:
the learning curve against global steps is ``l`` summed over rank 0's envs times the number of ranks) stays under
``OUT/runs``. ``allreduce`` times one flat
gloo all-reduce of the LunarLander policy's parameter count on 2 ranks, the cost added to every minibatch.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
ENV_ID = "LunarLander-v3"


def rank_split(ranks: int) -> dict[str, int]:
    """
    The packaged entry's settings split over ``ranks``: envs and both minibatch sizes per rank, so
    each optimizer step averages the gradients of the same global minibatch, and an epoch takes as many steps.
    """
    from sb3_ppg.train import load_config

    entry = load_config(ENV_ID)
    params = {
        "n_envs": int(entry["n_envs"]),
        "batch_size": int(entry["batch_size"]),
        "aux_batch_size": int(entry["aux_batch_size"]),
    }
    for name, value in params.items():
        if value % ranks:
            raise ValueError(f"{ENV_ID}'s {name} ({value}) does not split over {ranks} ranks")
    return {name: value // ranks for name, value in params.items()}


def last_return(log_folder: Path, episodes: int = 100) -> float:
    """The mean return of the last ``episodes`` episodes that rank 0's envs finished (its monitor files)."""
    from stable_baselines3.common.monitor import load_results

    (run,) = (log_folder / "ppg").iterdir()
    results = load_results(str(run)).sort_values("t")
    return round(float(results["r"].tail(episodes).mean()), 1)


def run_scaling(timesteps: int, seeds: list[int], ranks_list: list[int], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    rows = []
    for seed in seeds:
        for ranks in ranks_list:  # interleaved, so outside load falls on both alike
            log_folder = out / "runs" / f"ranks{ranks}-seed{seed}"
            # A rerun replaces the run: the zoo would add a second run folder beside the first
            shutil.rmtree(log_folder, ignore_errors=True)
            split = rank_split(ranks)
            command = [
                sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks),
                "-m", "sb3_ppg.zoo", "train", "--algo", "ppg", "--env", ENV_ID, "-n", str(timesteps),
                "--seed", str(seed), "--eval-freq", "-1", "-f", str(log_folder),
                "-params", *(f"{name}:{value}" for name, value in split.items()),
            ]  # fmt: skip
            start = time.perf_counter()
            subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - start
            rows.append(dict(ranks=ranks, envs_per_rank=split["n_envs"], seed=seed, wall_s=round(wall, 2),
                             steps_per_s=round(timesteps / wall, 1), last_100_return=last_return(log_folder)))  # fmt: skip
            print(rows[-1], flush=True)
    with open(out / "scaling.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _allreduce_rank(rank: int, port: int, numel: int, repeats: int, results: object) -> None:
    import torch as th
    import torch.distributed as dist

    th.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    flat = th.randn(numel)
    for _ in range(10):  # warm-up
        dist.all_reduce(flat)
    times = []
    for _ in range(repeats):
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(flat)
        times.append(time.perf_counter() - start)
    if rank == 0:
        results.put(times)  # type: ignore[attr-defined]
    dist.destroy_process_group()


def run_allreduce(repeats: int) -> None:
    import socket

    import torch.multiprocessing as mp
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_ppg import PPG

    model = PPG("MlpPolicy", make_vec_env(ENV_ID, n_envs=1), n_steps=64, n_policy_iterations=1, aux_batch_size=64)
    numel = sum(parameter.numel() for parameter in model.policy.parameters())
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    context = mp.get_context("spawn")
    results = context.Queue()
    processes = [context.Process(target=_allreduce_rank, args=(rank, port, numel, repeats, results)) for rank in range(2)]
    for process in processes:
        process.start()
    times = results.get(timeout=300)
    for process in processes:
        process.join(timeout=60)
    print(
        f"{ENV_ID} policy: {numel} parameters; gloo all-reduce on 2 ranks over {repeats} repeats: "
        f"median {statistics.median(times) * 1e3:.3f} ms, mean {statistics.mean(times) * 1e3:.3f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    scaling = commands.add_parser("scaling", help="1 x 16 envs against 2 x 8 envs")
    scaling.add_argument("--timesteps", type=int, default=1_000_000)
    scaling.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    scaling.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    scaling.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "distributed")
    allreduce = commands.add_parser("allreduce", help="time one gradient all-reduce")
    allreduce.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    if args.command == "scaling":
        run_scaling(args.timesteps, args.seeds, args.ranks, args.out)
    else:
        run_allreduce(args.repeats)


if __name__ == "__main__":
    main()

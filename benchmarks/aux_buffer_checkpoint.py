"""
Time and memory of saving and loading the aux buffer of the 64-env Procgen entry (ppg.yml: 64 envs x 256 steps,
N_pi = 32, 3x64x64 uint8 observations, 15 actions), scaled down by ``--n-policy-iterations``.

    python benchmarks/aux_buffer_checkpoint.py --n-policy-iterations 4 --folder /some/disk/folder

Each of the save and the load runs in a fresh process, with a filled buffer (every page committed), and reports
its seconds, the file's bytes against the buffer's raw bytes, and the peak RSS above the RSS before it.
"""

import argparse
import os
import resource
import subprocess
import sys
import time

import numpy as np
from gymnasium import spaces

from sb3_ppg.common.buffers import AuxRolloutBuffer
from sb3_ppg.common.checkpoints import aux_buffer_layout, load_aux_buffer, save_aux_buffer

N_ENVS, N_STEPS = 64, 256


def make_buffer(n_policy_iterations: int) -> AuxRolloutBuffer:
    observation_space = spaces.Box(0, 255, (3, 64, 64), np.uint8)
    return AuxRolloutBuffer(n_policy_iterations * N_STEPS, observation_space, spaces.Discrete(15), "cpu", N_ENVS)


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run(action: str, n_policy_iterations: int, path: str) -> None:
    buffer = make_buffer(n_policy_iterations)
    layout = aux_buffer_layout(buffer, N_STEPS, n_policy_iterations)
    rng = np.random.default_rng(0)
    # Commit every page first, as a full buffer of a running model has them; row by row, so no temporary
    # of the buffer's size raises the peak before the measurement
    for row in buffer.observations:
        row[...] = rng.integers(0, 256, row.shape, dtype=np.uint8)
    buffer.returns[...] = 1.0
    buffer.pos, buffer.full = buffer.buffer_size, True
    raw_bytes = buffer.observations.nbytes + buffer.returns.nbytes
    before = peak_rss_bytes()
    start = time.perf_counter()
    if action == "save":
        save_aux_buffer(buffer, layout, path)
    else:
        load_aux_buffer(buffer, layout, path)
    seconds = time.perf_counter() - start
    extra = peak_rss_bytes() - before
    print(
        f"{action}: {seconds:.2f} s, raw {raw_bytes / 2**20:.0f} MiB, file {os.path.getsize(path) / 2**20:.0f} MiB "
        f"({os.path.getsize(path) - raw_bytes} B of headers), peak extra RSS {extra / 2**20:.1f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-policy-iterations", type=int, default=4, help="N_pi (the entry's is 32)")
    parser.add_argument("--folder", default=".", help="where to write the buffer file (removed afterwards)")
    parser.add_argument("--action", choices=["save", "load"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    path = os.path.join(args.folder, "aux_buffer_benchmark.npz")
    if args.action is not None:
        run(args.action, args.n_policy_iterations, path)
        return
    try:
        for action in ("save", "load"):
            command = [sys.executable, __file__, "--action", action, "--n-policy-iterations", str(args.n_policy_iterations)]
            subprocess.run([*command, "--folder", args.folder], check=True)
    finally:
        if os.path.exists(path):
            os.remove(path)


if __name__ == "__main__":
    main()

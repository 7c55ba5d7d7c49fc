import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch as th

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # The suite runs on 2 cores: keep each test on one thread so timings stay predictable
    th.set_num_threads(1)


# Small settings under which the aux phase runs every other rollout
SMALL = dict(n_steps=64, batch_size=32, n_epochs=2, n_value_epochs=2, n_policy_iterations=2, n_aux_epochs=2, aux_batch_size=32)


def aux_phase_recorder(model: Any) -> list[tuple[int, int, np.ndarray]]:
    """Record num_timesteps, the number of states and a copy of the states at each aux phase of ``model``."""
    phases = []
    train_aux_phase = model._train_aux_phase

    def record() -> None:
        buffer = model.aux_buffer
        phases.append((model.num_timesteps, buffer.n_samples, np.array(buffer.observations[: buffer.pos])))
        train_aux_phase()

    model._train_aux_phase = record
    return phases


def zoo_command(*args: str, prelude: str | None = None) -> list[str]:
    """
    The command line of ``python -m sb3_ppg.zoo *args`` with this interpreter; with ``prelude``, the same run with
    that Python code run first in the process (to patch what the zoo calls).
    """
    if prelude is None:
        return [sys.executable, "-m", "sb3_ppg.zoo", *args]
    return [sys.executable, "-c", f"{prelude}\nimport sys\nfrom sb3_ppg.zoo import main\nmain(sys.argv[1:])", *args]


def zoo_env() -> dict[str, str]:
    """The environment of a zoo subprocess: this repo first on the path and torch on one thread."""
    python_path = [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(python_path), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def forced_zoo_seed(seed: int) -> str:
    """
    A ``prelude`` for :func:`run_zoo` under which RL Zoo's own draw of a seed, when ``--seed`` is left out
    (``np.random.randint(2**32 - 1, dtype="int64")``), returns ``seed``; the zoo prints it as ``Seed: <seed>``.
    """
    return (
        "import numpy as np\n"
        "_randint = np.random.randint\n"
        f"np.random.randint = lambda high, *args, **kwargs: np.int64({seed}) if high == 2**32 - 1 and not args "
        "else _randint(high, *args, **kwargs)"
    )


def run_zoo(*args: str, cwd: Path, expect_success: bool = True, prelude: str | None = None) -> subprocess.CompletedProcess:
    """
    Run ``python -m sb3_ppg.zoo *args`` (after ``prelude``, see :func:`zoo_command`) and wait for it; it must succeed
    unless ``expect_success`` is False.
    """
    result = subprocess.run(
        zoo_command(*args, prelude=prelude), cwd=cwd, env=zoo_env(), capture_output=True, text=True, timeout=600
    )
    if expect_success:
        output = f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
        assert result.returncode == 0, f"exit code {result.returncode}\n{output}"
    return result


def _envpool_problem() -> str | None:
    """Why EnvPool's Procgen cannot run here, or None when it can."""
    try:
        import envpool
    except ImportError as error:
        return f'envpool is not installed (pip install "sb3-ppg[procgen]"): {error}'
    try:
        envpool.make_gymnasium("StarpilotHard-v0", num_envs=1).close()
    except ImportError as error:
        return f"EnvPool's Procgen cannot load (apt-get install -y libqt5gui5): {error}"
    return None


ENVPOOL_PROBLEM = _envpool_problem()


@pytest.fixture
def require_envpool() -> None:
    if ENVPOOL_PROBLEM is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI installs envpool and Qt5, yet: {ENVPOOL_PROBLEM}")
        pytest.skip(ENVPOOL_PROBLEM)

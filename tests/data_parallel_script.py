"""
The rank side of tests/test_data_parallel.py: ``torchrun --nproc_per_node 2 tests/data_parallel_script.py SCENARIO OUT``
runs one scenario on every rank; each rank writes what the test checks under OUT/results.
"""

import os
import shutil
import signal
import sys
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from sb3_contrib.common.envs import InvalidActionEnvDiscrete
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import VecEnvWrapper, VecNormalize

from sb3_ppg import PPG, MaskablePPG, RecurrentPPG
from sb3_ppg.common import distributed
from sb3_ppg.common.callbacks import PPGCheckpointCallback
from tests.conftest import aux_phase_recorder

SMALL: dict[str, Any] = dict(
    n_steps=32, batch_size=32, n_epochs=2, n_value_epochs=2, n_policy_iterations=2, n_aux_epochs=1, aux_batch_size=64
)
N_ENVS = 2
# Env steps of one rollout of the 2 ranks
ROLLOUT_STEPS = 2 * N_ENVS * SMALL["n_steps"]
# 4 rollouts: 2 aux phases
TOTAL_TIMESTEPS = 4 * ROLLOUT_STEPS
# Resuming: aux cycles of 3 rollouts, a checkpoint 2 rollouts into the second cycle
RESUME: dict[str, Any] = dict(SMALL, n_policy_iterations=3)
CHECKPOINT_ROLLOUTS = 5
CHECKPOINT_STEPS = CHECKPOINT_ROLLOUTS * ROLLOUT_STEPS
# What must be equal on every rank after training
TRAINING_STATE = ("parameters", "optimizer", "aux_optimizer")


class Recorder(VecEnvWrapper):
    """Keeps the raw observations, rewards and dones that VecNormalize above it sees."""

    def __init__(self, venv: Any):
        super().__init__(venv)
        self.observations: list[np.ndarray] = []
        self.rewards: list[np.ndarray] = []
        self.dones: list[np.ndarray] = []

    def reset(self) -> np.ndarray:
        obs = self.venv.reset()
        self.observations.append(np.copy(obs))
        return obs

    def step_wait(self) -> Any:
        obs, rewards, dones, infos = self.venv.step_wait()
        self.observations.append(np.copy(obs))
        self.rewards.append(np.copy(rewards))
        self.dones.append(np.copy(dones))
        return obs, rewards, dones, infos


def save(out: Path, **values: Any) -> None:
    results = out / "results"
    results.mkdir(exist_ok=True)
    th.save(values, results / f"rank{distributed.rank()}.pt")


def training_state(model: PPG) -> dict[str, Any]:
    """:return: the weights and both optimizers' states of ``model`` (:data:`TRAINING_STATE`)"""
    return dict(
        parameters=[p.detach().clone() for p in model.policy.parameters()],
        optimizer=model.policy.optimizer.state_dict(),
        aux_optimizer=model.policy.aux_optimizer.state_dict(),
    )


def learn(out: Path) -> None:
    recorder = Recorder(make_vec_env("CartPole-v1", n_envs=N_ENVS))
    env = VecNormalize(recorder)
    files = out / "files"
    model = PPG("MlpPolicy", env, seed=0, verbose=1, tensorboard_log=str(files / "tb"), **SMALL)
    eval_callback = EvalCallback(
        VecNormalize(Recorder(make_vec_env("CartPole-v1", n_envs=1)), training=False, norm_reward=False),
        eval_freq=64,
        n_eval_episodes=1,
        log_path=str(files / "eval"),
    )
    checkpoint = CheckpointCallback(save_freq=64, save_path=str(files / "checkpoints"))
    model.learn(TOTAL_TIMESTEPS, callback=[eval_callback, checkpoint])
    model.save(files / "model")
    probe = env.normalize_obs(np.stack([env.observation_space.sample() for _ in range(16)]))
    save(
        out,
        **training_state(model),
        num_timesteps=model.num_timesteps,
        n_aux_phases=model._n_aux_phases,
        raw_observations=np.concatenate(recorder.observations),
        rewards=np.stack(recorder.rewards),
        dones=np.stack(recorder.dones),
        obs_rms=(env.obs_rms.mean, env.obs_rms.var, env.obs_rms.count),
        ret_rms=(env.ret_rms.mean, env.ret_rms.var, env.ret_rms.count),
        gamma=env.gamma,
        probe=probe,
        actions=model.predict(probe, deterministic=True)[0],
    )
    # What the exit handler leaves running: gloo's threads must be joined there, while the interpreter is alive
    rank = distributed.rank()
    distributed._destroy_process_group()
    (out / "results" / f"threads{rank}.txt").write_text("\n".join(thread_names()))


def thread_names() -> list[str]:
    """:return: the names of this process's threads (Linux)"""
    tasks = Path("/proc/self/task")
    return sorted((task / "comm").read_text().strip() for task in tasks.iterdir())


def learn_masked(out: Path) -> None:
    """MaskablePPG: a learn() with 2 aux phases."""
    env = make_vec_env(lambda: InvalidActionEnvDiscrete(dim=20, n_invalid_actions=10), n_envs=N_ENVS)
    model = MaskablePPG("MlpPolicy", env, seed=0, **SMALL)
    model.learn(TOTAL_TIMESTEPS)
    buffer = model.rollout_buffer
    save(
        out,
        **training_state(model),
        n_aux_phases=model._n_aux_phases,
        observations=buffer.observations,
        masks=buffer.action_masks,
    )


def checkpoint(out: Path) -> None:
    """Train 2 rollouts into the second aux cycle; a PPGCheckpointCallback saves the model and the aux buffers then."""
    model = PPG("MlpPolicy", make_vec_env("CartPole-v1", n_envs=N_ENVS), seed=0, **RESUME)
    # Rank 1 is given another folder, as the zoo does: it must save beside rank 0's checkpoint all the same
    save_path = out / ("checkpoints" if distributed.rank() == 0 else "elsewhere")
    callback = PPGCheckpointCallback(CHECKPOINT_ROLLOUTS * RESUME["n_steps"], str(save_path), save_replay_buffer=True)
    model.learn(CHECKPOINT_STEPS, callback=callback)
    buffer = model.aux_buffer
    save(out, num_timesteps=model.num_timesteps, n_aux_phases=model._n_aux_phases, states=buffer.observations[: buffer.pos])


def resume(out: Path) -> None:
    """
    Load the checkpoint of :func:`checkpoint`: first a buffer whose file exists for rank 0 only, which must fail on
    both ranks; then each rank's own buffer, and train to the next aux phase.
    """
    folder = out / "checkpoints"
    model = PPG.load(folder / f"rl_model_{CHECKPOINT_STEPS}_steps.zip", env=make_vec_env("CartPole-v1", n_envs=N_ENVS))
    if distributed.rank() == 0:
        shutil.copy(folder / f"rl_model_aux_buffer_{CHECKPOINT_STEPS}_steps_rank0.npz", folder / "partial_rank0.npz")
    try:
        model.load_aux_buffer(folder / "partial.npz")
    except RuntimeError as error:
        _record_error(out, error)
    pos_after_failure = model.aux_buffer.pos
    model.load_aux_buffer(folder / f"rl_model_aux_buffer_{CHECKPOINT_STEPS}_steps.npz")
    loaded = np.array(model.aux_buffer.observations[: model.aux_buffer.pos])
    phases = aux_phase_recorder(model)
    cycle = RESUME["n_policy_iterations"]
    model.learn((2 * cycle - CHECKPOINT_ROLLOUTS) * ROLLOUT_STEPS, reset_num_timesteps=False)
    save(out, pos_after_failure=pos_after_failure, loaded=loaded, phases=phases, n_aux_phases=model._n_aux_phases)


def _train_in_process(out: Path, interrupt: bool) -> dict[str, Any]:
    """
    Train 4 rollouts (one into the second aux cycle), then 3 more; with ``interrupt``, save the model and the aux
    buffers between them and go on with the model loaded from them (``force_reset=False``), on the same envs.
    """
    env = make_vec_env("CartPole-v1", n_envs=N_ENVS, seed=10 * (distributed.rank() + 1))
    model = PPG("MlpPolicy", env, seed=0, **RESUME)
    model.learn(4 * ROLLOUT_STEPS)
    position: dict[str, Any] = {}
    if interrupt:
        position = dict(obs=np.copy(model._last_obs), starts=np.copy(model._last_episode_starts))
        position["episodes"] = list(model.ep_info_buffer or [])
        model.save(out / "model.zip")
        model.save_aux_buffer(out / "aux_buffer.npz")  # a collective: rank 0's model file is whole after it
        model = PPG.load(out / "model.zip", env=env, force_reset=False)
        model.load_aux_buffer(out / "aux_buffer.npz")
        position["restored"] = [
            np.array_equal(position["obs"], model._last_obs),
            np.array_equal(position["starts"], model._last_episode_starts),
            position["episodes"] == list(model.ep_info_buffer or []),
        ]
    set_random_seed(1)
    model.learn(3 * ROLLOUT_STEPS, reset_num_timesteps=False)
    return dict(training_state(model), restored=position.get("restored"), n_aux_phases=model._n_aux_phases)


def _resume_without_position(out: Path) -> list[str]:
    """
    Load the interrupted run's model with ``force_reset=False`` but not its aux buffer (so not this rank's rollout
    position), and train one rollout. :return: the warnings about the rollout position
    """
    env = make_vec_env("CartPole-v1", n_envs=N_ENVS, seed=10 * (distributed.rank() + 1))
    env.reset()
    model = PPG.load(out / "model.zip", env=env, force_reset=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.learn(ROLLOUT_STEPS, reset_num_timesteps=False)
    return [str(warning.message) for warning in caught if "rollout position" in str(warning.message)]


def resume_in_process(out: Path) -> None:
    """The run of :func:`_train_in_process`, uninterrupted and interrupted; then a resume without the aux buffer."""
    uninterrupted = _train_in_process(out, interrupt=False)
    resumed = _train_in_process(out, interrupt=True)
    save(out, uninterrupted=uninterrupted, resumed=resumed, unpositioned=_resume_without_position(out))


class StopOnRankZero(BaseCallback):
    """Asks to stop at the 40th step on rank 0 only."""

    def _on_step(self) -> bool:
        return not (distributed.rank() == 0 and self.n_calls >= 40)


def stop(out: Path) -> None:
    model = PPG("MlpPolicy", make_vec_env("CartPole-v1", n_envs=N_ENVS), seed=0, **SMALL)
    model.learn(10_000, callback=StopOnRankZero())
    save(out, num_timesteps=model.num_timesteps)


class TripKL(PPG):
    """Reports a huge KL on rank 1 only, as a rank whose data moved the policy far would."""

    def _policy_losses(self, *args: Any, **kwargs: Any) -> Any:
        values, pg_loss, entropy_loss, approx_kl, clip_fraction = super()._policy_losses(*args, **kwargs)
        if distributed.rank() == 1:
            approx_kl = approx_kl + 1e3
        return values, pg_loss, entropy_loss, approx_kl, clip_fraction

    def _optimizer_step(self, *args: Any) -> None:
        self.steps = getattr(self, "steps", 0) + 1
        super()._optimizer_step(*args)


def target_kl(out: Path) -> None:
    settings = dict(SMALL, n_aux_epochs=0, n_value_epochs=0, batch_size=16)
    model = TripKL("MlpPolicy", make_vec_env("CartPole-v1", n_envs=N_ENVS), seed=0, target_kl=0.01, **settings)
    model.learn(TOTAL_TIMESTEPS)
    save(out, steps=getattr(model, "steps", 0), parameters=[p.detach().clone() for p in model.policy.parameters()])


class NaNReward(gym.Wrapper):
    def step(self, action: Any) -> Any:
        obs, _reward, terminated, truncated, info = self.env.step(action)
        return obs, float("nan"), terminated, truncated, info


def _record_error(out: Path, error: BaseException) -> None:
    errors = out / "errors"
    errors.mkdir(exist_ok=True)
    (errors / f"rank{distributed.rank()}.txt").write_text(f"{type(error).__name__}: {error}")


def nan_reward(out: Path) -> None:
    wrapper = NaNReward if int(os.environ["RANK"]) == 1 else None
    model = PPG("MlpPolicy", make_vec_env("CartPole-v1", n_envs=N_ENVS, wrapper_class=wrapper), seed=0, **SMALL)
    try:
        model.learn(TOTAL_TIMESTEPS)
    except RuntimeError as error:
        _record_error(out, error)
        raise


class NaNLossOnRankOne(PPG):
    """Makes the policy-gradient loss NaN on rank 1 only, as a minibatch with a bad sample would."""

    def _policy_losses(self, *args: Any, **kwargs: Any) -> Any:
        values, pg_loss, entropy_loss, approx_kl, clip_fraction = super()._policy_losses(*args, **kwargs)
        if distributed.rank() == 1:
            pg_loss = pg_loss * float("nan")
        return values, pg_loss, entropy_loss, approx_kl, clip_fraction


def nan_loss(out: Path) -> None:
    model = NaNLossOnRankOne("MlpPolicy", make_vec_env("CartPole-v1", n_envs=N_ENVS), seed=0, **SMALL)
    try:
        model.learn(TOTAL_TIMESTEPS)
    except RuntimeError as error:
        _record_error(out, error)
    save(out, **training_state(model))


def paper_options(out: Path) -> None:
    """The reference's whole-segment minibatches and timeout bootstrapping, under two ranks."""
    env = make_vec_env("CartPole-v1", n_envs=N_ENVS, env_kwargs=dict(max_episode_steps=20))
    model = PPG("MlpPolicy", env, seed=0, env_segment_minibatches=True, handle_timeout_termination=True, **SMALL)
    model.learn(TOTAL_TIMESTEPS)
    save(out, n_aux_phases=model._n_aux_phases, **training_state(model))


def mismatched_n_envs(out: Path) -> None:
    n_envs = N_ENVS + int(os.environ["RANK"])
    try:
        PPG("MlpPolicy", make_vec_env("CartPole-v1", n_envs=n_envs), seed=0, **SMALL)
    except ValueError as error:
        _record_error(out, error)
        raise


def mismatched_normalize_aux_targets(out: Path) -> None:
    try:
        normalize = int(os.environ["RANK"]) == 0
        PPG("MlpPolicy", make_vec_env("CartPole-v1", n_envs=N_ENVS), seed=0, normalize_aux_targets=normalize, **SMALL)
    except ValueError as error:
        _record_error(out, error)
        raise


def recurrent(out: Path) -> None:
    try:
        RecurrentPPG("MlpLstmPolicy", make_vec_env("CartPole-v1", n_envs=N_ENVS), seed=0, **SMALL)
    except ValueError as error:
        _record_error(out, error)
        raise


class KillRankOne(BaseCallback):
    def _on_step(self) -> bool:
        if distributed.rank() == 1 and self.num_timesteps >= 100:
            os.kill(os.getpid(), signal.SIGKILL)
        return True


def sigkill(out: Path) -> None:
    model = PPG("MlpPolicy", make_vec_env("CartPole-v1", n_envs=N_ENVS), seed=0, **SMALL)
    model.learn(100_000, callback=KillRankOne())


def equivalence(out: Path) -> None:
    """Train on this rank's envs of the fixed rollouts in OUT/rollouts.pt, for each normalize_advantage mode."""
    data = th.load(out / "rollouts.pt", weights_only=False)
    # Join the group before reading the world size: before it, every process counts as the only one, and both ranks
    # would train on all envs (the duplicated data changes only an unbiased std, hence per-minibatch normalisation)
    distributed.setup("cpu")
    n_envs = data["n_envs"] // distributed.world_size()
    columns = slice(distributed.rank() * n_envs, (distributed.rank() + 1) * n_envs)
    parameters, logs = {}, {}
    for mode in data["modes"]:
        model = equivalence_model(n_envs, mode, data["initial"], *data["epochs"])
        train_on_rollouts(model, data["rollouts"], columns)
        parameters[str(mode)] = [p.detach().clone() for p in model.policy.parameters()]
        logs[str(mode)] = train_logs(model)
    save(out, parameters=parameters, logs=logs, columns=(columns.start, columns.stop))


def train_logs(model: PPG) -> dict[str, float]:
    """The ``train/`` values the last policy and aux phases recorded."""
    return {key: value for key, value in model.logger.name_to_value.items() if key.startswith("train/")}


def equivalence_model(
    n_envs: int,
    normalize_advantage: bool | str,
    initial: dict[str, th.Tensor] | None,
    n_epochs: int = 2,
    n_value_epochs: int = 2,
) -> PPG:
    """A model whose every minibatch is its whole (per-rank) buffer, with clipping and aux target normalisation."""
    model = PPG(
        "MlpPolicy",
        make_vec_env("CartPole-v1", n_envs=n_envs),
        n_steps=8,
        batch_size=8 * n_envs,
        n_epochs=n_epochs,
        n_value_epochs=n_value_epochs,
        n_policy_iterations=2,
        n_aux_epochs=2,
        aux_batch_size=16 * n_envs,
        normalize_advantage=normalize_advantage,
        normalize_aux_targets=True,
        max_grad_norm=0.5,
        clip_range_vf=0.2,
        seed=0,
    )
    if initial is not None:
        model.policy.load_state_dict(initial)
    model.set_logger(configure(None, []))
    return model


def train_on_rollouts(model: PPG, rollouts: list[dict[str, np.ndarray]], columns: slice) -> None:
    """Fill the rollout buffer with the given envs' columns of each rollout, values from the policy, and train."""
    buffer = model.rollout_buffer
    for rollout in rollouts:
        buffer.reset()
        for step in range(buffer.buffer_size):
            obs = rollout["observations"][step, columns]
            actions = rollout["actions"][step, columns]
            with th.no_grad():
                obs_tensor = th.as_tensor(obs)
                values, log_prob, _ = model.policy.evaluate_actions(obs_tensor, th.as_tensor(actions).long())
            starts = rollout["episode_starts"][step, columns]
            buffer.add(obs, actions[:, None], rollout["rewards"][step, columns], starts, values, log_prob)
        with th.no_grad():
            last_values = model.policy.predict_values(th.as_tensor(rollout["last_observations"][columns]))
        buffer.compute_returns_and_advantage(last_values, rollout["dones"][columns])
        model.train()


SCENARIOS = {
    "learn": learn,
    "learn_masked": learn_masked,
    "checkpoint": checkpoint,
    "resume": resume,
    "resume_in_process": resume_in_process,
    "stop": stop,
    "target_kl": target_kl,
    "nan_reward": nan_reward,
    "nan_loss": nan_loss,
    "paper_options": paper_options,
    "mismatched_n_envs": mismatched_n_envs,
    "mismatched_normalize_aux_targets": mismatched_normalize_aux_targets,
    "recurrent": recurrent,
    "sigkill": sigkill,
    "equivalence": equivalence,
}

if __name__ == "__main__":
    SCENARIOS[sys.argv[1]](Path(sys.argv[2]))

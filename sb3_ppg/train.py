"""
Train PPG from the command line: progress bar, periodic evaluation, a final evaluation and a saved model.

    python -m sb3_ppg --env LunarLander-v2 --timesteps 1000000 --seed 0

Hyperparameters come from the env's entry in the packaged ``hyperparams/ppg.yml`` (the RL Zoo's format), or from
PPG's defaults for an env without one.

EnvPool's Procgen and Atari ids (``StarpilotHard-v0``, ``Pong-v5``) are built as one
:class:`~sb3_ppg.common.envpool.EnvPoolVecEnv` (needs ``pip install "sb3-ppg[procgen]"``).
"""

import argparse
import inspect
import os
from collections.abc import Sequence
from importlib import resources
from typing import Any

import yaml
from stable_baselines3.common.utils import LinearSchedule
from torch import nn

from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.vec_env import VecEnv, VecNormalize, sync_envs_normalization

from sb3_ppg.common.envpool import envpool_family, make_envpool_env
from sb3_ppg.common.seeding import UINT32_LIMIT
from sb3_ppg.ppg import PPG


PPG_DEFAULT_GAMMA = inspect.signature(PPG).parameters["gamma"].default

# Keys of a zoo entry that describe the environment rather than PPG's constructor
ENV_KEYS = ("n_envs", "n_timesteps", "normalize", "policy", "env_kwargs")


def convert_zoo_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """
    Convert an RL Zoo hyperparameter entry as the zoo does: ``lin_<x>`` strings become linear schedules from x to 0,
    and the ``policy_kwargs``, ``normalize`` and ``env_kwargs`` strings are evaluated as Python
    (e.g. ``dict(activation_fn=nn.ReLU)``).

    :param entry: the entry as read from the yaml file
    :return: a converted copy
    """
    config = dict(entry)
    for key, value in config.items():
        if isinstance(value, str) and value.startswith("lin_"):
            config[key] = LinearSchedule(float(value[len("lin_") :]), 0.0, 1.0)
    for key in ("policy_kwargs", "normalize", "env_kwargs"):
        if isinstance(config.get(key), str):
            config[key] = eval(config[key], {"nn": nn, "dict": dict})
    return config


def load_config(env_id: str, config: str = "ppg") -> dict[str, Any]:
    """
    The env's entry of a packaged config, ``ppg.yml`` by default, converted by :func:`convert_zoo_entry`.

    :param env_id: gymnasium environment id
    :param config: the packaged file's name without ``.yml``, e.g. ``procgen_ppo_reference``
    :return: the entry, or an empty dict when the file has none for this env
    """
    text = resources.files("sb3_ppg").joinpath(f"hyperparams/{config}.yml").read_text()
    return convert_zoo_entry(yaml.safe_load(text).get(env_id) or {})


def make_env(env_id: str, n_envs: int, seed: int, env_kwargs: dict[str, Any] | None = None) -> VecEnv:
    """
    The vectorized env of an id: an :class:`~sb3_ppg.common.envpool.EnvPoolVecEnv` for EnvPool's Procgen and Atari
    ids, else SB3's ``make_vec_env`` (a ``DummyVecEnv`` of Monitor-wrapped envs).

    :param env_id: environment id
    :param n_envs: number of envs
    :param seed: seed of the envs
    :param env_kwargs: keyword arguments of the env (the options of the EnvPool env)
    :return: the vectorized env
    """
    if envpool_family(env_id) is not None:
        return make_envpool_env(env_id, n_envs=n_envs, seed=seed, **(env_kwargs or {}))
    return make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sb3_ppg", description=__doc__.split("\n\n")[1].strip())
    parser.add_argument("--env", default="LunarLander-v2", help="gymnasium environment id")
    parser.add_argument("--timesteps", type=int, default=1_000_000, help="environment steps to train for")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the model and the environments, in [0, 2**32 - 1]")
    parser.add_argument("--n-envs", type=int, default=None, help="parallel environments (default: the env's entry, or 1)")
    parser.add_argument("--eval-freq", type=int, default=25_000, help="evaluate every this many environment steps")
    parser.add_argument("--eval-episodes", type=int, default=20, help="deterministic episodes per evaluation")
    parser.add_argument("--save-path", default=None, help="where to save the model (default: ppg_<env>.zip)")
    parser.add_argument("--no-progress-bar", action="store_true", help="do not show the progress bar")
    parser.add_argument("--verbose", type=int, default=0, help="SB3 verbosity of the model (0, 1 or 2)")
    args = parser.parse_args(argv)
    for name in ("timesteps", "n_envs", "eval_freq", "eval_episodes"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    # The model's seed goes to np.random.seed, which takes no more; the envs take any seed
    if not 0 <= args.seed < UINT32_LIMIT:
        parser.error(f"--seed must be in [0, 2**32 - 1] = [0, {UINT32_LIMIT - 1}], got {args.seed}")
    return args


def main(argv: Sequence[str] | None = None) -> float:
    """
    Train, evaluate and save.

    :param argv: command line arguments, ``sys.argv[1:]`` when None
    :return: the mean return of the final evaluation
    """
    args = parse_args(argv)
    save_path = args.save_path or f"ppg_{args.env}"
    config = load_config(args.env)
    hyperparams = {key: value for key, value in config.items() if key not in ENV_KEYS}
    n_envs = args.n_envs or config.get("n_envs", 1)
    normalize = config.get("normalize", False)
    normalize_kwargs = normalize if isinstance(normalize, dict) else {}
    env_kwargs = config.get("env_kwargs")
    env = make_env(args.env, n_envs=n_envs, seed=args.seed, env_kwargs=env_kwargs)
    # Evaluation sees raw rewards, with its own seed; its observation statistics follow the training env's
    eval_env = make_env(args.env, n_envs=1, seed=args.seed + 10_000, env_kwargs=env_kwargs)
    if normalize:
        # Returns are normalised under the algorithm's own discount, as the RL Zoo does, unless the entry gives one
        env = VecNormalize(env, **{"gamma": hyperparams.get("gamma", PPG_DEFAULT_GAMMA), **normalize_kwargs})
        eval_env = VecNormalize(eval_env, training=False, norm_obs=normalize_kwargs.get("norm_obs", True), norm_reward=False)
    default_policy = "CnnPolicy" if is_image_space(env.observation_space) else "MlpPolicy"
    model = PPG(config.get("policy", default_policy), env, seed=args.seed, verbose=args.verbose, **hyperparams)
    print(f"Training PPG on {args.env} for {args.timesteps} steps with {n_envs} envs; hyperparameters: {hyperparams}")
    eval_callback = EvalCallback(
        eval_env,
        n_eval_episodes=args.eval_episodes,
        eval_freq=max(args.eval_freq // n_envs, 1),
        verbose=1,
    )
    model.learn(args.timesteps, callback=eval_callback, progress_bar=not args.no_progress_bar)
    sync_envs_normalization(env, eval_env)
    mean_return, std_return = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes, deterministic=True)
    print(f"Final evaluation on {args.env}: {mean_return:.1f} +/- {std_return:.1f} over {args.eval_episodes} episodes")
    model.save(save_path)
    print(f"Saved the model to {save_path}.zip")
    if isinstance(env, VecNormalize):
        env.save(f"{os.path.splitext(save_path)[0]}_vecnormalize.pkl")
        print(f"Saved the VecNormalize statistics to {os.path.splitext(save_path)[0]}_vecnormalize.pkl")
    return float(mean_return)  # type: ignore[arg-type]

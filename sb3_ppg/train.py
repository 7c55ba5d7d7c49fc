"""
Train PPG from the command line: progress bar, periodic evaluation, a final evaluation and a saved model.

    python -m sb3_ppg --env LunarLander-v2 --timesteps 1000000 --seed 0
"""

import argparse
import os
from collections.abc import Sequence

from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecNormalize

from sb3_ppg.ppg import PPG


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sb3_ppg", description=__doc__.split("\n\n")[1].strip())
    parser.add_argument("--env", default="LunarLander-v2", help="gymnasium environment id")
    parser.add_argument("--timesteps", type=int, default=1_000_000, help="environment steps to train for")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the model and the environments")
    parser.add_argument("--n-envs", type=int, default=16, help="parallel environments (in one process)")
    parser.add_argument("--eval-freq", type=int, default=25_000, help="evaluate every this many environment steps")
    parser.add_argument("--eval-episodes", type=int, default=20, help="deterministic episodes per evaluation")
    parser.add_argument("--save-path", default=None, help="where to save the model (default: ppg_<env>.zip)")
    parser.add_argument("--no-progress-bar", action="store_true", help="do not show the progress bar")
    parser.add_argument("--verbose", type=int, default=0, help="SB3 verbosity of the model (0, 1 or 2)")
    args = parser.parse_args(argv)
    for name in ("timesteps", "n_envs", "eval_freq", "eval_episodes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    return args


def main(argv: Sequence[str] | None = None) -> float:
    """
    Train, evaluate and save.

    :param argv: command line arguments, ``sys.argv[1:]`` when None
    :return: the mean return of the final evaluation
    """
    args = parse_args(argv)
    save_path = args.save_path or f"ppg_{args.env}"
    env = VecNormalize(make_vec_env(args.env, n_envs=args.n_envs, seed=args.seed), norm_obs=False, norm_reward=True)
    # Evaluation on raw rewards, with its own seed, and the training env's statistics
    eval_env = VecNormalize(
        make_vec_env(args.env, n_envs=1, seed=args.seed + 10_000), training=False, norm_obs=False, norm_reward=False
    )
    model = PPG("MlpPolicy", env, seed=args.seed, verbose=args.verbose)
    eval_callback = EvalCallback(
        eval_env,
        n_eval_episodes=args.eval_episodes,
        eval_freq=max(args.eval_freq // args.n_envs, 1),
        verbose=1,
    )
    model.learn(args.timesteps, callback=eval_callback, progress_bar=not args.no_progress_bar)
    mean_return, std_return = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes, deterministic=True)
    print(f"Final evaluation on {args.env}: {mean_return:.1f} +/- {std_return:.1f} over {args.eval_episodes} episodes")
    model.save(save_path)
    env.save(f"{os.path.splitext(save_path)[0]}_vecnormalize.pkl")
    print(f"Saved the model to {save_path}.zip and its VecNormalize statistics next to it")
    return float(mean_return)  # type: ignore[arg-type]

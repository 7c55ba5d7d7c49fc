"""A learning check small enough for the default suite; longer ones live in benchmarks/."""

from stable_baselines3.common.callbacks import EvalCallback, StopTrainingOnRewardThreshold
from stable_baselines3.common.env_util import make_vec_env

from sb3_ppg import PPG
from sb3_ppg.train import ENV_KEYS, load_config


def test_cartpole_reaches_475_within_100k_steps_with_the_shipped_config():
    config = load_config("CartPole-v1")
    hyperparams = {key: value for key, value in config.items() if key not in ENV_KEYS}
    env = make_vec_env("CartPole-v1", n_envs=config["n_envs"], seed=0)
    eval_env = make_vec_env("CartPole-v1", n_envs=1, seed=100)
    stop = StopTrainingOnRewardThreshold(reward_threshold=475)
    evaluation = EvalCallback(
        eval_env, callback_on_new_best=stop, n_eval_episodes=10, eval_freq=5_000 // config["n_envs"], deterministic=True
    )
    model = PPG(config["policy"], env, seed=0, **hyperparams)
    model.learn(100_000, callback=evaluation)
    assert evaluation.best_mean_reward >= 475, f"best 10-episode mean {evaluation.best_mean_reward} in 100k steps"
    assert model.num_timesteps <= 100_000
    assert model._n_aux_phases > 0

"""Learning checks small enough for the default suite; longer ones live in benchmarks/."""

import pytest
from stable_baselines3.common.callbacks import EvalCallback, StopTrainingOnRewardThreshold
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecNormalize

from benchmarks.cue_recall import CueRecallEnv
from sb3_ppg import PPG, RecurrentPPG
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


def test_cartpole_without_velocities_reaches_475_within_the_zoos_100k_steps_with_the_shipped_lstm_config():
    import rl_zoo3.import_envs  # noqa: F401  (registers the tasks without velocities)

    config = load_config("CartPoleNoVel-v1", "ppg_lstm")
    assert config["normalize"] is True and config["n_timesteps"] == 100_000
    hyperparams = {key: value for key, value in config.items() if key not in ENV_KEYS}
    # As the zoo normalizes: returns discounted with the entry's gamma
    env = VecNormalize(make_vec_env("CartPoleNoVel-v1", n_envs=config["n_envs"], seed=0), gamma=config["gamma"])
    # EvalCallback gives the eval env the training env's normalisation before each evaluation
    eval_env = VecNormalize(make_vec_env("CartPoleNoVel-v1", n_envs=1, seed=100), training=False, norm_reward=False)
    stop = StopTrainingOnRewardThreshold(reward_threshold=475)
    evaluation = EvalCallback(
        eval_env, callback_on_new_best=stop, n_eval_episodes=10, eval_freq=5_120 // config["n_envs"], deterministic=True
    )
    model = RecurrentPPG(config["policy"], env, seed=0, **hyperparams)
    model.learn(config["n_timesteps"], callback=evaluation)
    assert evaluation.best_mean_reward >= 475, f"best 10-episode mean {evaluation.best_mean_reward} in 100k steps"
    assert model._n_aux_phases > 0


@pytest.mark.parametrize("algo_class, policy", [(RecurrentPPG, "MlpLstmPolicy"), (PPG, "MlpPolicy")])
def test_cue_recall_needs_memory_recurrent_ppg_answers_and_feed_forward_ppg_guesses(algo_class, policy):
    # 8192 steps: 32 rollouts, 8 aux phases; about 6 s of one core for RecurrentPPG, 3 s for PPG
    settings = dict(n_steps=32, batch_size=64, n_epochs=4, n_value_epochs=4, n_policy_iterations=4, n_aux_epochs=2)
    settings.update(aux_batch_size=128, learning_rate=lambda progress: 3e-3 * progress, gamma=0.9, ent_coef=0.0)
    hidden = dict(lstm_hidden_size=16) if algo_class is RecurrentPPG else {}
    env = make_vec_env(CueRecallEnv, n_envs=8, seed=0)
    model = algo_class(policy, env, seed=0, policy_kwargs=dict(net_arch=[16], **hidden), **settings)
    model.learn(8192)
    assert model._n_aux_phases == 8
    eval_env = make_vec_env(CueRecallEnv, n_envs=1, seed=123)
    success, _ = evaluate_policy(model, eval_env, n_eval_episodes=200, deterministic=True)
    if algo_class is RecurrentPPG:
        assert success >= 0.95, f"RecurrentPPG answered {success:.0%} of 200 cues"
    else:
        # A deterministic feed-forward policy gives one answer to every query: right for one cue's share only
        assert success <= 0.65, f"feed-forward PPG answered {success:.0%} of 200 cues, above chance"

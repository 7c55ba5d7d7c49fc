import math
import shlex
import shutil
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import SubprocVecEnv, VecNormalize

import sb3_ppg.ppg.ppg as ppg_module
from sb3_ppg import PPG
from sb3_ppg.common import env_aliases
from tests.conftest import REPO_ROOT, SMALL


def test_the_readme_line_runs_on_lunar_lander_v2(monkeypatch):
    # The warning is once per process: forget earlier tests that made the env
    monkeypatch.setattr(env_aliases, "_warned", False)
    with pytest.warns(UserWarning, match="v3 dynamics"):
        model = PPG("MlpPolicy", "LunarLander-v2", verbose=1, **SMALL)
    model.learn(2 * 64)
    assert model._n_aux_phases == 1
    mean_return, _ = evaluate_policy(model, model.get_env(), n_eval_episodes=1)
    assert np.isfinite(mean_return)


def test_defaults_run():
    model = PPG("MlpPolicy", "CartPole-v1", seed=0)
    capacity = model.n_policy_iterations * model.n_steps * model.n_envs
    assert model.aux_buffer.buffer_size * model.n_envs == capacity
    model.learn(model.n_steps)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(n_epochs=1, n_value_epochs=3),
        dict(n_epochs=3, n_value_epochs=1),
        dict(n_value_epochs=0),
        dict(n_policy_iterations=1, aux_batch_size=16),
        dict(clip_range_vf=0.2),
        dict(target_kl=1e-6),
        dict(normalize_advantage=False),
        dict(normalize_aux_targets=False),
        dict(beta_clone=0.0),
        dict(learning_rate=LinearSchedule(1e-3, 1e-4, 1.0), clip_range=LinearSchedule(0.3, 0.1, 1.0)),
        dict(policy_kwargs=dict(share_features_extractor=True)),
        dict(policy_kwargs=dict(net_arch=dict(pi=[16], vf=[32, 32]))),
    ],
)
def test_run_variants(kwargs):
    model = PPG("MlpPolicy", "CartPole-v1", seed=0, **{**SMALL, **kwargs})
    model.learn(4 * 64)
    assert model.num_timesteps == 4 * 64
    assert model._n_aux_phases == 4 // model.n_policy_iterations
    for param in model.policy.parameters():
        assert th.isfinite(param).all()


@pytest.mark.parametrize("n_epochs, n_value_epochs", [(1, 3), (3, 1)])
def test_value_epochs_run_apart_from_policy_epochs(monkeypatch, n_epochs, n_value_epochs):
    # E_pi and E_V count apart: the longer loop must not train the other network past its own epochs
    kwargs = dict(SMALL, n_epochs=n_epochs, n_value_epochs=n_value_epochs, n_policy_iterations=4)
    model = PPG("MlpPolicy", "CartPole-v1", seed=0, **kwargs)
    model.learn(64)
    actor = [p.detach().clone() for p in model.policy.actor_parameters]
    critic = [p.detach().clone() for p in model.policy.critic_parameters]
    calls = {"evaluate_actions": 0, "evaluate_policy": 0, "predict_values": 0, "value_loss": 0}
    original_value_loss = ppg_module.value_loss

    def counted_value_loss(*args):
        calls["value_loss"] += 1
        return original_value_loss(*args)

    monkeypatch.setattr(ppg_module, "value_loss", counted_value_loss)
    original_train = model.train

    def counting_train():
        # count the forward passes of the training phases only, not those of rollout collection
        for name in ("evaluate_actions", "evaluate_policy", "predict_values"):
            original = getattr(model.policy, name)

            def counted(*args, _name=name, _original=original):
                calls[_name] += 1
                return _original(*args)

            setattr(model.policy, name, counted)
        original_train()

    model.train = counting_train
    model.learn(64, reset_num_timesteps=False)
    minibatches = 64 // 32
    # Each minibatch runs only the networks its epoch trains: no critic pass in policy-only epochs
    assert calls == {
        "evaluate_actions": min(n_epochs, n_value_epochs) * minibatches,
        "evaluate_policy": max(0, n_epochs - n_value_epochs) * minibatches,
        "predict_values": max(0, n_value_epochs - n_epochs) * minibatches,
        "value_loss": n_value_epochs * minibatches,
    }
    assert any(not th.equal(a, b) for a, b in zip(actor, model.policy.actor_parameters, strict=True))
    assert any(not th.equal(a, b) for a, b in zip(critic, model.policy.critic_parameters, strict=True))


def test_value_epochs_zero_leave_the_critic_to_the_aux_phase():
    model = PPG("MlpPolicy", "CartPole-v1", seed=0, **dict(SMALL, n_value_epochs=0, n_policy_iterations=4))
    critic = [p.detach().clone() for p in model.policy.critic_parameters]
    model.learn(64)
    assert all(th.equal(a, b) for a, b in zip(critic, model.policy.critic_parameters, strict=True))


def test_target_kl_stops_policy_epochs_not_value_epochs():
    model = PPG("MlpPolicy", "CartPole-v1", seed=0, **dict(SMALL, n_epochs=5, n_policy_iterations=4, target_kl=1e-9))
    model.learn(64)
    actor = [p.detach().clone() for p in model.policy.actor_parameters]
    critic = [p.detach().clone() for p in model.policy.critic_parameters]
    model.learn(64, reset_num_timesteps=False)
    # After the first minibatch the actor stops; the critic keeps training
    assert any(not th.equal(a, b) for a, b in zip(critic, model.policy.critic_parameters, strict=True))
    n_changed = sum(not th.equal(a, b) for a, b in zip(actor, model.policy.actor_parameters, strict=True))
    assert n_changed > 0  # the very first minibatch has KL 0 and still steps


def test_gsde():
    model = PPG("MlpPolicy", "Pendulum-v1", seed=0, use_sde=True, sde_sample_freq=4, **SMALL)
    model.learn(2 * 64)
    assert model._n_aux_phases == 1


SUBPROC_SCRIPT = """
import sb3_ppg
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import SubprocVecEnv

if __name__ == "__main__":
    env = make_vec_env("LunarLander-v2", n_envs=2, vec_env_cls=SubprocVecEnv, vec_env_kwargs=dict(start_method="{method}"))
    print("obs shape", env.reset().shape)
    env.close()
"""


@pytest.mark.parametrize("start_method", ["forkserver", "spawn"])
def test_subproc_workers_of_a_user_script_see_the_v2_alias(tmp_path, start_method):
    script = tmp_path / "train.py"
    script.write_text(SUBPROC_SCRIPT.format(method=start_method))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "obs shape (2, 8)" in result.stdout


def test_subproc_workers_see_the_v2_alias_without_a_main_script():
    # Under pytest the main module does not import sb3_ppg: forkserver preloads the alias module,
    # and spawn needs gymnasium's "module:id" form
    for start_method, env_id in (("forkserver", "LunarLander-v2"), ("spawn", "sb3_ppg:LunarLander-v2")):
        env = make_vec_env(env_id, n_envs=2, vec_env_cls=SubprocVecEnv, vec_env_kwargs=dict(start_method=start_method))
        try:
            model = PPG("MlpPolicy", env, seed=0, **SMALL)
            model.learn(2 * 64 * 2)
            assert model._n_aux_phases == 1
        finally:
            env.close()


def test_vec_normalize():
    env = VecNormalize(make_vec_env("Pendulum-v1", n_envs=2, seed=0), norm_obs=True, norm_reward=True)
    model = PPG("MlpPolicy", env, seed=0, **SMALL)
    model.learn(2 * 64 * 2)
    assert model._n_aux_phases == 1
    assert env.obs_rms.count > 1


def test_lunar_lander_v2_alias_is_v3():
    env = gym.make("LunarLander-v2")
    assert env.spec.max_episode_steps == gym.spec("LunarLander-v3").max_episode_steps
    assert type(env.unwrapped).__name__ == "LunarLander"
    continuous = gym.make("LunarLanderContinuous-v2")
    assert isinstance(continuous.action_space, gym.spaces.Box)


def recorded_advantages(monkeypatch, normalize_advantage) -> list[th.Tensor]:
    """The advantages each policy minibatch of one rollout's single epoch trains on."""
    seen: list[th.Tensor] = []
    original = ppg_module.clipped_surrogate_loss

    def recording(advantages, *args):
        seen.append(advantages.detach().clone())
        return original(advantages, *args)

    monkeypatch.setattr(ppg_module, "clipped_surrogate_loss", recording)
    kwargs = dict(SMALL, n_steps=256, batch_size=32, n_epochs=1, n_value_epochs=1)
    PPG("MlpPolicy", "CartPole-v1", seed=0, normalize_advantage=normalize_advantage, **kwargs).learn(256)
    return seen


def test_rollout_advantage_normalization_standardises_the_whole_rollout_once(monkeypatch):
    minibatches = recorded_advantages(monkeypatch, "rollout")
    rollout = th.cat(minibatches)
    assert rollout.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert rollout.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-4)
    # Not standardised again per minibatch
    assert max(abs(batch.mean().item()) for batch in minibatches) > 0.1


@pytest.mark.parametrize("normalize_advantage", [True, "minibatch"])
def test_minibatch_advantage_normalization_is_sb3s(monkeypatch, normalize_advantage):
    for batch in recorded_advantages(monkeypatch, normalize_advantage):
        assert batch.mean().item() == pytest.approx(0.0, abs=1e-5)
        assert batch.std().item() == pytest.approx(1.0, abs=1e-4)


def test_max_grad_norm_none_does_not_clip(monkeypatch):
    calls = []
    original = th.nn.utils.clip_grad_norm_

    def counting(*args, **kwargs):
        calls.append(args[1])
        return original(*args, **kwargs)

    monkeypatch.setattr(th.nn.utils, "clip_grad_norm_", counting)
    PPG("MlpPolicy", "CartPole-v1", seed=0, **SMALL).learn(2 * 64)
    # Actor and critic apart, in every policy and aux minibatch
    policy_steps, aux_steps = 2 * 2 * (64 // 32), 2 * (2 * 64 // 32)
    assert calls == [0.5] * 2 * (policy_steps + aux_steps)
    calls.clear()
    PPG("MlpPolicy", "CartPole-v1", seed=0, max_grad_norm=None, **SMALL).learn(2 * 64)
    assert calls == []


def test_training_leaves_the_users_distribution_validation_alone():
    # Training builds its distributions unvalidated (no host sync per check), but the global default stays
    assert th.distributions.Distribution._validate_args
    model = PPG("MlpPolicy", "CartPole-v1", seed=0, **SMALL)
    model.learn(2 * 64)
    assert th.distributions.Distribution._validate_args
    with pytest.raises(ValueError):
        th.distributions.Categorical(logits=th.tensor([float("nan"), 0.0]))
    distribution = model.policy.get_distribution(th.zeros(3, 4))
    assert distribution.distribution._validate_args is False


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_shared_ppg_without_aux_phase_trains_bitwise_as_sb3_ppo(env_id):
    """
    PPG with one trunk (``arch="shared"``), no aux phase and E_V = E_pi is SB3's PPO: same seed, same weights at
    start, same rollouts, and bitwise the same weights after several updates. Clipping is left out (PPO at an
    infinite norm, PPG without): PPG clips actor and critic apart, PPO all parameters together.
    """
    from stable_baselines3 import PPO

    kwargs = dict(n_steps=64, batch_size=32, n_epochs=3, seed=0)
    ppo = PPO("MlpPolicy", make_vec_env(env_id, n_envs=2, seed=0), max_grad_norm=math.inf, **kwargs)
    ppo_start = {name: tensor.clone() for name, tensor in ppo.policy.state_dict().items()}
    ppo.learn(5 * 128)
    ppg = PPG("MlpPolicy", make_vec_env(env_id, n_envs=2, seed=0), max_grad_norm=None, n_value_epochs=3, n_aux_epochs=0,
              policy_kwargs=dict(arch="shared"), **kwargs)  # fmt: skip
    ppg_start = ppg.policy.state_dict()
    assert all(th.equal(ppo_start[name], ppg_start[name]) for name in ppo_start)
    ppg.learn(5 * 128)
    ppo_end, ppg_end = ppo.policy.state_dict(), ppg.policy.state_dict()
    assert ppg._n_updates == ppo._n_updates == 15
    assert not th.equal(ppo_end["action_net.weight"], ppo_start["action_net.weight"])
    for name in ppo_end:
        assert th.equal(ppo_end[name], ppg_end[name]), name
    for name in ("observations", "actions", "log_probs", "advantages"):
        assert np.array_equal(getattr(ppo.rollout_buffer, name), getattr(ppg.rollout_buffer, name)), name


# MinAtar seeds numpy's RandomState, which takes seeds below 2**32 only
@pytest.mark.parametrize("env_id", ["CartPole-v1", "MinAtar/Breakout-v1"])
def test_make_train_runs_with_a_seed_past_int32(env_id, tmp_path, monkeypatch):
    """``make train SEED=...``: the README's command, with the largest seed numpy takes, on a tiny budget."""
    from sb3_ppg import train

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    seed = 2**32 - 1
    # -n prints the recipes without running them (the install steps included)
    dry_run = subprocess.run(
        ["make", "-n", "train", "PYTHON=python", f"ENV={env_id}", "TIMESTEPS=64", f"SEED={seed}"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    command = next(shlex.split(line) for line in dry_run.stdout.splitlines() if " -m sb3_ppg " in line)
    assert command == ["python", "-m", "sb3_ppg", "--env", env_id, "--timesteps", "64", "--seed", str(seed)]

    if env_id.startswith("MinAtar"):
        # The packaged entry, at a size for a test (64 envs x 128 steps otherwise)
        config = dict(train.load_config(env_id), n_envs=2, n_steps=32, batch_size=64, n_policy_iterations=1,
                      n_epochs=1, n_value_epochs=1, n_aux_epochs=1, aux_batch_size=64)  # fmt: skip
        monkeypatch.setattr(train, "load_config", lambda env_id: dict(config))
    seeds = []
    original = train.make_env
    monkeypatch.setattr(train, "make_env", lambda *args, **kwargs: seeds.append(kwargs["seed"]) or original(*args, **kwargs))
    save_path = str(tmp_path / "model")
    mean_return = train.main([*command[3:], "--eval-episodes", "2", "--save-path", save_path, "--no-progress-bar"])
    assert np.isfinite(mean_return)
    # The second training env's seed is 2**32, the evaluation env's past it too
    assert seeds == [seed, seed + 10_000]
    assert PPG.load(save_path, device="cpu").seed == seed


@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_training_command_refuses_seeds_numpy_does_not_take(seed, capsys):
    from sb3_ppg import train

    with pytest.raises(SystemExit):
        train.parse_args(["--seed", seed])
    assert f"--seed must be in [0, 2**32 - 1] = [0, {2**32 - 1}], got {seed}" in capsys.readouterr().err

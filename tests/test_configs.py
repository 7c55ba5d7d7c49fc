"""The packaged configs: Procgen's (the paper code's settings, the memory they need, the PPO baseline) and MinAtar's."""

from importlib import resources

import numpy as np
import pytest
import torch
import yaml
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import FakeImageEnv

from benchmarks.configs import MINATAR_ENTRY_ARM, MINATAR_ENVS, MINATAR_HELD_OUT
from sb3_ppg import PPG
from sb3_ppg.common.minibatches import check_env_segment_minibatches
from sb3_ppg.common.torch_layers import ImpalaCNN
from sb3_ppg.train import ENV_KEYS, convert_zoo_entry

GAMES = ("Bigfish", "Bossfight", "Caveflyer", "Chaser", "Climber", "Coinrun", "Dodgeball", "Fruitbot")
GAMES += ("Heist", "Jumper", "Leaper", "Maze", "Miner", "Ninja", "Plunder", "Starpilot")
CONFIGS = ("ppg", "procgen_replication", "procgen_ppo_reference")
# openai/phasic-policy-gradient's train.py defaults, in SB3's names
REFERENCE = dict(
    n_steps=256,
    learning_rate=5e-4,
    gamma=0.999,
    gae_lambda=0.95,
    clip_range=0.2,
    ent_coef=0.01,
    vf_coef=0.5,
    beta_clone=1.0,
    max_grad_norm=None,
    normalize_advantage="rollout",
    normalize_aux_targets=False,
    # The reference ends an episode at its time limit, and draws minibatches of whole env segments
    handle_timeout_termination=False,
    env_segment_minibatches=True,
)
FRAME_BYTES = 3 * 64 * 64


def procgen_entries(config: str) -> dict[str, dict]:
    text = resources.files("sb3_ppg").joinpath(f"hyperparams/{config}.yml").read_text()
    return {env_id: entry for env_id, entry in yaml.safe_load(text).items() if env_id.endswith("Hard-v0")}


@pytest.mark.parametrize("config", CONFIGS)
def test_every_procgen_game_has_the_reference_settings(config):
    entries = procgen_entries(config)
    assert set(entries) == {f"{game}Hard-v0" for game in GAMES}
    for entry in entries.values():
        assert {key: entry[key] for key in REFERENCE} == REFERENCE
        normalize = convert_zoo_entry(entry)["normalize"]
        # The reference's reward normalisation: its own discount 0.99 and a clip at 10, rewards only
        assert normalize == dict(norm_obs=False, norm_reward=True, gamma=0.99, clip_reward=10.0)
        # 8 minibatches per epoch, each of whole env columns (and whole aux blocks): the model accepts them
        assert entry["batch_size"] * 8 == entry["n_envs"] * entry["n_steps"]
        aux_batch_size = entry["aux_batch_size"] if entry["n_aux_epochs"] else None
        check_env_segment_minibatches(entry["n_envs"], entry["n_steps"], entry["batch_size"], aux_batch_size)


@pytest.mark.parametrize(
    "config, n_envs, epochs, n_policy_iterations, aux_epochs, aux_batch_size",
    [
        ("ppg", 64, 1, 32, 6, 1024),
        ("procgen_replication", 256, 1, 32, 6, 4096),
        ("procgen_ppo_reference", 64, 3, 1, 0, 1024),
    ],
)
def test_the_scale_of_each_config(config, n_envs, epochs, n_policy_iterations, aux_epochs, aux_batch_size):
    entry = procgen_entries(config)["StarpilotHard-v0"]
    assert (entry["n_envs"], entry["n_epochs"], entry["n_value_epochs"]) == (n_envs, epochs, epochs)
    assert (entry["n_policy_iterations"], entry["n_aux_epochs"], entry["aux_batch_size"]) == (
        n_policy_iterations,
        aux_epochs,
        aux_batch_size,
    )
    # Aux minibatches of 4 env segments of 256 steps per rank of 64 envs
    assert entry["aux_batch_size"] == 4 * 256 * n_envs // 64


@pytest.mark.parametrize("config, arch, aux_gigabytes", [("ppg", "dual", 6.4), ("procgen_ppo_reference", "shared", 0.0)])
def test_the_64_env_entries_build_the_papers_models(config, arch, aux_gigabytes):
    entry = convert_zoo_entry(procgen_entries(config)["StarpilotHard-v0"])
    hyperparams = {key: value for key, value in entry.items() if key not in ENV_KEYS}
    env_kwargs = dict(screen_height=64, screen_width=64, n_channels=3, discrete=True, channel_first=True)
    env = make_vec_env(FakeImageEnv, n_envs=entry["n_envs"], env_kwargs=env_kwargs)
    # The aux buffer is allocated but never written here, so it takes no physical memory
    model = PPG(entry["policy"], env, **hyperparams)
    policy = model.policy
    assert isinstance(policy.features_extractor, ImpalaCNN) and policy.arch == arch
    assert policy.features_extractor.features_dim == 256
    assert policy.mlp_extractor.latent_dim_pi == policy.mlp_extractor.latent_dim_vf == 256
    for optimizer in (policy.optimizer, policy.aux_optimizer):
        assert optimizer.defaults["eps"] == 1e-8 and optimizer.defaults["lr"] == 5e-4
    # ortho_init is off, so the reference's normed init stays: dense rows at 1.4, heads at 0.1
    dense_norms = policy.features_extractor.linear.weight.norm(dim=1)
    np.testing.assert_allclose(dense_norms.detach().numpy(), 1.4, rtol=1e-5)
    np.testing.assert_allclose(policy.action_net.weight.norm(dim=1).detach().numpy(), 0.1, rtol=1e-5)
    aux_states = entry["n_policy_iterations"] * entry["n_steps"] * entry["n_envs"] if entry["n_aux_epochs"] else 0
    assert model.aux_buffer.observations.nbytes == aux_states * FRAME_BYTES
    assert model.aux_buffer.observations.nbytes / 1e9 == pytest.approx(aux_gigabytes, abs=0.05)


def test_the_replication_aux_buffer_needs_26_gigabytes():
    entry = procgen_entries("procgen_replication")["StarpilotHard-v0"]
    states = entry["n_policy_iterations"] * entry["n_steps"] * entry["n_envs"]
    assert states == 32 * 65_536
    assert states * FRAME_BYTES / 1e9 == pytest.approx(25.8, abs=0.05)


@pytest.mark.parametrize("env_id", [*MINATAR_ENVS, MINATAR_HELD_OUT])
def test_minatar_entries_are_the_benchmarks_chosen_arm(env_id):
    """
    Every MinAtar game's ppg.yml entry is the arm the benchmark's rule chose, key for key, and starts from the same
    weights, so the arm's runs are the entry's and the two cannot drift.
    """
    from benchmarks.configs import arm_config
    from benchmarks.runner import build_model

    from sb3_ppg.common.torch_layers import MinAtarCNN
    from sb3_ppg.train import load_config

    entry, benchmarked = load_config(env_id), arm_config(MINATAR_ENTRY_ARM, env_id)
    assert (entry["n_envs"], entry["env_kwargs"], entry.get("normalize", False)) == (
        benchmarked["n_envs"],
        benchmarked["env_kwargs"],
        benchmarked["normalize"],
    )
    hyperparams = {key: value for key, value in entry.items() if key not in ENV_KEYS}
    expected = dict(benchmarked["hyperparams"])
    expected_policy_kwargs = expected.pop("policy_kwargs")
    assert {key: value for key, value in hyperparams.items() if key != "policy_kwargs"} == expected
    # The benchmark names MinAtarCNN and net_arch=[] itself; the entry gets them from its policy alias
    model = PPG(entry["policy"], make_vec_env(env_id, n_envs=2, env_kwargs=entry["env_kwargs"]), **hyperparams)
    assert isinstance(model.policy.features_extractor, MinAtarCNN) and model.policy.net_arch == []
    assert expected_policy_kwargs["features_extractor_class"] is MinAtarCNN and expected_policy_kwargs["net_arch"] == []
    assert model.policy.arch == expected_policy_kwargs["arch"] == hyperparams["policy_kwargs"]["arch"]
    assert model.get_env().envs[0].spec.max_episode_steps == 10_000
    configs = (arm_config("ppg", env_id), benchmarked)
    packaged, arm = (build_model(config, env_id, seed=3).policy.state_dict() for config in configs)
    assert packaged.keys() == arm.keys() and all(torch.equal(packaged[key], arm[key]) for key in arm)

"""
The arms of the benchmark and their settings: ``ppg`` (the env's entry of sb3_ppg's ``ppg.yml``), ``ppo`` (rl_zoo3's
own ``ppo.yml`` entry) and ``ppo-matched`` (PPO with PPG's env-side settings and PPO's own ``n_epochs``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

ARMS = ("ppg", "ppo", "ppo-matched")
# Keys of a zoo entry that describe the environment rather than the algorithm's constructor
ZOO_ENV_KEYS = ("n_envs", "n_timesteps", "normalize", "policy")
# Keys that ppo-matched copies from the ppg entry (n_epochs comes from the zoo PPO entry)
MATCHED_KEYS = ("n_steps", "learning_rate", "batch_size", "gamma", "gae_lambda", "ent_coef", "clip_range", "policy_kwargs")
THRESHOLDS = {"LunarLander-v3": 200.0, "LunarLanderContinuous-v3": 200.0, "CartPole-v1": 475.0, "Acrobot-v1": -100.0}


def zoo_ppo_entry(env_id: str) -> dict[str, Any]:
    """
    The env's raw entry of the installed rl_zoo3 package's ``hyperparams/ppo.yml`` (the package is not imported).

    :param env_id: gymnasium environment id
    :return: the raw entry
    """
    import yaml

    spec = importlib.util.find_spec("rl_zoo3")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("rl_zoo3 is not installed: pip install 'sb3-ppg[zoo]'")
    path = Path(next(iter(spec.submodule_search_locations))) / "hyperparams" / "ppo.yml"
    entry = yaml.safe_load(path.read_text()).get(env_id)
    if not entry:
        raise ValueError(f"rl_zoo3's ppo.yml has no entry for {env_id}")
    return dict(entry)


def arm_config(arm: str, env_id: str, ppg_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """
    The settings of one arm: ``algo`` (class name), ``policy``, ``n_envs``, ``normalize`` and ``hyperparams``.

    :param arm: one of ``ARMS``
    :param env_id: gymnasium environment id
    :param ppg_overrides: PPG constructor arguments that replace the ppg.yml values (for sweeps); ppg arm only
    :return: the settings
    """
    from sb3_ppg.train import ENV_KEYS, convert_zoo_entry, load_config

    if arm == "ppg":
        entry, algo, env_keys = load_config(env_id), "PPG", ENV_KEYS
        hyperparams = {key: value for key, value in entry.items() if key not in env_keys}
        hyperparams.update(ppg_overrides or {})
    elif arm == "ppo":
        entry, algo = convert_zoo_entry(zoo_ppo_entry(env_id)), "PPO"
        hyperparams = {key: value for key, value in entry.items() if key not in ZOO_ENV_KEYS}
    elif arm == "ppo-matched":
        entry, algo = load_config(env_id), "PPO"
        hyperparams = {key: entry[key] for key in MATCHED_KEYS if key in entry}
        hyperparams["n_epochs"] = zoo_ppo_entry(env_id).get("n_epochs", 10)
    else:
        raise ValueError(f"Unknown arm {arm!r}, expected one of {ARMS}")
    return {
        "algo": algo,
        "policy": entry.get("policy", "MlpPolicy"),
        "n_envs": int(entry.get("n_envs", 1)),
        "normalize": entry.get("normalize", False),
        "hyperparams": hyperparams,
    }

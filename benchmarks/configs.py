"""
The arms of the benchmark and their settings.

On gymnasium's vector tasks: ``ppg`` (the env's entry of sb3_ppg's ``ppg.yml``), ``ppo`` (rl_zoo3's own ``ppo.yml``
entry) and ``ppo-matched`` (PPO with PPG's env-side settings and PPO's own ``n_epochs``). On MinAtar: ``ppo`` (SB3's
PPO, one shared MinAtar network), ``ppg-e1`` (PPG, ``arch="dual"``, one policy and one value epoch per rollout),
``ppg-e4`` (the same with PPO's four), ``ppg-detach`` (PPG, ``arch="detach"``, four), ``ppg`` (the game's
``ppg.yml`` entry), ``ppg-e8`` (``dual``, eight epochs of each), ``ppg-aux2`` (``ppg-e4`` with two aux epochs),
``ppo-e8`` (PPO with eight epochs) and ``ppo-dual`` (PPO with separate actor and critic trunks), all with the same
env-side settings, and, when named, ``ppo-long`` (PPO trained for the slowest PPG arm's time). On Procgen
(``StarpilotHard-v0``, through EnvPool): ``ppg`` (the game's ``ppg.yml`` entry, 64 envs), ``ppg-detach`` (the same
with ``arch="detach"``) and ``ppo-reference`` (the paper's PPO baseline, ``procgen_ppo_reference.yml``), each as
packaged. On the RL Zoo's partially observed tasks (``CartPoleNoVel-v1``, ...): ``ppg-lstm`` (RecurrentPPG, the
env's entry of sb3_ppg's ``ppg_lstm.yml``), ``ppo-lstm`` (SB3-Contrib's RecurrentPPO, rl_zoo3's own ``ppo_lstm.yml``
entry) and ``ppo-lstm-ppg-epochs`` (the same with as many epochs as PPG's actor makes over each sample, ``n_epochs +
n_aux_epochs`` of the ``ppg_lstm.yml`` entry, so that more sample reuse alone cannot make PPG look better).
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
THRESHOLDS = {
    "LunarLander-v3": 200.0,
    "LunarLanderContinuous-v3": 200.0,
    "CartPole-v1": 475.0,
    "Acrobot-v1": -100.0,
    # Round marks fixed before the MinAtar runs, for the steps-to-threshold table; not from a reference
    "MinAtar/Breakout-v1": 20.0,
    "MinAtar/SpaceInvaders-v1": 100.0,
    "MinAtar/Asterix-v1": 20.0,
    "MinAtar/Freeway-v1": 40.0,
    # The held-out game of the one MinAtar entry (benchmarks/README.md); fixed before any run on it
    "MinAtar/Seaquest-v1": 10.0,
    # The paper's PPG passes 10 near 10M steps (its curves in the repository's anchors); fixed before any run here
    "StarpilotHard-v0": 10.0,
    # The fully observed tasks' marks (gymnasium's reward_threshold for CartPole and LunarLander; a round mark for
    # Pendulum, which has none), fixed before any run
    "CartPoleNoVel-v1": 475.0,
    "PendulumNoVel-v1": -200.0,
    "LunarLanderNoVel-v3": 200.0,
}

MINATAR_ARMS = ("ppo", "ppg", "ppg-e1", "ppg-e4", "ppg-detach", "ppg-e8", "ppg-aux2", "ppo-e8", "ppo-dual")
# PPO trained for as long as the slowest PPG arm (compare.py --train-seconds), for the equal-compute comparison; run
# only when named, as its budget comes from the other arms' runs
MINATAR_LONG_ARM = "ppo-long"
# The games the one MinAtar entry is chosen on, and the game it is then checked on
MINATAR_ENVS = ("MinAtar/Asterix-v1", "MinAtar/Breakout-v1", "MinAtar/Freeway-v1", "MinAtar/SpaceInvaders-v1")
MINATAR_HELD_OUT = "MinAtar/Seaquest-v1"
MINATAR_N_ENVS = 64
# gymnax-blines' PPO settings for MinAtar (agents/<Game>-MinAtar/ppo.yaml, the same for every game): 64 envs x 128
# steps, 8 minibatches, 4 epochs, lr 5e-4 (constant here: SB3 has no warm-up), clip 0.2, gamma 0.999, GAE 0.95
MINATAR_SHARED: dict[str, Any] = dict(
    n_steps=128,
    batch_size=1024,
    n_epochs=4,
    learning_rate=5e-4,
    gamma=0.999,
    gae_lambda=0.95,
    clip_range=0.2,
    ent_coef=0.01,
    vf_coef=0.5,
    max_grad_norm=0.5,
)
# PPG's own keys: E_V = E_pi = PPO's 4 epochs, so the policy phase reuses each sample as PPO does and only the
# aux phase and the separate critic differ; N_pi 16 (the low end of the 16-32 the paper found best; its default is
# 32) and E_aux 6 as in the paper; aux minibatches as PPO's
MINATAR_PPG: dict[str, Any] = dict(n_value_epochs=4, n_policy_iterations=16, n_aux_epochs=6, aux_batch_size=1024)
# The fixed PPG arms: their arch, E_pi (= E_V) and any key of MINATAR_PPG they change. ``ppg-e1`` is the paper's
# policy phase, one epoch of each per rollout; ``ppg-e4`` and ``ppg-detach`` reuse each sample as often as PPO does.
# The ``ppg`` arm is ppg.yml's entry. ``ppg-e8`` and ``ppg-aux2`` are step 3 of the entry rule: E_pi 8, then E_aux 2,
# beat ``ppg-e4`` in its one-key sweep on Asterix, so each runs on the four games (its Asterix seeds 0 to 2 are the
# sweep's runs, whose settings are the same).
MINATAR_PPG_ARMS: dict[str, dict[str, Any]] = {
    "ppg-e1": dict(arch="dual", n_epochs=1),
    "ppg-e4": dict(arch="dual", n_epochs=4),
    "ppg-detach": dict(arch="detach", n_epochs=4),
    "ppg-e8": dict(arch="dual", n_epochs=8),
    "ppg-aux2": dict(arch="dual", n_epochs=4, n_aux_epochs=2),
}
# PPO arms that each give PPO one thing a PPG arm has besides its aux phase: control arm -> (that PPG arm, PPO's
# changed settings). ``ppo-e8`` makes ``ppg-e8``'s 8 epochs, so more sample reuse alone cannot make it look better
# than PPO; ``ppo-dual`` has separate actor and critic trunks as ``dual`` does, so that ``ppg-e4`` against it
# measures the aux phase alone
MINATAR_PPO_CONTROLS: dict[str, tuple[str, dict[str, Any]]] = {
    "ppo-e8": ("ppg-e8", {"n_epochs": 8}),
    "ppo-dual": ("ppg-e4", {"policy_kwargs": {"share_features_extractor": False}}),
}
# The arm that benchmarks/minatar_entry.py chose over MINATAR_ENVS: every MinAtar game's ppg.yml entry (the ``ppg`` arm)
MINATAR_ENTRY_ARM = "ppg-e8"
# A cap on episode length (MinAtar has none), so that a policy that never loses cannot stall an evaluation
MINATAR_MAX_EPISODE_STEPS = 10_000


PROCGEN_ARMS = ("ppg", "ppg-detach", "ppo-reference")

RECURRENT_ARMS = ("ppg-lstm", "ppo-lstm", "ppo-lstm-ppg-epochs")
# rl_zoo3's ppo_lstm.yml keys LunarLander's entry -v2; gymnasium 1.x and rl_zoo3's NoVel wrappers have only -v3
ZOO_LSTM_KEYS = {"LunarLanderNoVel-v3": "LunarLanderNoVel-v2"}


def zoo_ppo_entry(env_id: str, algo: str = "ppo") -> dict[str, Any]:
    """
    The env's raw entry of the installed rl_zoo3 package's ``hyperparams/<algo>.yml`` (the package is not imported).

    :param env_id: gymnasium environment id (the key in the file)
    :param algo: the zoo's algorithm name, ``ppo`` or ``ppo_lstm``
    :return: the raw entry
    """
    import yaml

    spec = importlib.util.find_spec("rl_zoo3")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("rl_zoo3 is not installed: pip install 'sb3-ppg[zoo]'")
    path = Path(next(iter(spec.submodule_search_locations))) / "hyperparams" / f"{algo}.yml"
    entry = yaml.safe_load(path.read_text()).get(env_id)
    if not entry:
        raise ValueError(f"rl_zoo3's {algo}.yml has no entry for {env_id}")
    return dict(entry)


def is_minatar(env_id: str) -> bool:
    """Whether an env id is one of MinAtar's games."""
    return env_id.startswith("MinAtar/")


def is_procgen(env_id: str) -> bool:
    """Whether an env id is one of EnvPool's Procgen games (``StarpilotHard-v0``); known without envpool."""
    from sb3_ppg.common.envpool import envpool_family

    return envpool_family(env_id) == "procgen"


def is_recurrent(env_id: str) -> bool:
    """Whether an env id is one of the RL Zoo's tasks without velocities (``CartPoleNoVel-v1``), run with LSTMs."""
    return "NoVel-v" in env_id


def arms_for(env_id: str) -> tuple[str, ...]:
    """The arms of an env, in report order."""
    if is_minatar(env_id):
        return MINATAR_ARMS
    if is_recurrent(env_id):
        return RECURRENT_ARMS
    return PROCGEN_ARMS if is_procgen(env_id) else ARMS


def optional_arms(env_id: str) -> tuple[str, ...]:
    """The arms an env runs only when ``--arms`` names them."""
    return (MINATAR_LONG_ARM,) if is_minatar(env_id) else ()


def baseline_arm(env_id: str) -> str:
    """The PPO arm the others are set against in the reports."""
    if is_recurrent(env_id):
        return "ppo-lstm"
    return "ppo-reference" if is_procgen(env_id) else "ppo"


def recurrent_arm_config(arm: str, env_id: str, ppg_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """
    The settings of one arm on a task without velocities (see ``arm_config``): ``ppg-lstm`` is the env's
    ``ppg_lstm.yml`` entry as packaged, ``ppo-lstm`` rl_zoo3's ``ppo_lstm.yml`` entry, ``ppo-lstm-ppg-epochs`` that
    entry with ``n_epochs`` = E_pi + E_aux of the ``ppg_lstm.yml`` entry.

    :param arm: one of ``RECURRENT_ARMS``
    :param env_id: a NoVel id of rl_zoo3
    :param ppg_overrides: RecurrentPPG constructor arguments that replace the entry's (for sweeps); ppg-lstm only
    :return: the settings
    """
    from sb3_ppg.train import ENV_KEYS, convert_zoo_entry, load_config

    if arm not in RECURRENT_ARMS:
        raise ValueError(f"Unknown arm {arm!r} for {env_id}, expected one of {', '.join(RECURRENT_ARMS)}")
    ppg_entry = load_config(env_id, "ppg_lstm")
    if not ppg_entry:
        raise ValueError(f"sb3_ppg's ppg_lstm.yml has no entry for {env_id}")
    if arm == "ppg-lstm":
        entry, algo = ppg_entry, "RecurrentPPG"
        hyperparams = {key: value for key, value in entry.items() if key not in ENV_KEYS}
        hyperparams.update(ppg_overrides or {})
    else:
        entry, algo = convert_zoo_entry(zoo_ppo_entry(ZOO_LSTM_KEYS.get(env_id, env_id), "ppo_lstm")), "RecurrentPPO"
        hyperparams = {key: value for key, value in entry.items() if key not in ENV_KEYS}
        if arm == "ppo-lstm-ppg-epochs":
            # Each sample passes E_pi times through PPG's actor in the policy phase, then E_aux times in the aux phase
            hyperparams["n_epochs"] = int(ppg_entry["n_epochs"]) + int(ppg_entry["n_aux_epochs"])
    return {
        "algo": algo,
        "policy": entry["policy"],
        "n_envs": int(entry["n_envs"]),
        "normalize": entry.get("normalize", False),
        "hyperparams": hyperparams,
    }


def procgen_arm_config(arm: str, env_id: str, ppg_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """
    The settings of one Procgen arm (see ``arm_config``): the packaged entries as they are. The PPO baseline is
    PPG with its aux phase off, as the paper's code runs it.

    :param arm: one of ``PROCGEN_ARMS``
    :param env_id: a Procgen id of EnvPool
    :param ppg_overrides: constructor arguments that replace the entry's (for sweeps); PPG arms only
    :return: the settings
    """
    from sb3_ppg.train import ENV_KEYS, load_config

    if arm not in PROCGEN_ARMS:
        raise ValueError(f"Unknown arm {arm!r} for {env_id}, expected one of {', '.join(PROCGEN_ARMS)}")
    entry = load_config(env_id, "procgen_ppo_reference" if arm == "ppo-reference" else "ppg")
    if not entry:
        raise ValueError(f"sb3_ppg's packaged configs have no entry for {env_id}")
    hyperparams = {key: value for key, value in entry.items() if key not in ENV_KEYS}
    if arm != "ppo-reference":
        hyperparams.update(ppg_overrides or {})
    if arm == "ppg-detach":
        hyperparams["policy_kwargs"] = dict(hyperparams.get("policy_kwargs") or {}, arch="detach")
    return {
        "algo": "PPG",
        "policy": entry["policy"],
        "n_envs": int(entry["n_envs"]),
        "normalize": entry.get("normalize", False),
        "hyperparams": hyperparams,
    }


def minatar_arm_config(arm: str, env_id: str, ppg_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """
    The settings of one MinAtar arm (see ``arm_config``): every arm but ``ppg`` takes the same ones on every game;
    ``ppg`` is the game's entry of ``ppg.yml``, as packaged.

    :param arm: one of ``MINATAR_ARMS``
    :param env_id: one of MinAtar's games
    :param ppg_overrides: PPG constructor arguments that replace the arm's (for sweeps); PPG arms only
    :return: the settings
    """
    from sb3_ppg.common.torch_layers import MinAtarCNN

    if arm == "ppg":
        return packaged_minatar_config(env_id, ppg_overrides)
    # MinAtar's reference network: the heads sit straight on its 128 features
    policy_kwargs: dict[str, Any] = dict(features_extractor_class=MinAtarCNN, net_arch=[])
    hyperparams = dict(MINATAR_SHARED)
    if arm in ("ppo", MINATAR_LONG_ARM, *MINATAR_PPO_CONTROLS):
        algo = "PPO"
        policy_kwargs["share_features_extractor"] = True
        if arm in MINATAR_PPO_CONTROLS:
            changes = dict(MINATAR_PPO_CONTROLS[arm][1])
            policy_kwargs.update(changes.pop("policy_kwargs", {}))
            hyperparams.update(changes)
    elif arm in MINATAR_PPG_ARMS:
        algo = "PPG"
        changes = dict(MINATAR_PPG_ARMS[arm])
        policy_kwargs["arch"], epochs = changes.pop("arch"), changes.pop("n_epochs")
        hyperparams.update(MINATAR_PPG, n_epochs=epochs, n_value_epochs=epochs, **changes)
        overrides = dict(ppg_overrides or {})
        # Merged, not replaced: the arm's extractor and arch stay unless named (e.g. policy_kwargs={arch: shared})
        policy_kwargs.update(overrides.pop("policy_kwargs", None) or {})
        hyperparams.update(overrides)
    else:
        raise ValueError(f"Unknown arm {arm!r} for MinAtar, expected one of {', '.join(MINATAR_ARMS)}, {MINATAR_LONG_ARM}")
    return {
        "algo": algo,
        "policy": "MlpPolicy",
        "n_envs": MINATAR_N_ENVS,
        "normalize": False,
        "env_kwargs": dict(max_episode_steps=MINATAR_MAX_EPISODE_STEPS),
        "hyperparams": {**hyperparams, "policy_kwargs": policy_kwargs},
    }


def packaged_minatar_config(env_id: str, ppg_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``ppg`` arm on MinAtar: the game's ``ppg.yml`` entry as a user gets it (see ``minatar_arm_config``)."""
    from sb3_ppg.train import ENV_KEYS, load_config

    entry = load_config(env_id)
    if not entry:
        raise ValueError(f"sb3_ppg's ppg.yml has no entry for {env_id}")
    hyperparams = {key: value for key, value in entry.items() if key not in ENV_KEYS}
    hyperparams.update(ppg_overrides or {})
    return {
        "algo": "PPG",
        "policy": entry["policy"],
        "n_envs": int(entry["n_envs"]),
        "normalize": entry.get("normalize", False),
        "env_kwargs": dict(entry.get("env_kwargs") or {}),
        "hyperparams": hyperparams,
    }


def arm_config(arm: str, env_id: str, ppg_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """
    The settings of one arm: ``algo`` (class name), ``policy``, ``n_envs``, ``normalize``, ``hyperparams`` and, for
    MinAtar, ``env_kwargs`` (passed to ``gymnasium.make``).

    :param arm: one of ``arms_for(env_id)``
    :param env_id: gymnasium environment id
    :param ppg_overrides: PPG constructor arguments that replace the configured values (for sweeps); PPG arms only
    :return: the settings
    """
    from sb3_ppg.train import ENV_KEYS, convert_zoo_entry, load_config

    if is_minatar(env_id):
        return minatar_arm_config(arm, env_id, ppg_overrides)
    if is_procgen(env_id):
        return procgen_arm_config(arm, env_id, ppg_overrides)
    if is_recurrent(env_id):
        return recurrent_arm_config(arm, env_id, ppg_overrides)
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

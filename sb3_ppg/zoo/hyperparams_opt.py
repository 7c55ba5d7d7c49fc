"""
Optuna search space of PPG for the RL Zoo's ``-optimize``.

PPO's keys come from rl_zoo3's own PPO sampler, under the same parameter names, so a PPG study and a PPO study
search the same PPO space. PPG's own keys are sampled on top of them.
"""

from typing import Any

import optuna
from rl_zoo3.hyperparams_opt import convert_onpolicy_params, sample_ppo_params

# Trial parameters added to PPO's, as named in ``trial.params``
PPG_TRIAL_PARAMS = ("n_envs", "n_value_epochs", "n_policy_iterations", "n_aux_epochs", "aux_batch_size_pow", "beta_clone")


def sample_ppg_params(trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """
    Sampler for PPG hyperparams: rl_zoo3's PPO space plus N_pi, E_V, E_aux, the aux minibatch size and beta_clone.

    Every combination it returns is one that PPG accepts: ``batch_size <= n_steps * n_envs`` and
    ``aux_batch_size <= n_policy_iterations * n_steps * n_envs`` (a sampled size above the bound is lowered to it).

    :param trial: the Optuna trial to sample with
    :param n_actions: size of a Box action space (unused, part of the zoo's sampler signature)
    :param n_envs: number of parallel environments the trial trains with
    :param additional_args: extra information from the zoo (unused, part of the zoo's sampler signature)
    :return: keyword arguments for ``PPG``
    """
    # Suggests PPO's keys on the trial; its return value is rebuilt below from trial.params
    sample_ppo_params(trial, n_actions, n_envs, additional_args)
    # Recorded as a one-value parameter so that convert_ppg_params(), which sees only trial.params,
    # bounds the minibatch sizes exactly as this trial did
    trial.suggest_int("n_envs", n_envs, n_envs)
    trial.suggest_categorical("n_value_epochs", [1, 5, 10, 20])
    trial.suggest_categorical("n_policy_iterations", [1, 2, 4, 8, 16, 32])
    trial.suggest_categorical("n_aux_epochs", [1, 3, 6, 9])
    # From 2**6=64 to 2**12=4096
    trial.suggest_int("aux_batch_size_pow", 6, 12)
    trial.suggest_float("beta_clone", 0.1, 10.0, log=True)

    hyperparams = convert_ppg_params(trial.params)
    # n_envs is the zoo's key, not a PPG argument
    del hyperparams["n_envs"]
    # Display the values the model is built with
    trial.set_user_attr("batch_size", hyperparams["batch_size"])
    trial.set_user_attr("aux_batch_size", hyperparams["aux_batch_size"])
    return hyperparams


def convert_ppg_params(sampled_params: dict[str, Any]) -> dict[str, Any]:
    """
    Turn the parameters of a trial of :func:`sample_ppg_params` into hyperparameters
    (what ``--trial-id`` and the zoo's ``load_trial`` use).

    :param sampled_params: ``trial.params`` of a PPG trial
    :return: PPG keyword arguments, plus ``n_envs`` the trial ran with (a zoo key)
    """
    ppo_params = dict(sampled_params)
    ppg_params = {name: ppo_params.pop(name) for name in PPG_TRIAL_PARAMS if name in ppo_params}
    hyperparams = convert_onpolicy_params(ppo_params)

    n_envs = int(ppg_params.get("n_envs", 1))
    n_policy_iterations = int(ppg_params["n_policy_iterations"])
    rollout_size = hyperparams["n_steps"] * n_envs
    hyperparams.update(
        n_envs=n_envs,
        batch_size=min(hyperparams["batch_size"], rollout_size),
        n_value_epochs=int(ppg_params["n_value_epochs"]),
        n_policy_iterations=n_policy_iterations,
        n_aux_epochs=int(ppg_params["n_aux_epochs"]),
        aux_batch_size=min(2 ** int(ppg_params["aux_batch_size_pow"]), n_policy_iterations * rollout_size),
        beta_clone=float(ppg_params["beta_clone"]),
    )
    return hyperparams

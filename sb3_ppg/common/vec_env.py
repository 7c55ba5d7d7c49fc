"""A VecEnv wrapper that makes SB3 treat time-limit truncations as terminations."""

from typing import Any

from stable_baselines3.common.vec_env import VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

TRUNCATED_KEY = "TimeLimit.truncated"


class VecTruncationAsTermination(VecEnvWrapper):
    """
    Reports every episode end as a termination: the info of a step that SB3's VecEnvs flag with
    ``info["TimeLimit.truncated"]`` is given with that flag False (a copy; the wrapped env's dict is untouched),
    ``terminal_observation`` and the rest kept. SB3's on-policy ``collect_rollouts`` then adds no
    ``gamma * V(terminal_observation)`` to the reward of that step, so its advantage is that of a terminal step.
    Works with any VecEnv that follows SB3's info convention (``DummyVecEnv``, ``SubprocVecEnv``, ``VecNormalize``
    and the other wrappers, :class:`~sb3_ppg.common.envpool.EnvPoolVecEnv`).

    Callbacks of the rollout see the infos as the algorithm does, with the flag False.

    :param venv: the vectorized environment to wrap
    """

    def reset(self) -> VecEnvObs:
        return self.venv.reset()

    def step_wait(self) -> VecEnvStepReturn:
        observations, rewards, dones, infos = self.venv.step_wait()
        infos = [as_termination(info) for info in infos]
        return observations, rewards, dones, infos


def as_termination(info: dict[str, Any]) -> dict[str, Any]:
    """
    :param info: one env's info of a step
    :return: ``info`` itself when it has no truncation flag set, else a copy with ``TimeLimit.truncated`` False
    """
    return {**info, TRUNCATED_KEY: False} if info.get(TRUNCATED_KEY, False) else info

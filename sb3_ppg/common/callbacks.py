"""A checkpoint callback that saves PPG's aux buffer beside each checkpoint, at the end of a rollout."""

import os
import re
from typing import ClassVar

from stable_baselines3.common.callbacks import CheckpointCallback

from sb3_ppg.common import distributed
from sb3_ppg.common.checkpoints import atomic_path, save_atomically

AUX_BUFFER_PREFIX = "aux_buffer_"
AUX_BUFFER_EXTENSION = "npz"
VECNORMALIZE_PREFIX = "vecnormalize_"
# The file name SB3's CheckpointCallback gives a model: {name_prefix}_{num_timesteps}_steps.zip
_CHECKPOINT_NAME = re.compile(r"^(?P<prefix>.*)_(?P<steps>\d+)_steps\.zip$")


def checkpoint_companion(model_path: str, checkpoint_type: str, extension: str) -> str | None:
    """
    :param model_path: a checkpoint's model file, ``{name_prefix}_{num_timesteps}_steps.zip``
    :param checkpoint_type: ``aux_buffer_`` or ``vecnormalize_``
    :param extension: the companion's extension, without the dot
    :return: the path :class:`PPGCheckpointCallback` gives that checkpoint's companion file, or None when
        ``model_path`` is not named as a checkpoint
    """
    match = _CHECKPOINT_NAME.match(os.path.basename(model_path))
    if match is None:
        return None
    name = f"{match['prefix']}_{checkpoint_type}{match['steps']}_steps.{extension}"
    return os.path.join(os.path.dirname(model_path), name)


class PPGCheckpointCallback(CheckpointCallback):
    """
    SB3's ``CheckpointCallback``, with the same arguments and file names, made to resume PPG exactly.

    - With ``save_replay_buffer=True``, a model with an aux buffer (:class:`~sb3_ppg.PPG`) saves it beside each
      checkpoint as ``{name_prefix}_aux_buffer_{num_timesteps}_steps.npz`` (:meth:`~sb3_ppg.PPG.save_aux_buffer`);
      other models save their replay buffer as SB3's callback does. SB3's own callback looks for a
      ``replay_buffer`` attribute, which PPG does not have, so it would skip the aux buffer.
    - The checkpoint is taken at the end of the rollout in which the ``save_freq``-th call falls, once the model
      has trained on it (at the next rollout's start, or at the end of training). SB3's callback saves at that
      very step, in the middle of a rollout that the saved model then never trains on.
    - Every file (model, buffer, ``VecNormalize`` statistics) is written to a temporary name and renamed into
      place, so a process killed during a save leaves the previous checkpoint whole. The model is written last,
      so a checkpoint's model file never lacks its buffer or its ``VecNormalize`` statistics.
    - In multi-process training it runs on every rank (pass it to ``learn`` on every rank): each rank saves its own
      aux buffer, as ``{name_prefix}_aux_buffer_{num_timesteps}_steps_rank{r}.npz``, and rank 0 alone saves the
      model and the ``VecNormalize`` statistics. Every rank writes into rank 0's ``save_path`` with rank 0's
      ``name_prefix``, and a failure to save on any rank raises on every rank.

    :param save_freq: Save checkpoints every ``save_freq`` call of the callback (at the end of that rollout).
    :param save_path: Path to the folder where the model will be saved.
    :param name_prefix: Common prefix to the saved models
    :param save_replay_buffer: Save the model's aux buffer (PPG) or replay buffer (off-policy algorithms)
    :param save_vecnormalize: Save the ``VecNormalize`` statistics
    :param verbose: Verbosity level: 0 for no output, 2 for indicating when saving model checkpoint
    """

    # Kept on every rank by distributed_callbacks.rank_callbacks: each rank saves its own aux buffer
    runs_on_every_rank: ClassVar[bool] = True
    _save_due = False

    def _init_callback(self) -> None:
        # Beside rank 0's checkpoints, wherever the other ranks were told to save (the zoo gives them a temporary folder)
        self.save_path, self.name_prefix = distributed.broadcast_object((self.save_path, self.name_prefix))
        super()._init_callback()

    def _on_step(self) -> bool:
        if self.n_calls % self.save_freq == 0:
            self._save_due = True
        return True

    def _on_rollout_start(self) -> None:
        self._save_if_due()

    def _on_training_end(self) -> None:
        self._save_if_due()

    def _save_if_due(self) -> None:
        if not self._save_due:
            return
        self._save_due = False
        if self.save_replay_buffer and hasattr(self.model, "save_aux_buffer"):
            path = self._checkpoint_path(AUX_BUFFER_PREFIX, extension=AUX_BUFFER_EXTENSION)
            self.model.save_aux_buffer(path)
            self._report("aux buffer", distributed.rank_path(path))
        distributed.run_agreed(self._save_model_files if distributed.is_main() else lambda: None, "the checkpoint's save")

    def _save_model_files(self) -> None:
        """Save the replay buffer of an off-policy model, the ``VecNormalize`` statistics, then the model."""
        replay_buffer = None if hasattr(self.model, "save_aux_buffer") else getattr(self.model, "replay_buffer", None)
        if self.save_replay_buffer and replay_buffer is not None:
            path = self._checkpoint_path("replay_buffer_", extension="pkl")
            with atomic_path(path) as temporary:
                self.model.save_replay_buffer(temporary)  # type: ignore[attr-defined]
            self._report("replay buffer", path)
        vec_normalize = self.model.get_vec_normalize_env()
        if self.save_vecnormalize and vec_normalize is not None:
            path = self._checkpoint_path(VECNORMALIZE_PREFIX, extension="pkl")
            with atomic_path(path) as temporary:
                vec_normalize.save(str(temporary))
            self._report("VecNormalize", path)
        # Last: a model file whose companions are missing would resume with other statistics or no buffer
        model_path = self._checkpoint_path(extension="zip")
        save_atomically(self.model.save, model_path)
        self._report("model", model_path)

    def _report(self, what: str, path: str) -> None:
        if self.verbose >= 2:
            print(f"Saving {what} checkpoint to {path}")

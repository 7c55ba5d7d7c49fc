"""Loss logging that does not stall the device."""

import torch as th

from sb3_ppg.common import distributed


class LossLog:
    """
    Per-minibatch values kept as detached tensors where they were computed, and read once per phase: a ``.item()``
    per logged value and minibatch would wait for the device every time.
    """

    def __init__(self) -> None:
        self._values: dict[str, list[th.Tensor]] = {}

    def add(self, name: str, value: th.Tensor) -> None:
        """
        Record one minibatch's value.

        :param name: log key, without the ``train/`` prefix
        :param value: a scalar tensor
        """
        self._values.setdefault(name, []).append(value.detach())

    def means(self) -> dict[str, float]:
        """
        In multi-process training, call it on every rank: the means are over the minibatches of all ranks.

        :return: the mean of each key's values, read from the device in one transfer
        """
        names = list(self._values)
        if not names:
            return {}
        means = th.stack([th.stack(self._values[name]).float().mean() for name in names])
        # Every rank runs as many minibatches (same settings, stops agreed), so the mean of the ranks' means is the
        # count-weighted mean over ranks: what the reference logs. One collective per phase
        return dict(zip(names, distributed.mean_over_ranks(means).tolist(), strict=True))

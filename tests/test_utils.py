"""sb3_ppg.common.seeding: integer checks and the folding of seeds into a library's narrower range."""

import numpy as np
import pytest

from sb3_ppg.common.seeding import INT32_LIMIT, UINT32_LIMIT, check_int, check_seed, fold_seed


def test_fold_seed_keeps_the_seeds_the_library_takes():
    for seed in (0, 1, 12345, INT32_LIMIT - 1):
        assert fold_seed(seed, INT32_LIMIT) == seed
    assert fold_seed(UINT32_LIMIT - 1, UINT32_LIMIT) == UINT32_LIMIT - 1
    # numpy integers too, as a Python int
    folded = fold_seed(np.int64(7), INT32_LIMIT)
    assert folded == 7 and type(folded) is int


@pytest.mark.parametrize("limit", [INT32_LIMIT, UINT32_LIMIT])
def test_fold_seed_hashes_larger_seeds_into_the_range(limit):
    seeds = sorted({seed for seed in (limit, limit + 1, 3_500_696_360, 2**32 - 1, 2**32, 2**64 + 5, 10**30) if seed >= limit})
    folded = [fold_seed(seed, limit) for seed in seeds]
    assert all(0 <= value < limit for value in folded)
    # Deterministic: SeedSequence's first 64-bit word, computed here the long way
    for seed, value in zip(seeds, folded, strict=True):
        word = np.random.SeedSequence(seed).generate_state(2, np.uint32)
        assert value == (int(word[0]) | int(word[1]) << 32) % limit
        assert fold_seed(seed, limit) == value
    # Not a plain modulo: limit does not land on 0, nor limit + 1 on 1
    assert fold_seed(limit, limit) != 0 and fold_seed(limit + 1, limit) != 1
    assert len(set(folded)) == len(folded)


@pytest.mark.parametrize("seed", [-1, 1.0, "3", True, None, [1]])
def test_a_seed_must_be_an_int_at_least_0(seed):
    with pytest.raises(ValueError, match=r"^seed must be an integer >= 0 \(any non-negative int"):
        check_seed(seed)
    with pytest.raises(ValueError, match=r"^seed must be an integer >= 0"):
        fold_seed(seed, INT32_LIMIT)


def test_check_int_names_the_argument_and_the_range():
    assert check_int("n", np.int32(3), 1, 5) == 3
    with pytest.raises(ValueError, match=r"^n must be an integer in \[1, 5\] \(why\), got 6$"):
        check_int("n", 6, 1, 5, " (why)")
    with pytest.raises(ValueError, match=r"^n must be an integer >= 1, got 0$"):
        check_int("n", 0, 1)
    with pytest.raises(ValueError, match=r"^flag must be an integer >= 0, got False$"):
        check_int("flag", False, 0)

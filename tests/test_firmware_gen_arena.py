"""The one arena bisection (host TFLM and QEMU both search with it)."""

from __future__ import annotations

import pytest

from firmware_gen.arena import ALIGN, bisect_min


@pytest.mark.parametrize("need", [1, 15, 16, 17, 1000, 2719, 2720, 65536, 2 * 1024 * 1024])
@pytest.mark.parametrize("guess", [None, 0, 100, 2720, 4096, 10**9])
def test_finds_the_smallest_aligned_size_that_fits(need, guess):
    tried: list[int] = []

    def fits(size: int) -> bool:
        tried.append(size)
        return size >= need

    size, probes = bisect_min(fits, 2 * 1024 * 1024, guess=guess)
    assert size == -(-need // ALIGN) * ALIGN
    assert probes == len(tried) and all(s % ALIGN == 0 and 0 < s < 2 * 1024 * 1024 for s in tried)
    assert size - ALIGN in tried or size == ALIGN  # the answer's lower neighbour was seen to fail
    assert probes <= 18  # log2(2 MiB / 16) + the guess


def test_a_good_guess_shortens_the_search():
    def fits(size: int) -> bool:
        return size >= 2720

    assert bisect_min(fits, 1 << 21, guess=2720)[1] < bisect_min(fits, 1 << 21)[1]

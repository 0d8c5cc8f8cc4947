"""``TFKWS_FAST=1``: the same command as a smoke run (seconds, not hours).

A first try of a README command, and the tests that run every README command as written, set
it: ``train`` does one epoch on at most FAST_CLIPS clips per split, ``eval`` and ``slim select``
score at most FAST_EVAL_CLIPS clips, ``export`` and ``slim`` calibrate int8 on at most
FAST_CALIBRATION clips, ``stream-eval`` builds FAST_FA_HOURS of keyword-free audio
around FAST_KEYWORDS keyword clips. Each command says so in one line: a fast run is a check that
the pipeline works on your data, not a model.
"""

from __future__ import annotations

import os

ENV = "TFKWS_FAST"
FAST_EPOCHS = 1
FAST_CLIPS = 80
FAST_EVAL_CLIPS = 100
FAST_CALIBRATION = 50
FAST_KEYWORDS = 10
FAST_SYNTH_WORDS = 5
FAST_FA_HOURS = 0.02


def fast() -> bool:
    """Whether ``TFKWS_FAST`` is set to anything but empty or 0."""
    return os.environ.get(ENV, "") not in ("", "0")


def announce(what: str) -> None:
    print(f"{ENV}=1: {what} (a smoke run, not a result)", flush=True)


def capped(value: int, cap: int) -> int:
    """``value`` capped at ``cap``; 0 (meaning all) becomes ``cap``."""
    return cap if value <= 0 else min(value, cap)


def calibration(num: int) -> int:
    """Representative clips for int8 calibration: ``num``, capped in fast mode."""
    if not fast():
        return num
    num = capped(num, FAST_CALIBRATION)
    announce(f"int8 calibration on at most {num} clips")
    return num

"""Atomic file output: write to a temp file beside the target, then rename.

A killed process or an error never leaves a half-written output behind. The helpers live in
``firmware_gen.atomic`` (firmware_gen stands alone, tfkws builds on it); tfkws code imports them
from here.
"""

from __future__ import annotations

from firmware_gen.atomic import output_dir, write_bytes, write_json, write_text

__all__ = ["output_dir", "write_bytes", "write_json", "write_text"]

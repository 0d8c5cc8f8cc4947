"""firmware_gen: any int8 TFLM ``.tflite`` -> firmware sources, exact arena and a fit report.

Python API::

    from firmware_gen import generate
    report = generate("kws.tflite", "out/", targets=["nrf52840"], check=True)

With ``on_target=["m4", "m55"]`` it also builds the model with TFLM C++ for those CPUs and
measures it in QEMU (``firmware_gen.on_target``: arena, instructions, flash, output parity).

The CLI ``firmware-gen`` (``firmware_gen.cli``) is a thin wrapper around :func:`generate`.
"""

from __future__ import annotations

__version__ = "0.1.0"

from firmware_gen.errors import FirmwareGenError  # noqa: E402


def __getattr__(name: str):
    # Lazy, so ``python -m firmware_gen.probe`` stays light and imports stay acyclic.
    if name in ("generate", "Result"):
        import importlib

        return getattr(importlib.import_module("firmware_gen.pipeline"), name)
    raise AttributeError(name)


__all__ = ["FirmwareGenError", "Result", "generate", "__version__"]

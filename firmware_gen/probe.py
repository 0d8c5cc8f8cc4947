"""TFLM probe worker: runs the TFLM Python interpreter in a child process, one request per line.

TFLM trusts the model and the arena size it is given: a corrupt flatbuffer, or an arena of a few
hundred bytes (the allocator's tail pointer underflows), ends in a segmentation fault. So the
parent (``firmware_gen.arena``) never loads TFLM itself: it starts ``python -m
firmware_gen.probe MODEL`` and sends requests on stdin:

- ``try N``: build an interpreter with an N-byte arena, feed zeros to every input, ``Invoke()``;
  answer ``ok`` or ``fail <reason>``.
- ``record N``: as ``try`` and then ``print_allocations()``; answer ``record <json>`` with the
  RecordingMicroAllocator lines (they go to the C-level stderr, file descriptor 2, which the
  worker points at a temporary file).
- ``run N IN OUT``: with an N-byte arena, ``Invoke()`` once per record of the file IN (every input
  tensor's bytes in order), writing every output tensor's bytes to OUT, resetting the interpreter
  between records (the on-target harness does the same); answer ``ok <records>``.

A process that dies mid-request answers nothing; the parent sees end of file and knows it crashed.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile


def _run(model: bytes, arena: int):
    import numpy as np
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(model, arena_size=arena)
    i = 0
    while True:
        try:
            details = interp.get_input_details(i)
        except Exception:
            break
        interp.set_input(np.zeros(tuple(details["shape"]), dtype=details["dtype"]), i)
        i += 1
    interp.invoke()
    return interp


def _run_file(model: bytes, arena: int, inp: str, out: str) -> int:
    import numpy as np
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(model, arena_size=arena)
    details = []
    while True:
        try:
            details.append(interp.get_input_details(len(details)))
        except Exception:
            break
    sizes = [int(np.prod(d["shape"])) * np.dtype(d["dtype"]).itemsize for d in details]
    data = open(inp, "rb").read()
    record = sum(sizes)
    if record == 0 or len(data) % record:
        raise ValueError(f"input file of {len(data)} bytes is not records of {record} bytes")
    with open(out, "wb") as f:
        for start in range(0, len(data), record):
            pos = start
            for i, (d, size) in enumerate(zip(details, sizes, strict=True)):
                x = np.frombuffer(data[pos : pos + size], dtype=d["dtype"]).reshape(d["shape"])
                interp.set_input(x, i)
                pos += size
            interp.invoke()
            j = 0
            while True:
                try:
                    y = interp.get_output(j)
                except Exception:
                    break
                f.write(np.ascontiguousarray(y).tobytes())
                j += 1
            interp.reset()
    return len(data) // record


def _last_log_line(log) -> str:
    log.flush()
    log.seek(0)
    lines = [ln.strip() for ln in log.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def main(argv: list[str]) -> int:
    with open(argv[1], "rb") as f:
        model = f.read()
    log = tempfile.TemporaryFile()
    os.dup2(log.fileno(), 2)  # TFLM's MicroPrintf writes to fd 2
    out = sys.stdout
    for line in sys.stdin:
        parts = line.split()
        if len(parts) == 4 and parts[0] == "run":
            log.seek(0)
            log.truncate()
            try:
                n = _run_file(model, int(parts[1]), parts[2], parts[3])
                out.write(f"ok {n}\n")
            except Exception as e:
                reason = _last_log_line(log) or f"{type(e).__name__}: {e}"
                out.write("fail " + reason.replace("\n", " ")[:300] + "\n")
            out.flush()
            continue
        if len(parts) != 2 or parts[0] not in ("try", "record"):
            out.write("fail bad request\n")
            out.flush()
            continue
        arena = int(parts[1])
        log.seek(0)
        log.truncate()
        try:
            interp = _run(model, arena)
        except Exception as e:  # TFLM reports allocation/prepare errors as RuntimeError
            reason = _last_log_line(log) or f"{type(e).__name__}: {e}"
            out.write("fail " + reason.replace("\n", " ")[:300] + "\n")
            out.flush()
            continue
        if parts[0] == "try":
            out.write("ok\n")
        else:
            log.seek(0)
            log.truncate()
            interp.print_allocations()
            log.flush()
            log.seek(0)
            text = log.read().decode("utf-8", "replace")
            out.write("record " + json.dumps(text.splitlines()) + "\n")
        out.flush()
        del interp
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

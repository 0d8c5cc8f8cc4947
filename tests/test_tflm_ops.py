"""TFLM's op list has one owner, firmware_gen's ``tflm_ops.json``; these tests tie it to TFLM.

- the TFLM sources firmware builds against: every ``MicroMutableOpResolver::Add*`` method that
  registers a builtin, and nothing else (needs the TFLM tree: ``$TFLM_ROOT`` or ../shared/tflm);
- the installed ``tflite_micro`` Python interpreter (what ``tfkws verify``/``eval`` run): each
  builtin op of the schema is loaded as a one-operator model; TFLM prints "Didn't find op" (or,
  for custom codes, "Failed to get registration") for exactly the ops it lacks. Registered ops
  then fail (or crash) in Prepare on the dummy tensors, so the probe runs in child processes and
  resumes after a crash.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from firmware_gen.ops import op_table
from firmware_gen.toolchain import default_tflm_root
from tfkws.verification import tflm

TFLM = default_tflm_root()

PROBE = r"""
import sys

import flatbuffers
from tflite_micro.python.tflite_micro import runtime
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as s


def one_op(name):
    oc = s.OperatorCodeT()
    if name.startswith("CUSTOM:"):
        oc.builtinCode, oc.customCode = s.BuiltinOperator.CUSTOM, name[len("CUSTOM:"):]
    else:
        oc.builtinCode = getattr(s.BuiltinOperator, name)
    oc.deprecatedBuiltinCode = min(oc.builtinCode, 127)
    t = s.TensorT()
    t.shape, t.type, t.buffer, t.name = [1], s.TensorType.INT8, 0, "t"
    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [], []
    sg = s.SubGraphT()
    sg.tensors, sg.inputs, sg.outputs, sg.operators = [t], [0], [0], [op]
    m = s.ModelT()
    m.version, m.operatorCodes, m.buffers, m.subgraphs = 3, [oc], [s.BufferT()], [sg]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


for name in sys.argv[1:]:
    print(f"@@ {name}", file=sys.stderr, flush=True)  # TFLM's messages follow on stderr
    try:
        runtime.Interpreter.from_bytes(one_op(name), arena_size=16384)
    except Exception:
        pass
"""


def interpreter_registers(names: list[str]) -> set[str]:
    """The ``names`` (builtin names, ``CUSTOM:code``) the installed TFLM interpreter has."""
    logs: dict[str, str] = {}
    todo = list(names)
    while todo:
        res = subprocess.run(
            [sys.executable, "-c", PROBE, *todo], capture_output=True, text=True, timeout=600
        )
        current = None
        for line in res.stderr.splitlines():
            if line.startswith("@@ "):
                current = line[3:]
                logs[current] = ""
            elif current is not None:
                logs[current] += line + "\n"
        left = [n for n in todo if n not in logs]
        assert len(left) < len(todo), f"the probe made no progress: {res.stderr[-300:]}"
        todo = left
    missing = ("Didn't find op", "Failed to get registration")  # builtin, custom
    return {n for n, log in logs.items() if not any(m in log for m in missing)}


def schema_builtin_ops() -> list[str]:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    return sorted(
        k for k in vars(schema.BuiltinOperator) if not k.startswith("_") and k != "CUSTOM"
    )


def test_tfkws_uses_firmware_gen_table():
    assert tflm.TFLM_BUILTIN_OPS == frozenset(op_table()["builtin_ops"])
    assert set(op_table()["builtin_ops"]) <= set(schema_builtin_ops())


@pytest.mark.skipif(TFLM is None, reason="no TFLM source tree (set TFLM_ROOT)")
def test_table_matches_tflm_resolver_source():
    from firmware_gen.refresh_tables import parse_resolver

    assert parse_resolver(TFLM) == op_table()["builtin_ops"]


def test_table_matches_installed_interpreter():
    customs = [f"CUSTOM:{c}" for c in sorted(tflm.TFLM_CUSTOM_OPS)]
    registered = interpreter_registers([*schema_builtin_ops(), *customs, "CUSTOM:NoSuchOp"])
    assert registered == set(op_table()["builtin_ops"]) | set(customs)

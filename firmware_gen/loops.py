"""How many times each subgraph runs per Invoke: WHILE loops multiply their body's work.

A weight-shared model can store a block once and run it in a WHILE loop (tfkws exports a
conformer's repeated layers so). Counting every operator once would then undercount its
compute by the trip count. The trip count of the counted loop the TFLite converter writes for
``tf.while_loop(lambda i, h: i < n, ...)`` is read from the graph: the condition subgraph is one
LESS of a loop variable against an INT32 constant, the variable starts from an INT32 constant
and the body adds an INT32 constant step to it. Any other loop's count is unknown (``None``):
its body is counted once, ``subgraph_runs`` says the counts are incomplete, and the report
says its MAC total is a lower bound (``total_macs_complete``).
"""

from __future__ import annotations

import math

from firmware_gen.model import ModelInfo, Operator


def _scalar(info: ModelInfo, subgraph: int, index: int) -> int | None:
    value = info.subgraphs[subgraph][index].value if index >= 0 else None
    return int(value[0]) if value is not None and len(value) == 1 else None


def while_trips(info: ModelInfo, op: Operator) -> int | None:
    """Iterations of WHILE ``op`` per run of its subgraph, or None when not a counted loop."""
    cond = int(op.options.get("condSubgraphIndex", -1))
    body = int(op.options.get("bodySubgraphIndex", -1))
    if not (0 <= cond < len(info.subgraph_io) and 0 <= body < len(info.subgraph_io)):
        return None
    cond_ops = [o for o in info.operators if o.subgraph == cond]
    if len(cond_ops) != 1 or cond_ops[0].op != "LESS" or len(cond_ops[0].inputs) != 2:
        return None
    counter, bound = cond_ops[0].inputs
    cond_inputs = info.subgraph_io[cond][0]
    if counter not in cond_inputs:
        return None
    k = cond_inputs.index(counter)
    limit = _scalar(info, cond, bound)
    start = _scalar(info, op.subgraph, op.inputs[k]) if k < len(op.inputs) else None
    body_in, body_out = info.subgraph_io[body]
    if limit is None or start is None or k >= len(body_in) or k >= len(body_out):
        return None
    step = None
    for o in info.operators:
        if o.subgraph == body and o.op == "ADD" and body_out[k] in o.outputs:
            others = [i for i in o.inputs if i != body_in[k]]
            if len(others) == 1 and len(o.inputs) == 2:
                step = _scalar(info, body, others[0])
    if step is None or step <= 0:
        return None
    return max(0, math.ceil((limit - start) / step))


def subgraph_runs(info: ModelInfo) -> tuple[dict[int, int], bool]:
    """Runs of each subgraph per Invoke (1 unless a WHILE loop runs it) and whether every loop's
    trip count is known (an unknown one counts its body once)."""
    runs = {s: 1 for s in range(len(info.subgraphs))}
    known = True
    pending = [0]
    seen: set[int] = set()
    while pending:
        s = pending.pop()
        if s in seen:  # a subgraph reached twice (or a cycle): keep the first count
            continue
        seen.add(s)
        for op in info.operators:
            if op.subgraph != s or op.op != "WHILE":
                continue
            trips = while_trips(info, op)
            if trips is None:
                known = False
                continue
            body = int(op.options["bodySubgraphIndex"])
            cond = int(op.options["condSubgraphIndex"])
            runs[body] = runs[s] * trips
            runs[cond] = runs[s] * (trips + 1)
            pending += [body, cond]
    return runs, known

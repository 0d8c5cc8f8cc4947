"""The pretrained model zoo: trained int8 models shipped with tfkws, each with its model card.

An embedded engineer who wants ``model_data.cc`` for a good keyword spotter should not have to
train one first. Every zoo entry is a folder under ``tfkws/zoo/models/NAME/`` holding

- ``model_int8.tflite`` and ``model_int8.metadata.json`` (labels, features, input/output scale),
  exactly as ``tfkws export`` wrote them;
- ``card.json``: data and split, the commands that trained, exported and evaluated it, int8
  accuracy in TFLM, parameters, MACs, ``.tflite`` bytes, arena on the host and on emulated
  Cortex-M4/M55 (``CARD.md`` is the same card for people);
- for a slimmable supernet, ``supernet/`` (its run config and weights), which ``tfkws slim
  select --run`` reads to cut a width for a board;
- for a streaming model, ``model_int8_step.tflite`` and its metadata (``tfkws export
  --streaming``: the external-state step model; ``model_int8.tflite`` is then its window twin with
  the same int8 parameters), and the card's ``streaming`` section: false rejects and false
  accepts per hour per threshold from ``benchmarks/streaming.py``, cost per step on Cortex-M.

Cards are written by ``benchmarks/zoo.py`` from a trained run; ``tests/test_zoo.py`` recomputes
every deterministic figure (bytes, MACs, arena) with firmware_gen and compares it exactly.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

from tfkws.errors import TfkwsError

ZOO_DIR = Path(__file__).resolve().parent / "models"
CARD = "card.json"
CARD_MD = "CARD.md"
TFLITE = "model_int8.tflite"
METADATA = "model_int8.metadata.json"
SUPERNET = "supernet"
STEP_TFLITE = "model_int8_step.tflite"
STEP_METADATA = "model_int8_step.metadata.json"
CARD_FORMAT = "tfkws-zoo-card"


@dataclasses.dataclass(frozen=True)
class ZooModel:
    """One zoo entry: its folder and its card."""

    name: str
    folder: Path
    card: dict[str, Any]

    @property
    def tflite(self) -> Path:
        return self.folder / TFLITE

    @property
    def metadata(self) -> Path:
        return self.folder / METADATA

    @property
    def step_tflite(self) -> Path | None:
        """The external-state step model of a streaming entry (None for clip models)."""
        path = self.folder / STEP_TFLITE
        return path if path.is_file() else None

    @property
    def supernet(self) -> Path | None:
        path = self.folder / SUPERNET
        return path if path.is_dir() else None


def _read_card(folder: Path) -> dict[str, Any]:
    path = folder / CARD
    try:
        card = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise TfkwsError(f"{path}: unreadable model card ({e})") from None
    if card.get("format") != CARD_FORMAT:
        raise TfkwsError(f"{path}: not a tfkws model card (format != {CARD_FORMAT!r})")
    return card


def list_models(zoo_dir: Path = ZOO_DIR) -> list[ZooModel]:
    """Every model in the zoo, by name."""
    if not zoo_dir.is_dir():
        return []
    return [
        ZooModel(f.name, f, _read_card(f)) for f in sorted(zoo_dir.iterdir()) if (f / CARD).exists()
    ]


def get_model(name: str, zoo_dir: Path = ZOO_DIR) -> ZooModel:
    """The zoo entry ``name``; a one-line error listing the names when there is none."""
    models = {m.name: m for m in list_models(zoo_dir)}
    if name not in models:
        known = ", ".join(models) or "none"
        raise TfkwsError(f"zoo: no model {name!r} (the zoo has: {known})")
    return models[name]


def summary_line(m: ZooModel) -> str:
    """``NAME  accuracy  params  bytes  arena  title`` for ``tfkws zoo list``."""
    c = m.card
    acc = c["accuracy"]
    return (
        f"{m.name:<24} {100 * acc['int8_tflm']:6.2f} % int8 TFLM ({acc['split']}, "
        f"{acc['clips']:,} clips)  {c['params']:>7,} params  {c['tflite_bytes']:>7,} B .tflite  "
        f"arena {c['arena_bytes']['host']:>7,} B  {c['title']}"
    )


def copy_model(m: ZooModel, out_dir: Path) -> list[Path]:
    """Copy the ``.tflite``, its metadata, the card (and a supernet) into ``out_dir``.

    Written into a temporary folder beside ``out_dir`` and renamed, so an error leaves nothing
    half-copied.
    """
    out_dir = Path(out_dir).resolve()
    if out_dir.exists() and any(out_dir.iterdir()):
        raise TfkwsError(f"{out_dir}: exists and is not empty; pass another --out")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    names = [TFLITE, METADATA, STEP_TFLITE, STEP_METADATA, CARD, CARD_MD]
    for n in names:
        if (m.folder / n).exists():
            shutil.copy2(m.folder / n, tmp / n)
    if m.supernet:
        shutil.copytree(m.supernet, tmp / SUPERNET)
        names.append(SUPERNET)
    if out_dir.exists():
        out_dir.rmdir()
    tmp.rename(out_dir)
    return [out_dir / n for n in names if (out_dir / n).exists()]


def deployed_params(tflite: Path) -> int:
    """Parameters as deployed: elements of the quantized constant tensors (weights and biases).

    Read from the flatbuffer, so it counts what the device stores, after folding; every
    subgraph's (a WHILE loop's body holds the weights of the block it repeats).
    """
    from firmware_gen.model import parse_model, read_model_file

    model = parse_model(read_model_file(tflite))
    count = 0
    for t in (t for tensors in model.subgraphs for t in tensors):
        if t.buffer_bytes and t.scale:
            n = 1
            for d in t.shape:
                n *= d
            count += n
    return count


def card_markdown(card: dict[str, Any]) -> str:
    """The card for people (``CARD.md``), from ``card.json``."""
    acc = card["accuracy"]
    arena = card["arena_bytes"]
    on_target = ", ".join(f"{k} {v:,} B" for k, v in arena.items() if k != "host" and v)
    lines = [
        f"# {card['name']}: {card['title']}",
        "",
        card.get("description", ""),
        "",
        "| | |",
        "|---|---|",
        f"| data | {card['data']} |",
        f"| labels | {len(card['labels'])}: {', '.join(card['labels'])} |",
        f"| features | {card['features_note']} |",
        f"| int8 accuracy in TFLM | **{100 * acc['int8_tflm']:.2f} %** on {acc['clips']:,} clips "
        f"({acc['split']} split) |",
        f"| parameters (deployed; trained) | {card['params']:,}; {card['trained_params']:,} |",
        f"| MACs per inference | {card['macs']:,} |",
        f"| `.tflite` | {card['tflite_bytes']:,} bytes |",
        f"| arena (host, TFLM Python interpreter) | {arena['host']:,} B |",
    ]
    if on_target:
        lines.append(f"| arena on emulated Cortex-M (QEMU) | {on_target} |")
    dirty = " plus uncommitted changes" if card.get("dirty") else ""
    lines += [
        f"| measured at commit | `{card.get('commit', '?')}`{dirty} |",
        "",
        "## How it was made",
        "",
    ]
    for key, title in (
        ("train_command", "Trained"),
        ("export_command", "Exported"),
        ("eval_command", "Evaluated"),
        ("firmware_command", "Arena on target"),
    ):
        if card.get(key):
            lines += [f"{title}:", "", "```bash", card[key], "```", ""]
    if card.get("streaming"):
        lines += streaming_markdown(card["streaming"])
    if card.get("notes"):
        lines += ["## Notes", "", card["notes"], ""]
    return "\n".join(lines).rstrip() + "\n"


def _threshold(t: float) -> str:
    """0.80, 0.95, 0.996: two decimals unless the sweep's top needs three."""
    return f"{t:.2f}" if round(t, 2) == t else f"{t:.3f}"


def streaming_markdown(st: dict[str, Any]) -> list[str]:
    """The card's streaming section: the step model's cost and its operating points."""
    det = st["detector"]
    lines = [
        "## Streaming",
        "",
        f"`{STEP_TFLITE}`: the external-state step model (`tfkws detect --model {STEP_TFLITE}`, "
        f"`firmware-gen {STEP_TFLITE} --detector ...`), {st['frames_per_step']} new feature "
        f"frame(s) per Invoke (one Invoke every {st['hop_ms']} ms), {st['state_bytes']:,} B of "
        "int8 state; its window twin is `model_int8.tflite` (same int8 parameters).",
        "",
        "| | step model | window model |",
        "|---|---:|---:|",
        f"| `.tflite` bytes | {st['step_tflite_bytes']:,} | {st['window_tflite_bytes']:,} |",
        f"| MACs per Invoke | {st['step_macs']:,} | {st['window_macs']:,} |",
        f"| arena, host | {st['step_arena_bytes']['host']:,} B "
        f"| {st['window_arena_bytes']['host']:,} B |",
    ]
    for key, n in st["step_instructions"].items():
        w = st["window_instructions"].get(key)
        lines.append(
            f"| {key}: instructions per Invoke (arena) | {n:,} "
            f"({st['step_arena_bytes'].get(key, 0):,} B) | "
            + (f"{w:,} ({st['window_arena_bytes'].get(key, 0):,} B) |" if w else "- |")
        )
    if st.get("firmware_command"):
        lines += ["", f"Step model on target: `{st['firmware_command']}`."]
    lines += [
        "",
        f"Detection on {st['keywords_placed']:,} keywords placed in {st['keyword_hours']:.2f} h "
        f"of stream and {st['keyword_free_hours']:.2f} h of keyword-free audio "
        f"({st['streams_note']}); detector: {det['smoothing_ms']} ms smoothing, "
        f"{det['refractory_ms']} ms refractory, gates {', '.join(det['gates'])}; measured by "
        f"`{st['command']}` at commit `{st['commit']}`"
        + (" plus uncommitted changes" if st.get("dirty") else "")
        + f" (`{st['results']}`), on this very step "
        "model:",
        "",
        "| threshold | false rejects | false accepts per hour |",
        "|---:|---:|---:|",
    ]
    for op in st["operating_points"]:
        lines.append(
            f"| {_threshold(op['threshold'])} | {100 * op['false_reject_rate']:.2f} % "
            f"| {op['false_accepts_per_hour']:.2f} |"
        )
    lines.append("")
    return lines

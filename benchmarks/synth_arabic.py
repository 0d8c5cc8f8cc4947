"""Which Arabic texts make espeak-ng say the Arabic Speech Commands keywords: asked of real data.

Synthetic keyword clips are the lever AraSpot used (TTS data on top of the recordings). They
help only if they say what the speakers said, and the corpus names its words by English glosses.
So every candidate text of ``tfkws.data.arabic_keywords.candidates()`` (each with and without
short-vowel marks) is spoken by
``--speakers`` synthetic talkers (espeak-ng ``ar`` with varied variants, rates, pitches, rooms and
noise) and classified by models trained on the real recordings only (``--teacher``, float Keras,
their mean softmax): a candidate the model hears as its gloss is said the way the speakers said
it, one it hears as another word is not (or espeak-ng cannot say it). Chance is 1 in the model's
labels. Writes ``results/<name>.json`` and ``.md``.

    python benchmarks/synth_arabic.py                  # the committed table
    python benchmarks/synth_arabic.py --clips 4 --speakers 8 --out /tmp/synth_ar   # a quick look
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path
from typing import Any

import common
import numpy as np

DEFAULT_TEACHER = "tfkws/zoo/models/slimmable_tc_cnn_asc/supernet"
KEEP_SHARE = 0.5  # a candidate is kept if recognised at least this share of its gloss's best
MIN_RECOGNISED = 0.15  # ... and at least this often (6x chance with 40 labels)


def candidate_sets(candidates: dict[str, tuple[str, ...]]) -> list[dict[str, list[str]]]:
    """One text per gloss per set: set ``i`` has each gloss's ``i``-th candidate (glosses with
    fewer candidates drop out), so each candidate is scored on clips of its own."""
    n = max(len(v) for v in candidates.values())
    return [{g: [v[i]] for g, v in candidates.items() if len(v) > i} for i in range(n)]


def score_candidates(args: argparse.Namespace) -> dict[str, Any]:
    from tfkws.data.arabic_keywords import candidates, synthesize_keywords
    from tfkws.data.synth import keyword_examples
    from tfkws.features.clips import clip_features
    from tfkws.runs.model import load_trained_model

    teachers = [t for t in args.teacher.split(",") if t]
    models = [load_trained_model(t) for t in teachers]
    labels = list(models[0][1].labels)
    features = models[0][1].features
    for t, (_, run) in zip(teachers, models, strict=True):
        if list(run.labels) != labels or run.features.to_dict() != features.to_dict():
            raise SystemExit(f"synth_arabic.py: error: {t}: labels or features differ")
    every = candidates()
    missing = sorted(set(every) - set(labels))
    if missing:
        raise SystemExit(f"synth_arabic.py: error: the model has no label(s) {missing}")
    rows = []
    for i, texts in enumerate(candidate_sets(every)):
        folder = synthesize_keywords(
            Path(args.work_dir) / f"candidates{i}_seed{args.seed}_n{args.clips}",
            clips_per_keyword=args.clips,
            speakers=args.speakers,
            seed=args.seed + i,
            texts=texts,
            noise_dir=args.noise_dir,
            progress=args.verbose,
        )
        examples = keyword_examples(folder)
        x, y = clip_features(examples, labels, features)
        probs = np.mean(
            [common.softmax(m.predict(x, batch_size=256, verbose=0)) for m, _ in models], axis=0
        )
        pred = probs.argmax(axis=1)
        for g in sorted(texts):
            idx = np.array([e.label == g for e in examples])
            heard = collections.Counter(labels[p] for p in pred[idx] if labels[p] != g)
            rows.append(
                {
                    "gloss": g,
                    "candidate": i,
                    "text": texts[g][0],
                    "clips": int(idx.sum()),
                    "recognised": float((pred[idx] == labels.index(g)).mean()),
                    "mean_probability": float(probs[idx, labels.index(g)].mean()),
                    "heard_instead": heard.most_common(3),
                }
            )
        print(f"candidate set {i}: {len(texts)} glosses, {len(examples)} clips scored")
    return {"teachers": teachers, "labels": len(labels), "rows": rows, "kept": kept(rows)}


def best_per_gloss(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Per gloss: how often its best candidate was heard as the gloss."""
    best: dict[str, float] = collections.defaultdict(float)
    for r in rows:
        best[r["gloss"]] = max(best[r["gloss"]], r["recognised"])
    return dict(best)


def kept(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Per gloss: candidates recognised at least ``KEEP_SHARE`` of the gloss's best one and at
    least ``MIN_RECOGNISED`` of the time (a gloss with none gets no synthetic clips)."""
    best = best_per_gloss(rows)
    out: dict[str, list[str]] = collections.defaultdict(list)
    for r in rows:
        if r["recognised"] >= max(KEEP_SHARE * best[r["gloss"]], MIN_RECOGNISED):
            out[r["gloss"]].append(r["text"])
    return dict(sorted(out.items()))


def markdown(res: dict[str, Any]) -> str:
    rows = res["rows"]
    rec = np.array([r["recognised"] for r in rows])
    best = best_per_gloss(rows)
    lines = [
        "# Synthetic Arabic keywords: does espeak-ng say what the speakers said?",
        "",
        f"Produced by `{res['command']}`.",
        "",
        "| gloss | text | clips | heard as the gloss | mean p(gloss) | heard instead | kept |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["gloss"], r["candidate"])):
        instead = ", ".join(f"{w} {n}" for w, n in r["heard_instead"])
        keep = "yes" if r["text"] in res["kept"].get(r["gloss"], []) else "no"
        lines.append(
            f"| {r['gloss']} | {r['text']} | {r['clips']} | {100 * r['recognised']:.0f} % | "
            f"{r['mean_probability']:.2f} | {instead} | {keep} |"
        )
    glosses = sorted(best)
    lines += [
        "",
        f"{len(rows)} candidate texts for {len(glosses)} glosses; median candidate heard as its "
        f"gloss {100 * float(np.median(rec)):.0f} % of the time (chance: 1 in {res['labels']}); "
        f"best candidate per gloss: median {100 * float(np.median(list(best.values()))):.0f} %, "
        f"{sum(v >= 0.5 for v in best.values())} glosses at >= 50 %, "
        f"{sum(v < 0.1 for v in best.values())} below 10 % "
        f"({', '.join(g for g in glosses if best[g] < 0.1) or 'none'}).",
        "",
        f"Clips: {res['clips']} per candidate text from {res['speakers']} synthetic talkers "
        "(espeak-ng `ar` voice; variants, rates, pitches, punctuation, room, band-limiting and "
        "noise of `tfkws.data.synth.Recipe`), seed "
        f"{res['seed']}. Judge: {', '.join(f'`{t}`' for t in res['teachers'])} (trained on "
        "train.csv's recordings only, float Keras, mean softmax). Kept: a candidate heard as its "
        f"gloss at least {KEEP_SHARE:g} of the best candidate's rate and at least "
        f"{100 * MIN_RECOGNISED:.0f} % of the time; glosses with none kept: "
        f"{', '.join(g for g in glosses if g not in res['kept']) or 'none'}; "
        "`tfkws.data.arabic_keywords.ASC_TEXTS` holds the kept ones.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--teacher", default=DEFAULT_TEACHER, help="comma-separated run folders")
    p.add_argument("--clips", type=int, default=40, help="clips per candidate text")
    p.add_argument("--speakers", type=int, default=80, help="synthetic talkers")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise_dir", type=Path, default=common.DEFAULT_NOISE)
    p.add_argument("--work_dir", type=Path, default=Path("benchmarks/runs/synth_arabic"))
    p.add_argument("--out", type=Path, default=common.RESULTS)
    p.add_argument("--name", default="synth_arabic")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args()

    results = common.write_table(
        args.name,
        args.out,
        markdown,
        clips=args.clips,
        speakers=args.speakers,
        seed=args.seed,
        **score_candidates(args),
    )
    print(json.dumps(results["kept"], ensure_ascii=False))


if __name__ == "__main__":
    main()

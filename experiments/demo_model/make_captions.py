"""Caption conversations for the demo model's align stage, from the synthetic scenes' truth.

    python experiments/demo_model/make_captions.py --data data/demo [--split train]

LLaVA aligns its projector on image captions: every token of a caption supervises the
visual tokens, where a one-word answer gives one token. The demo does the same with
captions written from each training clip's ``scene`` ground truth (the same videos;
no held-out clip is used). One caption per clip, objects in order of appearance:

    red square, top left, moves right. blue circle, center, turns green late.

Per object: its first colour and shape; where it is when it first shows (thirds of
the frame); ``moves DIR`` if it travels along one axis without turning back,
``bounces N times`` if it turns back; ``turns COLOUR early|late`` for a colour change;
``appears`` / ``leaves`` if it is not visible throughout. Writes, beside the split
(LLaVA records: ``id``, ``video``, ``conversations``):

- ``{split}_captions.json``: ``Describe the video.`` -> the caption (the align stage);
- ``{split}_qa_captions.json``: the record's own question and answer, then a second turn
  ``Describe the video.`` -> the caption (stage 2). The answer comes first, so it is
  learnt from the video exactly as it is asked at test time, never read off the
  caption; the caption turn keeps every sample's visual tokens densely supervised.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

PROMPT = "Describe the video."
MOVE_FRACTION = 0.15  # of the frame size: less is drift, not motion


def place(x: float, y: float, size: int) -> str:
    """``"top left"``, ``"middle right"``, ... or ``"center"`` (thirds of the frame)."""
    col = ("left", "center", "right")[min(int(3 * x / size), 2)]
    row = ("top", "middle", "bottom")[min(int(3 * y / size), 2)]
    if row == "middle":
        return "center" if col == "center" else col
    return row if col == "center" else f"{row} {col}"


def motion(centers: np.ndarray, size: int) -> str | None:
    """``"moves right"``, ``"bounces 2 times"`` or ``None`` for ``(T, 2)`` centres."""
    axis = int(np.ptp(centers, axis=0).argmax())
    track = centers[:, axis]
    if np.ptp(track) < MOVE_FRACTION * size:
        return None
    steps = np.sign(np.diff(track))
    steps = steps[steps != 0]
    turns = int((steps[1:] != steps[:-1]).sum())
    if turns:
        return f"bounces {turns} time{'s' if turns > 1 else ''}"
    positive = track[-1] > track[0]
    return ("right" if positive else "left") if axis == 0 else ("down" if positive else "up")


def describe(obj: dict[str, Any], scene: dict[str, Any]) -> str:
    first, last = obj["visible_frames"]
    centers = np.asarray(obj["centers"], dtype=np.float64)[first:last + 1]
    size, frames = scene["size"], scene["num_frames"]
    parts = [f"{obj['color']} {obj['shape']}", place(*centers[0], size)]
    moved = motion(centers, size)
    if moved:
        parts.append(moved if moved.startswith("bounces") else f"moves {moved}")
    for change in obj["color_changes"]:
        parts.append(f"turns {change['to']} {'early' if change['frame'] < frames / 2 else 'late'}")
    if first > 0:
        parts.append("appears")
    if last < frames - 1:
        parts.append("leaves")
    return ", ".join(parts) + "."


def caption(scene: dict[str, Any]) -> str:
    """The clip's caption: its visible objects in order of first appearance."""
    objects = [o for o in scene["objects"] if o["visible_frames"]]
    objects.sort(key=lambda o: o["visible_frames"][0])  # stable: drawing order on ties
    return " ".join(describe(o, scene) for o in objects)


def caption_record(record: dict[str, Any]) -> dict[str, Any]:
    return {"id": f"{record['id']}-caption", "video": record["video"],
            "conversations": [{"from": "human", "value": f"<video>\n{PROMPT}"},
                              {"from": "gpt", "value": caption(record["scene"])}]}


def qa_caption_record(record: dict[str, Any]) -> dict[str, Any]:
    """The record's question/answer turns, then the caption turn."""
    return {"id": f"{record['id']}-qa-caption", "video": record["video"],
            "conversations": [*record["conversations"],
                              {"from": "human", "value": PROMPT},
                              {"from": "gpt", "value": caption(record["scene"])}]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/demo"))
    parser.add_argument("--split", default="train")
    args = parser.parse_args()
    records = json.loads((args.data / f"{args.split}.json").read_text())
    for name, make in (("captions", caption_record), ("qa_captions", qa_caption_record)):
        out = args.data / f"{args.split}_{name}.json"
        out.write_text(json.dumps([make(r) for r in records], indent=1) + "\n")
        print(f"wrote {len(records)} records to {out}")


if __name__ == "__main__":
    main()

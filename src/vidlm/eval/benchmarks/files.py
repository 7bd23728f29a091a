"""Reading annotation files and locating videos, with errors that name the file."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from vidlm.errors import DataError
from vidlm.eval.items import EvalItem

VIDEO_SUFFIXES = (".mp4", ".MP4", ".mkv", ".webm", ".avi", ".mov")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DataError(f"{path}: annotation file not found") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not readable JSON: {exc}") from exc


def read_parquet(path: Path) -> list[dict[str, Any]]:
    """The rows of a parquet file (how Video-MME is distributed) as plain dicts."""
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise DataError(f"{path}: reading parquet needs pyarrow "
                        "(pip install 'vidlm[eval]')") from exc
    try:
        return pq.read_table(path).to_pylist()
    except FileNotFoundError as exc:
        raise DataError(f"{path}: annotation file not found") from exc
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise DataError(f"{path}: not readable parquet: {exc}") from exc


def read_records(path: Path) -> list[dict[str, Any]]:
    """A JSON list of objects, JSON Lines (one object per line), or a parquet table."""
    if path.suffix == ".parquet":
        return read_parquet(path)
    if path.suffix == ".jsonl":
        records = []
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise DataError(f"{path}: cannot read: {exc}") from exc
        for n, line in enumerate(lines, 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}: line {n} is not JSON: {exc}") from exc
    else:
        records = read_json(path)
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise DataError(f"{path}: expected a list of JSON objects")
    return records


def read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    except FileNotFoundError as exc:
        raise DataError(f"{path}: annotation file not found") from exc
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not readable CSV: {exc}") from exc


def field(record: dict[str, Any], name: str, where: str) -> Any:
    """``record[name]``, or a :class:`DataError` naming the file, record and field."""
    if name not in record or record[name] is None:
        raise DataError(f"{where}: missing field {name!r}")
    return record[name]


def make_item(where: str, **fields: Any) -> EvalItem:
    """An :class:`EvalItem`, with an invalid one (e.g. gold not an option) as a DataError."""
    options = fields.get("options")
    if not isinstance(options, tuple) or not all(isinstance(o, str) for o in options):
        raise DataError(f"{where}: options must be a list of strings")
    try:
        return EvalItem(**fields)
    except ValueError as exc:
        raise DataError(f"{where}: {exc}") from exc


def as_int(value: Any, where: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: expected an integer, got {value!r}") from exc


def task_files(annotations: Path, suffixes: Sequence[str] = (".json",)) -> list[Path]:
    """A folder's annotation files (sorted), or the one file given."""
    if annotations.is_dir():
        files = sorted(p for p in annotations.iterdir() if p.suffix in suffixes)
        if not files:
            raise DataError(f"{annotations}: no {'/'.join(suffixes)} task files in this folder")
        return files
    if not annotations.exists():
        raise DataError(f"{annotations}: annotation path not found")
    return [annotations]


class VideoFinder:
    """Resolves a video name to a path under the videos folder.

    Candidates are tried in order (with the usual suffixes when a name has none);
    failing those, a file anywhere below the folder whose name (or stem) matches
    uniquely. An unresolved video returns its first candidate, which does not exist:
    the runner records it as missing rather than dropping the item.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._index: dict[str, list[Path]] | None = None

    def _expand(self, rel: str) -> Iterable[Path]:
        path = self.root / rel
        yield path
        if not path.suffix:
            for suffix in VIDEO_SUFFIXES:
                yield path.with_name(path.name + suffix)
        elif path.suffix == ".mp4":
            yield path.with_suffix(".MP4")
            yield path.with_suffix(".mkv")

    def _lookup(self, name: str) -> list[Path]:
        if self._index is None:
            self._index = {}
            if self.root.is_dir():
                for p in self.root.rglob("*"):
                    self._index.setdefault(p.name, []).append(p)
                    if p.suffix in VIDEO_SUFFIXES:
                        self._index.setdefault(p.stem, []).append(p)
        return self._index.get(name, [])

    def find(self, *candidates: str) -> Path:
        for rel in candidates:
            for path in self._expand(rel):
                if path.exists():
                    return path
        for rel in candidates:
            hits = self._lookup(Path(rel).name)
            if len(hits) == 1:
                return hits[0]
        return self.root / candidates[0]

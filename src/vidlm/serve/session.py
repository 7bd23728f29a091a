"""A multi-turn conversation about one video, encoded once (used by ``vidlm chat`` and the demo).

The video goes through :class:`~vidlm.serve.encoding.CachedEncoder` when the session
starts; every later question reuses its visual tokens. The first user message holds
the ``<video>`` marker, so the whole history is re-sent with the same tokens each turn.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidlm.model.budget import TokenBudget, token_budget
from vidlm.model.config import SamplingConfig
from vidlm.serve.encoding import CachedEncoder

if TYPE_CHECKING:
    from vidlm.model.videolm import VideoLM, VisualTokens


@dataclass
class EncodeReport:
    num_frames: int
    num_tokens: int
    seconds: float
    from_cache: bool


class ChatSession:
    def __init__(self, model: VideoLM, video: str | Path, *, encoder: CachedEncoder | None = None,
                 sampling: SamplingConfig | None = None, system: str | None = None,
                 generation: dict[str, Any] | None = None) -> None:
        self.model = model
        self.video = Path(video)
        self.encoder = encoder or CachedEncoder(model)
        self.sampling = sampling or model.config.sampling
        self.system = system
        self.generation = dict(generation or {})
        self.history: list[dict[str, str]] = []
        self.visual: VisualTokens | None = None
        self.connector_config = model.config.connector  # the one that produced the tokens

    def start(self) -> EncodeReport:
        """Encode the video (or fetch it from the cache). Raises ``VideoError`` on a bad file."""
        t0 = time.perf_counter()
        self.connector_config = self.model.config.connector
        cached = self.encoder.lookup(self.video, self.sampling)
        self.visual = cached or self.encoder.encode(self.video, self.sampling)
        return EncodeReport(self.visual.num_frames, self.visual.num_tokens,
                            time.perf_counter() - t0, cached is not None)

    def encoded(self) -> VisualTokens:
        """The video's visual tokens, encoding it first if needed."""
        if self.visual is None:
            self.start()
        if self.visual is None:
            raise RuntimeError("encoding produced no visual tokens")
        return self.visual

    def reset(self) -> None:
        """Forget the conversation; the encoded video stays."""
        self.history.clear()

    @property
    def turns(self) -> int:
        return sum(1 for m in self.history if m["role"] == "user")

    def ask(self, question: str) -> Iterator[str]:
        """Stream the answer to ``question``; the turn is recorded once the stream ends."""
        visual = self.encoded()
        marker = "" if self.history else "<video>\n"
        user = {"role": "user", "content": marker + question}
        messages = ([{"role": "system", "content": self.system}] if self.system else [])
        messages += [*self.history, user]
        pieces: list[str] = []
        stream = self.model.chat(messages, videos=[visual], stream=True, **self.generation)
        try:
            for piece in stream:
                pieces.append(piece)
                yield piece
        finally:
            self.history += [user, {"role": "assistant", "content": "".join(pieces)}]

    # ---- frames ----------------------------------------------------------------------
    def budget(self) -> TokenBudget:
        tower = self.model.vision_tower
        return token_budget(self.encoded().num_frames, tower.grid, self.connector_config,
                            context_length=self.model.context_length, has_cls=tower.outputs_cls)

    def frame_table(self) -> list[tuple[int, float, str]]:
        """``(position, timestamp s, pathway mark)`` per sampled frame."""
        marks = self.budget().frame_marks()
        stamps = self.encoded().frames.timestamps
        return [(i, float(t), marks.get(i, "")) for i, t in enumerate(stamps)]

    def save_grid(self, path: str | Path) -> Path:
        """Write the sampled frames as a grid picture, slow/fast frames marked."""
        from vidlm.video import save_frame_grid

        save_frame_grid(self.encoded().frames, path, marks=self.budget().frame_marks())
        return Path(path)

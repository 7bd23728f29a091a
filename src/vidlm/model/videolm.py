"""VideoLM: vision tower -> connector -> language model, joined at placeholder tokens.

The data flow for one video (shapes for ``T`` frames, ``N`` features per frame)::

    frames uint8 (T, H, W, 3) --preprocess--> pixels (T, 3, S, S)
        --vision tower, in chunks--> features (T, N, D)
        --connector--> visual tokens (L, D_lm)

A prompt's text holds ``<video>``/``<image>`` markers; each becomes ``L_i`` copies of the
placeholder token (a special token added to the tokenizer). In :meth:`VideoLM.embed`
the positions ``input_ids == placeholder_id`` form a boolean mask; ids under it are
zeroed before the embedding lookup (the placeholder id may lie beyond the embedding
matrix) and the visual tokens of all inputs, concatenated in order, are scattered into
those positions. Text embeddings are untouched.

Subclasses may override :meth:`VideoLM.visual_tokens_from_features` (the one place
every visual input passes, from frames or pixels: e.g. to append extra learned tokens
such as LLaVA-OneVision's ``image_newline``) and :meth:`VideoLM.connect`; the vision
tower's :meth:`~vidlm.model.vision_tower.VisionTower.select_features` chooses features.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from transformers.modeling_outputs import CausalLMOutputWithPast

from vidlm.errors import ContextLengthError, VidlmError
from vidlm.model.config import SamplingConfig, VideoLMConfig
from vidlm.model.generation import (
    GenerationSettings,
    decode_steps,
    eos_token_ids,
    settings_from_kwargs,
    stream_text,
)
from vidlm.model.language_model import context_length
from vidlm.model.prompting import (
    PromptError,
    ensure_placeholder,
    normalise_messages,
    render_chat,
    text_pieces,
    tokenize_with_placeholders,
    with_markers,
)

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
VisualKind = Literal["video", "image"]


class VisualCountError(VidlmError):
    """The placeholder positions in a prompt and the visual tokens given differ in number."""


@dataclass
class VisualTokens:
    """One encoded video or image, ready to be placed into prompts (encode once, ask often).

    ``tokens``: ``(L, D_lm)``. ``frames``: the decoded frames (a ``vidlm.video.Frames``) or
    None. ``dropped_from``: the frame count before the ``drop_frames`` policy shrank it.
    """

    tokens: torch.Tensor
    num_frames: int
    frames: Any = None
    kind: VisualKind = "video"
    source: str | None = None
    dropped_from: int | None = None

    @property
    def num_tokens(self) -> int:
        return int(self.tokens.shape[0])


@dataclass
class PreparedPrompt:
    """A prompt ready for :meth:`VideoLM.generate`, with the visual inputs it used."""

    input_ids: torch.Tensor  # (1, S)
    attention_mask: torch.Tensor  # (1, S)
    visuals: list[VisualTokens]
    notes: list[str] = field(default_factory=list)  # e.g. frames dropped to fit the context

    @property
    def visual_tokens(self) -> list[torch.Tensor]:
        return [v.tokens for v in self.visuals]


Visual = Any  # str | Path | vidlm.video.Frames | VisualTokens


@dataclass
class _Pending:
    """A visual input on its way into a prompt: its frames, and its tokens if encoded."""

    frames: Any  # vidlm.video.Frames, or None for tokens encoded elsewhere without frames
    kind: VisualKind
    source: str | None
    encoded: VisualTokens | None = None

    @property
    def num_frames(self) -> int:
        return self.encoded.num_frames if self.encoded else len(self.frames.frames)


class VideoLM(nn.Module):
    """A video LLM composed of a vision tower, a connector and a causal language model."""

    def __init__(self, config: VideoLMConfig, *, vision_tower: nn.Module, connector: nn.Module,
                 language_model: nn.Module, tokenizer: Any) -> None:
        super().__init__()
        self.config = config
        self.vision_tower = vision_tower
        self.connector = connector
        self.language_model = language_model
        self.tokenizer = tokenizer
        self.placeholder_id = ensure_placeholder(tokenizer, config.placeholder_token)
        self.generation_defaults = GenerationSettings(
            max_new_tokens=config.context.reserve_new_tokens)

    @classmethod
    def from_parts(cls, config: VideoLMConfig, *, language_model: nn.Module, tokenizer: Any,
                   vision_encoder: nn.Module | None = None,
                   vision_encoder_config: Any = None,
                   connector: nn.Module | None = None) -> VideoLM:
        """Compose a model; the connector (and, from its config, the encoder) start fresh.

        Give the vision encoder as a module, or as a ``transformers`` config to build it
        with random weights.
        """
        from vidlm.model.connectors import build_connector
        from vidlm.model.vision_tower import VisionTower

        if vision_encoder is not None:
            tower = VisionTower(config.vision_tower, encoder=vision_encoder)
        elif vision_encoder_config is not None:
            tower = VisionTower.from_encoder_config(config.vision_tower, vision_encoder_config)
        else:
            raise ValueError("give vision_encoder or vision_encoder_config")
        lm_dim = int(language_model.get_input_embeddings().embedding_dim)
        if connector is None:
            connector = build_connector(config.connector, vision_dim=tower.hidden_size,
                                        lm_dim=lm_dim)
        model = cls(config, vision_tower=tower, connector=connector,
                    language_model=language_model, tokenizer=tokenizer)
        dtype = model.dtype
        tower.to(dtype)
        connector.to(dtype)
        return model.to(model.device)

    # ---- basic properties -----------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.language_model.get_input_embeddings().weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.language_model.get_input_embeddings().weight.dtype

    @property
    def context_length(self) -> int:
        """Tokens the LM attends over: ``language_model.max_context`` or its position limit."""
        return context_length(self.language_model, self.config.language_model)

    @property
    def lm_dim(self) -> int:
        return int(self.language_model.get_input_embeddings().embedding_dim)

    # ---- vision side ----------------------------------------------------------------------

    def preprocess(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 ``(T, H, W, 3)`` -> pixels ``(T, 3, S, S)`` (the vision tower's normalisation)."""
        return self.vision_tower.preprocess(frames)

    def encode_frames(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels ``(T, 3, S, S)`` -> features ``(T, N, D)``, in chunks of frames."""
        return self.vision_tower(pixels)

    def connect(self, features: torch.Tensor) -> torch.Tensor:
        """Features ``(B, T, N, D)`` -> visual tokens ``(B, L, D_lm)``."""
        param = next(self.connector.parameters(), None)
        if param is not None:
            features = features.to(param.dtype)
        return self.connector(features, grid=self.vision_tower.grid)

    def visual_tokens_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """One visual input's features ``(T, N, D)`` -> its tokens ``(L, D_lm)``."""
        return self.connect(features[None])[0]

    def visual_tokens_from_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """One visual input's pixels ``(T, 3, S, S)`` -> its tokens ``(L, D_lm)``."""
        return self.visual_tokens_from_features(self.encode_frames(pixels))

    def features_of_frames(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 ``(T, H, W, 3)`` -> ``(T, N, D)``, preprocessing and encoding chunk by chunk,
        so memory holds one chunk of full-size float pixels at a time."""
        step = self.vision_tower.config.chunk_size
        return torch.cat([self.encode_frames(self.preprocess(frames[i:i + step]))
                          for i in range(0, len(frames), step)], dim=0)

    def num_visual_tokens(self, num_frames: int) -> int:
        """``L`` for ``num_frames`` frames, from the connector config alone (runs nothing)."""
        return int(self.config.connector.num_tokens(
            num_frames, self.vision_tower.grid, has_cls=self.vision_tower.outputs_cls))

    def read_video(self, video: str | Path, sampling: SamplingConfig | None = None) -> Any:
        """Decode ``video`` (a video file, an image, a folder of images) into ``Frames``."""
        from vidlm.video import policy_from_config, read

        policy = policy_from_config(sampling or self.config.sampling)
        return read(video, policy)

    def encode_video(self, video: Visual, sampling: SamplingConfig | None = None) -> VisualTokens:
        """A path, an image path or ``Frames`` -> :class:`VisualTokens` (cacheable)."""
        if isinstance(video, VisualTokens):
            return video
        pending = self._pending(video, sampling)
        return self._encode(pending.frames, kind=pending.kind, source=pending.source)

    def _pending(self, video: Visual, sampling: SamplingConfig | None) -> _Pending:
        """A visual input decoded (paths) or taken as is (``Frames``, ``VisualTokens``)."""
        if isinstance(video, VisualTokens):
            return _Pending(video.frames, video.kind, video.source, encoded=video)
        if isinstance(video, (str, Path)):
            kind: VisualKind = "image" if Path(video).suffix.lower() in IMAGE_SUFFIXES \
                else "video"
            return _Pending(self.read_video(video, sampling), kind, str(video))
        if hasattr(video, "frames"):
            return _Pending(video, "image" if len(video.frames) == 1 else "video", None)
        raise PromptError(f"a visual input must be a path, Frames or VisualTokens, got "
                          f"{type(video).__name__}")

    @torch.no_grad()
    def _encode(self, frames: Any, *, kind: VisualKind, source: str | None,
                dropped_from: int | None = None) -> VisualTokens:
        tokens = self.visual_tokens_from_features(self.features_of_frames(frames.frames))
        return VisualTokens(tokens=tokens, num_frames=len(frames.frames), frames=frames,
                            kind=kind, source=source, dropped_from=dropped_from)

    # ---- joining text and visual tokens ---------------------------------------------------

    def embed(self, input_ids: torch.Tensor,
              visual_tokens: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """``(B, S)`` ids -> ``(B, S, D_lm)`` embeddings with visual tokens at placeholders.

        ``visual_tokens`` fill the placeholder positions in order (row-major over the
        batch: all of row 0's, then row 1's, ...).
        """
        mask = input_ids == self.placeholder_id  # (B, S)
        embeds = self.language_model.get_input_embeddings()(input_ids.masked_fill(mask, 0))
        visual_tokens = list(visual_tokens or [])
        given = sum(int(v.shape[0]) for v in visual_tokens)
        slots = int(mask.sum())
        if given != slots:
            raise VisualCountError(
                f"the prompt has {slots} placeholder position(s) but {given} visual token(s) "
                f"were given ({[int(v.shape[0]) for v in visual_tokens]} per input)")
        if not slots:
            return embeds
        visual = torch.cat([v.to(embeds.device, embeds.dtype) for v in visual_tokens], dim=0)
        return embeds.masked_scatter(mask[..., None], visual)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None,
                pixel_values: Sequence[torch.Tensor] | None = None,
                visual_tokens: Sequence[torch.Tensor] | None = None,
                **lm_kwargs: Any) -> CausalLMOutputWithPast:
        """Logits ``(B, S, V)`` (and the loss with ``labels``; placeholder positions are ignored).

        ``pixel_values``: per visual input ``(T_i, 3, S, S)``, encoded here; or
        ``visual_tokens``: per input ``(L_i, D_lm)``, already encoded. Not both.
        """
        if pixel_values is not None and visual_tokens is not None:
            raise ValueError("pass pixel_values or visual_tokens, not both")
        if pixel_values is not None:
            visual_tokens = [self.visual_tokens_from_pixels(p) for p in pixel_values]
        input_ids = input_ids.to(self.device)
        embeds = self.embed(input_ids, visual_tokens)
        if labels is not None:
            labels = labels.to(self.device).masked_fill(input_ids == self.placeholder_id, -100)
        if attention_mask is not None:
            attention_mask = attention_mask.to(self.device)
        return self.language_model(inputs_embeds=embeds, attention_mask=attention_mask,
                                   labels=labels, **lm_kwargs)

    # ---- prompts --------------------------------------------------------------------------

    def build_inputs(self, messages: Sequence[dict[str, Any]],
                     visuals: Sequence[VisualTokens] = ()) -> dict[str, Any]:
        """Chat messages + encoded visuals -> ``input_ids``/``attention_mask`` ``(1, S)``."""
        msgs = with_markers(normalise_messages(messages), [v.kind for v in visuals])
        text = render_chat(self.tokenizer, msgs)
        ids = tokenize_with_placeholders(self.tokenizer, text, placeholder_id=self.placeholder_id,
                                         lengths=[v.num_tokens for v in visuals])
        input_ids = torch.tensor([ids], dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids),
                "visual_tokens": [v.tokens for v in visuals]}

    def prompt_text_tokens(self, messages: Sequence[dict[str, Any]], kinds: Sequence[str]) -> int:
        """Text tokens of the templated prompt, not counting visual tokens."""
        msgs = with_markers(normalise_messages(messages), list(kinds))
        text = render_chat(self.tokenizer, msgs)
        return sum(len(self.tokenizer(p, add_special_tokens=False)["input_ids"])
                   for p in text_pieces(text) if p)

    def prepare(self, messages: Sequence[dict[str, Any]], videos: Sequence[Visual] = (), *,
                sampling: SamplingConfig | None = None,
                max_new_tokens: int | None = None) -> PreparedPrompt:
        """Decode, fit to the context (see :class:`ContextPolicy`), encode and tokenise."""
        reserve = max_new_tokens or self.generation_defaults.max_new_tokens
        pending = [self._pending(v, sampling) for v in videos]
        text_len = self.prompt_text_tokens(messages, [p.kind for p in pending])
        fitted = self._fit_frames(text_len, pending, reserve)
        notes: list[str] = []
        visuals: list[VisualTokens] = []
        for p, n in zip(pending, fitted, strict=True):
            if n == p.num_frames:
                visuals.append(p.encoded or self._encode(p.frames, kind=p.kind, source=p.source))
                continue
            visuals.append(self._encode(subsample_frames(p.frames, n), kind=p.kind,
                                        source=p.source, dropped_from=p.num_frames))
            notes.append(f"{p.source or 'video'}: kept {n} of {p.num_frames} frames to fit the "
                         f"{self.context_length}-token context (context.on_overflow=drop_frames)")
        for note in notes:
            log.warning(note)
        inputs = self.build_inputs(messages, visuals)
        return PreparedPrompt(input_ids=inputs["input_ids"],
                              attention_mask=inputs["attention_mask"], visuals=visuals,
                              notes=notes)

    def _fit_frames(self, text_len: int, pending: list[_Pending], reserve: int) -> list[int]:
        """Frame counts per visual input that fit the context (never truncating tokens)."""
        frames = [p.num_frames for p in pending]
        counts = [p.encoded.num_tokens if p.encoded else self.num_visual_tokens(p.num_frames)
                  for p in pending]
        need = text_len + sum(counts) + reserve
        if need <= self.context_length:
            return frames
        if self.config.context.on_overflow != "drop_frames":
            raise ContextLengthError(
                f"the prompt needs {need} tokens ({text_len} text + {sum(counts)} visual "
                f"{counts} + {reserve} reserved for the answer) but the context holds "
                f"{self.context_length}; sample fewer frames, use a connector with fewer "
                "tokens (e.g. slowfast), lower max_new_tokens, or set "
                "context.on_overflow=drop_frames")
        droppable = [i for i, p in enumerate(pending) if p.frames is not None]
        while need > self.context_length:
            candidates = [i for i in droppable if frames[i] > 1]
            if not candidates:
                raise ContextLengthError(
                    f"the prompt needs {need} tokens ({text_len} text + {sum(counts)} visual "
                    f"{counts} + {reserve} reserved) even with the fewest frames possible, but "
                    f"the context holds {self.context_length}")
            i = max(candidates, key=lambda j: counts[j])
            frames[i] -= 1
            counts[i] = self.num_visual_tokens(frames[i])
            need = text_len + sum(counts) + reserve
        return frames

    # ---- generation -----------------------------------------------------------------------

    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 visual_tokens: Sequence[torch.Tensor] | None = None, *,
                 pixel_values: Sequence[torch.Tensor] | None = None, stream: bool = False,
                 **gen: Any) -> str | Iterator[str]:
        """Generate a reply to one prompt ``(1, S)``: the text, or an iterator of text deltas.

        ``gen``: ``max_new_tokens``, ``temperature`` (0 = greedy), ``top_p``, ``seed``,
        ``stop`` (a string or strings, excluded from the reply).
        """
        settings = settings_from_kwargs(self.generation_defaults, **gen)
        with torch.no_grad():
            if pixel_values is not None:
                visual_tokens = [self.visual_tokens_from_pixels(p) for p in pixel_values]
            input_ids = input_ids.to(self.device)
            embeds = self.embed(input_ids, visual_tokens)
        if attention_mask is not None:
            attention_mask = attention_mask.to(self.device)
        steps = decode_steps(self.language_model, embeds, attention_mask, settings,
                             eos_token_ids(self.language_model, self.tokenizer))
        deltas = stream_text(self.tokenizer, (t for t, _ in steps), settings.stop)
        return deltas if stream else "".join(deltas)

    def generate_prepared(self, prompt: PreparedPrompt, *, stream: bool = False,
                          **gen: Any) -> str | Iterator[str]:
        return self.generate(prompt.input_ids, prompt.attention_mask, prompt.visual_tokens,
                             stream=stream, **gen)

    def ask(self, video: Visual | None, question: str, *, stream: bool = False,
            sampling: SamplingConfig | None = None, system: str | None = None,
            **gen: Any) -> str | Iterator[str]:
        """Answer ``question`` about one video/image (a path, ``Frames`` or VisualTokens)."""
        messages: list[dict[str, Any]] = []
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": question})
        videos = [] if video is None else [video]
        return self.chat(messages, videos=videos, stream=stream, sampling=sampling, **gen)

    def chat(self, messages: Sequence[dict[str, Any]], videos: Sequence[Visual] = (), *,
             stream: bool = False, sampling: SamplingConfig | None = None,
             **gen: Any) -> str | Iterator[str]:
        """The assistant's next reply to a multi-turn conversation.

        Markers ``<video>``/``<image>`` (or content parts) in the messages take ``videos`` in
        order; with no marker, all of them go before the first user message's text.
        """
        prompt = self.prepare(messages, videos, sampling=sampling,
                              max_new_tokens=gen.get("max_new_tokens"))
        return self.generate_prepared(prompt, stream=stream, **gen)

    # ---- checkpoints ----------------------------------------------------------------------

    def save_pretrained(self, folder: str | Path, *, include_language_model: bool = True,
                        max_shard_bytes: int | None = None) -> Path:
        """Write a vidlm checkpoint folder (see :mod:`vidlm.model.checkpoint`)."""
        from vidlm.model.checkpoint import DEFAULT_MAX_SHARD_BYTES, save_videolm

        return save_videolm(self, folder, include_language_model=include_language_model,
                            max_shard_bytes=max_shard_bytes or DEFAULT_MAX_SHARD_BYTES)

    @classmethod
    def from_pretrained(cls, folder: str | Path, *, connector: Any = None, sampling: Any = None,
                        overrides: Sequence[str] = (), dtype: str | None = None,
                        device: str | torch.device | None = None) -> VideoLM:
        """Load a vidlm checkpoint folder, optionally with another connector / sampling /
        ``a.b=value`` overrides (see :func:`vidlm.model.loading.load`)."""
        from vidlm.model.checkpoint import load_videolm
        from vidlm.model.loading import configure

        config = configure(VideoLMConfig.load(folder), connector=connector, sampling=sampling,
                           overrides=tuple(overrides))
        return load_videolm(folder, config=config, model_class=cls, dtype=dtype, device=device)


def subsample_frames(frames: Any, count: int) -> Any:
    """``count`` of ``frames``' frames at the middles of equal segments (a new ``Frames``)."""
    total = len(frames.frames)
    picks = np.minimum(((np.arange(count) + 0.5) * total / count).astype(np.int64), total - 1)
    changes = {"frames": frames.frames[picks]}
    for name in ("timestamps", "indices"):
        if hasattr(frames, name):
            changes[name] = np.asarray(getattr(frames, name))[picks]
    if dataclasses.is_dataclass(frames):
        return dataclasses.replace(frames, **changes)
    raise TypeError(f"cannot subsample frames of type {type(frames).__name__}")

"""The Gradio web demo: pick a video, choose sampling and connector, see frames and tokens, ask.

One model serves every browser session. Encoding (which may switch the connector) and
answering hold one lock, so sessions never see each other's connector. Connectors are
switched training-free: the new connector takes the current one's projector weights,
and only connectors whose every weight can be taken that way are offered.
"""

from __future__ import annotations

import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from vidlm.errors import ConfigError, VidlmError
from vidlm.feature_cache import FeatureCache
from vidlm.model.config import SamplingConfig
from vidlm.model.connectors import (
    available_connectors,
    build_connector,
    connector_config_from_dict,
)
from vidlm.serve.encoding import CachedEncoder
from vidlm.serve.session import ChatSession

if TYPE_CHECKING:
    import gradio as gr

    from vidlm.model.videolm import VideoLM

VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".mov", ".avi", ".mpg", ".ts"}


@dataclass(frozen=True)
class DemoSettings:
    """The controls' values for one encode."""

    mode: str = "uniform"
    num_frames: int = 16
    fps: float = 1.0
    max_frames: int = 64
    connector: str = "slowfast"
    slow_frames: int = 4
    slow_kernel: int = 2
    fast_grid: int = 2
    window: int = 4


def _projector_state(connector: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The connector's weights named as inside a ``projector`` (``linear_1.weight``, ...)."""
    return {k.removeprefix("projector."): v for k, v in connector.state_dict().items()}


def reusable_connectors(model: VideoLM) -> list[str]:
    """Registered connectors that can be built entirely from the model's projector weights."""
    have = _projector_state(model.connector)
    names = []
    for name in available_connectors():
        probe = build_connector(connector_config_from_dict({"name": name}),
                                vision_dim=model.vision_tower.hidden_size, lm_dim=model.lm_dim)
        wanted = {k.removeprefix("projector."): v.shape for k, v in probe.state_dict().items()}
        if all(k in have and have[k].shape == shape for k, shape in wanted.items()):
            names.append(name)
    return names


def connector_config(s: DemoSettings) -> Any:
    fields: dict[str, Any] = {"name": s.connector}
    if s.connector == "slowfast":
        fields.update(slow_frames=int(s.slow_frames), slow_kernel=int(s.slow_kernel),
                      fast_grid=(int(s.fast_grid), int(s.fast_grid)))
    elif s.connector == "temporal_pool":
        fields.update(window=int(s.window))
    return connector_config_from_dict(fields, where="demo connector")


def use_connector(model: VideoLM, config: Any) -> None:
    """Switch ``model`` to a connector built from ``config`` with its projector weights."""
    if config == model.config.connector:
        return
    new = build_connector(config, vision_dim=model.vision_tower.hidden_size, lm_dim=model.lm_dim)
    have = _projector_state(model.connector)
    state = {k: have[k.removeprefix("projector.")] for k in new.state_dict()}
    new.load_state_dict(state)
    param = next(model.connector.parameters())
    model.connector = new.to(param.device, param.dtype).eval()
    model.config.connector = config


class DemoBackend:
    """Sessions by id, the lock, and the actions behind the UI's buttons."""

    def __init__(self, model: VideoLM, *, cache: FeatureCache | None = None,
                 generation: dict[str, Any] | None = None) -> None:
        self.model = model
        self.encoder = CachedEncoder(model, cache)
        self.generation = dict(generation or {"max_new_tokens": 64})
        self.lock = threading.Lock()
        self.sessions: dict[str, ChatSession] = {}
        self.grids = Path(tempfile.mkdtemp(prefix="vidlm-demo-"))
        self.connectors = reusable_connectors(model)

    def encode(self, video: str | None, settings: DemoSettings) -> tuple[str, str, str]:
        """(session id, frame-grid PNG path, token summary markdown)."""
        if not video:
            raise ConfigError("upload or pick a video first")
        if settings.connector not in self.connectors:
            raise ConfigError(f"connector {settings.connector!r} is not available "
                              f"training-free here; choose one of {self.connectors}")
        sampling = SamplingConfig(mode=settings.mode, num_frames=int(settings.num_frames),
                                  fps=float(settings.fps), max_frames=int(settings.max_frames))
        with self.lock:
            use_connector(self.model, connector_config(settings))
            self.encoder.refresh()
            session = ChatSession(self.model, video, encoder=self.encoder, sampling=sampling,
                                  generation=self.generation)
            report = session.start()
            sid = uuid.uuid4().hex
            grid = session.save_grid(self.grids / f"{sid}.png")
        self.sessions[sid] = session
        return sid, str(grid), summary_markdown(session, report.seconds, report.from_cache)

    def ask(self, sid: str | None, question: str) -> Iterator[str]:
        session = self.sessions.get(sid or "")
        if session is None:
            raise ConfigError("encode a video first")
        if not question.strip():
            raise ConfigError("type a question")
        with self.lock:
            yield from session.ask(question.strip())


def summary_markdown(session: ChatSession, seconds: float, from_cache: bool) -> str:
    budget = session.budget()
    parts = [f"{p.name}: {len(p.frames)} frames x {p.tokens_per_unit} = {p.tokens}"
             for p in budget.pathways]
    stamps = ", ".join(f"{t:.2f}" for t in session.encoded().frames.timestamps[:12])
    where = "from the feature cache" if from_cache else f"encoded in {seconds:.2f} s"
    return (f"**{budget.num_frames} frames -> {session.encoded().num_tokens} visual tokens** "
            f"({budget.compression:.1f}x fewer than {budget.per_frame_tokens} per-frame "
            f"tokens; {where})  \n"
            f"connector `{budget.connector}`: {'; '.join(parts) or 'one pathway'}  \n"
            f"frame times (s): {stamps}{' ...' if budget.num_frames > 12 else ''}")


def sample_videos(folders: list[Path]) -> list[tuple[str, str]]:
    """``(file name, path)`` of the videos in ``folders`` (the pick list's label and value)."""
    found: list[tuple[str, str]] = []
    for folder in folders:
        if folder.is_dir():
            found += sorted((p.name, str(p)) for p in folder.iterdir()
                            if p.suffix.lower() in VIDEO_SUFFIXES)
    return found


def build_demo(backend: DemoBackend, *,
               samples: list[tuple[str, str]] | None = None) -> gr.Blocks:
    import gradio as gr

    samples = samples or []
    with gr.Blocks(title="vidlm demo", analytics_enabled=False) as demo:
        gr.Markdown("# vidlm\nUpload or pick a video, choose how frames are sampled and "
                    "pooled, then ask about it.")
        sid = gr.State(None)
        with gr.Row():
            with gr.Column(scale=1):
                video = gr.Video(label="Video", sources=["upload"], elem_id="video")
                pick = gr.Dropdown(samples, label="Or pick a sample", value=None,
                                   elem_id="pick")
                with gr.Accordion("Sampling", open=True):
                    mode = gr.Radio(["uniform", "fps"], value="uniform", label="mode")
                    num_frames = gr.Slider(1, 64, value=16, step=1, label="num_frames (uniform)")
                    fps = gr.Slider(0.25, 8, value=1.0, step=0.25, label="fps (fps mode)")
                    max_frames = gr.Slider(1, 128, value=64, step=1, label="max_frames")
                with gr.Accordion("Connector", open=True):
                    connector = gr.Dropdown(backend.connectors, label="connector",
                                            value="slowfast" if "slowfast" in backend.connectors
                                            else backend.connectors[0])
                    slow_frames = gr.Slider(1, 32, value=4, step=1, label="slow frames (slowfast)")
                    slow_kernel = gr.Slider(1, 4, value=2, step=1, label="slow pool kernel")
                    fast_grid = gr.Slider(1, 8, value=2, step=1, label="fast grid side")
                    window = gr.Slider(1, 16, value=4, step=1, label="window (temporal_pool)")
                encode = gr.Button("Encode video", variant="primary", elem_id="encode")
            with gr.Column(scale=2):
                grid = gr.Image(label="Sampled frames (slow / fast marked)", type="filepath",
                                elem_id="frame-grid", interactive=False)
                tokens = gr.Markdown("No video encoded yet.", elem_id="token-info")
                chat = gr.Chatbot(label="Conversation", elem_id="chat", height=320,
                                  render_markdown=False)  # model text shown verbatim
                question = gr.Textbox(label="Question", placeholder="What happens in the video?",
                                      elem_id="question")
                ask = gr.Button("Ask", elem_id="ask")

        controls = [mode, num_frames, fps, max_frames, connector, slow_frames, slow_kernel,
                    fast_grid, window]

        def on_pick(path: str | None) -> Any:
            return path

        def on_encode(path: str | None, *values: Any) -> tuple[Any, ...]:
            settings = DemoSettings(*values)
            try:
                new_sid, grid_path, text = backend.encode(path, settings)
            except VidlmError as exc:
                raise gr.Error(str(exc)) from None
            return new_sid, grid_path, text, []

        def on_ask(session_id: str | None, text: str,
                   history: list[dict[str, Any]]) -> Iterator[tuple[Any, ...]]:
            history = [*history, {"role": "user", "content": text},
                       {"role": "assistant", "content": ""}]
            try:
                for piece in backend.ask(session_id, text):
                    history[-1]["content"] += piece
                    yield history, ""
            except VidlmError as exc:
                raise gr.Error(str(exc)) from None
            yield history, ""

        pick.change(on_pick, inputs=pick, outputs=video)
        encode.click(on_encode, inputs=[video, *controls], outputs=[sid, grid, tokens, chat])
        ask.click(on_ask, inputs=[sid, question, chat], outputs=[chat, question])
        question.submit(on_ask, inputs=[sid, question, chat], outputs=[chat, question])
    return demo

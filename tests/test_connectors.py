"""Connectors: shapes, token counts against the pure function, presets, training-free use."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from vidlm.config import to_dict
from vidlm.errors import ConfigError
from vidlm.model.config import VideoLMConfig
from vidlm.model.connectors import (
    MLP2xGeluConfig,
    MLP2xGeluConnector,
    NextVideoConfig,
    OneVisionConfig,
    PerceiverConfig,
    SlowFastConfig,
    SlowFastConnector,
    TemporalPoolConfig,
    TemporalPoolConnector,
    available_connectors,
    available_presets,
    build_connector,
    connector_config_from_dict,
    connector_preset,
    get_preset,
)

D, D_LM = 6, 10

# Configs exercised for every shape check: each registered connector's default plus variants.
VARIANTS = [
    MLP2xGeluConfig(),
    MLP2xGeluConfig(hidden_act="gelu_pytorch_tanh", bias=False),
    TemporalPoolConfig(),
    TemporalPoolConfig(window=3, pool_after_projection=True),
    SlowFastConfig(),
    SlowFastConfig(slow_frames=3, slow_pool="avg2d", fast_grid=(2, 3), separator=True),
    SlowFastConfig(slow_frames=2, slow_pool="max1d", slow_kernel=3, pool_after_projection=False),
    SlowFastConfig(slow_frames=4, slow_pool="none", fast_grid=(1, 1)),
    PerceiverConfig(num_latents=5, depth=1, heads=2, head_dim=4, max_frames=16),
    PerceiverConfig(num_latents=3, depth=2, heads=1, head_dim=8, max_frames=12, per_frame=True,
                    pool_after_projection=True),
    OneVisionConfig(),
    NextVideoConfig(),
]
SHAPES = [(1, (4, 4)), (5, (4, 4)), (8, (6, 6)), (7, (4, 6)), (12, (3, 5))]


def features(b: int, t: int, grid: tuple[int, int], has_cls: bool, dim: int = D,
             seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, grid[0] * grid[1] + int(has_cls), dim, generator=g)


def test_every_registered_connector_is_covered() -> None:
    assert available_connectors() == ["llava_next_video", "mlp2x_gelu", "onevision",
                                    "perceiver", "slowfast", "temporal_pool"]
    assert {c.name for c in VARIANTS} == set(available_connectors())


@pytest.mark.parametrize("config", VARIANTS, ids=lambda c: f"{c.name}-{id(c) % 997}")
@pytest.mark.parametrize(("num_frames", "grid"), SHAPES)
@pytest.mark.parametrize("has_cls", [False, True])
def test_forward_length_equals_pure_count(config, num_frames, grid, has_cls) -> None:
    torch.manual_seed(0)
    conn = build_connector(config, vision_dim=D, lm_dim=D_LM)
    x = features(2, num_frames, grid, has_cls)
    with torch.no_grad():
        out = conn(x, grid=grid)
    expected = config.num_tokens(num_frames, grid, has_cls=has_cls)
    assert out.shape == (2, expected, D_LM)
    assert conn.num_tokens(num_frames, grid, has_cls=has_cls) == expected
    assert config.token_plan(num_frames, grid, has_cls=has_cls).total == expected
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("has_cls", [False, True])
def test_square_grid_and_cls_are_inferred(has_cls: bool) -> None:
    conn = build_connector(SlowFastConfig(slow_frames=2), vision_dim=D, lm_dim=D_LM)
    x = features(1, 4, (6, 6), has_cls)
    assert conn(x).shape == conn(x, grid=(6, 6)).shape == (1, 2 * 18 + 4 * 16, D_LM)
    assert torch.equal(conn(x), conn(x, grid=(6, 6)))


def test_cls_token_is_dropped_before_spatial_pooling() -> None:
    conn = build_connector(SlowFastConfig(slow_frames=2), vision_dim=D, lm_dim=D_LM)
    x = features(1, 4, (4, 4), has_cls=True)
    with torch.no_grad():
        assert torch.equal(conn(x), conn(x[:, :, 1:]))


def test_token_count_mismatch_is_an_error() -> None:
    conn = build_connector(SlowFastConfig(), vision_dim=D, lm_dim=D_LM)
    with pytest.raises(ValueError, match="not a square grid"):
        conn(torch.randn(1, 2, 20, D))
    with pytest.raises(ValueError, match="fit neither"):
        conn(torch.randn(1, 2, 20, D), grid=(3, 3))
    with pytest.raises(ValueError, match=r"\(B, T, N, D\)"):
        conn(torch.randn(2, 16, D))


# ---- presets ---------------------------------------------------------------------------------


def test_published_presets_pure_totals() -> None:
    assert available_presets() == ["slowfast_llava_1_5", "slowfast_llava_2024"]
    sf = connector_preset("slowfast_llava_2024")
    plan = sf.token_plan(50, (24, 24))
    assert [(p.name, p.units, p.tokens_per_unit) for p in plan.pathways] == [
        ("slow", 10, 288), ("fast", 50, 16)]
    assert plan.pathways[0].frames == (0, 5, 10, 15, 20, 25, 30, 35, 40, 45)
    assert sf.num_tokens(50, (24, 24)) == 3680
    assert sf.num_tokens(50, (24, 24), has_cls=True) == 3680

    sf15 = connector_preset("slowfast_llava_1_5")
    plan = sf15.token_plan(128, (24, 24))
    assert [(p.name, p.units, p.tokens_per_unit) for p in plan.pathways] == [
        ("slow", 32, 144), ("fast", 128, 36)]
    assert plan.pathways[0].frames == tuple(range(0, 128, 4))
    assert sf15.num_tokens(128, (24, 24)) == 9216


@pytest.mark.parametrize(("preset", "frames", "total"),
                         [("slowfast_llava_2024", 50, 3680), ("slowfast_llava_1_5", 128, 9216)])
def test_published_presets_real_forward(preset: str, frames: int, total: int) -> None:
    p = get_preset(preset)
    assert p.grid == (24, 24)
    sampling = p.sampling
    assert (sampling.num_frames if sampling.mode == "uniform" else sampling.max_frames) == frames
    torch.manual_seed(0)
    conn = build_connector(p.connector, vision_dim=8, lm_dim=8)
    with torch.no_grad():
        out = conn(features(1, frames, (24, 24), has_cls=True, dim=8))
    assert out.shape == (1, total, 8)


def test_preset_copies_are_independent() -> None:
    a = connector_preset("slowfast_llava_2024")
    a.slow_frames = 3
    assert connector_preset("slowfast_llava_2024").slow_frames == 10
    with pytest.raises(ConfigError, match="known: \\['slowfast_llava_1_5'"):
        get_preset("nope")


# ---- SlowFast semantics against independent reference computations ----------------------------


def test_slow_positions_are_even_linspace_choices() -> None:
    cfg = SlowFastConfig(slow_frames=10)
    assert cfg.slow_positions(50) == tuple(torch.linspace(0, 50, 11)[:-1].long().tolist())
    assert cfg.slow_positions(33) == (0, 3, 6, 9, 13, 16, 19, 23, 26, 29)
    assert cfg.slow_positions(4) == (0, 1, 2, 3)  # fewer frames than slow_frames: all of them


def _ref_max1d(x: torch.Tensor, k: int) -> torch.Tensor:
    """(S, h, w, C) -> (S * (h*w//k), C): flatten row-major, max over consecutive groups of k."""
    s, h, w, c = x.shape
    n = (h * w) // k
    return x.reshape(s, h * w, c)[:, : n * k].reshape(s, n, k, c).amax(dim=2).reshape(-1, c)


def _ref_block_mean(x: torch.Tensor, bh: int, bw: int) -> torch.Tensor:
    """(S, h, w, C) -> (S * (h//bh) * (w//bw), C): mean of non-overlapping bh x bw blocks."""
    s, h, w, c = x.shape
    blocks = x.reshape(s, h // bh, bh, w // bw, bw, c).mean(dim=(2, 4))
    return blocks.reshape(-1, c)


def test_slowfast_on_a_projector_equals_project_then_pool() -> None:
    torch.manual_seed(1)
    projector = MLP2xGeluConnector(MLP2xGeluConfig(), vision_dim=D, lm_dim=D_LM)
    cfg = SlowFastConfig(slow_frames=3, slow_pool="max1d", fast_grid=(2, 2),
                         pool_after_projection=True)
    conn = SlowFastConnector.from_projector(cfg, projector)
    assert conn.projector is projector  # shared, not copied
    x = features(1, 6, (4, 4), has_cls=True)
    with torch.no_grad():
        out = conn(x)[0]
        # by hand: project each patch token with the same two linears, then pool
        p = x[0, :, 1:] @ projector.linear_1.weight.T + projector.linear_1.bias
        p = F.gelu(p) @ projector.linear_2.weight.T + projector.linear_2.bias
        p = p.reshape(6, 4, 4, D_LM)
        slow = _ref_max1d(p[[0, 2, 4]], 2)
        fast = _ref_block_mean(p, 2, 2)
    torch.testing.assert_close(out, torch.cat([slow, fast]))


def test_slowfast_pool_then_project() -> None:
    torch.manual_seed(2)
    cfg = SlowFastConfig(slow_frames=2, slow_pool="avg2d", fast_grid=(3, 3),
                         pool_after_projection=False)
    conn = build_connector(cfg, vision_dim=D, lm_dim=D_LM)
    x = features(1, 4, (6, 6), has_cls=False)
    with torch.no_grad():
        out = conn(x)[0]
        f = x[0].reshape(4, 6, 6, D)
        pooled = torch.cat([_ref_block_mean(f[[0, 2]], 2, 2), _ref_block_mean(f, 2, 2)])
        expected = conn.projector.project(pooled)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("pathways", ["slow", "fast"])
def test_slowfast_single_pathway_ablation_is_that_pathway_of_the_full_output(pathways) -> None:
    torch.manual_seed(4)
    both = build_connector(SlowFastConfig(slow_frames=2, slow_pool="avg2d", fast_grid=(1, 1)),
                           vision_dim=D, lm_dim=D_LM)
    cfg = SlowFastConfig(slow_frames=2, slow_pool="avg2d", fast_grid=(1, 1), pathways=pathways)
    one = SlowFastConnector.from_projector(cfg, both.projector)
    x = features(2, 4, (4, 4), has_cls=False)
    n_slow = 2 * 2 * 2  # 2 frames at 2x2
    with torch.no_grad():
        full, alone = both(x), one(x)
    expected = full[:, :n_slow] if pathways == "slow" else full[:, n_slow:]
    torch.testing.assert_close(alone, expected)
    assert cfg.num_tokens(4, (4, 4)) == alone.shape[1] == (8 if pathways == "slow" else 4)
    assert [p.name for p in cfg.token_plan(4, (4, 4)).pathways] == [pathways]


def test_slowfast_output_rms_fixes_every_token_scale_and_keeps_direction() -> None:
    torch.manual_seed(5)
    plain = build_connector(SlowFastConfig(slow_frames=2, slow_pool="avg2d", fast_grid=(1, 1)),
                            vision_dim=D, lm_dim=D_LM)
    cfg = SlowFastConfig(slow_frames=2, slow_pool="avg2d", fast_grid=(1, 1), output_rms=0.25)
    scaled = SlowFastConnector.from_projector(cfg, plain.projector)
    x = features(2, 4, (4, 4), has_cls=False) * 50
    with torch.no_grad():
        a, b = plain(x), scaled(x)
    torch.testing.assert_close(b.pow(2).mean(-1).sqrt(), torch.full(b.shape[:2], 0.25))
    torch.testing.assert_close(F.normalize(a, dim=-1), F.normalize(b, dim=-1))


def test_pooling_order_matters_for_a_nonlinear_projector() -> None:
    torch.manual_seed(3)
    after = build_connector(SlowFastConfig(slow_frames=2), vision_dim=D, lm_dim=D_LM)
    before = SlowFastConnector.from_projector(
        SlowFastConfig(slow_frames=2, pool_after_projection=False), after.projector)
    x = features(1, 4, (4, 4), has_cls=False)
    with torch.no_grad():
        assert not torch.allclose(after(x), before(x))


def test_separator_sits_between_slow_and_fast() -> None:
    torch.manual_seed(4)
    cfg = SlowFastConfig(slow_frames=2, fast_grid=(2, 2), separator=True)
    conn = build_connector(cfg, vision_dim=D, lm_dim=D_LM)
    plain = SlowFastConnector.from_projector(SlowFastConfig(slow_frames=2, fast_grid=(2, 2)),
                                             conn.projector)
    x = features(2, 5, (4, 4), has_cls=False)
    with torch.no_grad():
        out, ref = conn(x), plain(x)
    n_slow = 2 * 8
    assert out.shape[1] == ref.shape[1] + 1 == cfg.num_tokens(5, (4, 4))
    assert torch.equal(out[:, :n_slow], ref[:, :n_slow])
    assert torch.equal(out[:, n_slow], conn.separator.detach().expand(2, -1))
    assert torch.equal(out[:, n_slow + 1:], ref[:, n_slow:])
    assert "separator" in dict(conn.named_parameters())
    assert "separator" not in dict(plain.named_parameters())


def test_separator_is_learnable() -> None:
    conn = build_connector(SlowFastConfig(slow_frames=1, separator=True), vision_dim=D, lm_dim=D_LM)
    conn(features(1, 2, (4, 4), has_cls=False)).sum().backward()
    assert conn.separator.grad is not None and conn.separator.grad.abs().sum() > 0


# ---- temporal pooling and the projector --------------------------------------------------------


def test_temporal_pool_averages_windows_including_a_short_last_one() -> None:
    torch.manual_seed(5)
    conn = build_connector(TemporalPoolConfig(window=3), vision_dim=D, lm_dim=D_LM)
    x = features(1, 7, (2, 2), has_cls=True)  # windows: [0,1,2] [3,4,5] [6]
    with torch.no_grad():
        out = conn(x)[0]
        means = torch.cat([x[0, 0:3].mean(0), x[0, 3:6].mean(0), x[0, 6:7].mean(0)])
        expected = conn.projector.project(means)
    assert out.shape == (3 * 5, D_LM)
    torch.testing.assert_close(out, expected)


def test_temporal_pool_training_free_pools_projected_tokens() -> None:
    torch.manual_seed(6)
    projector = MLP2xGeluConnector(MLP2xGeluConfig(), vision_dim=D, lm_dim=D_LM)
    conn = TemporalPoolConnector.from_projector(
        TemporalPoolConfig(window=2, pool_after_projection=True), projector)
    x = features(1, 4, (2, 2), has_cls=False)
    with torch.no_grad():
        p = projector(x)[0].reshape(4, 4, D_LM)
        expected = torch.cat([p[0:2].mean(0), p[2:4].mean(0)])
        torch.testing.assert_close(conn(x)[0], expected)


def test_mlp2x_gelu_matches_llava_projector_math_and_names() -> None:
    torch.manual_seed(7)
    conn = build_connector(MLP2xGeluConfig(), vision_dim=D, lm_dim=D_LM)
    assert set(conn.state_dict()) == {"linear_1.weight", "linear_1.bias",
                                      "linear_2.weight", "linear_2.bias"}
    x = features(2, 3, (2, 2), has_cls=True)
    with torch.no_grad():
        h = F.gelu(x @ conn.linear_1.weight.T + conn.linear_1.bias)
        expected = (h @ conn.linear_2.weight.T + conn.linear_2.bias).reshape(2, 15, D_LM)
        torch.testing.assert_close(conn(x), expected)


def test_llava_projector_weights_load_by_name() -> None:
    torch.manual_seed(8)
    src = {"linear_1.weight": torch.randn(D_LM, D), "linear_1.bias": torch.randn(D_LM),
           "linear_2.weight": torch.randn(D_LM, D_LM), "linear_2.bias": torch.randn(D_LM)}
    conn = build_connector(MLP2xGeluConfig(), vision_dim=D, lm_dim=D_LM)
    conn.load_state_dict(src, strict=True)
    sf = SlowFastConnector.from_projector(SlowFastConfig(), conn)
    assert torch.equal(sf.state_dict()["projector.linear_2.weight"], src["linear_2.weight"])


@pytest.mark.parametrize(("act", "bias"), [("gelu", True), ("gelu_pytorch_tanh", False)])
def test_mlp2x_gelu_equals_transformers_llava_projector(act: str, bias: bool) -> None:
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig
    from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

    torch.manual_seed(12)
    hf_config = LlavaConfig(vision_config=CLIPVisionConfig(hidden_size=D).to_dict(),
                            text_config=LlamaConfig(hidden_size=D_LM).to_dict(),
                            projector_hidden_act=act, multimodal_projector_bias=bias)
    theirs = LlavaMultiModalProjector(hf_config).eval()
    ours = build_connector(MLP2xGeluConfig(hidden_act=act, bias=bias), vision_dim=D, lm_dim=D_LM)
    ours.load_state_dict(theirs.state_dict(), strict=True)  # loads by name, nothing renamed
    x = features(2, 3, (2, 2), has_cls=False)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x).reshape(2, 12, D_LM), rtol=0, atol=1e-6)


def test_mlp_from_projector_shares_parameters() -> None:
    base = MLP2xGeluConnector(MLP2xGeluConfig(), vision_dim=D, lm_dim=D_LM)
    twin = MLP2xGeluConnector.from_projector(MLP2xGeluConfig(), base)
    assert twin.linear_1.weight is base.linear_1.weight


# ---- the Perceiver resampler ------------------------------------------------------------------


def test_perceiver_emits_a_fixed_number_of_latents() -> None:
    cfg = PerceiverConfig(num_latents=4, depth=1, heads=2, head_dim=4, max_frames=8)
    conn = build_connector(cfg, vision_dim=D, lm_dim=D_LM)
    for t in (1, 3, 8):
        assert conn(features(2, t, (2, 2), has_cls=False)).shape == (2, 4, D_LM)
    with pytest.raises(ConfigError, match="exceed max_frames=8"):
        cfg.num_tokens(9, (2, 2))
    with pytest.raises(ValueError, match="max_frames=8"):
        conn(features(1, 9, (2, 2), has_cls=False))


def test_perceiver_sees_frame_order_and_learns() -> None:
    torch.manual_seed(10)
    conn = build_connector(PerceiverConfig(num_latents=3, depth=1, heads=2, head_dim=4,
                                           max_frames=4), vision_dim=D, lm_dim=D_LM)
    x = features(1, 4, (2, 2), has_cls=False)
    with torch.no_grad():
        assert not torch.allclose(conn(x), conn(x.flip(1)))  # time embedding breaks symmetry
    conn(x).pow(2).sum().backward()
    assert conn.latents.grad.abs().sum() > 0 and conn.time_embedding.grad.abs().sum() > 0


def test_perceiver_per_frame_reads_each_frame_alone() -> None:
    torch.manual_seed(11)
    cfg = PerceiverConfig(num_latents=2, depth=1, heads=1, head_dim=4, max_frames=4,
                          per_frame=True)
    conn = build_connector(cfg, vision_dim=D, lm_dim=D_LM)
    x = features(1, 3, (2, 2), has_cls=False)
    y = x.clone()
    y[:, 2] = 0.0  # change only the last frame
    with torch.no_grad():
        a, b = conn(x), conn(y)
    assert a.shape == (1, 6, D_LM)
    torch.testing.assert_close(a[:, :4], b[:, :4])  # frames 0 and 1's latents are unchanged
    assert not torch.allclose(a[:, 4:], b[:, 4:])


# ---- determinism and configs -----------------------------------------------------------------


@pytest.mark.parametrize("config", VARIANTS, ids=lambda c: f"{c.name}-{id(c) % 997}")
def test_deterministic(config) -> None:
    x = features(1, 6, (4, 4), has_cls=True)
    torch.manual_seed(9)
    a = build_connector(config, vision_dim=D, lm_dim=D_LM)
    torch.manual_seed(9)
    b = build_connector(config, vision_dim=D, lm_dim=D_LM)
    with torch.no_grad():
        assert torch.equal(a(x), a(x))
        assert torch.equal(a(x), b(x))


@pytest.mark.parametrize("config", [*VARIANTS, *(connector_preset(p) for p in available_presets())],
                         ids=lambda c: f"{c.name}-{id(c) % 997}")
def test_config_json_round_trip(config) -> None:
    text = json.dumps(to_dict(config))
    back = connector_config_from_dict(json.loads(text))
    assert back == config
    assert type(back) is type(config)


def test_unknown_connector_and_fields_list_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown connector 'qformer'.*'mlp2x_gelu'"):
        connector_config_from_dict({"name": "qformer"}, where="cfg.connector")
    with pytest.raises(ConfigError,
                       match=r"cfg.connector: unknown field\(s\) \['slow'\].*slow_frames"):
        connector_config_from_dict({"name": "slowfast", "slow": 3}, where="cfg.connector")
    with pytest.raises(ConfigError, match="missing 'name'"):
        connector_config_from_dict({"slow_frames": 3})


@pytest.mark.parametrize("bad", [{"slow_pool": "median"}, {"slow_frames": 0}, {"fast_grid": [0, 4]},
                                 {"fast_grid": [1, 2, 3]}, {"slow_kernel": -1},
                                 {"projector_act": "tanh"}, {"pathways": "medium"},
                                 {"pathways": "slow", "separator": True},
                                 {"output_rms": 0.0}])
def test_invalid_slowfast_values_are_config_errors(bad) -> None:
    with pytest.raises(ConfigError, match="slowfast"):
        connector_config_from_dict({"name": "slowfast", **bad})


def test_int_fast_grid_means_square() -> None:
    assert connector_config_from_dict({"name": "slowfast", "fast_grid": 6}).fast_grid == (6, 6)


def test_kernel_larger_than_grid_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="leaves no tokens"):
        SlowFastConfig(slow_pool="avg2d", slow_kernel=4).num_tokens(8, (3, 3))


def test_build_rejects_a_mismatched_config() -> None:
    cfg = SlowFastConfig()
    cfg.name = "mlp2x_gelu"
    with pytest.raises(ConfigError, match="needs a MLP2xGeluConfig"):
        build_connector(cfg, vision_dim=D, lm_dim=D_LM)


def test_videolm_config_resolves_and_overrides_connectors() -> None:
    cfg = VideoLMConfig.from_dict({"connector": to_dict(connector_preset("slowfast_llava_1_5"))})
    assert isinstance(cfg.connector, SlowFastConfig) and cfg.connector.fast_grid == (6, 6)
    back = VideoLMConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back.connector == cfg.connector
    switched = VideoLMConfig.from_dict({}).with_overrides(
        ["connector.name=slowfast", "connector.slow_frames=16"])
    assert isinstance(switched.connector, SlowFastConfig) and switched.connector.slow_frames == 16
    assert isinstance(VideoLMConfig.from_dict({}).connector, MLP2xGeluConfig)

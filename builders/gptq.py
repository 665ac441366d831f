"""GPTQ through GPTQModel: quantize, save in GPTQ format, and reload the saved artifact to validate it.

On a CPU the load stage loads the base model through GPTQModel, measures it, and quantize quantizes that
same model (`loads_once`). quantize writes GPTQModel's checkpoint into the work dir (that is the stage's
durable result, so a rerun never quantizes twice); export copies it to the output dir, whose root is the
repo to publish (GPTQ repos are loaded from their root, `GPTQModel.load(repo_id)`), without the temporary
paths GPTQModel records, and with the upstream's metadata files and config keys (invariance.py) in place of
what GPTQModel saved.

GPTQModel quantizes a fused projection of the upstream (Phi-3's `gate_up_proj`) as the two layers it fuses and
saves them so; export fuses them back under the upstream's name (`refuse_split_layers`), so that the model
class of the upstream, which has only the fused layer, loads the release. Likewise it saves a mixture's
layers under transformers 5's names (Mixtral's `mlp.experts.N.gate_proj`); export gives each its upstream's
name (`block_sparse_moe.experts.N.w1`, `upstream_layer_names`), the one vLLM's and SGLang's loaders read.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from builders.artifacts import clear_output, hash_folder, scrub_host_paths
from builders.calibration import load_calibration
from builders.context import BuildContext, with_oom_retry
from builders.failures import BuildFailure
from builders.invariance import keep_upstream_metadata, safetensors_header
from builders.spec import MANIFEST_NAME


def _gptqmodel() -> Any:
    # GPTQModel sizes its CPU pool as (cores + 1) // 2 and then refuses to start with fewer than 2
    # workers (toolchains.md); give small machines the 2 it needs unless the user chose a number.
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", str(max(2, ((os.cpu_count() or 1) + 1) // 2)))
    import gptqmodel

    return gptqmodel


def supported_model_types() -> list[str]:
    _gptqmodel()
    from gptqmodel.models.auto import SUPPORTED_MODELS

    return SUPPORTED_MODELS


def loads_once(ctx: BuildContext) -> bool:
    """Whether the base model is loaded once, by GPTQModel: on a CPU, where the load stage measures the very
    model this stage quantizes. On GPUs the load stage measures it on the GPUs, and GPTQModel reads it layer
    by layer from the snapshot as it quantizes (its `offload_to_disk`), so that host memory never holds it
    whole (GPTQModel keeps a model it loads whole on the CPU)."""
    return ctx.torch_device == "cpu"


def load_base(ctx: BuildContext) -> Any:
    """The upstream model as GPTQModel loads it to quantize it, kept in the context (kind "gptq")."""
    recipe = ctx.spec.recipe
    qcfg = _gptqmodel().QuantizeConfig(
        bits=recipe.gptq_bits,
        group_size=recipe.gptq_group_size,
        desc_act=recipe.gptq_desc_act,
        offload_to_disk=not loads_once(ctx),
    )
    ctx.before_first_model()
    model = _gptqmodel().GPTQModel.load(
        str(Path(ctx.snapshot_dir).resolve()),
        qcfg,
        device=ctx.torch_device,
        trust_remote_code=ctx.spec.trust_remote_code,
    )
    ctx.keep_model(model, "gptq")
    return model


def quantize(ctx: BuildContext) -> dict[str, Any]:
    recipe = ctx.spec.recipe
    calib = load_calibration(recipe, ctx.tokenizer(), ctx.details("fetch").get("calibration", {}))
    data = [{"input_ids": s, "attention_mask": [1] * len(s)} for s in calib.samples]

    def attempt(batch_size: int, number: int) -> Any:
        ctx.progress(0.1, f"GPTQ: quantizing layer by layer with {len(data)} samples, batch {batch_size}")
        if number > 0 or ctx.model_kind != "gptq":  # not the load stage's (a rerun, a retry, or GPUs)
            ctx.release_model()
            load_base(ctx)
        model = ctx.model
        ctx.inject_oom(number)
        _report_layers(ctx, model)
        # GPTQModel writes its per-layer logs into `logs/` under the current directory: the work dir's.
        with contextlib.chdir(ctx.work_dir):
            model.quantize(data, batch_size=batch_size)
        return model

    model, batch_used, retries = with_oom_retry(ctx, recipe.calib_batch_size, attempt)
    ctx.hold()
    target = ctx.work_dir / "quantize" / "gptq"
    partial = target.with_name("gptq.partial")
    shutil.rmtree(partial, ignore_errors=True)
    ctx.progress(0.9, "saving the GPTQ checkpoint")
    model.save(str(partial))
    del model
    ctx.release_model()
    shutil.rmtree(target, ignore_errors=True)
    partial.replace(target)
    return {
        "calibration": calib.record(batch_used, retries),
        "checkpoint_dir": str(target),
        "outputs": [str(target)],
    }


def _report_layers(ctx: BuildContext, model: Any) -> None:
    """GPTQModel quantizes layer by layer, each in groups of modules: it runs the calibration batches through
    a group (forward), then solves it (quant). Its looper tells the model's `subset_callback` of each step
    (GPTQModel 7.6, `looper/module_looper.py`), which becomes the quantize stage's progress, with counts."""
    node = model.extract_layers_node()
    layers = len(model.model.get_submodule(node[0] if isinstance(node, list) else node))

    def event(*, stage: str, layer_idx: int, subset_index: int, subset_total: int, **_: Any) -> None:
        total = layers * subset_total
        step = min(layer_idx * subset_total + subset_index + (stage == "quant_complete"), total)
        what = "calibrating" if stage.startswith("forward") else "quantizing"
        where = f"layer {layer_idx + 1}/{layers}, module group {subset_index + 1}/{subset_total}"
        ctx.progress(0.1 + 0.8 * step / total, f"{what}: {where}", step=step, steps=total)

    model.subset_callback = event


def export(ctx: BuildContext) -> dict[str, Any]:
    source = ctx.details("quantize")["checkpoint_dir"]
    out = ctx.out_dir
    clear_output(out, keep=(MANIFEST_NAME,))
    ctx.progress(0.3, "copying the GPTQ checkpoint to the output dir")
    shutil.copytree(source, out, dirs_exist_ok=True)
    scrubbed = scrub_host_paths(out)
    fused = refuse_split_layers(out, ctx.snapshot_dir)
    renamed = upstream_layer_names(out, ctx.snapshot_dir)
    metadata = keep_upstream_metadata(out, ctx.snapshot_dir, "gptq", ctx.spec.trust_remote_code)
    qcfg = json.loads((out / "quantize_config.json").read_text())
    artifacts = [a for a in hash_folder(out, ".") if a["path"] != MANIFEST_NAME]
    return {
        "quantization": {
            "format": "gptq",
            "producer": "gptqmodel",
            "producer_version": _producer_version(qcfg),
            "quant_algo": "W4A16_GPTQ" if qcfg.get("bits") == 4 else f"W{qcfg.get('bits')}A16_GPTQ",
            "group_size": qcfg.get("group_size"),
            "bits": qcfg.get("bits"),
            "desc_act": qcfg.get("desc_act"),
            "checkpoint": ".",
            "checkpoint_kind": "gptq",
            "config_file": "quantize_config.json",
            "config": qcfg,
        },
        "artifacts": artifacts,
        "upstream_metadata": metadata,
        "host_paths_removed": scrubbed,
        "refused_layers": fused,
        "renamed_layers": renamed,
        "outputs": [str(out / "quantize_config.json")],
    }


# The fused projections GPTQModel splits: (fused name, its parts in the order the fused weight stacks them).
SPLIT_LAYERS = (("gate_up_proj", ("gate_proj", "up_proj")),)
_PACKED = ("qweight", "qzeros", "scales")  # GPTQ tensors whose last axis is the layer's output features


def refuse_split_layers(out: Path, upstream: Path) -> list[str]:
    """Fuse the parts GPTQModel saved of each upstream fused layer back into it: GPTQ packs each output
    feature on its own (the last axis of qweight, qzeros and scales), so the fused layer's tensors are its
    parts' concatenated there, in the order the upstream stacks them; g_idx (one entry per input feature) is
    the parts' own, which must agree. Returns the layers fused."""
    import torch
    from safetensors.torch import load_file, save_file

    names = {n for f in Path(upstream).glob("*.safetensors") for n in safetensors_header(f)}
    fused_layers = [
        (n.removesuffix(f".{fused}.weight"), fused, parts)
        for n in names
        for fused, parts in SPLIT_LAYERS
        if n.endswith(f".{fused}.weight")
    ]
    done: list[str] = []
    for file in sorted(out.glob("*.safetensors")) if fused_layers else ():
        tensors = load_file(file)
        for module, fused, parts in fused_layers:
            pieces = [f"{module}.{p}" for p in parts]
            if not all(f"{p}.qweight" in tensors for p in pieces):
                continue
            for kind in _PACKED:
                tensors[f"{module}.{fused}.{kind}"] = torch.cat(
                    [tensors.pop(f"{p}.{kind}") for p in pieces], -1
                )
            g_idx = [tensors.pop(f"{p}.g_idx") for p in pieces]
            if any(not torch.equal(g_idx[0], g) for g in g_idx[1:]):
                raise BuildFailure("gptq_refuse", f"{module}: the parts of {fused} have different g_idx")
            tensors[f"{module}.{fused}.g_idx"] = g_idx[0]
            done.append(f"{module}.{fused}")
        if done:
            save_file(tensors, str(file), metadata={"format": "pt"})
    _reindex(out)
    return sorted(done)


# The modules transformers 5 renamed in a family's model class, as GPTQModel saves them → the upstream's name
# (transformers 5.14's Mixtral conversion mapping, read backwards: the router and each expert's w1, w3, w2).
RENAMED_LAYERS = (
    (re.compile(r"\.mlp\.gate$"), ".block_sparse_moe.gate"),
    (re.compile(r"\.mlp\.experts\.(\d+)\.gate_proj$"), r".block_sparse_moe.experts.\1.w1"),
    (re.compile(r"\.mlp\.experts\.(\d+)\.up_proj$"), r".block_sparse_moe.experts.\1.w3"),
    (re.compile(r"\.mlp\.experts\.(\d+)\.down_proj$"), r".block_sparse_moe.experts.\1.w2"),
)


def upstream_layer_names(out: Path, upstream: Path) -> dict[str, int]:
    """Give each saved module the upstream's name for it, where the upstream has no module of the saved name
    but has the renamed one (so a family whose upstream already uses transformers 5's names keeps them);
    every tensor of the module (qweight, qzeros, scales, g_idx, or an unquantized weight) moves with it.
    Returns how many modules each rename moved, layer and expert numbers written N."""
    modules = {
        n.rpartition(".")[0] for f in Path(upstream).glob("*.safetensors") for n in safetensors_header(f)
    }

    def upstream_name(module: str) -> str:
        if module in modules:
            return module
        for pattern, name in RENAMED_LAYERS:
            renamed = pattern.sub(name, module)
            if renamed != module and renamed in modules:
                return renamed
        return module

    from safetensors.torch import load_file, save_file

    renamed: Counter[str] = Counter()
    for file in sorted(out.glob("*.safetensors")):
        moves = {m: upstream_name(m) for m in {n.rpartition(".")[0] for n in safetensors_header(file)}}
        moves = {m: r for m, r in moves.items() if m != r}
        if not moves:
            continue
        tensors = {_moved(n, moves): t for n, t in load_file(file).items()}
        save_file(tensors, str(file), metadata={"format": "pt"})
        renamed.update(_INDEX.sub(".N", f"{m} → {r}") for m, r in moves.items())
    _reindex(out)
    return dict(sorted(renamed.items()))


def _moved(name: str, moves: dict[str, str]) -> str:
    module, _, kind = name.rpartition(".")
    return f"{moves[module]}.{kind}" if module in moves else name


_INDEX = re.compile(r"\.\d+(?=\.|$)")  # a layer's or an expert's number, counted as one kind of rename


def _reindex(out: Path) -> None:
    """A sharded checkpoint's index names each tensor's file: rewrite it from the files as they now are."""
    index = out / "model.safetensors.index.json"
    if not index.exists():
        return
    data = json.loads(index.read_text())
    data["weight_map"] = {
        name: file.name for file in sorted(out.glob("*.safetensors")) for name in safetensors_header(file)
    }
    index.write_text(json.dumps(data, indent=2) + "\n")


def _producer_version(qcfg: dict[str, Any]) -> str | None:
    for entry in qcfg.get("meta", {}).get("quantizer", []):
        if str(entry).startswith("gptqmodel:"):
            return str(entry).split(":", 1)[1]
    return None


def reload(ctx: BuildContext) -> tuple[Any, str]:
    """The saved artifact loaded back as a user would load it, and how: by GPTQModel (its HF model inside),
    or by transformers where export fused layers back (GPTQModel's own definition wants them split). Where
    export gave layers the upstream's names, neither loads the release on CPU (GPTQModel 7.6 asks for
    transformers 5's names, transformers 5.14 leaves the experts unloaded: docs/releases.md), so the quantize
    stage's checkpoint, the same tensors under GPTQModel's names, is what runs."""
    export = ctx.details("export")
    if export.get("refused_layers"):
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(
            ctx.out_dir, trust_remote_code=ctx.spec.trust_remote_code, device_map=ctx.torch_device
        )
        return model.eval(), "AutoModelForCausalLM.from_pretrained(.)"
    renamed = bool(export.get("renamed_layers"))
    source = ctx.details("quantize")["checkpoint_dir"] if renamed else str(ctx.out_dir)
    loaded = _gptqmodel().GPTQModel.load(
        source, device=ctx.torch_device, trust_remote_code=ctx.spec.trust_remote_code
    )
    how = "the quantize stage's checkpoint, before export renamed its layers" if renamed else "."
    return loaded.model, f"GPTQModel.load({how})"

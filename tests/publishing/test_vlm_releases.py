"""Vision-language models (Qwen2.5-VL, Llava), each made here as a tiny repo, pushed to hubsim, planned,
built, published and read back by repo id: ModelOpt quantizes the language model alone (calibrated with
text), the vision tower and projector keep the upstream's bytes, and the processor and chat-template files
are the upstream's. The build starts in a folder of its own and leaves nothing there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import snapshot_download
from safetensors import safe_open

from bot.eligibility.facts import facts_from_dir
from bot.eligibility.planner import plan
from bot.eligibility.targets import target_for
from bot.publishing.publisher import Publisher
from bot.publishing.usage import IMAGE_URL
from builders.spec import Manifest
from state.models import ReleaseStatus

pytestmark = pytest.mark.slow

_KEPT = {"qwen2_5_vl": ("visual",), "llava": ("vision_tower", "multi_modal_projector")}
_VISION = {"qwen2_5_vl": ("visual.",), "llava": ("vision_tower.", "multi_modal_projector.")}
_PROCESSOR_FILES = {
    "qwen2_5_vl": ("preprocessor_config.json",),
    "llava": ("preprocessor_config.json", "processor_config.json", "chat_template.json"),
}
# The release read by repo id with the upstream's auto class. transformers has no loader for ModelOpt's
# checkpoints (the runtimes that have one need CUDA), so what is checked here is what those runtimes rely
# on: the upstream's class is built from the release and finds every tensor it has, at its shape, under the
# upstream's names (FP8 weights keep their shapes; packed INT4 ones do not).
_LOAD = """
import sys
from transformers import AutoConfig, AutoModelForImageTextToText
print("ARCH", AutoConfig.from_pretrained(sys.argv[1]).architectures[0])
if sys.argv[2] == "fp8":
    model, info = AutoModelForImageTextToText.from_pretrained(sys.argv[1], output_loading_info=True)
    missing, sizes = len(info["missing_keys"]), len(info["mismatched_keys"])
    print("CLASS", type(model).__name__, "MISSING", missing, "SIZES", sizes)
"""


def _tensors(folder: Path, prefixes: tuple[str, ...]) -> dict[str, tuple[str, bytes]]:
    """Each tensor under `prefixes`, by name: its dtype and its bytes."""
    found = {}
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(file, "pt") as f:
            for name in f.keys():  # noqa: SIM118 (a safetensors file is not a dict)
                if name.startswith(prefixes):
                    tensor = f.get_tensor(name)
                    found[name] = (str(tensor.dtype), tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return found


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("qwen2_5_vl", "fp8"), ("llava", "fp8"), ("llava", "int4_awq")],
)
def test_a_vlm_release_quantizes_the_language_model_and_keeps_the_vision_tower(
    name: str, fmt: str, family, builds, publisher: Publisher, hubsim, tmp_path: Path
) -> None:
    folder, upstream = family(name)
    planned = plan(facts_from_dir(folder), [target_for(90)])
    assert fmt in {e.format for e in planned.targets[0].eligible}, planned.targets[0].skipped
    assert "gptq" in {s.format for s in planned.targets[0].skipped}
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    build = builds.get(upstream.repo_id, upstream.revisions[0], fmt, cwd=cwd)
    assert list(cwd.iterdir()) == [], "the build left files where it was started"
    manifest = Manifest.read(build / "manifest.json")
    assert manifest.validation is not None and manifest.validation.ok, manifest.validation
    assert manifest.validation.sample is not None and manifest.validation.sample.new_tokens > 0
    quantize = next(stage.details for stage in manifest.stages if stage.name == "quantize")
    assert quantize["not_quantized_modules"] == list(_KEPT[name])
    image = quantize["image_sample"]
    if name == "llava":  # its CLIP image processor runs without torchvision: the quantized model answers
        assert image["new_tokens"] > 0, image
    else:  # Qwen2.5-VL's processor needs torchvision: the record says so rather than skip it silently
        assert "Torchvision" in image["not_run"], image

    repo_id = f"{hubsim.user}/vlm-{name.replace('_', '-')}-{fmt}-{upstream.revisions[0][:6]}"
    result = publisher.publish(build, repo_id=repo_id)
    assert result.status is ReleaseStatus.PUBLISHED
    local = Path(
        snapshot_download(repo_id, endpoint=hubsim.url, token=hubsim.token, local_dir=tmp_path / "dl")
    )
    vision = _tensors(folder, _VISION[name])
    assert vision and _tensors(local, _VISION[name]) == vision, "the vision weights are the upstream's bytes"
    for file in _PROCESSOR_FILES[name]:
        assert (local / file).read_bytes() == (folder / file).read_bytes(), file
    readme = (local / "README.md").read_text()
    assert "the vision tower and projector, as the upstream stores them (16-bit bfloat16)" in readme
    asks_image = f'"image_url": {{"url": "{IMAGE_URL}"}}' in readme
    # vLLM's snippet (fp8) asks about an image; TensorRT-LLM's (int4_awq's one runtime) has no image form
    assert asks_image is (fmt == "fp8"), "the card's snippets ask about an image where the runtime has one"

    env = os.environ | {
        "HF_ENDPOINT": hubsim.url,
        "HF_TOKEN": hubsim.token,
        "HF_HUB_CACHE": str(tmp_path / "c"),
    }
    run = subprocess.run(
        [sys.executable, "-c", _LOAD, repo_id, fmt], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    architecture = facts_from_dir(folder).architectures[0]
    assert f"ARCH {architecture}" in run.stdout
    if fmt == "fp8":
        assert f"CLASS {architecture} MISSING 0 SIZES 0" in run.stdout

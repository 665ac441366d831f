"""Cards rendered from real build manifests: one per canonical format, every one free of placeholders, with
metadata that huggingface_hub parses and hubsim's validate-yaml accepts, and values taken from the manifest;
every line about runtimes and GPUs is the runtime table's own cell.

fp8, int4_awq, int8_sq and gptq are real CPU builds. The other formats (w4a8_awq, nvfp4) and a build with a
TensorRT engine need a GPU or TensorRT-LLM, which this machine lacks: their manifests are a real build's
manifest with only the format's own fields changed. They test the card's logic for those formats, not a build.
"""

from __future__ import annotations

import httpx
import pytest
from huggingface_hub import ModelCard

from bot.eligibility.matrices import load_runtimes
from bot.publishing.cards import card_context, render_release_card
from bot.publishing.gptq_card import Byline
from bot.publishing.gpus import describe
from bot.publishing.upstream import Upstream
from builders.spec import Artifact, Device, EngineRecord, Manifest, Toolchain
from tests.publishing.example_card import EXAMPLE_PARAMETERS, serving_records

pytestmark = pytest.mark.slow

SEED_VENDOR_TEXT = (
    "Innova",
    "innova",
    "support@",
    "llama3-gptq",
    "- llama-3\n",  # the seed's tag line (an upstream named tiny-llama-3… must not trip it)
    "16GB+ VRAM",
    "Latency",
    "Throughput",
)


def _upstream(repo_id: str, revision: str, endpoint: str, **card: object) -> Upstream:
    meta = {
        "license": "other",
        "license_name": "tiny-llama-license",
        "license_link": "LICENSE",
        "language": ["en"],
    }
    return Upstream.from_card(repo_id, revision, {**meta, **card}, endpoint=endpoint, files=["LICENSE"])


def _variant(manifest: Manifest, fmt: str, quant_algo: str, **quant: object) -> Manifest:
    spec = manifest.spec.model_copy(update={"format": fmt})
    quantization = manifest.quantization.model_copy(update={"format": fmt, "quant_algo": quant_algo, **quant})
    return manifest.model_copy(update={"spec": spec, "quantization": quantization})


def _with_engine(manifest: Manifest) -> Manifest:
    """As the same build would record it on an H100 worker in TensorRT-LLM 1.2.0rc5's container: the engine,
    and the legacy checkpoint the engines stage exported for trtllm-build and publishes beside it."""
    label = "sm90_trt-llm-1.2.0rc5_cuda13.0"
    engine = EngineRecord(
        sm=90, status="built", path=f"trt-llm/engines/{label}", tensorrt_llm="1.2.0rc5", cuda="13.0"
    )
    files = [
        Artifact(path=path, size=size, sha256="0" * 64, kind=kind)
        for path, size, kind in (
            ("trt-llm/checkpoints/config.json", 2048, "config"),
            ("trt-llm/checkpoints/rank0.safetensors", 300_000, "checkpoint"),
            (f"trt-llm/engines/{label}/config.json", 2048, "config"),
            (f"trt-llm/engines/{label}/rank0.engine", 3_000_000, "engine"),
        )
    ]
    return manifest.model_copy(
        update={
            "engines": [engine],
            "artifacts": [*manifest.artifacts, *files],
            "device": Device(kind="cuda", name="NVIDIA H100 NVL", sm=90),
            "toolchain": Toolchain(python="3.12.3", modelopt="0.37.0", tensorrt_llm="1.2.0rc5", cuda="13.0"),
        }
    )


@pytest.fixture(scope="module")
def manifests(builds, upstream) -> dict[str, Manifest]:
    sha = upstream.revisions[0]
    real = {
        fmt: Manifest.read(builds.get(upstream.repo_id, sha, fmt) / "manifest.json")
        for fmt in ("fp8", "int4_awq", "int8_sq", "gptq")
    }
    return {
        **real,
        "w4a8_awq": _variant(real["int4_awq"], "w4a8_awq", "W4A8_AWQ"),
        "nvfp4": _variant(real["fp8"], "nvfp4", "NVFP4", group_size=16),
        "int4_awq+engine": _with_engine(real["int4_awq"]),
    }


def _render(manifest: Manifest, upstream: Upstream, hubsim) -> str:
    return render_release_card(
        manifest,
        upstream,
        repo_id=f"{hubsim.user}/release",
        endpoint=hubsim.url,
        byline=Byline("quantbot", None),
    )


@pytest.mark.parametrize(
    "name", ["fp8", "int4_awq", "gptq", "w4a8_awq", "nvfp4", "int8_sq", "int4_awq+engine"]
)
def test_card_for_every_format_is_complete_and_valid(name: str, manifests, upstream, hubsim) -> None:
    manifest = manifests[name]
    facts = _upstream(upstream.repo_id, manifest.spec.revision, hubsim.url)
    card = _render(manifest, facts, hubsim)

    assert "{{" not in card and "None" not in card
    meta = ModelCard(card).data.to_dict()
    assert meta["base_model"] == upstream.repo_id
    assert meta["base_model_relation"] == "quantized"
    assert meta["license"] == "other" and meta["license_name"] == "tiny-llama-license"
    assert meta["license_link"] == f"{hubsim.url}/{upstream.repo_id}/blob/{manifest.spec.revision}/LICENSE"
    assert meta["language"] == ["en"]
    assert manifest.spec.format in meta["tags"] or "gptq" in meta["tags"]
    answer = httpx.post(f"{hubsim.url}/api/validate-yaml", json={"content": card, "repoType": "model"})
    assert answer.status_code == 200 and answer.json()["errors"] == []


def test_cpu_build_card_says_what_was_measured_and_nothing_else(manifests, upstream, hubsim) -> None:
    manifest = manifests["int4_awq"]
    card = _render(manifest, _upstream(upstream.repo_id, manifest.spec.revision, hubsim.url), hubsim)
    ppl = manifest.validation.perplexity

    assert f"| **Quantized With** | ModelOpt {manifest.quantization.producer_version} |" in card
    assert "optimized for TensorRT-LLM" not in card and "used for quantization" not in card
    # only the runtimes that load INT4-AWQ get a snippet: TensorRT-LLM's PyTorch backend, not vLLM
    assert "### TensorRT-LLM (PyTorch backend)" in card and "### vLLM" not in card
    assert "| vLLM | no | — | vLLM's ModelOpt loader accepts the quant_algo values" in card
    # B200 does not run INT4-AWQ (hardware matrix, TensorRT-LLM's W4A16 GEMM), so no line names it; no engine
    assert "B200" not in card and "Blackwell GPUs" not in card and "Engine fails to load" not in card
    assert f"| **Quantized On** | CPU ({manifest.device.name}) |" in card
    assert f"| **Calibration Size** | {manifest.quantization.calibration.samples} samples |" in card
    assert f"{ppl.base:.3f}" in card and f"{ppl.quantized:.3f}" in card
    assert "No TensorRT engine was built for this release (TensorRT-LLM is not installed" in card
    # No format-wide minimum: the GPU line is the runtime's cell. No engine path (a unified checkpoint that
    # trtllm-build cannot read), so no advice to build engines.
    assert "Compute Capability" not in card
    assert (
        "- **GPU (TensorRT-LLM (PyTorch backend))**: sm80, sm86, sm87, sm89, sm90: Ampere, Ada Lovelace and "
        "Hopper GPUs (e.g. A100, L40S, RTX 4090, H100, H200)" in card
    )
    assert "build engines" not in card.lower() and "build one with `trtllm-build`" not in card
    # No engine, no GPU, no TensorRT-LLM here: those rows are left out, never guessed.
    for absent in (
        "**GPU** |",
        "**SM Architecture**",
        "**Max Batch Size**",
        "**TensorRT-LLM Version**",
        "engines/sm",
    ):
        assert absent not in card


def test_int8_sq_card_publishes_the_legacy_checkpoint_and_runs_its_engine(
    manifests, upstream, hubsim
) -> None:
    manifest = manifests["int8_sq"]
    card = _render(manifest, _upstream(upstream.repo_id, manifest.spec.revision, hubsim.url), hubsim)

    # what the release is: TensorRT-LLM's legacy checkpoint, no weights at the root
    assert "This is an INT8-SQ quantized version" in card
    assert (
        "This release is TensorRT-LLM's legacy checkpoint in `trt-llm/checkpoints/` (`W8A8_SQ_PER_CHANNEL`)"
        in card
    )
    assert "The repository root holds the base model's config and tokenizer only" in card
    assert "one checkpoint" not in card and "for TensorRT-LLM versions that read it" not in card
    tree = (  # the uploaded files: the legacy checkpoint carries the upstream's metadata files too
        "  checkpoints/\n    config.json\n    generation_config.json\n    rank0.safetensors\n"
        "    special_tokens_map.json\n    tokenizer.json\n    tokenizer_config.json\n"
    )
    assert tree in card
    assert "model.safetensors" not in card and "hf_quant_config.json" not in card
    # how to run it: build the engine, then run it; nothing advises the PyTorch backend
    assert "### trtllm-build (TensorRT-LLM ≤ 1.2)" in card and "trtllm-build --checkpoint_dir" in card
    assert "from tensorrt_llm._tensorrt_engine import LLM" in card
    assert 'llm = LLM(model="engine", tokenizer="release/trt-llm/checkpoints")' in card
    assert "### TensorRT-LLM (PyTorch backend)" not in card
    assert "No engine is included: build one with `trtllm-build` on the GPU that will run it" in card
    assert "the repo holds TensorRT-LLM's legacy checkpoint only, in `trt-llm/checkpoints/`" in card
    assert "Reduce `--max_batch_size` or `--max_seq_len` when building the engine with `trtllm-build`" in card
    assert "Blackwell GPUs" not in card  # INT8 SmoothQuant GEMMs stop at sm90
    assert (
        "- **Quantized**: the linear layers of every decoder block (attention and MLP projections): "
        "weights in INT8 (one scale per output channel) and activations in INT8" in card
    )


def test_engine_build_card_names_the_engine_gpu_and_limits(manifests, upstream, hubsim) -> None:
    manifest = manifests["int4_awq+engine"]
    card = _render(manifest, _upstream(upstream.repo_id, manifest.spec.revision, hubsim.url), hubsim)

    assert "  engines/\n    sm90_trt-llm-1.2.0rc5_cuda13.0/\n" in card  # the uploaded files' tree
    assert "Engine fails to load on different GPU" in card
    assert "| **SM Architecture** | sm90 |" in card and "| **GPU** | NVIDIA H100 NVL |" in card
    assert f"| **Max Batch Size** | {manifest.spec.engine.max_batch_size} |" in card
    assert "- **GPU (engines in this release)**: sm90 only (built on NVIDIA H100 NVL, Hopper)" in card
    # an engine path exists here (the engines stage published the legacy checkpoint it built from)
    assert (
        "INT4-AWQ engines run only on the SM they were built for: for another GPU (sm80, sm86, sm87, sm89, "
        "sm90; e.g. A100, L40S, RTX 4090, H100, H200), build one from `trt-llm/checkpoints/` with "
        "`trtllm-build` (TensorRT-LLM ≤ 1.2)" in card
    )
    assert "sm90+" not in card and "B200" not in card


@pytest.mark.parametrize("name", ["fp8", "int4_awq", "gptq", "w4a8_awq", "nvfp4", "int8_sq"])
def test_the_cards_print_the_runtime_table_cell_for_cell(name: str, manifests, upstream, hubsim) -> None:
    """Every runtime row, GPU line and snippet of a card is its cell of runtimes.yaml, for every format."""
    manifest = manifests[name]
    card = _render(manifest, _upstream(upstream.repo_id, manifest.spec.revision, hubsim.url), hubsim)
    gptq = name == "gptq"
    for runtime, cell in load_runtimes().cells(manifest.spec.format):
        detail = cell.note if cell.loads else cell.why
        assert f"| {runtime.name} | {cell.verdict} | {cell.sm_text} | {detail} | {cell.source} |" in card
        gpu_line = f"- **{runtime.name}**: " if gptq else f"- **GPU ({runtime.name})**: "
        assert (f"{gpu_line}{describe(cell)}\n" in card) == cell.loads, runtime.id
        assert (f"\n### {runtime.name}\n" in card) == cell.loads, runtime.id
        assert (f"**Do not load this release with {runtime.name}**: {cell.why}." in card) == cell.wrong


@pytest.mark.parametrize(
    ("name", "opening"),
    [
        ("fp8", "This is an FP8 quantized"),
        ("int8_sq", "This is an INT8-SQ quantized"),
        ("int4_awq", "This is an INT4-AWQ quantized"),
        ("w4a8_awq", "This is a W4A8-AWQ quantized"),
        ("nvfp4", "This is an NVFP4 quantized"),
        ("gptq", "This is a 4-bit GPTQ quantized"),
    ],
)
def test_cards_open_with_the_right_article(name: str, opening: str, manifests, upstream, hubsim) -> None:
    manifest = manifests[name]
    card = _render(manifest, _upstream(upstream.repo_id, manifest.spec.revision, hubsim.url), hubsim)
    assert opening in card


def test_a_card_names_the_quantized_scope_from_the_exported_config(manifests, upstream, hubsim) -> None:
    fp8 = manifests["fp8"]
    card = _render(fp8, _upstream(upstream.repo_id, fp8.spec.revision, hubsim.url), hubsim)
    excluded = fp8.quantization.config["quantization"]["exclude_modules"]
    assert excluded == ["lm_head", "model.embed_tokens"]  # ModelOpt's own list, read from the build
    assert (
        "- **Quantized**: the linear layers of every decoder block (attention and MLP projections): "
        "weights and activations in FP8 (E4M3, one scale per tensor)" in card
    )
    assert (
        "- **Not quantized**: `lm_head`, `model.embed_tokens`, the normalization layers, the KV cache" in card
    )
    gptq = manifests["gptq"]
    card = _render(gptq, _upstream(upstream.repo_id, gptq.spec.revision, hubsim.url), hubsim)
    assert (
        "weights in 4-bit integers (GPTQ, one scale and zero point per group of 128 input channels)" in card
    )
    assert (
        "- **Not quantized**: `lm_head`, the token embeddings, the normalization layers, the KV cache" in card
    )


def test_an_fp8_card_warns_that_transformers_loads_it_wrongly(manifests, upstream, hubsim) -> None:
    manifest = manifests["fp8"]
    card = _render(manifest, _upstream(upstream.repo_id, manifest.spec.revision, hubsim.url), hubsim)
    assert "| transformers + GPTQModel / optimum | no: loads wrongly | — |" in card
    assert "**Do not load this release with transformers + GPTQModel / optimum**: transformers has no" in card
    assert "generates unrelated text" in card
    # TGI's default loader takes the FP8 weights with their scales: it is advised, on the SMs it builds for
    assert "### Text Generation Inference" in card
    assert "- **GPU (Text Generation Inference)**: sm80, sm86, sm87, sm89, sm90:" in card


def test_a_chat_model_is_prompted_through_its_chat_template(manifests, upstream, hubsim) -> None:
    gptq = manifests["gptq"]
    assert gptq.source.chat_template  # the Llama-3-style upstream has one
    plain = gptq.model_copy(update={"source": gptq.source.model_copy(update={"chat_template": False})})
    facts = _upstream(upstream.repo_id, gptq.spec.revision, hubsim.url)
    plain, templated = _render(plain, facts, hubsim), _render(gptq, facts, hubsim)
    assert "apply_chat_template" not in plain and "llm.chat(" not in plain
    assert 'tokenizer("The future of AI is", return_tensors="pt")' in plain
    assert 'messages = [{"role": "user", "content": "The future of AI is"}]' in templated
    assert "tokenizer.apply_chat_template(" in templated and "outputs = llm.chat(messages" in templated
    assert "/v1/chat/completions" in templated and "/v1/chat/completions" not in plain


def test_card_context_supplies_exactly_the_parameters_of_the_seed_example(
    manifests, upstream, hubsim
) -> None:
    """The example test renders the template from a hand-written parameter set; this binds that set to
    what the publisher really passes, so the two cannot drift apart."""
    manifest = manifests["int4_awq+engine"]
    context = card_context(
        manifest,
        _upstream(upstream.repo_id, manifest.spec.revision, hubsim.url),
        repo_id="x/y",
        endpoint=hubsim.url,
        byline=Byline("quantbot"),
    )
    assert set(context) == set(EXAMPLE_PARAMETERS)


def test_gptq_card_replaces_the_seed_vendor_with_the_publisher(manifests, upstream, hubsim) -> None:
    manifest = manifests["gptq"]
    facts = _upstream(upstream.repo_id, manifest.spec.revision, hubsim.url)
    card = render_release_card(
        manifest,
        facts,
        repo_id="acme/tiny-GPTQ",
        endpoint=hubsim.url,
        byline=Byline("Acme Quant", "https://acme.test"),
    )
    ppl = manifest.validation.perplexity

    assert not [text for text in SEED_VENDOR_TEXT if text in card]
    assert "author={Acme Quant}" in card and "*Quantized by [Acme Quant](https://acme.test)*" in card
    assert f"| Base model ({upstream.repo_id}) | {ppl.base:.3f} |" in card
    assert f"| GPTQ 4-bit (this model) | {ppl.quantized:.3f} ({ppl.delta_pct:+.2f}%) |" in card
    assert 'model_id = "acme/tiny-GPTQ"' in card and 'LLM(model="acme/tiny-GPTQ")\n' in card
    assert "pip install transformers accelerate optimum gptqmodel" in card
    assert (
        "Minimal accuracy degradation" not in card and "Fast inference with specialized kernels" not in card
    )
    assert f"Perplexity changed by {ppl.delta_pct:+.2f}%" in card
    assert f"| GPTQ 4-bit (this model) | {ppl.quantized:.3f}" in card
    assert "Task Evaluation" not in card  # no task was evaluated, so the seed's table is left out


def test_gptq_card_without_measured_perplexity_has_no_perplexity_table(manifests, upstream, hubsim) -> None:
    manifest = manifests["gptq"]
    unmeasured = manifest.model_copy(
        update={"validation": manifest.validation.model_copy(update={"perplexity": None})}
    )
    card = _render(unmeasured, _upstream(upstream.repo_id, manifest.spec.revision, hubsim.url), hubsim)

    assert "Perplexity" not in card and "| Model | " not in card


def test_licence_with_a_standard_id_carries_no_name_or_link(manifests, upstream, hubsim) -> None:
    manifest = manifests["fp8"]
    facts = Upstream.from_card(
        upstream.repo_id, manifest.spec.revision, {"license": "apache-2.0"}, endpoint=hubsim.url
    )
    meta = ModelCard(_render(manifest, facts, hubsim)).data.to_dict()

    assert meta["license"] == "apache-2.0"
    assert "license_name" not in meta and "license_link" not in meta
    assert "language" not in meta  # the base model states none, so the release states none


def test_licence_link_absolute_stays_and_missing_falls_back_to_the_model_page(hubsim) -> None:
    link = "https://example.org/LICENSE.txt"
    absolute = Upstream.from_card(
        "o/m", "a" * 40, {"license": "other", "license_link": link}, endpoint=hubsim.url
    )
    bare = Upstream.from_card("o/m", "a" * 40, {"license": "other"}, endpoint=hubsim.url)

    assert absolute.licence_metadata() == {"license": "other", "license_name": "other", "license_link": link}
    assert bare.licence_metadata()["license_link"] == f"{hubsim.url}/o/m"


def test_the_card_never_reads_a_value_the_manifest_does_not_hold(manifests, upstream, hubsim) -> None:
    """Strip the optional measurements from a real manifest: the card shrinks, and still renders cleanly."""
    manifest = manifests["fp8"]
    bare = manifest.model_copy(update={"validation": None, "toolchain": None, "device": None, "wall_s": None})
    card = _render(bare, _upstream(upstream.repo_id, manifest.spec.revision, hubsim.url), hubsim)

    assert "{{" not in card and "None" not in card
    assert "## Validation" not in card and "**Build Time**" not in card and "**Quantized On**" not in card
    ModelCard(card)


def test_a_gated_base_model_carries_its_gate_prompt_and_a_note(manifests, upstream, hubsim) -> None:
    manifest = manifests["fp8"]
    prompt = "You agree to the Tiny Llama terms."
    facts = Upstream.from_card(
        upstream.repo_id,
        manifest.spec.revision,
        {"license": "llama3.1", "extra_gated_prompt": prompt},
        endpoint=hubsim.url,
        gated="manual",
    )
    card = _render(manifest, facts, hubsim)
    meta = ModelCard(card).data.to_dict()

    assert meta["license"] == "llama3.1" and meta["extra_gated_prompt"] == prompt
    assert "Access to the base model is gated" in card
    answer = httpx.post(f"{hubsim.url}/api/validate-yaml", json={"content": card, "repoType": "model"})
    assert answer.json()["errors"] == []


@pytest.mark.parametrize("name", ["gptq", "fp8"])
def test_the_tested_on_table_shows_each_sms_serving_check(name: str, manifests, upstream, hubsim) -> None:
    manifest = manifests[name]
    facts = _upstream(upstream.repo_id, manifest.spec.revision, hubsim.url)
    assert "## Tested on" not in _render(manifest, facts, hubsim)  # no serving check ran: no table
    checked = manifest.model_copy(update={"serving": serving_records("c" * 40)[:2]})
    card = _render(checked, facts, hubsim)
    table = card.split("## Tested on")[1].split("## Usage")[0]
    assert f"at `{'c' * 12}`" in table
    assert "| NVIDIA H100 80GB HBM3 | sm90 | vLLM 0.34.0 | yes | 128.0 | 41.2 s | 3.00 GiB |" in table
    assert "| — | sm89 | vLLM | not run: vLLM is not installed on this worker | — | — | — |" in table
    answer = httpx.post(f"{hubsim.url}/api/validate-yaml", json={"content": card, "repoType": "model"})
    assert answer.status_code == 200 and answer.json()["errors"] == []

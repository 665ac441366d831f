"""The README's "Your own model on a local Hub" steps, read from README.md and run as printed, in bash.

They run in a network namespace of their own (`unshare`), so that the ports they name (8765, 8000) are
theirs whatever else runs on the machine, with a home folder of their own and none of the caller's HF_* or
QUANTBOT_* variables: a new user's shell. The one thing the test adds is what a user does between the
lines without typing it: waiting for a server started with `&` to listen before the next line. A settings
file (`QUANTBOT_CONFIG`) only makes the GPTQ calibration small enough for a test, and the machine's
compiled GPTQModel kernels (`~/.cache/gptqmodel`) are shared with that home, as a user's machine keeps
them: compiling them again takes minutes on a busy 2-core machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
HEADING = "### Your own model on a local Hub"
RELEASE = "quantbot/my-model-GPTQ"
WAIT = """_wait_for_port() {
  for _ in $(seq 1 600); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "nothing listens on port $1" >&2; return 1
}
"""
CHECKS = f"""
for _ in $(seq 1 600); do
  if curl -sf "$HF_ENDPOINT/api/models/{RELEASE}/tree/main?recursive=true" -o release-tree.json \\
     && grep -q '"README.md"' release-tree.json && grep -q '"xetHash"' release-tree.json; then break; fi
  sleep 1
done
curl -sf "$HF_ENDPOINT/api/models/alice/my-model/tree/main?recursive=true" -o upstream-tree.json
HF_TOKEN= hf download {RELEASE} --local-dir release >/dev/null
kill $(jobs -p)
wait || true
"""
SETTINGS = """build_recipe = {calib_samples = 32, calib_seq_len = 128}
build_validation = {eval_tokens = 512, eval_seq_len = 128}
"""


def readme_steps() -> str:
    """The bash block under the README's heading, each server started with `&` followed by a wait."""
    section = README.read_text().split(HEADING, 1)[1]
    block = section.split("```bash\n", 1)[1].split("\n```", 1)[0]
    lines = []
    for line in block.splitlines():
        lines.append(line)
        if re.search(r"&\s*(#.*)?$", line) and (port := re.search(r"--port (\d+)", line)):
            lines.append(f"_wait_for_port {port.group(1)}")
    return "\n".join(lines) + "\n"


def test_the_readme_block_is_found_and_starts_its_servers():
    steps = readme_steps()
    assert "hf upload alice/my-model ./my-model" in steps and "quantbot webhooks sync" in steps
    assert steps.count("_wait_for_port") == 2
    assert "HF_HUB_DISABLE_XET" not in README.read_text().split(HEADING, 1)[1].split("```\n", 1)[0]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_readme_local_hub_steps_release_a_model_as_printed(tiny_model: Path, tmp_path: Path) -> None:
    if subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode != 0:
        pytest.fail("this test needs `unshare -rn` (a network namespace of its own) to run the README")
    work = tmp_path / "work"
    shutil.copytree(tiny_model, work / "my-model")
    (work / "settings.toml").write_text(SETTINGS)
    kernels = Path.home() / ".cache" / "gptqmodel"
    if kernels.is_dir():
        (work / "home" / ".cache").mkdir(parents=True)
        (work / "home" / ".cache" / "gptqmodel").symlink_to(kernels)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "QUANTBOT_"))}
    env |= {
        "HOME": str(work / "home"),
        "XDG_CACHE_HOME": str(work / "home" / ".cache"),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "/usr/bin:/bin")]),
        "QUANTBOT_CONFIG": str(work / "settings.toml"),
    }
    script = "set -euo pipefail\nip link set lo up\n" + WAIT + readme_steps() + CHECKS
    (work / "steps.sh").write_text(script)
    with (work / "output.log").open("wb") as log:
        done = subprocess.run(
            ["unshare", "-rn", "bash", "steps.sh"], cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    output = (work / "output.log").read_text(errors="replace")
    assert done.returncode == 0, output[-6000:]

    upstream = {e["path"]: e for e in json.loads((work / "upstream-tree.json").read_text())}
    assert "xetHash" in upstream["model.safetensors"], "hf upload went through Xet"
    release = {e["path"]: e for e in json.loads((work / "release-tree.json").read_text())}
    weights = [e for p, e in release.items() if p.endswith(".safetensors")]
    assert weights and all("xetHash" in e for e in weights), "the bot published its weights through Xet"
    assert (work / "release" / "config.json").exists() and (work / "release" / "README.md").exists()
    card = (work / "release" / "README.md").read_text()
    assert "base_model: alice/my-model" in card and "gptq" in card.lower()

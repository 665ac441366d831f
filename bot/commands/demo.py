"""`quantbot demo`: the whole bot, offline, in a few minutes: a release by webhook, then one by slash command.

It starts hubsim (the local Hub) with two users, `alice` (a model author) and `quantbot` (the bot), publishes
a tiny Llama as `alice/tiny-llama`, starts the bot (SQLite and local builds in a temporary data dir)
watching that repo for GPTQ builds, registers the bot's webhook on hubsim, and pushes a new revision: the
webhook fires, the bot plans, builds and publishes. Then alice publishes a fine-tune and asks for a GPTQ
build with `/quantize gptq` in a discussion, and the bot answers there. Then the demo prints, once, what to
open (the releases, the status page, alice's token and the `export` line for a shell) and stays quiet while
hubsim and the bot keep running for a look around until Ctrl+C; `--exit` stops everything at once instead.

`--executor celery` builds on two `quantbot worker`s it starts; `--executor hf-jobs` sends each build task to
hubsim as a Hugging Face Job (hubsim runs it as a local process) under the org `quantbot-jobs`, whose members
are the bot and alice, so that alice's token opens the Job pages it prints.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from tqdm import tqdm

from bot.errors import QuantbotError, UsageError

T = TypeVar("T")

UPSTREAM = "alice/tiny-llama"
FINE_TUNE = "alice/tiny-llama-instruct"
JOBS_NAMESPACE = "quantbot-jobs"  # the org the bot's Jobs run under (hf-jobs): the bot and alice are members
BUILD_TIMEOUT_S = 900.0


class DemoError(QuantbotError):
    """A step of the demo did not happen in time or failed; the message says which."""


@click.command()
@click.option("--exit", "exit_", is_flag=True, help="Stop hubsim and the bot when the demo is over.")
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port for hubsim (0: any free port).",
)
@click.option("--keep", is_flag=True, help="Keep the temporary data directory (builds, database) afterwards.")
@click.option(
    "--executor",
    type=click.Choice(["local", "celery", "hf-jobs"]),
    default="local",
    show_default=True,
    help="celery: two `quantbot worker`s (sm90, sm89, on the CPU) build, through the Redis at broker_url; "
    "hf-jobs: each task runs as a Job on hubsim (flavours of sm90 and sm89, as local processes).",
)
def command(exit_: bool, port: int, keep: bool, executor: str) -> None:
    """Run hubsim and the bot, and watch a model get released by webhook and by slash command."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise UsageError('the demo builds a real model and needs the quant extra: pip install -e ".[quant]"')
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="quantbot-demo-"))
    # huggingface_hub reads these when first imported, which happens below: the demo never touches ~/.cache.
    os.environ.update(
        HF_HOME=str(root / "hf"), HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1"
    )
    os.environ.pop("HF_TOKEN", None)
    demo = _Demo(root, port, executor)
    _CLOCK.start()
    try:
        demo.run()
        _CLOCK.stop()  # the story is told: from here on the screen holds still
        click.echo(f"\nThe demo took {time.monotonic() - started:.0f}s.")
        if not exit_:
            click.echo(demo.summary())
            demo.wait_for_ctrl_c()
    finally:
        _CLOCK.stop()
        demo.stop()
        if keep:
            click.echo(f"Data kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


class _Demo:
    def __init__(self, root: Path, port: int, executor: str = "local") -> None:
        self.root = root
        self.port = port
        self.executor = executor
        self.workers: list[subprocess.Popen[bytes]] = []
        self.hubsim: Any = None
        self.server: Any = None
        self.alice_token = "hf_alice_" + secrets.token_hex(8)
        self.bot_token = "hf_quantbot_" + secrets.token_hex(8)
        self.releases: list[str] = []

    # ------------------------------------------------------------------------------------------ the story

    def run(self) -> None:
        from bot.hubsim import Directory, HubService, HubsimServer, Org, User
        from bot.hubsim.datasets import publish_calibration_dataset
        from builders.spec import DEFAULT_CALIBRATION

        _step(f"starting hubsim (the local Hub) and making a tiny Llama in {self.root}")
        orgs = [Org(JOBS_NAMESPACE, ["quantbot", "alice"])] if self.executor == "hf-jobs" else []
        users = Directory([User("alice", self.alice_token), User("quantbot", self.bot_token)], orgs)
        hub = HubService(users)
        calibration = publish_calibration_dataset(hub)
        self.hubsim = HubsimServer(hub, port=self.port).start()
        os.environ["HF_ENDPOINT"] = self.hubsim.url  # before huggingface_hub is imported, which reads it
        from huggingface_hub import HfApi

        alice = HfApi(endpoint=self.hubsim.url, token=self.alice_token)
        _step(f"hubsim (the local Hub) is up at {self.hubsim.url}, with users alice and quantbot")
        _step(
            f"it holds the calibration dataset {DEFAULT_CALIBRATION} at {calibration[:12]} (a small stand-in)"
        )

        _CLOCK.doing("making the tiny Llama (random weights, a trained tokenizer) in a worker process")
        model = self._tiny_model()
        from builders.tiny import push_upstream

        first = push_upstream(model, UPSTREAM, endpoint=self.hubsim.url, token=self.alice_token)
        _step(f"alice published {UPSTREAM} at {first[:12]}")

        _CLOCK.doing("starting the bot")
        self._start_bot()
        bot = self.server.bot
        url = self.hubsim.url
        second = alice.upload_file(
            path_or_fileobj=b"# Tiny Llama\n\nRevision 2: a better model card.\n",
            path_in_repo="NOTES.md",
            repo_id=UPSTREAM,
            commit_message="Revision 2",
        ).oid
        _step(f"alice pushed revision {second[:12]} of {UPSTREAM}: the Hub sends the bot a webhook")
        job = _wait(
            lambda: next(iter(bot.store.jobs.list(repo=UPSTREAM)), None), 60, "the webhook's build job"
        )
        _step(f"the bot planned {UPSTREAM}@{second[:12]} and queued job {job.id}: {job.label}")
        job = self._follow(job.id)
        release = self._release(job)
        _step(f"released by webhook: {release.url}")
        self.releases.append(release.url)
        self._who_ran(job)
        card = alice.hf_hub_download(release.repo_id, "README.md")
        click.echo("\n----- the release's model card (README.md) -----")
        click.echo(Path(card).read_text(encoding="utf-8").rstrip())
        click.echo("----- end of card -----\n")

        push_upstream(
            model, FINE_TUNE, endpoint=url, token=self.alice_token, card_data={"base_model": UPSTREAM}
        )
        _step(f"alice published a fine-tune, {FINE_TUNE}, which the bot does not watch")
        discussion = alice.create_discussion(
            FINE_TUNE, "GPTQ build, please", description="Could I get a GPTQ build?"
        )
        alice.comment_discussion(FINE_TUNE, discussion.num, "/quantize gptq")
        _step(f"alice commented `/quantize gptq` in {url}/{FINE_TUNE}/discussions/{discussion.num}")
        reply = _wait(lambda: self._bot_reply(alice, discussion.num), 120, "the bot's reply")
        click.echo(
            "\n----- the bot's reply -----\n" + reply.content.strip() + "\n---------------------------"
        )
        job = _wait(lambda: next(iter(bot.store.jobs.list(repo=FINE_TUNE)), None), 30, "the command's job")
        job = self._follow(job.id)
        self.releases.append(self._release(job).url)
        self._who_ran(job)
        final = _wait(lambda: self._final_reply(alice, discussion.num, reply.id), 60, "the reply's last edit")
        click.echo("\n----- the bot's reply, edited as the build went -----\n" + final.strip())
        click.echo("-----------------------------------------------------")

    def summary(self) -> str:
        """What to open once the demo is over, said once: the Hub, the releases, the status page, alice's
        token (and, for Jobs, where their pages are), and the line that points a shell's `hf` at hubsim."""
        hub = self.hubsim.url
        lines = [
            "",
            "Everything keeps running until Ctrl+C:",
            f"  the local Hub (hubsim)  {hub}/",
            *(f"  a release               {url}" for url in self.releases),
            f"  the bot's status page   {self.server.url}/",
            f"  alice's token           {self.alice_token}   (sign in at {hub}/login to see what she sees)",
        ]
        if self.executor == "hf-jobs":
            lines.append(
                f"  the bot's Jobs          {hub}/jobs/{JOBS_NAMESPACE}   (shown to the members of "
                f"{JOBS_NAMESPACE}, the bot and alice: sign in with alice's token)"
            )
        lines += [
            "Use the local Hub from a shell as alice (hf, huggingface_hub, curl):",
            f"  export HF_ENDPOINT={hub} HF_TOKEN={self.alice_token}",
            f"  curl {hub}/api/models?author=quantbot",
            "Press Ctrl+C to stop.",
        ]
        return "\n".join(lines)

    def wait_for_ctrl_c(self) -> None:
        from bot.threaded_server import wait_for_stop_signal

        wait_for_stop_signal()
        click.echo("Stopping.")

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        for worker in self.workers:
            worker.send_signal(signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
        if self.hubsim is not None:
            self.hubsim.stop()

    # ---------------------------------------------------------------------------------------------- steps

    def _tiny_model(self) -> Path:
        """Made in a child process: the demo's own process runs the bot, which never imports torch."""
        dest = self.root / "tiny-llama"
        code = "import sys; from builders.tiny import build_tiny_llama as b; b(sys.argv[1])"
        done = subprocess.run([sys.executable, "-c", code, str(dest)], capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise DemoError(f"could not make the tiny model: {last}")
        return dest

    def _start_bot(self) -> None:
        from bot.commands.webhooks import sync_webhook
        from bot.runtime import Bot, BotServer
        from bot.settings import load_settings
        from state import ApprovalMode, WatchKind

        settings = load_settings(
            None,
            data_dir=self.root / "bot",
            hf_endpoint=self.hubsim.url,
            hf_token=self.bot_token,
            webhook_secret=secrets.token_hex(16),
            approval="auto",
            command_namespaces=["alice"],
            **({"jobs_namespace": JOBS_NAMESPACE} if self.executor == "hf-jobs" else {}),
            build_recipe={"calib_samples": 32, "calib_seq_len": 128},  # the Hub's default dataset
            build_validation={"eval_tokens": 512, "eval_seq_len": 128},
            lease_s=30,
            runtime_envs=False,  # the demo runs offline: no pip installs of the runtimes' transformers lines
            executor=self.executor,
            **({"target_sms": [90, 89]} if self.executor != "local" else {}),
        )
        if self.executor == "celery":
            self._start_workers(settings)
        bot = Bot.assemble(settings)
        bot.store.watches.add(WatchKind.REPO, UPSTREAM, formats=["gptq"], approval=ApprovalMode.AUTO)
        self.server = BotServer(bot, port=0).start()
        hook = sync_webhook(bot.hub, bot.store, settings, self.server.url + "/webhooks/hub")
        watched = ", ".join(f"{w['type']} {w['name']}" for w in hook.watched)
        _step(f"the bot is up at {self.server.url}, watching {UPSTREAM} for GPTQ builds")
        _step(f"watch its builds on the status page: {self.server.url}/")
        _step(f"its webhook on hubsim ({hook.action}) watches {watched}")
        if self.executor == "hf-jobs":
            _step(
                "each build task goes to hubsim as a Hugging Face Job (`quantbot task`, the token as a Job "
                f"secret) on the flavour of its SM, under the org {JOBS_NAMESPACE} (members: the bot and "
                "alice, so alice's token opens the Jobs' pages); hubsim runs it as a local process"
            )

    def _start_workers(self, settings: Any) -> None:
        """Two `quantbot worker`s on this machine's CPU, standing for an sm90 and an sm89 GPU host."""
        from bot.host.celery_app import broker_answers, make_app

        if not broker_answers(make_app(settings)):
            raise DemoError(
                "--executor celery needs the Redis at broker_url (QUANTBOT_BROKER_URL): it does not answer"
            )
        env = os.environ | {
            "HF_ENDPOINT": self.hubsim.url,
            "HF_TOKEN": self.bot_token,
            "QUANTBOT_LOG_LEVEL": "INFO",
            "QUANTBOT_BROKER_URL": settings.broker(),
            # the demo builds GPTQ only: its workers keep a spare for that and for engines, not ModelOpt
            "QUANTBOT_WARM_TOOLCHAINS": os.environ.get("QUANTBOT_WARM_TOOLCHAINS", "gptq,engine"),
        }
        logs = []
        for sm in (90, 89):
            log = self.root / f"worker-sm{sm}.log"
            argv = [sys.executable, "-c", "from bot.cli import main; main()", "worker", "--sm", str(sm)]
            data = {"QUANTBOT_DATA_DIR": str(self.root / f"worker-sm{sm}")}
            self.workers.append(
                subprocess.Popen(argv, stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env | data)
            )
            logs.append(log)
        _wait(
            lambda: all(" ready." in p.read_text(errors="replace") for p in logs) or None, 60, "the workers"
        )
        _step(
            "two `quantbot worker`s are up on this CPU, standing for an sm90 and an sm89 host (queues sm90, "
            "sm89 and quantize)"
        )
        if "gptq" in env["QUANTBOT_WARM_TOOLCHAINS"].split(","):
            from bot.host.spares import warm

            _CLOCK.doing("the workers' spare build processes import torch, transformers and GPTQModel")
            folders = [self.root / f"worker-sm{sm}" for sm in (90, 89)]
            _wait(lambda: all(warm(f, "gptq") for f in folders) or None, 120, "the workers' spares")
            _step("each worker has a build process with its toolchain imported, waiting for a build")

    def _who_ran(self, job: Any) -> None:
        """Where each task of a job ran: its worker and queue, or its Job's URL and flavour."""
        for task in self.server.bot.store.tasks.of_job(job.id):
            what = "quantize" if task.kind == "quantize" else f"engine sm{task.sm}"
            where = f"queue {task.queue:<8} worker {task.worker}"
            if self.executor == "hf-jobs":
                where = f"Job {task.worker} on {task.queue}"
            click.echo(f"    {what:<11} {where}: {task.state.value}, {task.message}")

    def _follow(self, job_id: int) -> Any:
        """Show the job's progress as it moves, a bar per build stage; return it once it is finished."""
        store = self.server.bot.store
        deadline = time.monotonic() + BUILD_TIMEOUT_S
        with _StageBars(job_id) as bars:
            while time.monotonic() < deadline:
                job = store.jobs.get(job_id)
                bars.show(job.status.value, job.progress, job.progress_message or "")
                if job.terminal:
                    if job.status.value != "published":
                        raise DemoError(
                            f"job {job.id} ended {job.status.value}: {job.error or 'no reason recorded'}"
                        )
                    return job
                time.sleep(0.5)
        raise DemoError(f"job {job_id} did not finish within {BUILD_TIMEOUT_S:.0f}s")

    def _release(self, job: Any) -> Any:
        releases = self.server.bot.store.releases.find(build_key=job.build_key)
        if not releases:
            raise DemoError(f"job {job.id} is published but recorded no release")
        return releases[-1]

    def _bot_reply(self, alice: Any, num: int) -> Any:
        details = alice.get_discussion_details(FINE_TUNE, num)
        return next((e for e in details.events if e.type == "comment" and e.author == "quantbot"), None)

    def _final_reply(self, alice: Any, num: int, comment_id: str) -> str | None:
        details = alice.get_discussion_details(FINE_TUNE, num)
        reply = next((e for e in details.events if e.id == comment_id), None)
        return reply.content if reply is not None and "All done" in reply.content else None


def _step(text: str) -> None:
    _CLOCK.say(f"==> {text}")


class _Clock:
    """Says what the demo is doing at least every `QUIET_S` seconds, so a first run never looks stuck."""

    QUIET_S = 5.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._last = self._since = time.monotonic()
        self._doing = "starting"

    def say(self, text: str) -> None:
        with self._lock:
            tqdm.write(text)
            self._last = time.monotonic()

    def moved(self) -> None:
        """Something visible changed (a progress bar was redrawn): that counts as saying something."""
        with self._lock:
            self._last = time.monotonic()

    def doing(self, what: str) -> None:
        """What the next "…" line names; its clock restarts only when that changes."""
        with self._lock:
            if what != self._doing:
                self._doing, self._since = what, time.monotonic()

    def start(self) -> None:
        self._stop.clear()
        threading.Thread(target=self._run, name="demo-clock", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            now = time.monotonic()
            if now - self._last >= self.QUIET_S:
                self.say(f"    … {self._doing} ({now - self._since:.0f} s)")


_CLOCK = _Clock()


class _StageBars:
    """One tqdm bar per build stage (on a terminal), filled from the job's progress; plain lines otherwise."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self.tty = sys.stdout.isatty()
        self.bar: tqdm[Any] | None = None
        self.stage = ""
        self.shown = ""

    def show(self, status: str, progress: float, message: str) -> None:
        stage, _, detail = message.partition(": ") if ": " in message else (status, "", message)
        fraction = (
            _within_stage(stage, progress) if status == "running" else 1.0 if status != "queued" else 0.0
        )
        _CLOCK.doing(f"job {self.job_id}: {status} · {stage}")
        if not self.tty:
            line = f"    job {self.job_id}: {status}" + (f" · {progress:4.0%} · {message}" if message else "")
            if line != self.shown:
                _CLOCK.say(line)
                self.shown = line
            return
        if stage != self.stage:
            self._close(finished=status != "failed")  # the job moved on: the stage it left is done
            self.stage = stage
            self.bar = tqdm(
                total=100,
                desc=f"    job {self.job_id} {stage:<9}",
                leave=True,
                file=sys.stdout,
                bar_format="{desc} {bar} {n:3.0f}% {elapsed}{postfix}",
            )
        assert self.bar is not None
        self.bar.n = round(fraction * 100)
        self.bar.set_postfix_str(detail[:60], refresh=False)
        self.bar.refresh()
        _CLOCK.moved()

    def _close(self, finished: bool = False) -> None:
        if self.bar is not None:
            if finished and self.bar.n < 100:
                self.bar.n = 100
                self.bar.refresh()
            self.bar.close()
            self.bar = None

    def __enter__(self) -> _StageBars:
        return self

    def __exit__(self, *exc: object) -> None:
        self._close(finished=exc[0] is None)


def _within_stage(stage: str, overall: float) -> float:
    """The job records progress over the whole build (each stage an equal share); a bar shows one stage."""
    from builders.spec import STAGES

    if stage not in STAGES:
        return overall
    return min(1.0, max(0.0, overall * len(STAGES) - STAGES.index(stage)))


def _wait(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    _CLOCK.doing(f"waiting for {what}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        time.sleep(0.25)
    raise DemoError(f"gave up waiting {timeout:.0f}s for {what}")

"""Benchmark webhook acknowledgements: a bare FastAPI endpoint and quantbot's, each quiet, beside a
normal-priority CPU-bound process on the same core, and while a CPU build runs on the same machine, in one
run; the server's CPU per request in each; plus quantbot's start-to-ready time and idle RSS.

Each run serves two apps with uvicorn on loopback, in this process's session:
- `bare`: a FastAPI endpoint that reads the body, checks the secret and answers 202 (the floor: what any
  Python receiver costs on this machine);
- `quantbot`: `bot.intake.server:app_from_settings`, the webhook app of `quantbot serve` without the
  dispatcher, so only acknowledgement is measured (SQLite in a temporary data dir, `webhook_commit_s` at
  its default, the commits included). It is started twice, timing each start from spawn to the first 200
  from /healthz: first on a new data dir, then on the database the first start made; its idle RSS is read
  after the second.
Both servers are pinned to one core (`--core`, default the last). Each is driven at a fixed rate with
distinct valid deliveries (a `repo.content` payload of the contract's shape with a unique commit sha each),
in each condition of `--conditions`: `quiet`, the machine as it is; `busy`, beside a normal-priority process
that spins on the servers' core (what any other work on the machine does to the bot); `build`, while builds
run: a real
`python -m builders run` of a tiny Llama (made once) started the way the bot's CPU slot starts it
(`bot.launcher.launch.Worker` in a session of its own, at the slot's priority and thread count, see
bot/execution/slots.py), restarted on a fresh work dir whenever one finishes, so one is always running.
`--build-priority normal` starts them at normal priority with torch's default threads instead, for
comparison. The load generator is `wrk` (Debian: `apt-get install wrk`) with a Lua script that paces requests
and makes the shas; without wrk, an open-loop asyncio + httpx generator in this process takes its place.
The server's CPU time over each load (utime + stime of its process, from /proc) is divided by the requests
it answered: CPU per request. Figures are medians of the runs, against targets: quantbot's CPU per request
within 1.5x the bare endpoint's (quiet), and beside the spinning process its achieved rate at least half and
its p99 at most twice the bare endpoint's, measured in the same run. The CPU ratio is also given paired
(quantbot over bare within each run, the median of those), which the machine's drift between runs moves
less. The deliveries quantbot acknowledged are counted in its database after it stopped: all of them.

    python benchmarks/bench_webhook.py [--runs 3] [--rate 200] [--duration 20] [--generator wrk|python]
                                       [--conditions quiet,busy,build] [--core N]
                                       [--build-format int4_awq] [--build-priority low|normal]
                                       [--synchronous FULL|NORMAL] [--server-args ...]

The machine may be shared: the load average at the start is printed with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.execution.slots import Slot  # noqa: E402
from bot.launcher.launch import Worker  # noqa: E402  (the repo root on the path first)
from bot.settings import load_settings  # noqa: E402
from builders.spec import BuildSpec, Recipe, ValidationSettings  # noqa: E402

SECRET = "bench-secret"
TARGETS = {"first_start_s": 2.0, "start_s": 2.0, "idle_rss_mib": 150.0}
P99_TARGET_MS = 25.0  # quantbot's acknowledgements, quiet and with a build running
CPU_RATIO_TARGET = 1.5  # quantbot's CPU per request against the bare endpoint's, quiet
BUSY_TARGET = 2.0  # beside a spinning process: quantbot's p99 and rate within this factor of bare's
SPIN = "while True: pass"
_SALTS = itertools.count(1)
APPS = {"bare": "bench_webhook:bare_app", "quantbot": "bot.intake.server:app_from_settings"}
PAYLOAD = {
    "event": {"action": "update", "scope": "repo.content"},
    "repo": {
        "type": "model",
        "name": "some-user/some-repo",
        "id": "6366c000a2abcdf2fd69a080",
        "private": False,
        "url": {
            "web": "https://huggingface.co/some-user/some-repo",
            "api": "https://huggingface.co/api/models/some-user/some-repo",
        },
        "headSha": "@SHA@",
        "owner": {"id": "61d2000c3c2083e1c08af22d"},
    },
    "webhook": {"id": "6390e855e30d9209411de93b", "version": 3},
    "updatedRefs": [
        {"ref": "refs/heads/main", "oldSha": "ce9a4674fa833a68d5a73ec355f0ea95eedd60b7", "newSha": "@SHA@"}
    ],
}

# Paced wrk: each thread hands out send slots `interval` ms apart (LuaJIT's ffi gives a wall clock), so the
# total rate holds whatever the latency; `done` prints the figures as one JSON line.
WRK_SCRIPT = r"""
local ffi = require("ffi")
ffi.cdef[[
  typedef struct { long tv_sec; long tv_usec; } qb_timeval;
  int gettimeofday(qb_timeval *tv, void *tz);
]]
local tv = ffi.new("qb_timeval")
local function now_ms()
  ffi.C.gettimeofday(tv, nil)
  return tonumber(tv.tv_sec) * 1000 + tonumber(tv.tv_usec) / 1000
end

local template = [==[@BODY@]==]
local thread_ids = 0
function setup(thread)
  thread_ids = thread_ids + 1
  thread:set("tid", thread_ids)
end

function init(args)
  interval = tonumber(args[1])
  salt = tonumber(args[2])
  sent = 0
  headers = { ["Content-Type"] = "application/json", ["X-Webhook-Secret"] = "@SECRET@" }
end

function delay()
  local t = now_ms()
  if next_slot == nil or next_slot < t - 1000 then next_slot = t end
  next_slot = next_slot + interval
  local wait = next_slot - t
  if wait < 0 then return 0 end
  return wait
end

function request()
  sent = sent + 1
  local sha = string.format("%08x%08x%08x", salt, tid, sent) .. string.rep("0", 16)
  return wrk.format("POST", "/webhooks/hub", headers, (template:gsub("@SHA@", sha)))
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write("WRK_RESULT ", string.format(
    '{"requests": %d, "duration_s": %f, "p50_ms": %f, "p90_ms": %f, "p99_ms": %f, "max_ms": %f, '
    .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def bare_app() -> FastAPI:
    """The floor (uvicorn's --factory target for `bare`): read the body, check the secret, answer 202."""
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.post("/webhooks/hub")
    async def webhook(request: Request) -> JSONResponse:
        body = await request.body()
        if request.headers.get("x-webhook-secret") != SECRET or not body:
            return JSONResponse({"error": "forbidden"}, status_code=403)
        return JSONResponse({"status": "accepted"}, status_code=202)

    return app


@dataclass
class Load:
    """One app's acknowledgements under the fixed-rate load, in one condition."""

    requests: int
    rate: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    cpu_ms: float  # the server's CPU time per request answered


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (all its threads), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pinned(core: int):  # -> Callable[[], None]
    """A child's pre-exec hook: run on `core` only (its threads inherit it)."""
    return lambda: os.sched_setaffinity(0, {core})


@contextlib.contextmanager
def _spinning(core: int) -> Iterator[None]:
    """A normal-priority process spinning on `core` for the duration."""
    spinner = subprocess.Popen([sys.executable, "-c", SPIN], preexec_fn=_pinned(core))
    try:
        time.sleep(0.5)  # its start is over: it only spins now
        yield
    finally:
        spinner.kill()
        spinner.wait()


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class Server:
    """One app under uvicorn on a free loopback port; `start` returns the seconds to the first /healthz."""

    def __init__(self, app: str, data_dir: Path, args: argparse.Namespace) -> None:
        self.app, self.data_dir, self.args = app, data_dir, args
        self.port = _free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> float:
        env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTBOT_")}
        env |= {"QUANTBOT_DATA_DIR": str(self.data_dir), "QUANTBOT_WEBHOOK_SECRET": SECRET}
        env["QUANTBOT_SQLITE_SYNCHRONOUS"] = self.args.synchronous
        command = [sys.executable, "-m", "uvicorn", "--factory", APPS[self.app],
                   "--app-dir", str(ROOT / "benchmarks"), "--host", "127.0.0.1", "--port", str(self.port),
                   "--no-access-log", "--log-level", "warning", *self.args.server_args]  # fmt: skip
        started = time.perf_counter()
        self.process = subprocess.Popen(command, env=env, cwd=ROOT, preexec_fn=_pinned(self.args.core))
        with httpx.Client(timeout=1) as client:
            while True:
                if self.process.poll() is not None:
                    code = self.process.returncode
                    raise RuntimeError(f"{self.app} exited with {code} before it was ready")
                with contextlib.suppress(httpx.TransportError):
                    if client.get(f"http://127.0.0.1:{self.port}/healthz").status_code == 200:
                        return time.perf_counter() - started
                time.sleep(0.005)

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def stored(self) -> int:
        with sqlite3.connect(self.data_dir / "quantbot.db") as db:
            return db.execute("SELECT count(*) FROM events").fetchone()[0]


class Builds:
    """Real CPU builds, one at a time and always one running, started as the bot's CPU slot starts them."""

    def __init__(self, model: Path, work: Path, fmt: str, priority: str) -> None:
        self.model, self.work, self.fmt, self.priority = model, work, fmt, priority
        self.started = 0
        self._stop = threading.Event()
        self._worker: Worker | None = None
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Builds:
        self._thread.start()
        time.sleep(5.0)  # past the interpreter's start: the build is loading and calibrating
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._worker is not None:
            self._worker.signal(signal.SIGKILL)
        self._thread.join(30)

    def _loop(self) -> None:
        from builders.tiny import calibration_text_path

        settings, slot, calib = load_settings(None), Slot("cpu"), calibration_text_path()
        env, nice = (slot.env, slot.nice) if self.priority == "low" else ({"CUDA_VISIBLE_DEVICES": ""}, 0)
        while not self._stop.is_set():
            self.started += 1
            folder = self.work / f"build-{self.started}"
            spec = BuildSpec.model_validate(dict(
                local_dir=self.model, format=self.fmt, device="cpu", work_dir=folder / "work",
                output_dir=folder / "out",
                recipe=Recipe(calib_dataset=str(calib), calib_samples=32, calib_seq_len=128),
                validation=ValidationSettings(eval_tokens=512, eval_seq_len=128),
            ))  # fmt: skip
            self._worker = Worker.start(
                settings, spec, log_path=folder / "worker.log", env=env, own_group=True, nice=nice
            )
            while not self._stop.is_set() and not self._worker.exited:
                time.sleep(0.2)


def _tiny_model(work: Path) -> Path:
    """The tiny Llama the builds quantize, made by a subprocess (this process never imports torch)."""
    model = work / "tiny-llama"
    code = f"import pathlib, builders.tiny as t; t.build_tiny_llama(pathlib.Path({str(model)!r}))"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True)
    return model


def _body(sha: str) -> bytes:
    return json.dumps(PAYLOAD).replace("@SHA@", sha).encode()


def _load_wrk(port: int, rate: float, duration: int, work: Path, salt: int) -> dict:
    threads, connections = 1, 4
    script = work / "webhook.lua"
    body = json.dumps(PAYLOAD)
    script.write_text(WRK_SCRIPT.replace("@BODY@", body).replace("@SECRET@", SECRET))
    interval_ms = 1000.0 * threads / rate
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
    ]
    output = subprocess.run(
        [*command, f"http://127.0.0.1:{port}", "--", str(interval_ms), str(salt)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(line for line in output.splitlines() if line.startswith("WRK_RESULT "))
    result = json.loads(line.removeprefix("WRK_RESULT "))
    result["errors"] = sum(result["errors"].values())
    return result


async def _load_python(port: int, rate: float, duration: int, salt: int) -> dict:
    """Open loop: request i is sent at start + i/rate whatever happened to the ones before."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5, limits=limits) as client:

        async def one(i: int) -> None:
            nonlocal errors
            body = _body(f"{salt:08x}{0xFFFF:08x}{i:08x}" + "0" * 16)
            sent = time.perf_counter()
            try:
                response = await client.post(
                    "/webhooks/hub", content=body, headers={"X-Webhook-Secret": SECRET}
                )
                if response.status_code != 202:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append((time.perf_counter() - sent) * 1000)

        start = time.perf_counter()
        tasks = []
        for i in range(int(rate * duration)):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    cuts = statistics.quantiles(latencies, n=100)
    return {"requests": len(latencies), "duration_s": elapsed, "p50_ms": cuts[49], "p90_ms": cuts[89],
            "p99_ms": cuts[98], "max_ms": max(latencies), "errors": errors}  # fmt: skip


def _load(server: Server, args: argparse.Namespace, generator: str, work: Path) -> Load:
    """One load at the fixed rate; its commit shas differ from every other load's (none is a duplicate)."""
    salt = next(_SALTS)
    cpu = _cpu_s(server.pid)
    if generator == "wrk":
        result = _load_wrk(server.port, args.rate, args.duration, work, salt)
    else:
        result = asyncio.run(_load_python(server.port, args.rate, args.duration, salt))
    cpu_ms = 1000 * (_cpu_s(server.pid) - cpu) / max(1, result["requests"] - result["errors"])
    return Load(
        requests=result["requests"], rate=result["requests"] / result["duration_s"], p50_ms=result["p50_ms"],
        p90_ms=result["p90_ms"], p99_ms=result["p99_ms"], max_ms=result["max_ms"], errors=result["errors"],
        cpu_ms=cpu_ms,
    )  # fmt: skip


def one_run(args: argparse.Namespace, generator: str, model: Path | None) -> dict:
    """Both apps in each condition, one after the other; quantbot's start times and RSS."""
    with tempfile.TemporaryDirectory(prefix="quantbot-bench-") as tmp:
        work = Path(tmp)
        bare, bot = Server("bare", work / "bare", args), Server("quantbot", work / "data", args)
        figures: dict = {"first_start_s": bot.start()}
        bot.stop()
        try:
            figures["start_s"] = bot.start()
            bare.start()
            time.sleep(1.0)  # idle: imports done, first request served, nothing in flight
            figures["idle_rss_mib"] = _rss_mib(bot.pid)
            loads = {}
            for condition in args.conditions:
                with _condition(condition, args, model, work) as beside:
                    loads[("bare", condition)] = _load(bare, args, generator, work)
                    loads[("quantbot", condition)] = _load(bot, args, generator, work)
                if isinstance(beside, Builds):
                    figures["builds_started"] = beside.started
        finally:
            bare.stop()
            bot.stop()
        acknowledged = sum(v.requests - v.errors for k, v in loads.items() if k[0] == "quantbot")
        figures["all_stored"] = bot.stored() >= acknowledged
    figures["loads"] = loads
    return figures


@contextlib.contextmanager
def _condition(name: str, args: argparse.Namespace, model: Path | None, work: Path) -> Iterator[object]:
    """What runs beside the servers while they are measured in condition `name`."""
    if name == "busy":
        with _spinning(args.core):
            yield None
    elif name == "build":
        assert model is not None, "the build condition needs the tiny model"
        with Builds(model, work / "builds", args.build_format, args.build_priority) as builds:
            yield builds
    else:
        yield None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--duration", type=int, default=20, help="seconds of load per app and condition")
    parser.add_argument(
        "--generator", choices=["wrk", "python"], default=None, help="default: wrk if installed"
    )
    parser.add_argument("--conditions", default="quiet,busy,build", help="of quiet, busy, build")
    parser.add_argument("--core", type=int, default=(os.cpu_count() or 1) - 1, help="the servers' core")
    parser.add_argument("--build-format", default="int4_awq", help="format of the builds run beside")
    parser.add_argument("--build-priority", choices=["low", "normal"], default="low",
                        help="low: as the bot's CPU slot (nice, threads); normal: to compare")  # fmt: skip
    parser.add_argument("--synchronous", choices=["FULL", "NORMAL"], default="FULL", help="SQLite fsync mode")
    parser.add_argument("--server-args", nargs=argparse.REMAINDER, default=[], help="extra uvicorn arguments")
    args = parser.parse_args()
    args.conditions = args.conditions.split(",")
    if not set(args.conditions) <= {"quiet", "busy", "build"}:
        parser.error("--conditions: a comma-separated list of quiet, busy, build")
    generator = args.generator or ("wrk" if shutil.which("wrk") else "python")
    if generator == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not installed (apt-get install wrk), use --generator python")

    slot = Slot("cpu")
    build = (f"nice {slot.nice}, {slot.env['OMP_NUM_THREADS']} torch threads" if args.build_priority == "low"
             else "normal priority, default threads")  # fmt: skip
    server = f"uvicorn {' '.join(args.server_args) or '(defaults)'}, SQLite synchronous={args.synchronous}"
    print(f"load generator: {generator}; {args.runs} runs of {args.duration} s per app and condition at "
          f"{args.rate:g} req/s; server: {server}; builds: {args.build_format}, {build}; "
          f"{os.cpu_count()} CPUs, servers on core {args.core}; "
          f"load average: {os.getloadavg()[0]:.2f}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="quantbot-bench-model-") as tmp:
        model = _tiny_model(Path(tmp)) if "build" in args.conditions else None
        runs = []
        for i in range(args.runs):
            run = one_run(args, generator, model)
            runs.append(run)
            loads = ", ".join(f"{a}/{c}: p50 {v.p50_ms:.1f} p99 {v.p99_ms:.1f} ms at {v.rate:.0f}/s, "
                              f"CPU {v.cpu_ms:.3f} ms/req" for (a, c), v in run["loads"].items())  # fmt: skip
            print(f"run {i + 1}: start {run['start_s']:.2f} s, idle RSS {run['idle_rss_mib']:.0f} MiB, "
                  f"builds started {run.get('builds_started', '-')}; {loads}")  # fmt: skip

    print("\nmedian of runs (ms):")
    print(f"  {'app':>9} {'condition':>10} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8} {'req/s':>7} errors "
          f"{'CPU/req':>8}")  # fmt: skip
    ok = True
    medians = {}
    for key in runs[0]["loads"]:
        fields = asdict(runs[0]["loads"][key])
        m = medians[key] = {f: statistics.median(getattr(r["loads"][key], f) for r in runs) for f in fields}
        verdict = ""
        if key[0] == "quantbot" and key[1] != "busy":
            passed = m["p99_ms"] < P99_TARGET_MS and m["errors"] == 0 and m["rate"] >= 0.95 * args.rate
            verdict = f"   p99 target < {P99_TARGET_MS:g}: {'PASS' if passed else 'FAIL'}"
            ok &= passed
        print(f"  {key[0]:>9} {key[1]:>10} {m['p50_ms']:8.1f} {m['p90_ms']:8.1f} {m['p99_ms']:8.1f} "
              f"{m['max_ms']:8.1f} {m['rate']:7.0f} {m['errors']:6.0f} "
              f"{m['cpu_ms']:8.3f}{verdict}")  # fmt: skip
    print("\nquantbot against the bare endpoint (ratios of the medians above):")
    for condition in args.conditions:
        bot, bare = medians[("quantbot", condition)], medians[("bare", condition)]
        cpu, p99, rate = (
            bot["cpu_ms"] / bare["cpu_ms"],
            bot["p99_ms"] / bare["p99_ms"],
            bare["rate"] / bot["rate"],
        )
        verdicts = []
        if condition == "quiet":
            per_run = [r["loads"] for r in runs]
            paired = statistics.median(
                m[("quantbot", condition)].cpu_ms / m[("bare", condition)].cpu_ms for m in per_run
            )
            verdicts.append(_verdict("CPU/req paired", paired, CPU_RATIO_TARGET))
        if condition == "busy":
            verdicts += [
                _verdict("p99", p99, BUSY_TARGET),
                _verdict("rate (bare/quantbot)", rate, BUSY_TARGET),
            ]
        ok &= all(passed for _, passed in verdicts)
        print(
            f"  {condition:>10}: CPU/req {cpu:.2f}x, p99 {p99:.2f}x, rate {1 / rate:.2f}x"
            + "".join(f"   {text}" for text, _ in verdicts)
        )
    for field, target in TARGETS.items():
        value = statistics.median(r[field] for r in runs)
        ok &= value < target
        print(f"  {field:>14} {value:10.2f}   target < {target:g}: {'PASS' if value < target else 'FAIL'}")
    stored = all(r["all_stored"] for r in runs)
    print(f"  every acknowledged delivery stored: {'yes' if stored else 'NO'}")
    return 0 if ok and stored else 1


def _verdict(name: str, ratio: float, target: float) -> tuple[str, bool]:
    passed = ratio <= target
    return f"{name} {ratio:.2f}x target <= {target:g}x: {'PASS' if passed else 'FAIL'}", passed


if __name__ == "__main__":
    sys.exit(main())

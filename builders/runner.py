"""Runs one BuildSpec: fetch → load → quantize → export → engines → validate → manifest.

Each stage's record (status, times, memory, and the details later stages and the manifest need) is
written atomically to ``<work_dir>/stages/<stage>.json`` when the stage starts and again when it ends.
A rerun — after a crash, a kill or a failure — skips every leading stage whose record says succeeded and
whose outputs still exist, and runs the rest. What survives a restart is on disk: the snapshot (fetch),
the saved quantized state or GPTQ checkpoint (quantize), the exported files (export). The model in memory
does not survive, and is reloaded by the stage that needs it (see context.py), so "load" is not rerun
for its own sake: its record keeps the base model's measurements. Records are not synced to disk one by
one: a killed worker leaves every record it wrote, and one a power cut left unreadable is run again.

The manifest is rewritten after every stage (status "running"), and finally as "succeeded" or "failed",
synced to disk (the build's one sync); it is written as published (portable.py): nothing in it names a
place on this machine.
Exit codes: 0 succeeded, 1 failed, 2 failed because of the input (the spec or the upstream repo).
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from builders.context import BuildContext
from builders.environment import StageMeter, detect_device, toolchain
from builders.failures import BuildFailure
from builders.portable import portable_manifest
from builders.progress import Reporter
from builders.spec import (
    MANIFEST_NAME,
    STAGES,
    BuildError,
    BuildSpec,
    Manifest,
    SourceRecord,
    StageRecord,
    StageStatus,
    utcnow,
    write_json_atomic,
)

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
_SPEC_DEPENDENT = ("engines", "validate", "manifest")  # stages whose result depends on more than the key

StageFunction = Callable[[BuildContext], dict[str, Any]]


def main(spec_path: Path) -> int:
    reporter = Reporter.take_stdout()
    try:
        spec = BuildSpec.read(spec_path)
    except (OSError, ValueError) as e:
        return _invalid_spec(spec_path, e, reporter)
    return Runner(spec, reporter).run()


def _stage_functions(fmt: str) -> dict[str, StageFunction]:
    from builders import fetch, gptq, load, modelopt_quant, trtllm, validate

    producer = gptq if fmt == "gptq" else modelopt_quant
    return {
        "fetch": lambda ctx: fetch.fetch(ctx.spec, ctx.progress),
        "load": load.load_stage,
        "quantize": producer.quantize,
        "export": producer.export,
        "engines": trtllm.engines,
        "validate": validate.validate,
    }


class Runner:
    def __init__(self, spec: BuildSpec, reporter: Reporter) -> None:
        self.spec = spec
        self.reporter = reporter
        self.stage_dir = Path(spec.work_dir) / "stages"
        self.key = spec.key()
        self.started = time.monotonic()

    def run(self) -> int:
        claim = self._claim_work_dir()
        if claim:
            self.reporter.emit("fetch", 0.0, f"failed: {claim}", status="failed")
            print(f"quantbot builder: {claim}", file=sys.stderr)
            return EXIT_BAD_INPUT
        records = self._read_records()
        manifest = Manifest(key=self.key, started_at=utcnow(), spec=self.spec, toolchain=toolchain())
        failure: BuildFailure | None = None
        failed_stage = "fetch"
        ran_any = False
        try:
            manifest.device = detect_device(self.spec.device)
            if self.spec.device == "cuda" and manifest.device.kind != "cuda":
                raise BuildFailure("no_cuda", "the spec asks for CUDA but this worker has no CUDA GPU")
            ctx = BuildContext(self.spec, self.reporter, manifest.device, records)
            functions = _stage_functions(self.spec.format)
            for name in STAGES[:-1]:
                failed_stage = name
                old = records.get(name)
                if not ran_any and old and _finished(old):
                    records[name] = old.model_copy(update={"resumed": True})
                    self.reporter.emit(name, 1.0, "done in an earlier run")
                    continue
                ran_any = True
                self._run_stage(ctx, records, name, functions[name])
                self._write_manifest(manifest, records, None)
        except BuildFailure as e:
            failure = e
        except Exception as e:  # a bug or a toolchain crash: record it, never leave without a manifest
            traceback.print_exc(file=sys.stderr)
            failure = BuildFailure("internal", f"{type(e).__name__}: {e}".strip())
        return self._finish(manifest, records, failure, failed_stage, ran_any)

    def _run_stage(
        self, ctx: BuildContext, records: dict[str, StageRecord], name: str, fn: StageFunction
    ) -> None:
        """Run one stage; its record (also when it fails) lands in ``records`` and on disk."""
        old = records.get(name)
        interrupted = old is not None and old.status == StageStatus.running
        record = records[name] = StageRecord(
            name=name,
            status=StageStatus.running,
            started_at=utcnow(),
            runs=(old.runs if old else 0) + 1,
            message="the previous run was interrupted in this stage" if interrupted else "",
        )
        self._write_record(record)
        for later in STAGES[STAGES.index(name) + 1 :]:  # their results were made from what is now redone
            records.pop(later, None)
            (self.stage_dir / f"{later}.json").unlink(missing_ok=True)
        ctx.stage = name
        self.reporter.emit(name, 0.0, "started" + (" again after an interrupted run" if interrupted else ""))
        meter, t0 = StageMeter(), time.monotonic()
        try:
            details = fn(ctx)
            skipped = details.pop("skipped", None)
            record.status = StageStatus.skipped if skipped else StageStatus.succeeded
            record.message = skipped or details.pop("message", "") or record.message
            record.details = details
        except BuildFailure as e:
            record.status, record.message, record.details = StageStatus.failed, e.message, e.details
            raise
        except Exception as e:
            record.status, record.message = StageStatus.failed, f"{type(e).__name__}: {e}"
            raise
        finally:
            record.finished_at = utcnow()
            record.wall_s = round(time.monotonic() - t0, 3)
            for field, value in meter.read().items():
                setattr(record, field, value)
            self._write_record(record)
        self.reporter.emit(name, 1.0, record.message or "done")

    def _finish(
        self,
        manifest: Manifest,
        records: dict[str, StageRecord],
        failure: BuildFailure | None,
        failed_stage: str,
        ran_any: bool,
    ) -> int:
        path = Path(self.spec.output_dir) / MANIFEST_NAME
        old = records.get("manifest")
        if failure is None and not ran_any and old and old.status == StageStatus.succeeded and path.exists():
            self.reporter.emit(
                "manifest", 1.0, "already built; nothing to do", manifest=str(path), status="succeeded"
            )
            return EXIT_OK
        record = StageRecord(
            name="manifest",
            status=StageStatus.succeeded,
            started_at=utcnow(),
            runs=(old.runs if old else 0) + 1,
        )
        records["manifest"] = record
        error = (
            BuildError(
                stage=failed_stage, kind=failure.kind, message=failure.message, bad_input=failure.bad_input
            )
            if failure
            else None
        )
        record.finished_at = utcnow()
        record.wall_s = 0.0
        self._write_manifest(manifest, records, error, final=True)
        self._write_record(record)
        status = "failed" if failure else "succeeded"
        message = f"failed in {failed_stage}: {failure.message}" if failure else "succeeded"
        self.reporter.emit("manifest", 1.0, message, manifest=str(path), status=status)
        if failure is None:
            return EXIT_OK
        return EXIT_BAD_INPUT if failure.bad_input else EXIT_FAILED

    # -- the manifest from the records

    def _write_manifest(
        self,
        manifest: Manifest,
        records: dict[str, StageRecord],
        error: BuildError | None,
        final: bool = False,
    ) -> None:
        d = {name: records[name].details if name in records else {} for name in STAGES}
        manifest.stages = [records.get(name) or StageRecord(name=name) for name in STAGES]
        manifest.source = SourceRecord(
            repo_id=self.spec.repo_id,
            revision=self.spec.revision,
            local_dir=str(self.spec.local_dir) if self.spec.local_dir else None,
            **{
                k: d["fetch"][k]
                for k in ("snapshot_dir", "files", "total_bytes", "downloaded_bytes")
                if k in d["fetch"]
            },
            **{
                k: d["load"][k]
                for k in ("architecture", "model_type", "dtype", "num_parameters", "chat_template", "vision")
                if k in d["load"]
            },
        )
        if "quantization" in d["export"]:
            manifest.quantization = d["export"]["quantization"] | {
                "calibration": d["quantize"].get("calibration")
            }
        manifest.artifacts = d["export"].get("artifacts", []) + d["engines"].get("artifacts", [])
        manifest.engines = d["engines"].get("engines", [])
        manifest.validation = d["validate"].get("validation")
        manifest.errors = [error] if error else []
        if final:
            manifest.status = "failed" if error else "succeeded"
            manifest.finished_at = utcnow()
            manifest.wall_s = round(time.monotonic() - self.started, 3)
        published = portable_manifest(manifest.model_dump(mode="json"), self.spec)
        write_json_atomic(Path(self.spec.output_dir) / MANIFEST_NAME, published, durable=final)

    # -- the work dir

    def _claim_work_dir(self) -> str:
        """Bind the work dir to this build's key; returns an error message when another build owns it."""
        claim = Path(self.spec.work_dir) / "build.json"
        current = self.spec.model_dump(mode="json")
        if claim.exists():
            previous = _read_json(claim)
            if previous.get("key") != self.key:
                owner = str(previous.get("key"))[:12]
                return f"work dir {self.spec.work_dir} belongs to another build (key {owner})"
            if previous.get("spec") != current:  # same artifact, other engine/validation settings
                for name in _SPEC_DEPENDENT:
                    (self.stage_dir / f"{name}.json").unlink(missing_ok=True)
        write_json_atomic(claim, {"key": self.key, "spec": current})
        return ""

    def _read_records(self) -> dict[str, StageRecord]:
        records = {}
        for name in STAGES:
            path = self.stage_dir / f"{name}.json"
            if path.exists():
                try:
                    records[name] = StageRecord.model_validate_json(path.read_text())
                except ValueError:  # unreadable (cut short by a power cut): run the stage again
                    path.unlink()
        return records

    def _write_record(self, record: StageRecord) -> None:
        write_json_atomic(
            self.stage_dir / f"{record.name}.json", record.model_dump(mode="json"), durable=False
        )


def _finished(record: StageRecord) -> bool:
    """A stage's result can be reused: it ended, and the files it made are still there."""
    done = record.status in (StageStatus.succeeded, StageStatus.skipped)
    return done and all(Path(p).exists() for p in record.details.get("outputs", []))


def _read_json(path: Path) -> dict[str, Any]:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _invalid_spec(spec_path: Path, error: Exception, reporter: Reporter) -> int:
    """A spec that does not parse still gets a manifest, in its output dir when one can be read."""
    import json

    if isinstance(error, ValidationError):
        message = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'spec'}: {e['msg']}" for e in error.errors())
    else:
        message = str(error)
    message = f"invalid build spec {spec_path}: {message}"
    try:
        output_dir = Path(json.loads(Path(spec_path).read_text())["output_dir"])
    except (OSError, ValueError, KeyError, TypeError):
        output_dir = None
    manifest_path = None
    if output_dir is not None:
        manifest_path = output_dir / MANIFEST_NAME
        now = utcnow()
        Manifest(
            status="failed",
            started_at=now,
            finished_at=now,
            errors=[BuildError(stage="spec", kind="invalid_spec", message=message, bad_input=True)],
        ).write(manifest_path)
    print(f"quantbot builder: {message}", file=sys.stderr)
    reporter.emit(
        "fetch",
        0.0,
        f"failed: {message}",
        manifest=str(manifest_path) if manifest_path else None,
        status="failed",
    )
    return EXIT_BAD_INPUT

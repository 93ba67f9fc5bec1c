"""Starting, resuming and summarising runs: the run directory's life cycle around the flows."""

from __future__ import annotations

import hashlib
import json
import platform
import re
from collections import Counter
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from audioprobe import stored
from audioprobe.cli import UserError
from audioprobe.schema import ItemOutcome, ProbeItem, RunItems, RunManifest, RunRequest, SkippedItem
from audioprobe.settings import get_settings
from tasks.records import Run, atomic_write, list_runs, now_iso
from tasks.tiers import get_tier, names, paper_tiers

_VERSIONED = ("audioprobe", "prefect", "litellm", "docker", "numpy", "torch", "torchcrepe", "pocketsphinx",
              "transformers")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def settings_snapshot() -> dict:
    """The settings that shape results; api keys are never in settings, only env var names."""
    return json.loads(get_settings().model_dump_json())


def config_hash(models, tiers, methods, samples, limit, seed, dataset_root, repair_rounds: int = 0,
                split: str | None = None) -> str:
    snapshot = settings_snapshot()
    # Where and how fast things run does not change what a run measures: leave it out of the identity.
    for volatile in ("data_dir", "cache_dir", "prefect_api_url", "prefect_port", "local_threads", "local_host",
                     "local_port", "task_workers", "task_runner", "dask_address", "dask_workers", "dask_threads",
                     "sandbox_concurrency", "sandbox_reuse", "judge_concurrency", "judge_device", "allow_downloads",
                     "judge_batch", "global_limits", "breaker_threshold", "audio_store_max_mb",
                     "check_package_index", "sandbox_runtime", "report_port"):
        snapshot.pop(volatile, None)
    identity = [sorted(models), sorted(tiers), methods, samples, limit, seed, dataset_root, snapshot]
    identity += [repair_rounds] if repair_rounds else []  # single-shot runs keep their earlier identity
    identity += [f"split={split}"] if split else []
    blob = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def methods_for(tiers: list[str], asked: list[str] | None) -> dict[str, list[str]]:
    chosen = {}
    for tier in tiers:
        known = get_tier(tier).methods
        picked = [m for m in (asked or known) if m in known]
        chosen[tier] = picked or list(known)
    return chosen


NSYNTH_SPLITS = ("test", "valid", "train", "all")
DEFAULT_OFFLINE_LIMIT = 2  # items per tier and method on the offline reference sets: `make run`'s size


def _one_of(what: str, names, valid) -> None:
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise UserError(f"unknown {what} {unknown[0]!r}; valid: {', '.join(valid)}")


def check_request(request: RunRequest) -> RunRequest:
    """The request with its tiers expanded, or a UserError naming the first problem: every mistake a
    user can make is refused here, before a run directory exists or a model is asked."""
    if not request.models or any(not m.strip() for m in request.models):
        raise UserError("no model: name at least one with --model (a litellm model string, 'local' or "
                        "'baseline/template')")
    _one_of("--tier", request.tiers, [*names(), "all"])
    # "all" is the paper's tiers; another tier (tones) runs when named, alone or beside "all"
    if not request.tiers or "all" in request.tiers:
        paper = [t.name for t in paper_tiers()]
        tiers = paper + [n for n in names() if n in request.tiers and n not in paper]
    else:
        tiers = list(dict.fromkeys(request.tiers))
    if request.methods:
        offered = sorted({m for t in tiers for m in get_tier(t).methods})
        _one_of(f"--method for tier(s) {', '.join(tiers)}:", request.methods, offered)
    if request.limit is not None and request.limit < 1:
        raise UserError(f"--limit must be at least 1 item per tier, got {request.limit}")
    if request.samples < 1:
        raise UserError(f"--samples must be at least 1, got {request.samples}")
    if request.repair_rounds < 0:
        raise UserError(f"--repair-rounds must be 0 or more, got {request.repair_rounds}")
    if request.split is not None:
        _one_of("--split", [request.split], NSYNTH_SPLITS)
    _check_datasets(tiers, request.dataset_root)
    limit = DEFAULT_OFFLINE_LIMIT if request.limit is None and request.dataset_root is None else request.limit
    return request.model_copy(update={"tiers": tiers, "limit": limit})


def _check_datasets(tiers: list[str], dataset_root: str | None) -> None:
    from tasks.probesets.loaders import offline_root

    tiers = [t for t in tiers if get_tier(t).offline_dir]  # the others make their own items
    if dataset_root is None:
        for tier in tiers:
            if not offline_root(tier).is_dir():
                raise UserError(f"no offline {tier} reference set at {offline_root(tier)}: run `audioprobe "
                                f"refs build --tier {tier}` (or `make setup`), or pass --dataset-root")
        return
    root = Path(dataset_root).expanduser()
    if not root.is_dir():
        raise UserError(f"--dataset-root {dataset_root}: no such folder")
    for tier in tiers:
        folder = get_tier(tier).offline_dir
        if not (root / folder).is_dir():
            raise UserError(f"--dataset-root {dataset_root}: no {folder}/ folder for the {tier} "
                            f"tier (expected {root / folder})")


def start_request(request: RunRequest, new: bool = False) -> Run:
    """Start the run of a request that `check_request` returned, or resume the unfinished identical one."""
    return start_or_resume(request.models, request.tiers, methods_for(request.tiers, request.methods),
                           request.samples, request.limit, request.seed, request.dataset_root, new=new,
                           repair_rounds=request.repair_rounds, split=request.split)


def start_or_resume(models, tiers, methods, samples, limit, seed, dataset_root, new: bool = False,
                    repair_rounds: int = 0, split: str | None = None) -> Run:
    """The same command run again resumes its unfinished run; `new` forces a fresh one."""
    digest = config_hash(models, tiers, methods, samples, limit, seed, dataset_root, repair_rounds, split)
    if not new:
        for manifest in reversed(list_runs()):
            if manifest.config_hash == digest and manifest.finished is None:
                return Run.open(manifest.run_id)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    manifest = RunManifest(
        run_id=f"{stamp}-{digest[:6]}", created=now_iso(), config_hash=digest, models=list(models),
        tiers=list(tiers), methods=methods, samples=samples, repair_rounds=repair_rounds, limit=limit, seed=seed,
        dataset_root=dataset_root, split=split, settings=settings_snapshot(), versions=versions(),
    )
    return Run.create(manifest)


def note_skipped(run: Run, skipped: list[SkippedItem]) -> None:
    manifest = run.manifest
    seen = {(s.tier, s.key) for s in manifest.skipped}
    manifest.skipped += [s for s in skipped if (s.tier, s.key) not in seen]
    run.save_manifest(manifest)


def write_table(run: Run) -> None:
    """items.parquet: every record's stored row (tasks/outcomes.py), for pandas users and the report."""
    import io

    import pandas as pd

    buffer = io.BytesIO()
    pd.DataFrame([o.row for o in run.outcomes(all_rounds=True)]).to_parquet(buffer, index=False)
    atomic_write(run.dir / "items.parquet", buffer.getvalue())


def items_for(run: Run, tier: str) -> list[ProbeItem]:
    """The run's items of a tier, sampled once and frozen in the run dir: resume and retry reuse them."""
    path = run.dir / f"items-{tier}.json"
    if path.exists():
        return stored.load(RunItems, path.read_text()).items
    from tasks.probesets.descriptions import describe_items
    from tasks.probesets.loaders import load_items

    manifest, spec = run.manifest, get_tier(tier)
    # --dataset-root holds each dataset in its native layout, under the same folder names as the refs
    dataset = Path(manifest.dataset_root) / spec.offline_dir if manifest.dataset_root and spec.offline_dir else None
    options = {"split": manifest.split} if manifest.split and dataset is not None and spec.split_option else {}
    items, skipped = load_items(tier, dataset, manifest.limit, manifest.seed, **options)
    # Only that prompt shows descriptions; a baselines-only run keeps the ontology's text and asks no LLM.
    if "detailed_description" in manifest.methods.get(tier, []) and asks_an_llm(manifest.models):
        describer = get_settings().describer_model
        if describer:
            from audioprobe.console import warn

            warn(f"audioprobe: the detailed_description prompt's class descriptions are written by the "
                 f"describer model {describer!r} (setting describer_model; cached per model)")
        items = describe_items(items)
    note_skipped(run, skipped)
    atomic_write(path, stored.dumps(RunItems(items=items), indent=1))
    return items


def asks_an_llm(models: list[str]) -> bool:
    from tasks.generation.baseline import is_baseline

    return any(not is_baseline(m) for m in models)


RETRY_STAGES = ("generation", "execution", "judging")


def select_for_retry(run: Run, only: str | None, statuses: list[str] | None) -> list[ItemOutcome]:
    """Failed outcomes that match: `only` names a stage, `statuses` failure, execution status or model
    error names (a UserError lists the valid ones when a name is none of them)."""
    from tasks.taxonomy import STAGE_OF_FAILURE, retry_status_names

    if only is not None:
        _one_of("stage (--only)", [only], RETRY_STAGES)
    _one_of("--status", statuses or [], retry_status_names())
    chosen = []
    for outcome in run.outcomes():
        if outcome.failure is None:
            continue
        if only and STAGE_OF_FAILURE.get(outcome.failure) != only:
            continue
        names = {outcome.failure, outcome.execution.status if outcome.execution else None,
                 outcome.generation.error_kind if outcome.generation else None}
        if statuses and not names & set(statuses):
            continue
        chosen.append(outcome)
    return chosen


def plan_retry(run: Run, only: str | None,
               statuses: list[str] | None) -> tuple[list[ItemOutcome], str | None]:
    """The outcomes a retry replaces, and the stage whose cached results it redoes (None: from the ask)."""
    chosen = select_for_retry(run, only, statuses)
    refresh = only if only in ("execution", "judging") else ("execution" if statuses else None)
    return chosen, refresh


def prepare_retry(run: Run, outcomes: list[ItemOutcome]) -> None:
    """Move the chosen records aside (kept, never deleted) so the flows see those items as pending. An
    ask whose answer was lost (tasks/generation/store.py) is released, so that it is sent again."""
    from audioprobe.settings import get_settings
    from tasks.generation.store import ResponseStore
    from tasks.records import outcome_key

    archive = run.dir / "outcomes.retried"
    archive.mkdir(exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    for outcome in outcomes:
        key = outcome_key(outcome.model, outcome.method, outcome.item.id, outcome.sample)
        source = run.outcome_path(key)
        if source.exists():
            source.replace(archive / f"{key}.{stamp}.json")
        for later in source.parent.glob(f"{key}__r*.json"):  # repair rounds followed the replaced answer
            later.replace(archive / f"{later.stem}.{stamp}.json")
        if outcome.generation is not None and outcome.generation.error_kind == "answer_lost":
            ResponseStore(get_settings().responses_dir).release(outcome.generation.response_id)
    manifest = run.manifest
    manifest.finished = None
    run.save_manifest(manifest)


# --------------------------------------------------------------------------- complete or not

EXIT_INCOMPLETE = 3  # items left without a final outcome (a model unavailable, Docker failing): rerun
EXIT_ORCHESTRATION_LOST = 4  # the Prefect server went away and could not be restarted


def expected_count(run: Run, model: str | None = None, tier: str | None = None,
                   method: str | None = None) -> int:
    manifest = run.manifest
    total = 0
    for t in manifest.tiers:
        if tier and t != tier:
            continue
        methods = [m for m in manifest.methods[t] if not method or m == method]
        models = [m for m in manifest.models if not model or m == model]
        total += len(items_for(run, t)) * len(methods) * len(models) * manifest.samples
    return total


def cause_of(outcome: ItemOutcome) -> str:
    """Why an item is not done, in words that name the model or the machinery, never both."""
    gen = outcome.generation
    if outcome.failure in ("llm_error", "not_attempted") and gen is not None and gen.error:
        text = re.sub(r"^not attempted: ", "", gen.error)
        text = re.sub(r" \((after \d+ attempts|\d+ items in a row failed)\)$", "", text)
        return f"model {outcome.model!r} unavailable: {text}"
    return f"{outcome.failure}: {(outcome.error or '').split(': ', 1)[-1][:200]}"


def why_unfinished(outcomes: list[ItemOutcome], expected: int, lost: str | None = None) -> str | None:
    """None when every expected item has a final outcome; else one line: how many, and the main cause."""
    from tasks.taxonomy import is_final

    open_items = [o for o in outcomes if not is_final(o)]
    missing = max(0, expected - len(outcomes))
    if not open_items and not missing:
        return None
    causes = Counter(cause_of(o) for o in open_items)
    if lost:
        causes[lost] += missing + 1
    elif missing:
        causes["not recorded (the run was stopped)"] += missing
    cause = causes.most_common(1)[0][0]
    return f"{len(open_items) + missing} of {expected} items not done; {cause}"


def counts_line(outcomes: list[ItemOutcome]) -> str:
    counts = Counter(o.failure or "ok" for o in outcomes)
    return f"{len(outcomes)} items: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))

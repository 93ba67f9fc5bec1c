"""The records every part of audioprobe speaks: items, prompts, responses, executions, judgements.

One home per concept: the sandbox, the generators, the judges, the flows and the report import these
models and no other module defines its own copy. Every model is JSON-serialisable, because run
records outlive the Prefect database and are read back by `audioprobe retry` and the report.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from audioprobe import stored

# A registered tier's name; what a tier is (its prompt methods, what it asks, its judges) is tasks/tiers.
Tier = str


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


# --------------------------------------------------------------------------- probe sets


class ReferenceClip(Record):
    """One real recording that stands as ground truth for a class."""

    path: str
    label: str
    source: str = ""  # dataset name or the Debian/PyPI package the clip came from
    source_file: str = ""  # file inside that package or dataset
    license: str = ""
    human_recording: bool = True  # False for synthesised stand-ins (flite words, GM synth programs)
    attribution: str = ""  # author/title line a CC-BY license asks to keep with the clip


class ProbeItem(Record):
    """A target the LLM is asked to make, with the tier's own fields; `id` is stable across runs."""

    id: str
    tier: Tier
    label: str  # notes: <family>_<source>; environmental: FSD50K label; speech: the word
    dataset: str  # e.g. "nsynth", "fsd50k", "speech_commands", "offline-notes"
    # notes
    note_id: str | None = None
    pitch: int | None = None  # MIDI number
    note_name: str | None = None  # e.g. "C4"
    velocity: int | None = None
    amplitude: float | None = None  # velocity / 127
    instrument_family: str | None = None
    instrument_source: str | None = None
    qualities: list[str] = Field(default_factory=list)
    quality_descriptions: list[str] = Field(default_factory=list)
    # environmental and speech
    display_name: str | None = None  # human-readable class name for the prompt
    description: str | None = None
    description_source: str | None = None  # "audioset-ontology", "cmudict", "llm:<model>"
    references: list[str] = Field(default_factory=list)  # paths of the class's ground-truth clips
    reference_clips: list[ReferenceClip] = Field(default_factory=list)  # same clips, with provenance


class SkippedItem(Record):
    """An item that could not be made into a probe, and why: nothing is dropped silently."""

    key: str
    tier: Tier
    reason: str


# --------------------------------------------------------------------------- prompting


class RenderedPrompt(Record):
    template: str  # template file name, e.g. "notes.paper.txt"
    template_sha256: str
    method: str
    text: str
    output_name: str | None  # the file the prompt asks for; None when the prompt names none
    contract_line: str | None = None  # appended output contract, None reproduces the paper exactly
    # Earlier turns of the same conversation (a repair round): [{"role": ..., "content": ...}, ...]
    history: list[dict[str, str]] = Field(default_factory=list)


# --------------------------------------------------------------------------- generation

ExtractionStatus = Literal[
    "single_block",  # exactly one fenced python block
    "multiple_blocks",  # several fenced blocks; the chosen one is recorded
    "unfenced",  # the whole answer parsed as Python
    "prose_with_code",  # code recovered from mixed prose without fences
    "no_code",  # text, but nothing that parses as Python
    "empty",
    "refusal",
    "llm_error",  # the call itself failed; see Generation.error
]


class Generation(Record):
    """One LLM response to one rendered prompt, with the code extracted from it."""

    response_id: str  # content key: model, api_base, messages, params, sample index
    model: str
    api_base: str | None = None
    sample: int = 0
    params: dict[str, Any] = Field(default_factory=dict)
    cached: bool = False
    raw_text: str = ""
    extraction_status: ExtractionStatus = "empty"
    extraction_note: str = ""
    code: str = ""
    tokens_in: int | None = None
    tokens_out: int | None = None
    latency_s: float | None = None
    cost: float | None = None  # None when litellm cannot price the model
    error: str | None = None
    error_kind: str | None = None  # transient, auth, not_found, bad_request, oversized, ...
    finish_reason: str | None = None  # "stop", or "length" when max_tokens cut the answer
    dropped_params: list[str] = Field(default_factory=list)  # asked params litellm dropped for this provider


# --------------------------------------------------------------------------- execution

ExecutionStatus = Literal["ok", "error", "timeout", "memory", "no_output", "output_rejected"]


class OutputFile(Record):
    name: str
    bytes: int
    sha256: str
    path: str | None = None  # where it was copied on the host, if it was


class ExecutionLimits(Record):
    timeout_s: float = 60.0
    memory_mb: int = 2048
    cpus: float = 1.0
    pids: int = 128
    workdir_mb: int = 256  # tmpfs size of the work dir; also the largest output accepted
    tmp_mb: int = 64
    max_output_mb: int = 100  # per expected file
    nofile: int = 256
    tail_bytes: int = 4096


class ExecutionResult(Record):
    status: ExecutionStatus
    exit_code: int | None = None
    wall_s: float = 0.0
    stdout_tail: str = ""
    stderr_tail: str = ""
    error_type: str | None = None  # e.g. ModuleNotFoundError, SyntaxError
    missing_module: str | None = None
    files: list[OutputFile] = Field(default_factory=list)
    rejected: list[str] = Field(default_factory=list)  # why outputs were refused
    normalised: list[str] = Field(default_factory=list)  # what the sandbox changed in an output, per file
    image: str | None = None
    signal: str | None = None  # e.g. SIGKILL, SIGXFSZ when a signal ended the program
    total_s: float | None = None  # wall time including the sandbox's own start and clean-up
    cached: bool = False  # read back from the execution cache (tasks/executions.py), not run now


# --------------------------------------------------------------------------- gate and judges


class GateResult(Record):
    ok: bool
    problems: list[str] = Field(default_factory=list)
    sample_rate: int | None = None
    channels: int | None = None
    duration_s: float | None = None
    peak: float | None = None
    rms: float | None = None
    sha256: str | None = None
    gate_version: str = ""


class Judgement(Record):
    """One judge's verdict on one clip. `values` holds the judge's own fields (f0_hz, choices, ...)."""

    judge: str  # e.g. "pitch/torchcrepe-full", "classify/clap-630k", "classify/offline-audio-knn"
    judge_version: str
    audio_sha256: str
    params: dict[str, Any] = Field(default_factory=dict)
    correct: bool | None = None
    score: float | None = None
    values: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    cached: bool = False


class FADResult(Record):
    """A Fréchet Audio Distance between a set of generated clips and a set of references."""

    label: str  # the class: an instrument ("guitar") or instrument x source ("guitar_acoustic")
    fad: float | None
    n_gen: int
    n_ref: int
    embedding: str
    baseline: float | None = None  # reference split in halves: the score of "the same distribution"
    ci: tuple[float, float] | None = None  # bootstrap over generated clips
    band: str | None = None  # the paper's calibration: highly / moderately similar, distinct
    note: str = ""
    model: str = ""  # set by the flow that made it; judges leave these empty
    method: str = ""
    group: str = ""  # "instrument" or "instrument_source"
    # issue 12: KAD beside FAD, FAD-inf, the baseline's own N, the fixed window, per-note scores
    kad: float | None = None  # unbiased KAD x100 (tasks.judges.distance), bandwidth from the references
    kad_ci: tuple[float, float] | None = None
    kad_baseline: float | None = None
    fad_inf: float | None = None  # fadtk's score_inf: frames drawn with replacement, 25 sizes from 500
    baseline_n_gen: int | None = None  # the sizes the same-distribution baselines stand for: (n_gen, n_ref)
    baseline_n_ref: int | None = None
    # issue 21: the baselines' spread (middle 95 % of same-distribution scores at that N) and how they were
    # had: "drawn" at exactly that N, or "extrapolated" by the 1/N form (the note gives the fit)
    baseline_range: tuple[float, float] | None = None
    kad_baseline_range: tuple[float, float] | None = None
    baseline_method: str = ""
    window_s: float | None = None  # every clip cut or padded to this length before embedding
    band_note: str = ""  # why there is no band, where there is none
    per_note: dict[str, dict] = Field(default_factory=dict)  # audio path -> {"fad", "kad", "band"}
    # what it was computed from (judging.fad_inputs_key): a resume that brings the same clips keeps it
    inputs_sha256: str = ""
    format_version: int = 1  # stored record: a change bumps it and adds a migration (audioprobe/stored.py)


class ReferencePoint(Record):
    """A control (silence, noise, a sine or tone burst, a held-out real clip) through one judge of a tier."""

    tier: Tier
    control: str
    item: str
    label: str
    judge: str
    judge_version: str = ""
    correct: bool | None = None
    values: dict = Field(default_factory=dict)
    gate_ok: bool | None = None
    gate_problems: list[str] = Field(default_factory=list)
    error: str | None = None
    format_version: int = 1  # stored record: a change bumps it and adds a migration (audioprobe/stored.py)


# --------------------------------------------------------------------------- records

Stage = Literal["prompt", "generation", "execution", "gate", "judging", "done"]


class ItemOutcome(Record):
    """Everything that happened to one (item, model, method, sample): the unit a run records."""

    run_id: str
    item: ProbeItem
    model: str
    method: str
    sample: int = 0
    round: int = 0  # 0: the first answer; r: the answer after r rounds of feedback (repair protocol)
    repaired_from: str | None = None  # what the feedback of this round addressed: the last round's failure
    prompt: RenderedPrompt | None = None
    generation: Generation | None = None
    execution: ExecutionResult | None = None
    gate: GateResult | None = None
    judgements: list[Judgement] = Field(default_factory=list)
    audio_path: str | None = None
    stage_reached: Stage = "prompt"
    failure: str | None = None  # taxonomy: syntax, runtime, missing_module, timeout, memory, ...
    error: str | None = None  # a clear message naming the item and the reason
    failure_detail: str = ""  # the short specific: module name, exception type, gate problems, ...
    row: dict[str, Any] = Field(default_factory=dict)  # the flat table row (tasks/outcomes.py)
    format_version: int = 2  # 1: before the derived fields (failure_detail, row) were stored


class RunRequest(Record):
    """What a user asks a run to do: the same fields from `audioprobe run`, the nightly deployment's
    parameters and the UI's form, checked by `tasks.runs.check_request` before a run directory exists."""

    models: list[str]
    tiers: list[str]
    methods: list[str] | None = None  # None: every method of each tier
    limit: int | None = None  # items per tier; None: all (or the offline default size)
    samples: int = 1
    repair_rounds: int = 0
    seed: int = 0
    dataset_root: str | None = None
    split: str | None = None


class RunManifest(Record):
    """What a run was asked to do, with what: written once at the start, read by resume and report."""

    run_id: str
    created: str  # ISO time
    config_hash: str  # same command and data -> same hash: the same command run again resumes
    models: list[str]
    tiers: list[Tier]
    methods: dict[str, list[str]]  # tier -> prompt methods
    samples: int = 1
    repair_rounds: int = 0  # follow-up turns with feedback after a failed answer; 0 is the paper's protocol
    limit: int | None = None
    seed: int = 0
    dataset_root: str | None = None  # None: the offline reference sets
    split: str | None = None  # the NSynth split (--split); None: the loader's default, test (the paper's)
    settings: dict[str, Any] = Field(default_factory=dict)  # snapshot, secrets excluded
    versions: dict[str, str] = Field(default_factory=dict)  # audioprobe, python, packages, image
    skipped: list[SkippedItem] = Field(default_factory=list)
    finished: str | None = None  # set only when every item reached a final outcome
    incomplete: str | None = None  # the one-line reason the last attempt left items unfinished
    flow_runs: list[str] = Field(default_factory=list)
    format_version: int = 1  # stored record: a change bumps it and adds a migration (audioprobe/stored.py)


class RunItems(Record):
    """A run's items of one tier (items-<tier>.json), sampled once and frozen: resume and retry reuse them."""

    items: list[ProbeItem]
    format_version: int = 2  # 1: a bare JSON list of items


class MatchedNTable(Record):
    """The run's matched-N FAD/KAD comparison (matched_n.json, tasks/comparisons.py), stored when the run ends
    so the report only reads it; its columns are comparisons.MATCHED_COLUMNS."""

    rows: list[dict[str, Any]]
    format_version: int = 1


# --------------------------------------------------------------------------- migrations of stored records
# One step per version change, on the raw dict (audioprobe/stored.py); a nested model's change is a step
# of every stored type that holds it (ItemOutcome holds ProbeItem, Generation, ExecutionResult, ...).


@stored.migration(ItemOutcome, 1)
def _outcome_1_to_2(raw: dict) -> dict:
    return raw  # only derived fields were added; they are computed after validation (below)


stored.derive(ItemOutcome, since=2, target="tasks.outcomes:finalize")


@stored.migration(RunItems, 1)
def _items_list_to_record(raw: list) -> dict:
    return {"items": raw}

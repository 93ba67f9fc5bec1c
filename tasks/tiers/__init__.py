"""The tier registry: everything that differs between tiers lives on its `Tier`, one module per tier.

A module elsewhere never tests a tier's name; it looks the tier up (`get_tier(item.tier)`) and asks it:
what is asked (`asked`), where its items come from (`load_items`), what its prompt says (`prompt_values`,
`contract`), which judges hear it (`judge`, `set_judges`), its controls, its repair feedback, its
baseline program and the headline its report shows. This package imports only the schema at module
level (the tier modules import probesets, judges and prompting inside their methods), so every layer
may import it without a cycle.

Adding a tier: a module here that builds a `Tier` (or a subclass) and calls `register`; every module of
this package is found by itself (docs/CONTRIBUTING.md).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from audioprobe.schema import Judgement, ProbeItem, SkippedItem

if TYPE_CHECKING:
    from audioprobe.schema import ItemOutcome


class UnknownTier(ValueError):
    """A tier name no module registered."""


class Asked(NamedTuple):
    """What the tier's prompt asks of the clip, as the gate checks it."""

    sample_rate: int | None  # None: the prompt names no rate
    seconds: float
    tolerance: float  # relative, on the duration


@dataclass(frozen=True)
class Contract:
    """The optional output-contract line's numbers (`prompt_contract` setting)."""

    suffix: str  # ".WAV" where the paper's prompt names the file so
    sample_rate: int
    seconds: float


@dataclass(frozen=True)
class Tier:
    """A tier's facts as fields, its behaviour as methods a tier module overrides (tasks/tiers/tones.py)."""

    name: str
    title: str
    methods: tuple[str, ...]  # the first is the default
    asked: Asked
    contract: Contract
    paper: bool = True  # one of the paper's tiers: `--tier all` runs those
    offline_dir: str | None = None  # folder under refs_dir and --dataset-root; None: items need no data
    loader: str | None = None  # module with load(root, limit, seed, **options) (and load_tfds)
    tfds_name: str | None = None  # the loader's load_tfds reads it ("tfds[:split]" as --dataset)
    split_option: bool = False  # the loader takes --split (NSynth)
    controls: tuple[str, ...] = ("silence", "white_noise", "tone_burst")
    control_seconds: float = 2.0
    # Clips compared as a set per class (FAD/KAD): controls get per-note distances, models a matched-N table.
    distances_per_class: bool = False
    forced_choice: bool = False  # the headline judge picks 1 of 5 labels (chance 20 %; listeners name it)
    described: bool = False  # a describer model may write the items' descriptions (`describer_model`)
    headline: str = ""  # the judge whose verdict the report leads with
    # the report's own section for this tier (audioprobe/report/html.SECTIONS); "": the generic section
    report_section: str = ""
    columns: tuple[str, ...] = ()  # item fields the report's table shows

    @property
    def default_method(self) -> str:
        return self.methods[0]

    # ------------------------------------------------------------------ items

    def load_items(
        self, root: Path | None, limit: int | None, seed: int, **options: Any
    ) -> tuple[list[ProbeItem], list[SkippedItem]]:
        """Items from a folder in the dataset's native layout (tasks/probesets/loaders.py checks it)."""
        return importlib.import_module(self.loader).load(root, limit=limit, seed=seed, **options)

    def load_tfds(
        self, split: str, limit: int | None, seed: int, **options: Any
    ) -> tuple[list[ProbeItem], list[SkippedItem]]:
        from tasks.probesets.common import DatasetError

        if not self.tfds_name:
            raise DatasetError(
                f"the {self.name} tier's dataset is not in TensorFlow Datasets: "
                f"pass its folder with --dataset"
            )
        return importlib.import_module(self.loader).load_tfds(split=split, limit=limit, seed=seed, **options)

    def build_refs(self, root: Path, fetcher, progress, force: bool, **subset: Any) -> dict:
        """Build the offline reference set under root (`audioprobe refs build`); returns its manifest."""
        from tasks.probesets.common import DatasetError

        raise DatasetError(f"the {self.name} tier has no offline reference set to build")

    # ------------------------------------------------------------------ prompt

    def prompt_values(self, item: ProbeItem) -> dict[str, str | None]:
        """Every placeholder this tier's templates may use (None: the item lacks it); sound_id is added."""
        raise NotImplementedError

    # ------------------------------------------------------------------ judges

    def judges(self, dataset_root: str | None = None) -> list:
        """The per-clip judges (the Judge protocol, tasks/judges/base.py), each built once per process and
        dataset: a judge that loads a model or embeds a reference bank is not built twice."""
        raise NotImplementedError

    def judge(
        self, audios: list[Path], items: list[ProbeItem], dataset_root: str | None = None
    ) -> list[list[Judgement]]:
        """Every judge of the tier, cached per clip content, over a batch of clips that passed the gate."""
        from tasks.judges.base import judge_all

        return judge_all(self.judges(dataset_root), audios, items)

    def judge_control(
        self, audio: Path, item: ProbeItem, control: str, dataset_root: str | None = None
    ) -> list[Judgement]:
        """A control clip (tasks/judges/controls.py) through the same judges."""
        return self.judge([audio], [item], dataset_root)[0]

    def set_judges(self, run, outcomes: list[ItemOutcome], model: str, method: str) -> None:
        """Set-level judges over a model's outcomes of a method, stored in the run (notes: FAD)."""

    # ------------------------------------------------------------------ repair and baseline

    def wrong_sound_feedback(self, outcome: ItemOutcome, values: dict) -> tuple[str, dict[str, object]]:
        """(repair template, its values) after a judge said the sound is not the target: by default the
        forced choice's candidates and what it heard."""
        confidence = (
            f" (confidence {values['confidence']:.2f})" if values.get("confidence") is not None else ""
        )
        text = values.get("text")
        heard = values.get("chosen") or (
            f"nothing it could name (it decoded {text!r})" if text else "nothing"
        )
        return "repair.classes.txt", {
            "choices": ", ".join(f'"{c}"' for c in values.get("choices", [])),
            "chosen": heard,
            "confidence": confidence,
            "target": outcome.item.label,
        }

    def baseline_program(self, item: ProbeItem, out_name: str) -> str:
        """The `baseline/template` program: plain numpy/scipy, deterministic."""
        raise NotImplementedError


_REGISTRY: dict[str, Tier] = {}
PAPER_ORDER = ("notes", "environmental", "speech")  # the report's order; other tier modules follow by name
_LOADED: list[bool] = []


def register(tier: Tier) -> Tier:
    if tier.name in _REGISTRY and _REGISTRY[tier.name] is not tier:
        raise ValueError(f"tier {tier.name!r} registered twice")
    _REGISTRY[tier.name] = tier
    return tier


def _load() -> dict[str, Tier]:
    """Every tier module of this package imported once; the registry in PAPER_ORDER, then the others by
    name, whatever was imported first."""
    if not _LOADED:
        found = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
        order = [n for n in PAPER_ORDER if n in found] + [n for n in found if n not in PAPER_ORDER]
        modules = [importlib.import_module(f"{__name__}.{m}") for m in order]
        ordered = {m.TIER.name: m.TIER for m in modules}
        ordered.update(_REGISTRY)
        _REGISTRY.clear()
        _REGISTRY.update(ordered)
        _LOADED.append(True)
    return _REGISTRY


def get_tier(name: str) -> Tier:
    tiers = _load()
    if name not in tiers:
        raise UnknownTier(f"unknown tier {name!r}; valid: {', '.join(tiers)}")
    return tiers[name]


def all_tiers() -> list[Tier]:
    """Every registered tier, the paper's in the paper's order first."""
    return list(_load().values())


def paper_tiers() -> list[Tier]:
    """What `--tier all` means: the paper's tiers; the others are asked for by name."""
    return [t for t in all_tiers() if t.paper]


def names() -> list[str]:
    return [t.name for t in all_tiers()]


def tier_methods() -> dict[str, tuple[str, ...]]:
    return {t.name: t.methods for t in all_tiers()}


def with_references() -> list[Tier]:
    """The tiers whose items come from a reference set (`audioprobe refs build` builds those)."""
    return [t for t in all_tiers() if t.offline_dir]

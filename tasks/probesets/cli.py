"""`audioprobe items` and `audioprobe refs build`."""

from __future__ import annotations

import json
import os
import sys
import time

from audioprobe.cli import UserError, emit
from tasks.tiers import get_tier, names, with_references


def register(subparsers) -> None:
    p = subparsers.add_parser("items", help="list a tier's probe items, one JSON object per line")
    p.add_argument("--tier", required=True, choices=names(), help="the tier whose items to list")
    p.add_argument(
        "--dataset",
        help="the dataset folder in its native layout, or tfds[:split]; "
        "default: the offline reference sets (`audioprobe refs build`)",
    )
    p.add_argument("--limit", type=int, help="notes: the sample size (default 1500); other tiers: classes")
    p.add_argument("--seed", type=int, default=0, help="seed of the item sample")
    p.add_argument(
        "--split",
        help="nsynth: test (default: the paper's, its 16-class structure checked when complete)/valid/train/all; "
        "fsd50k: dev/eval/all; "
        "speech_commands: test (default)/validation/train/all",
    )
    p.set_defaults(func=cmd_items)

    r = subparsers.add_parser("refs", help="offline reference sets built from Debian/PyPI recordings")
    rs = r.add_subparsers(dest="refs_command", required=True)
    b = rs.add_parser("build", help="build (or confirm up to date) the offline reference sets")
    b.add_argument("--tier", action="append", choices=[t.name for t in with_references()],
                   help="repeat for several; default every tier with a reference set")
    b.add_argument("--out", help="output folder (default: settings.refs_dir)")
    b.add_argument("--force", action="store_true", help="rebuild even when up to date")
    b.set_defaults(func=cmd_refs_build)


def cmd_items(args) -> int:
    from tasks.probesets.common import DatasetError
    from tasks.probesets.loaders import load_items

    options = {"split": args.split} if args.split else {}
    try:
        items, skipped = load_items(args.tier, args.dataset, limit=args.limit, seed=args.seed, **options)
    except DatasetError as exc:
        raise UserError(str(exc)) from exc
    try:
        for item in items:
            record = item.model_dump(mode="json", exclude_none=True)
            for field in ("qualities", "quality_descriptions"):  # only a tier that shows them says "none"
                if field not in get_tier(item.tier).columns:
                    record.pop(field, None)
            emit(record)
        sys.stdout.flush()
    except BrokenPipeError:  # `| head`: the reader has all it wants
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    for s in skipped:
        print(json.dumps({"skipped": s.key, "tier": s.tier, "reason": s.reason}), file=sys.stderr)
    print(
        f"audioprobe: {len(items)} {args.tier} items, {len(skipped)} skipped (listed above)"
        if skipped
        else f"audioprobe: {len(items)} {args.tier} items",
        file=sys.stderr,
    )
    return 0


def cmd_refs_build(args) -> int:
    from pathlib import Path

    from tasks.probesets.common import DatasetError
    from tasks.probesets.refs import build_refs

    t0 = time.monotonic()
    try:
        summary = build_refs(args.tier, Path(args.out) if args.out else None, force=args.force)
    except DatasetError as exc:
        raise UserError(str(exc)) from exc
    emit({"tiers": summary, "seconds": round(time.monotonic() - t0, 1)})
    return 0

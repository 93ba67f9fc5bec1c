"""Probe sets: the paper's three datasets in their native layouts, its sampling, and offline references.

Entry point: `tasks.probesets.loaders.load_items`. Kept import-light: the CLI imports this package.
"""


def load_items(*args, **kwargs):
    from tasks.probesets.loaders import load_items as _load

    return _load(*args, **kwargs)

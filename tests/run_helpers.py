"""Helpers shared by test modules: a data config for a local folder, and one conversion run."""

import ml_collections

from jaxsnn.cli import convert as engine


def local_config(dataset: str, local_dir, data_dir, **fields) -> ml_collections.ConfigDict:
    """The data fields for ``dataset`` read from ``local_dir`` (seeded, inline workers)."""
    return ml_collections.ConfigDict(
        {
            "dataset": dataset,
            "local_dir": str(local_dir),
            "data_dir": str(data_dir),
            "seed": 0,
            "data_workers": 0,
            **fields,
        }
    )


def convert(config, workdir, **overrides) -> dict:
    """``convert.py``'s engine on a copy of ``config`` with ``config.convert`` overrides, no
    progress output; returns the results dict."""
    config = config.copy_and_resolve_references()
    config.convert.update(overrides)
    config.convert.progress = False
    return engine.convert_and_evaluate(config, workdir)

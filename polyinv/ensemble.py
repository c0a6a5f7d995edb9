"""``python -m polyinv.ensemble --config configs/mlp.yaml --members N [--level 0.9] [--section.key value ...]``.

Trains N copies of one network config that differ only in their initialisation seed (``model_seed`` =
seed + i; the data split keeps ``seed``), then writes one loadable folder
``<output.root>/<name>_ensemble/version_K`` with ``member_00.ckpt`` … and ``ensemble.json``. The
interval multiplier is calibrated on the validation split; test-split metrics and the coverage of
the ``--level`` interval go to ``metrics.json``. Prints ``run: <folder>`` last.
"""

from __future__ import annotations

import sys

from polyinv.errors import ArgumentParser, PolyinvError, run_cli


def train_ensemble(config: dict, members: int, level: float = 0.9, verbose: bool = False):
    """Train the members and build, calibrate, evaluate and save the ensemble; returns (folder, metrics)."""
    import shutil

    import numpy as np

    from polyinv.metrics import evaluate, format_table, write_json
    from polyinv.models import NETWORKS
    from polyinv.train import build_datamodule, build_model, new_run_dir, run
    from polyinv.trust.ensemble import EnsembleModel

    if members < 2:
        raise PolyinvError(f"--members must be at least 2, got {members}")
    if config["model"].get("kind", "mlp") not in NETWORKS:
        raise PolyinvError(f"ensembles are built from networks ({', '.join(NETWORKS)}), not {config['model'].get('kind')!r}")
    if not config["data"]["val_fraction"]:
        raise PolyinvError("an ensemble calibrates its intervals on the validation split; set data.val_fraction > 0 (e.g. --data.val_fraction 0.1)")
    base_seed = config["seed"] if config.get("model_seed") is None else config["model_seed"]
    dm = build_datamodule(config)
    dm.setup("fit")
    build_model(config, dm)  # bad data or model settings fail here, before any folder is made
    folder = new_run_dir(config["output"]["root"], f"{config['name']}_ensemble")
    files, runs = [], []
    for i in range(members):
        member_config = dict(config, model_seed=base_seed + i, name=f"{config['name']}_ensemble_member")
        result = run(member_config, verbose=verbose)
        if result is None:  # DDP worker
            return None, None
        name = f"member_{i:02d}.ckpt"
        shutil.copyfile(result.run_dir / "best.ckpt", folder / name)
        files.append(name)
        runs.append(str(result.run_dir))
    model = EnsembleModel.load_members([folder / f for f in files])

    def arrays(frame):
        return (frame[list(dm.mmd_columns)].to_numpy(np.float64), frame[list(dm.side_columns)].to_numpy(np.float64),
                frame[list(dm.target_columns)].to_numpy(np.float64))

    model.calibrate(*arrays(dm.val_frame))
    from polyinv.trust.domain import fit_model_consistency

    fit_rows = dm.frame.iloc[np.concatenate([dm.train_idx, dm.val_idx])]
    model.domain = fit_model_consistency(model, model.domain, fit_rows)  # thresholds of the ensemble's own recipes
    mmd, side, y = arrays(dm.test_frame)
    mean, low, high = model.predict_interval(mmd, side, level)
    metrics = evaluate(y, mean, list(dm.target_columns))
    coverage = ((y >= low) & (y <= high)).mean(axis=0)
    metrics["interval"] = {"level": level, "coverage": dict(zip(dm.target_columns, coverage.tolist(), strict=True))}
    write_json(metrics, folder / "metrics.json")
    model.save(folder, files, {"member_runs": runs, "level": level, "test_coverage": metrics["interval"]["coverage"]})
    if verbose:
        print(format_table(metrics, title=f"ensemble of {members}, test split ({len(y)} rows)"))
        print(f"coverage of the {level:g} interval: " + ", ".join(f"{t} {c:.3f}" for t, c in zip(dm.target_columns, coverage, strict=True)))
    return folder, metrics


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m polyinv.ensemble", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML config of a network (configs/mlp.yaml, cnn.yaml)")
    parser.add_argument("--members", type=int, default=5, help="number of members (default 5)")
    parser.add_argument("--level", type=float, default=0.9, help="interval level reported on the test split")

    def body() -> int:
        args, rest = parser.parse_known_args(argv)
        from polyinv import config as cfg

        config = cfg.resolve(args.config, cfg.parse_overrides(rest))
        folder, _ = train_ensemble(config, args.members, args.level, verbose=True)
        if folder is not None:
            print(f"run: {folder}")
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())

"""Command line: one subcommand per DVC stage; parses paths, loads params, calls the stage's run().

Stage name = subcommand = module:
``dvc.yaml: prepare`` -> ``agcc prepare`` -> ``agcc.stages.prepare.run()``.
Every path comes in as an option from ``dvc.yaml``; nothing under ``src/`` hard-codes a data path.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from agcc.errors import AgccError
from agcc.params import TUNABLE_METHODS, ParamsError, TuneParams, load_params

if TYPE_CHECKING:
    from agcc.io.corpus import Inputs

log = logging.getLogger("agcc")


def _cmd_demo(args: argparse.Namespace) -> None:
    """Generate the two demo corpora."""
    from agcc.stages import demo

    p = load_params(args.params)
    demo.run(p.demo, p.base.seed, Path(args.metrics) if args.metrics else None)


def _cmd_prepare(args: argparse.Namespace) -> None:
    """Write one corpus's manifest and speaker-independent splits."""
    from agcc.stages import prepare

    p = load_params(args.params)
    prepare.run(args.corpus, p.corpus(args.corpus), p.prepare, p.base, Path(args.out))


def _cmd_landmarks(args: argparse.Namespace) -> None:
    """Read, normalise and store the mouth tracks of one corpus."""
    from agcc.stages import landmarks

    p = load_params(args.params)
    source = p.corpus(args.corpus).landmarks_source
    landmarks.run(args.corpus, Path(args.manifest), p.landmarks, p.base, Path(args.out), source)


def _cmd_align(args: argparse.Namespace) -> None:
    """Align one corpus's transcripts (pocketsphinx) or pass its TextGrids on."""
    from agcc.stages import align

    p = load_params(args.params)
    source = p.corpus(args.corpus).align_source
    align.run(args.corpus, Path(args.manifest), source, p.align, p.base, Path(args.out))


def _cmd_segments(args: argparse.Namespace) -> None:
    """Cut the vowel segments of one corpus."""
    from agcc.stages import segments

    p = load_params(args.params)
    p.corpus(args.corpus)
    segments.run(
        args.corpus, Path(args.manifest), Path(args.mouth), p.segments, p.base, Path(args.out)
    )


def _segment_dirs(args: argparse.Namespace, corpora: dict) -> list[Path]:
    """Segments folders: given one by one, or one per params.yaml corpus under a root."""
    if args.segments:
        return [Path(d) for d in args.segments]
    return [Path(args.segments_root) / name for name in corpora]


def _cmd_cluster(args: argparse.Namespace) -> None:
    """Fit the AG clusters on the fit split of all corpora and assign every segment."""
    from agcc.stages import cluster

    p = load_params(args.params)
    cluster.run(_segment_dirs(args, p.corpora), p.cluster, p.base, Path(args.out))


def _cmd_features(args: argparse.Namespace) -> None:
    """Encode the audio of one corpus into 50 frames/s acoustic features."""
    from agcc.stages import features

    p = load_params(args.params)
    p.corpus(args.corpus)
    features.run(args.corpus, Path(args.manifest), p.features, p.base, Path(args.out))


def _cmd_analyze(args: argparse.Namespace) -> None:
    """Write the paper's Table I and Fig. 1 (and Fig. 2 with features) for two corpora."""
    from agcc.stages import analyze

    p = load_params(args.params)
    segs = _segment_dirs(args, p.corpora)
    feats = Path(args.features_root) if args.features_root else None
    analyze.run(segs, Path(args.clusters), p.analyze, p.base, Path(args.out), feats)


def _grid_inputs(args: argparse.Namespace) -> Inputs:
    """The four input folders of the training grid (train and tune)."""
    from agcc.io.corpus import Inputs

    return Inputs(
        Path(args.features_root),
        Path(args.segments_root),
        Path(args.prepared_root),
        Path(args.clusters),
    )


def _cmd_train(args: argparse.Namespace) -> None:
    """Train one method's SER models (train.methods; source_only also serves the upper bounds)."""
    from agcc.stages import train

    p = load_params(args.params)
    p.check_directions()
    train.check_method_name(args.method, p.train)
    train.run(
        _grid_inputs(args),
        args.method,
        p.train,
        p.base,
        p.analyze.common_threshold,
        Path(args.out),
    )


def _cmd_tune(args: argparse.Namespace) -> None:
    """Optuna study over one anchored method's own hyperparameters (ag_cc: and k); objective =
    UAR on the target DEV split."""
    from agcc.stages import tune

    p = load_params(args.params)
    p.check_directions()
    update = {
        key: value
        for key, value in (
            ("method", args.method),
            ("storage", args.storage),
            ("study_name", args.study_name),
            ("max_epochs", args.max_epochs),
        )
        if value is not None
    }
    if update:  # re-validated: --method needs its ranges in tune.ranges
        p = p.model_copy(update={"tune": _valid_tune(p.tune.model_dump() | update)})
    p.check_tune_k()
    tp = p.tune
    metrics = Path(args.metrics) if args.metrics else None
    tune.run(
        _grid_inputs(args),
        tp,
        p.train,
        p.base,
        p.tune_direction(),
        p.analyze.common_threshold,
        Path(args.out),
        args.n_trials,
        args.worker,
        metrics,
    )


def _valid_tune(raw: dict) -> TuneParams:
    """The tune section with command-line overrides, validated (errors name the option)."""
    from pydantic import ValidationError

    try:
        return TuneParams.model_validate(raw)
    except ValidationError as e:
        msgs = "; ".join(err["msg"] for err in e.errors())
        raise ParamsError(f"agcc tune options: invalid tune section: {msgs}") from e


def _cmd_evaluate(args: argparse.Namespace) -> None:
    """Write the paper's Table II (UARs, binary UARs, bootstrap CIs) from the train outputs."""
    from agcc.stages import evaluate

    p = load_params(args.params)
    evaluate.run(Path(args.train), p.train.table_methods(), p.evaluate, p.base, Path(args.out))


def _cmd_params(args: argparse.Namespace) -> None:
    """Validate the whole params file (every key) and write the marker other stages depend on."""
    from agcc.stages import params

    params.run(Path(args.params), Path(args.out))


def _cmd_predict(args: argparse.Namespace) -> None:
    """Emotion posteriors of audio files from a trained model (checkpoint or MLflow URI)."""
    from agcc.stages import predict

    predict.run(args.model, [Path(a) for a in args.audio], Path(args.out), args.device)


def _predict_command(add: Callable[[str, Command, str], argparse.ArgumentParser]) -> None:
    """Run a trained model on new audio (not a DVC stage)."""
    sp = add("predict", _cmd_predict, "audio files -> emotion posteriors (CSV) of a trained model")
    sp.add_argument(
        "--model",
        required=True,
        help="model.pt of a train run, or an MLflow model URI (runs:/<run_id>/model, models:/...)",
    )
    sp.add_argument("audio", nargs="+", help="audio files, or folders searched for audio files")
    sp.add_argument("--out", required=True, help="CSV of posteriors, one row per audio file")
    sp.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))


def _cmd_check(args: argparse.Namespace) -> None:
    """Report what each corpus holds and what every stage will do with it; run nothing."""
    from agcc.errors import DataError
    from agcc.stages import check

    text, counts, problems = check.run(load_params(args.params), args.corpus or None)
    print(text)
    if args.json:
        check.write_json(counts, Path(args.json))
    if problems:
        raise DataError(f"check: {len(problems)} problem(s):\n  " + "\n  ".join(problems))


def _check_command(add: Callable[[str, Command, str], argparse.ArgumentParser]) -> None:
    """`agcc check`: the corpora as the stages will see them (not a DVC stage)."""
    sp = add("check", _cmd_check, "what each corpus holds and what every stage will do with it")
    sp.add_argument("--corpus", nargs="+", help="corpora to check (default: all in params.yaml)")
    sp.add_argument("--json", help="also write the counts as JSON here")


def _cmd_summary(args: argparse.Namespace) -> None:
    """Print where the pipeline's outputs are and their headline counts."""
    from agcc.stages import summary

    print(summary.render(Path(args.root)))


def _segment_options(sp: argparse.ArgumentParser) -> None:
    """--segments DIR... or --segments-root DIR (one sub-folder per params.yaml corpus)."""
    g = sp.add_mutually_exclusive_group(required=True)
    g.add_argument("--segments", nargs="+", help="segments folders, one per corpus")
    g.add_argument("--segments-root", help="folder with one segments folder per corpus in params")


Command = Callable[[argparse.Namespace], None]


def _corpus_options(sp: argparse.ArgumentParser, manifest: bool = True) -> None:
    """--corpus NAME (from params.yaml) [--manifest CSV] --out DIR of a per-corpus stage."""
    sp.add_argument("--corpus", required=True, help="corpus name from params.yaml `corpora`")
    if manifest:
        sp.add_argument("--manifest", required=True, help="manifest.csv of the corpus")


def _grid_options(sp: argparse.ArgumentParser) -> None:
    """The input folders of train and tune."""
    sp.add_argument("--features-root", required=True, help="one features folder per corpus")
    sp.add_argument("--segments-root", required=True, help="one segments folder per corpus")
    sp.add_argument("--prepared-root", required=True, help="one manifest folder per corpus")
    sp.add_argument("--clusters", required=True, help="output folder of the cluster stage")


def _corpus_commands(add: Callable[[str, Command, str], argparse.ArgumentParser]) -> None:
    """The per-corpus stages: prepare, landmarks, align, segments, features."""
    _corpus_options(add("prepare", _cmd_prepare, "corpus -> manifest.csv + splits.csv"), False)
    _corpus_options(add("landmarks", _cmd_landmarks, "landmarks -> normalised mouth tracks"))
    _corpus_options(add("align", _cmd_align, "transcripts -> TextGrids (pocketsphinx) or as-is"))
    sp = add("segments", _cmd_segments, "mouth tracks + TextGrids -> vowel segments")
    _corpus_options(sp)
    sp.add_argument("--mouth", required=True, help="mouth.npz from the landmarks stage")
    _corpus_options(add("features", _cmd_features, "audio -> acoustic frame features (50/s)"))


def _analysis_commands(add: Callable[[str, Command, str], argparse.ArgumentParser]) -> None:
    """The stages over all corpora: cluster, analyze, train, evaluate."""
    _segment_options(add("cluster", _cmd_cluster, "vowel segments -> AG clusters (Soft-DTW)"))
    sp = add("analyze", _cmd_analyze, "segments + AG clusters -> Table I, Fig. 1 (and Fig. 2)")
    _segment_options(sp)
    sp.add_argument("--clusters", required=True, help="output folder of the cluster stage")
    sp.add_argument("--features-root", help="one features folder per corpus; adds Fig. 2")
    sp = add("train", _cmd_train, "features + segments + AG clusters -> one method's SER models")
    _grid_options(sp)
    sp.add_argument(
        "--method", required=True, help="one of train.methods; --out is data/train/<method>"
    )
    sp = add("evaluate", _cmd_evaluate, "train outputs -> Table II (UAR, binary UAR, CIs)")
    sp.add_argument("--train", required=True, help="parent folder of the train@<method> outputs")


def _tune_command(add: Callable[[str, Command, str], argparse.ArgumentParser]) -> None:
    """The Optuna study (its own pipeline, tune/dvc.yaml)."""
    sp = add("tune", _cmd_tune, "Optuna study of one method's own section on the target DEV split")
    _grid_options(sp)
    sp.add_argument(
        "--method",
        choices=TUNABLE_METHODS,
        help="anchored method to tune (default tune.method); one study per method, same budget",
    )
    sp.add_argument("--metrics", help="write the study's summary metrics as JSON here")
    sp.add_argument("--n-trials", type=int, help="finished trials to reach (default tune.n_trials)")
    sp.add_argument(
        "--worker",
        action="store_true",
        help="only run trials of the shared study (start several, on any machine)",
    )
    sp.add_argument("--storage", help="RDB URL overriding tune.storage")
    sp.add_argument("--study-name", help="overrides tune.study_name")
    sp.add_argument(
        "--max-epochs",
        type=int,
        help="epoch budget of each trial, overriding tune.max_epochs (part of the search space)",
    )


def _parser() -> argparse.ArgumentParser:
    """Build the argument parser with one subparser per stage."""
    ap = argparse.ArgumentParser(prog="agcc", description=__doc__.splitlines()[0])
    ap.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    ap.add_argument("--params", default="params.yaml", help="params file (default params.yaml)")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = ap.add_subparsers(dest="command", required=True)
    outs: dict[str, str] = {"demo": "", "summary": "", "predict": "", "check": ""}

    def add(name: str, fn: Command, help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_)
        sp.set_defaults(func=fn)
        if name not in outs:
            sp.add_argument("--out", required=True, help="output folder (file for params)")
        return sp

    add("params", _cmd_params, "validate every key of the params file")
    sp = add("demo", _cmd_demo, "generate the demo corpora (demo_crema, demo_improv)")
    sp.add_argument("--metrics", help="write generation counts as JSON here")
    _corpus_commands(add)
    _analysis_commands(add)
    _tune_command(add)
    _predict_command(add)
    _check_command(add)
    sp = add("summary", _cmd_summary, "print where the outputs are and their counts")
    sp.add_argument("--root", default=".", help="project root (default .)")
    return ap


def _version() -> str:
    """The installed distribution's version (the package's own when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("agcc")
    except PackageNotFoundError:
        from agcc import __version__

        return __version__


def quiet_bars_off_terminal() -> None:
    """Turn tqdm's progress bars off when stderr is not a terminal (logs, CI, ``make > log``).

    A bar redraws itself with carriage returns and cursor-up codes; captured in a file that is
    one line per redraw. tqdm (>= 4.66) reads ``TQDM_<ARGUMENT>`` environment variables as
    defaults for every bar when ``tqdm`` is first imported, so this must run before any stage
    module is imported. A ``TQDM_DISABLE`` the caller set is kept; the log lines of each stage
    still say what it is doing.
    """
    if not sys.stderr.isatty():
        os.environ.setdefault("TQDM_DISABLE", "1")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``agcc`` console script."""
    args = _parser().parse_args(argv)
    quiet_bars_off_terminal()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    from tqdm.contrib.logging import logging_redirect_tqdm

    try:
        # log lines go through tqdm.write, above the bars, instead of onto a bar's line
        with logging_redirect_tqdm():
            args.func(args)
    except AgccError as e:
        # Expected failures (bad params, bad or missing input, too many skips) get one clear
        # line; --verbose adds the traceback. Anything else is a bug and keeps its traceback.
        log.error("%s", e, exc_info=args.verbose)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

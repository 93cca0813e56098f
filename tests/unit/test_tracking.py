"""stage_run: metrics and skip reports on success; FAILED runs and no metrics on failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agcc import tracking
from agcc.skips import SkipReport, TooManySkipsError
from tests.tracking_store import runs as stored_runs


def test_successful_stage_writes_metrics_and_skips(tracked: Path) -> None:
    with tracking.stage_run(
        "prepare",
        {"a": {"b": 1}},
        corpus="c1",
        metrics_path="m/metrics.json",
        skips_path="m/skips.csv",
        max_skip_share=0.5,
    ) as run:
        run.skips.n_seen = 4
        run.skips.add("u1", "x.wav", "unreadable: bad header")
        run.metrics["n_utts"] = 3
    m = json.loads((tracked / "m/metrics.json").read_text())
    assert m["n_utts"] == 3 and m["n_skipped"] == 1 and m["skip_share"] == 0.25
    assert m["skipped.unreadable"] == 1
    assert "u1,x.wav,unreadable: bad header" in (tracked / "m/skips.csv").read_text()
    (r,) = stored_runs(tracked)
    assert r.info.status == "FINISHED"
    assert r.data.params["a.b"] == "1"
    assert r.data.tags["stage"] == "prepare" and r.data.tags["corpus"] == "c1"
    assert r.data.metrics["n_utts"] == 3


def test_too_many_skips_fails_the_run_and_writes_no_metrics(tracked: Path) -> None:
    with pytest.raises(TooManySkipsError, match="dropped 2 of 3"):
        with tracking.stage_run(
            "landmarks",
            {},
            corpus="c1",
            metrics_path="m/metrics.json",
            skips_path="m/skips.csv",
            max_skip_share=0.5,
        ) as run:
            run.skips.n_seen = 3
            run.skips.add("u1", "a.csv", "missing file")
            run.skips.add("u2", "b.csv", "missing file")
    assert not (tracked / "m/metrics.json").exists()
    rows = (tracked / "m/skips.csv").read_text().splitlines()
    assert rows[0] == "item,path,reason,kind,detail"
    assert rows[1:] == [
        f"{u},{f},missing file,missing_file,{f}: missing file"
        for u, f in (("u1", "a.csv"), ("u2", "b.csv"))
    ]
    (r,) = stored_runs(tracked)
    assert r.info.status == "FAILED"


def test_exception_marks_run_failed(tracked: Path) -> None:
    with pytest.raises(ZeroDivisionError):
        with tracking.stage_run("segments", {}, metrics_path="m.json"):
            _ = 1 / 0
    (r,) = stored_runs(tracked)
    assert r.info.status == "FAILED"
    assert not (tracked / "m.json").exists()


def test_skip_report_share_and_check() -> None:
    rep = SkipReport("s", n_seen=10)
    for i in range(3):
        rep.add(f"u{i}", f"f{i}", "no target vowel: none of AA")
    assert rep.share() == pytest.approx(0.3)
    assert rep.counts() == {"no_target_vowel": 3}
    rep.check(0.3)
    with pytest.raises(TooManySkipsError, match="30.0%"):
        rep.check(0.29)


def test_child_runs_are_nested_and_fail_alone(tracked: Path) -> None:
    with tracking.stage_run("cluster", {"k_grid": [2, 3]}) as run:
        with run.child("k=2", {"k": 2}) as child:
            child.log_metrics({"inertia": 1.5})
        with pytest.raises(RuntimeError):
            with run.child("k=3", {"k": 3}):
                raise RuntimeError("fit diverged")
        run.metrics["k"] = 2
    runs = {r.info.run_name: r for r in stored_runs(tracked)}
    parent = runs["cluster"].info.run_id
    assert runs["cluster"].info.status == "FINISHED"
    assert runs["k=2"].info.status == "FINISHED" and runs["k=3"].info.status == "FAILED"
    assert runs["k=2"].data.tags["mlflow.parentRunId"] == parent
    assert runs["k=2"].data.metrics["inertia"] == 1.5
    assert runs["k=2"].data.tags["git_commit"] == runs["cluster"].data.tags["git_commit"]


def test_provenance_hashes_the_inputs_as_they_are_now(
    tracked: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib
    import subprocess

    subprocess.run(["git", "init", "-q"], check=True)
    subprocess.run(["dvc", "init", "-q"], check=True)
    (tracked / "dvc.yaml").write_text(
        "stages:\n  s:\n    cmd: cat in.txt > out.txt\n    deps:\n      - in.txt\n"
        "    outs:\n      - out.txt\n"
    )
    (tracked / "in.txt").write_text("first\n")
    (tracked / "in.txt").write_text("second\n")  # what the run reads, not an old dvc.lock
    monkeypatch.setenv("DVC_EXP_NAME", "brave-newt")
    tags = tracking.provenance("s", None, "s")
    assert tags["dvc.dep.in.txt"] == hashlib.md5(b"second\n").hexdigest()
    assert tags["dvc.exp_name"] == "brave-newt" and tags["stage"] == "s"
    assert tracking.input_hashes("no_such_stage") == {}


def test_outputs_rewritten_by_dvc_do_not_make_the_commit_dirty(tracked: Path) -> None:
    import subprocess

    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q"], check=True)
    (tracked / "src").mkdir()
    (tracked / "src" / "a.py").write_text("x = 1\n")
    (tracked / "metrics.json").write_text("{}\n")
    subprocess.run(["git", "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    (tracked / "metrics.json").write_text('{"n": 1}\n')
    assert not tracking.git_commit().endswith("-dirty")
    (tracked / "src" / "a.py").write_text("x = 2\n")
    assert tracking.git_commit().endswith("-dirty")

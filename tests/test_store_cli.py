"""``video-interpreter models ...``: tables, JSON and exit codes over a real store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from video_interpreter.cli import main
from video_interpreter.store import END_MARKER, START_MARKER, ModelStore

from .test_store import flip_byte, tiny_model


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    store = ModelStore(tmp_path / "saved_models")
    model = tiny_model()
    store.save(model, metrics={"acc": 0.5}, notes="first")
    store.save(model, metrics={"acc": 0.75})
    for epoch in (9, 10):
        store.save_checkpoint(model, epoch=epoch)
    return store


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_prints_a_table_of_every_file(
    store: ModelStore, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "models", "list", "--root", str(store.root))
    lines = out.splitlines()
    assert code == 0
    assert lines[0].split() == [
        "FILE",
        "KIND",
        "EPOCH",
        "METRIC",
        "DATE",
        "SIZE",
        "SHA256",
        "FLAGS",
    ]
    assert [line.split()[0] for line in lines[1:]] == [
        "video_interpreter_v1_acc_0.5.pth",
        "video_interpreter_v1_acc_0.75.pth",
        "video_interpreter_v1_epoch_0009.pth",
        "video_interpreter_v1_epoch_0010.pth",
    ]
    assert lines[2].rstrip().endswith("best")


def test_list_json_holds_every_field(store: ModelStore, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "models", "list", "--root", str(store.root), "--json", "--kind", "model"
    )
    rows = json.loads(out)
    assert code == 0
    assert [r["file"] for r in rows] == [e.file for e in store.find(kind="model")]
    assert rows[0]["notes"] == "first"
    assert rows[1]["is_best"] is True
    assert set(rows[0]) >= {"path", "name", "version", "metric", "value", "sha256", "fingerprint"}


def test_best_prints_the_best_file_and_its_link(
    store: ModelStore, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "models", "best", "--root", str(store.root))
    assert code == 0
    assert "video_interpreter v1: video_interpreter_v1_acc_0.75.pth (acc 0.75)" in out
    assert "video_interpreter_v1_best.pth" in out


def test_show_prints_one_entry(store: ModelStore, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "models", "show", "video_interpreter_v1_acc_0.5.pth", "--root", str(store.root)
    )
    assert code == 0
    assert "notes" in out
    assert "first" in out
    assert store.get("video_interpreter_v1_acc_0.5.pth").sha256 in out


def test_show_of_an_unknown_file_exits_1_with_a_suggestion(
    store: ModelStore, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        capsys, "models", "show", "video_interpreter_v1_acc_0.6.pth", "--root", str(store.root)
    )
    assert code == 1
    assert "did you mean" in err


def test_prune_dry_run_then_prune(store: ModelStore, capsys: pytest.CaptureFixture[str]) -> None:
    root = str(store.root)
    code, out, _ = run(capsys, "models", "prune", "--keep-last", "1", "--dry-run", "--root", root)
    assert code == 0
    assert "would remove  video_interpreter_v1_epoch_0009.pth" in out
    assert "would remove  video_interpreter_v1_acc_0.5.pth" in out
    assert len(store.list()) == 4
    code, out, _ = run(capsys, "models", "prune", "--keep-last", "1", "--json", "--root", root)
    assert json.loads(out)["removed"] == [
        "video_interpreter_v1_acc_0.5.pth",
        "video_interpreter_v1_epoch_0009.pth",
    ]
    assert len(store.list()) == 2


def test_prune_with_a_negative_count_is_invalid_input(
    store: ModelStore, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit, match="2"):
        main(["models", "prune", "--keep-last", "-1", "--root", str(store.root)])
    assert "expected an integer >= 0" in capsys.readouterr().err


def test_pin_keeps_a_file_through_prune(
    store: ModelStore, capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(store.root)
    assert (
        run(capsys, "models", "pin", "video_interpreter_v1_epoch_0009.pth", "--root", root)[0] == 0
    )
    run(capsys, "models", "prune", "--keep-last", "0", "--root", root)
    assert [e.file for e in store.list()] == [
        "video_interpreter_v1_acc_0.75.pth",
        "video_interpreter_v1_epoch_0009.pth",
    ]


def test_verify_exits_1_and_names_a_tampered_file(
    store: ModelStore, capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(store.root)
    code, out, _ = run(capsys, "models", "verify", "--root", root)
    assert (code, out.strip()) == (0, f"{root}: 4 files, all as recorded")
    flip_byte(store.root / "video_interpreter_v1_epoch_0010.pth")
    code, out, _ = run(capsys, "models", "verify", "--root", root, "--json")
    assert code == 1
    assert [(p["kind"], p["file"]) for p in json.loads(out)] == [
        ("changed", "video_interpreter_v1_epoch_0010.pth")
    ]


def test_sync_reports_what_it_changed(
    store: ModelStore, capsys: pytest.CaptureFixture[str]
) -> None:
    (store.root / "video_interpreter_v1_epoch_0009.pth").unlink()
    code, out, _ = run(capsys, "models", "sync", "--root", str(store.root))
    assert code == 0
    assert "removed  video_interpreter_v1_epoch_0009.pth" in out
    code, out, _ = run(capsys, "models", "sync", "--root", str(store.root))
    assert "registry already matches the files" in out


def test_readme_regenerates_the_table(
    store: ModelStore, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Models\n{START_MARKER}\n{END_MARKER}\n")
    code, _, _ = run(capsys, "models", "readme", "--root", str(store.root), "-o", str(readme))
    assert code == 0
    text = readme.read_text()
    assert "| video_interpreter | v1 |" in text
    assert text.count("| video_interpreter |") == 2  # checkpoints are not in the table


def test_a_missing_store_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "models", "list", "--root", str(tmp_path / "none"))
    assert code == 1
    assert "no model store at" in err

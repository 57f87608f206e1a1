"""``bucketlake verify-source`` on a local folder (the cloud cases live with the backends)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Project
from tests.images import write_image
from tests.ingest_assets.cli.test_sync import BIN, run


def verify(project: Project, name: str = "inbox", **env: str):  # type: ignore[no-untyped-def]
    return run([str(BIN / "bucketlake"), "verify-source", name], project.root, **env)


def test_verify_source_lists_and_reads_one_object(project: Project) -> None:
    write_image(project.inbox / "cats" / "a.jpg")
    (project.inbox / "notes.txt").write_text("not matched by the include globs")

    result = verify(project)

    assert result.returncode == 0, result.stderr
    assert f"source inbox (local folder {project.inbox}): OK" in result.stdout
    assert "listing: 2 objects on the first page" in result.stdout
    assert "sample: cats/a.jpg" in result.stdout and "image/jpeg" in result.stdout


def test_verify_source_on_an_empty_source_says_so(project: Project) -> None:
    result = verify(project)
    assert result.returncode == 0
    assert "the source is empty" in result.stdout


def test_verify_source_names_an_unknown_source(project: Project) -> None:
    result = verify(project, "cameras")
    assert result.returncode == 2
    assert "no source named 'cameras'; the configured sources are: inbox" in result.stderr


def test_verify_source_reports_a_missing_folder(project: Project, tmp_path: Path) -> None:
    project.write_config(uri=str(tmp_path / "no-such-folder"))
    result = verify(project)
    assert result.returncode == 2
    assert "FAILED" in result.stdout
    assert f"{tmp_path / 'no-such-folder'}: the folder does not exist" in result.stderr

"""A plain install works: the wheel, installed in a fresh venv with no source tree on the
path, ingests the seeds and answers with citations (prompts ship as package data)."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import ROOT, SEEDS
from tests.hardening import child_env

pytestmark = pytest.mark.server


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-3000:])
    return done.stdout


def test_the_wheel_installed_in_a_fresh_venv_ingests_and_answers(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + ["-w", str(wheels), str(ROOT)],
        cwd=tmp_path,
    )
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    site = Path(
        run([str(python), "-c", "import site; print(site.getsitepackages()[0])"], tmp_path).strip()
    )
    # Dependencies come from this environment's site-packages (a path line in a .pth
    # file: the editable install's own .pth files there are not processed, so the
    # source tree stays off the path); newsdesk itself only from the wheel.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", "utf-8")
    run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index"]
        + [str(next(wheels.glob("newsdesk-*.whl")))],
        cwd=tmp_path,
    )
    where = run([str(python), "-c", "import service, prompts; print(service.__file__)"], tmp_path)
    assert where.strip().startswith(str(site)), where
    # The reader pages' templates and static files ship as package data.
    web = site / "service" / "web"
    for name in ("templates/base.html", "templates/read.html", "static/style.css", "static/ask.js"):
        assert (web / name).is_file(), name

    env = child_env(NEWSDESK_DATA_DIR=str(tmp_path / "data"))
    newsdesk = str(venv / "bin" / "newsdesk")
    report = json.loads(run([newsdesk, "ingest", "--json", str(SEEDS)], tmp_path, env))
    assert report["added"] == 3 and report["failed"] == 0
    answer = json.loads(
        run([newsdesk, "ask", "--json", "How many people fled the Kursk region?"], tmp_path, env)
    )
    assert not answer["refused"] and answer["citations"], answer
    assert any("121,000" in c["quote"] for c in answer["citations"]), answer["citations"]

"""The lock agrees with pyproject.toml and the virtualenv the tests run in is exactly the lock."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

import check_lock

ROOT = Path(__file__).resolve().parent.parent


def test_every_requirement_is_pinned_inside_its_range() -> None:
    pins = check_lock.read_lock(ROOT / "requirements.lock")
    assert (
        check_lock.lock_problems(check_lock.project_requirements(ROOT / "pyproject.toml"), pins)
        == []
    )


def test_a_range_the_lock_does_not_satisfy_is_reported(tmp_path: Path) -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"django>=5.2,<5.3"' in pyproject
    edited = tmp_path / "pyproject.toml"
    edited.write_text(
        pyproject.replace('"django>=5.2,<5.3"', '"django>=6,<7"').replace(
            '"orjson>=3.10,<4",', '"orjson>=3.10,<4",\n    "not-a-locked-package>=1",'
        )
    )
    pins = check_lock.read_lock(ROOT / "requirements.lock")
    problems = check_lock.lock_problems(check_lock.project_requirements(edited), pins)
    assert len(problems) == 2
    assert problems[0].startswith("django<7,>=6 but the lock pins django==5.2.")
    assert problems[1] == "not-a-locked-package>=1 is not in the lock"
    assert check_lock.main(["--pyproject", str(edited)]) == 1


def test_the_running_environment_is_exactly_the_lock() -> None:
    assert check_lock.installed_problems(check_lock.read_lock(ROOT / "requirements.lock")) == []

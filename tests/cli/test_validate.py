"""``agentic-llm validate``: exit codes, compiler-style text, one JSON object per file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agentic_llm.cli.main import main

EXAMPLES = Path(__file__).parents[2] / "examples"
VALID = "### AgenticDSL `/dynamic/a`\n```yaml\ntype: end\n```\n"
INVALID = (
    "### AgenticDSL `/dynamic/a`\n```yaml\n# --- BEGIN AgenticDSL ---\n"
    'type: start\nnext: ["/dynamic/missing"]\n# --- END AgenticDSL ---\n```\n'
)
WARNS = "### AgenticDSL `/dynamic/a`\n```yaml\ntype: end\ncolour: blue\n```\n"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name, text in (("valid", VALID), ("invalid", INVALID), ("warns", WARNS)):
        path = tmp_path / f"{name}.md"
        path.write_text(text)
        out[name] = path
    return out


def test_examples_are_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(EXAMPLES)]) == 0
    err = capsys.readouterr().err
    assert "0 invalid" in err


def test_invalid_file_text_output(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(files["valid"]), str(files["invalid"])]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [
        f"{files['invalid']}:5: ERR_UNRESOLVED_REFERENCE next target /dynamic/missing is not "
        "defined in the document or among the known external paths [/dynamic/a]"
    ]


def test_json_output(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["validate", "--json", str(files["valid"]), str(files["invalid"]), str(files["warns"])]
    )
    assert code == 1
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["path"] for r in records] == [str(files[n]) for n in ("valid", "invalid", "warns")]
    assert [r["valid"] for r in records] == [True, False, True]
    assert records[0]["diagnostics"] == []
    (diag,) = records[1]["diagnostics"]
    assert diag == {
        "code": "ERR_UNRESOLVED_REFERENCE",
        "severity": "error",
        "message": diag["message"],
        "block": "/dynamic/a",
        "line": 5,
    }
    assert records[2]["diagnostics"][0]["severity"] == "warning"


def test_warnings_and_strict(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(files["warns"])]) == 0
    assert "warning: unknown field 'colour'" in capsys.readouterr().out
    assert main(["validate", "--strict", str(files["warns"])]) == 1


def test_unreadable_file(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.md"
    assert main(["validate", str(files["valid"]), str(missing)]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["validate", "--json", str(missing)]) == 2
    record = json.loads(capsys.readouterr().out)
    assert record["valid"] is False and "error" in record


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["validate"])
    assert info.value.code == 2
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    assert main(["validate", str(empty)]) == 2
    assert main(["validate", "--max-bytes", "0", str(empty)]) == 2


def test_size_cap_and_bad_bytes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    big = tmp_path / "big.md"
    big.write_bytes(b"x" * 2000)
    assert main(["validate", "--json", "--max-bytes", "1000", str(big)]) == 1
    record = json.loads(capsys.readouterr().out)
    assert record["diagnostics"][0]["code"] == "ERR_INPUT_TOO_LARGE"
    junk = tmp_path / "junk.md"
    junk.write_bytes(bytes(range(256)) * 4)
    assert main(["validate", str(junk)]) == 1


def test_console_script_entry_point(files: dict[str, Path]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "agentic_llm.cli.main", "validate", "--json", str(files["invalid"])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["valid"] is False


def test_runtime_agenticrt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--runtime", "agenticrt", str(EXAMPLES)]) == 0
    capsys.readouterr()
    soft = tmp_path / "soft.md"
    soft.write_text(
        "### AgenticDSL `/dynamic/a`\n```yaml\n# --- BEGIN AgenticDSL ---\n"
        'type: start\nnext: "/end_soft"\n# --- END AgenticDSL ---\n```\n'
    )
    unmarked = tmp_path / "unmarked.md"
    unmarked.write_text(VALID)
    # the spec accepts both; the reference refuses /end_soft and never reads the block
    # written without markers
    assert main(["validate", "--runtime", "spec", str(soft), str(unmarked)]) == 0
    capsys.readouterr()
    code = main(["validate", "--runtime", "agenticrt", "--json", str(soft), str(unmarked)])
    assert code == 1
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["valid"] for r in records] == [False, False]
    first = records[0]["diagnostics"][0]
    assert first["code"] == "ERR_RUNTIME_REJECTED" and first["line"] == 1
    assert "Next node not found: /end_soft" in first["message"]
    assert "/__system__/end_soft" in first["message"]
    assert [d["code"] for d in records[1]["diagnostics"]] == ["ERR_RUNTIME_DROPPED"]
    with pytest.raises(SystemExit):
        main(["validate", "--runtime", "other", str(soft)])

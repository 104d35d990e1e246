"""Every command block of the README, run as printed in a fresh clone against `make run`'s stack (or excluded, why)."""

import contextlib
import re
import shutil
import signal
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools.processes import ROOT
from tests.support.clones import make_clone, running_stack

pytestmark = pytest.mark.e2e

README = ROOT / "README.md"

# Blocks not run here, each by a line it holds, and why. Every other sh and python
# block runs, in the README's order, in one shell (so `export` and `KEY=` carry on).
EXCLUDED = {
    "make run    #": "this test runs make run's steps itself (.env, dev_setup, the stack); the install is CI's",
    "apt-get install wrk": "the benchmarks: minutes of load each, run by hand (docs/performance.md has their figures)",
}
# The one change made to a block before it runs: the simulator for 3 seconds, not 30.
SHORTENED = {"--duration 30": "--duration 3"}
# "Other commands" shows placeholders (GAME_SLUG, FILE): each of its commands is run
# with --help (settings from .env, no variable set), then a few for real below.
PLACEHOLDER_BLOCK = "manage.py create_api_key GAME_SLUG"


@dataclass
class Block:
    line: int
    language: str
    text: str


def readme_blocks() -> list[Block]:
    text = README.read_text()
    return [
        Block(line=text[: match.start()].count("\n") + 1, language=match.group(1), text=match.group(2))
        for match in re.finditer(r"^```(sh|python)\n(.*?)^```", text, flags=re.S | re.M)
    ]


def excluded_reason(block: Block) -> str | None:
    return next((reason for marker, reason in EXCLUDED.items() if marker in block.text), None)


def test_every_exclusion_names_exactly_one_block_of_the_readme():
    blocks = readme_blocks()
    for marker in EXCLUDED:
        assert sum(marker in block.text for block in blocks) == 1, marker
    assert sum(PLACEHOLDER_BLOCK in block.text for block in blocks) == 1


def script_for(blocks: list[Block], *, web: str, emulator: str, outside: Path, sdk_only: Path) -> str:
    """One bash script of the README's blocks, each after a marker line; python blocks run outside the clone."""
    parts = ["set -euo pipefail"]
    for block in blocks:
        text = block.text.replace("127.0.0.1:8000", web).replace("127.0.0.1:4566", emulator)
        for printed, shortened in SHORTENED.items():
            text = text.replace(printed, shortened)
        parts.append(f"printf '\\n::block {block.line}\\n'")  # curl's answers end without a newline
        if PLACEHOLDER_BLOCK in text:
            for command in re.findall(r"^\.venv/bin/python manage\.py (\w+)", text, flags=re.M):
                parts.append(f".venv/bin/python manage.py {command} --help >/dev/null")
        elif block.language == "python":
            # As a game would: from another folder, with only the SDK package importable.
            parts.append(
                f"(cd '{outside}' && PYTHONPATH='{sdk_only}' \"$OLDPWD/.venv/bin/python\" - <<'README_PYTHON'\n"
                f"{text}README_PYTHON\n)"
            )
        else:
            parts.append(text)
    return "\n".join(parts) + "\n"


def sections(output: str) -> dict[int, str]:
    found = re.split(r"^::block (\d+)\n", output, flags=re.M)
    return {int(line): text for line, text in zip(found[1::2], found[2::2], strict=True)}


def test_the_readme_runs_as_printed_in_a_fresh_clone(tmp_path):
    folder = tmp_path / "clone"
    env = make_clone(folder)
    web, emulator = f"127.0.0.1:{env['DEV_WEB_PORT']}", env["AWS_ENDPOINT_URL"].removeprefix("http://")
    outside, sdk_only = tmp_path / "game", tmp_path / "site"
    outside.mkdir()
    # Installed, the sdk/ folder is the package playertrack.
    shutil.copytree(ROOT / "sdk", sdk_only / "playertrack", ignore=shutil.ignore_patterns("__pycache__"))
    env["XDG_DATA_HOME"] = str(tmp_path / "data")  # the Tracker snippet's spool, not the developer's
    blocks = [block for block in readme_blocks() if excluded_reason(block) is None]
    by_text = {block.text: block.line for block in blocks}
    curl = next(block for block in blocks if block.text.startswith("KEY=$(cat .local/dev_api_key)"))
    # The curl examples twice in a row: idempotent, the second time they answer duplicate.
    at = blocks.index(curl) + 1
    script = script_for(
        [*blocks[:at], curl, *blocks[at:]], web=web, emulator=emulator, outside=outside, sdk_only=sdk_only
    )
    marker = f"::block {curl.line}\\n"
    script = script.replace(marker, "::block 0\\n", 2).replace("::block 0\\n", marker, 1)

    with running_stack(folder, env, tmp_path / "stack.log") as stack:
        done = subprocess.run(["bash", "-c", script], cwd=folder, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        stack.send_signal(signal.SIGINT)
        assert stack.wait(timeout=90) == 0

    out = sections(done.stdout)
    assert set(out) == {*by_text.values(), 0}  # every block ran
    line = {
        marker: next(n for text, n in by_text.items() if marker in text)
        for marker in (
            "-m sdk.client",
            "from playertrack import TrackerClient",
            "from playertrack import Tracker\n",
            "sdk.simulate",
            "manage.py event_schema demo-game level_up",
            "erase_player demo-game player-42",
        )
    }
    assert "accepted" in out[line["-m sdk.client"]]
    client = out[line["from playertrack import TrackerClient"]]
    assert client.split() == ["2", "0", "0"]  # accepted, duplicates, rejected
    tracker = out[line["from playertrack import Tracker\n"]]  # 8 events; level_up refused until its schema, below
    assert "sent=7," in tracker and "rejected=1," in tracker and "pending=0" in tracker
    assert "not sent    rejected 0, failed 0, dropped 0, pending 0" in out[line["sdk.simulate"]]
    first, again = out[curl.line], out[0]
    assert first.count('"status":"accepted"') == 2 and '"accepted":1' in first
    assert again.count('"status":"duplicate"') == 2 and '"duplicates":1' in again and '"accepted":0' in again
    assert "less than the minimum of 1" in out[line["manage.py event_schema demo-game level_up"]]
    assert '"status":"suppressed"' in out[line["erase_player demo-game player-42"]]
    # Revenue is complete: every purchase of the run (the simulator's are of today) has its base amount.
    with contextlib.closing(sqlite3.connect(folder / "db.sqlite3")) as db:
        purchases, unconverted = db.execute(
            "SELECT count(*), count(*) - count(revenue_base) FROM events_app_event WHERE event_type = 'purchase'"
        ).fetchone()
    assert purchases > 0 and unconverted == 0

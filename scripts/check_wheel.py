"""Build the wheel, install it outside the repository, and answer a question with it.

What an editable install hides: files the package reads at run time (the prompts, the C kernels'
sources) must be inside the wheel. This builds a non-editable wheel, checks its contents, installs
it with `--no-deps` into a temporary folder (the dependencies come from the running environment),
then runs `python -m assistant ingest` and `ask` from a folder outside the repository with that
folder first on the path, and checks that the installed copy is the one that ran.

    python scripts/check_wheel.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
NEEDED = (
    "assistant/prompts/system.md",
    "assistant/prompts/answer.md",
    "assistant/llm/kernels/",
    "assistant/grounding/weights/verifier.safetensors",
)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="wheel-check-") as scratch:
        work = Path(scratch)
        run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "-w",
                str(work / "dist"),
                str(REPOSITORY),
            ]
        )
        wheel = next((work / "dist").glob("assistant-*.whl"))
        names = zipfile.ZipFile(wheel).namelist()
        missing = [need for need in NEEDED if not any(name.startswith(need) for name in names)]
        if missing:
            print(f"the wheel {wheel.name} lacks {', '.join(missing)}", file=sys.stderr)
            return 1
        site = work / "site"
        run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--target",
                str(site),
                str(wheel),
            ]
        )
        environment = {
            **os.environ,
            "PYTHONPATH": str(site),
            "ASSISTANT_HOME": str(work / "home"),
            "NO_COLOR": "1",
        }
        where = run(
            [sys.executable, "-c", "import assistant; print(assistant.__file__)"], environment, work
        )
        if not where.startswith(str(site)):
            print(f"the installed wheel did not run: assistant came from {where}", file=sys.stderr)
            return 1
        command = [sys.executable, "-m", "assistant"]
        run([*command, "ingest", str(REPOSITORY / "corpora" / "sample")], environment, work)
        answer = run(
            [*command, "ask", "--no-stream", "What does the KV cache store?"], environment, work
        )
        if "[1]" not in answer and "[2]" not in answer:
            print(f"the answer cites nothing:\n{answer}", file=sys.stderr)
            return 1
        print(f"{wheel.name}: {len(names)} files, prompts and kernels inside; its answer:")
        print(answer)
    return 0


def run(
    command: list[str], environment: dict[str, str] | None = None, cwd: Path | None = None
) -> str:
    result = subprocess.run(command, env=environment, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(
            f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return result.stdout.strip()


if __name__ == "__main__":
    sys.exit(main())

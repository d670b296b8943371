"""The quick-start example of the repository README, pasted and run as-is.

The first ```python block of README.md is executed in a fresh interpreter with
FERROVUS_URI pointing at the server under test (the example reads its address from
that variable, defaulting to http://127.0.0.1:19530)."""

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

README = REPO_ROOT / "README.md"


def first_python_block(text: str):
    m = re.search(r"^```python[ \t]*\n(.*?)^```", text, flags=re.S | re.M)
    return m.group(1) if m else None


def test_readme_quickstart_runs(live_server, tmp_path):
    if not README.exists():
        pytest.skip("README.md does not exist yet")
    code = first_python_block(README.read_text(encoding="utf-8"))
    if code is None:
        pytest.skip("README.md has no ```python block yet")
    script = tmp_path / "quickstart.py"
    script.write_text(code, encoding="utf-8")
    env = dict(os.environ, FERROVUS_URI=live_server.uri)
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, (
        f"README quick start failed (exit {proc.returncode})\n--- stdout\n{proc.stdout}"
        f"\n--- stderr\n{proc.stderr}")

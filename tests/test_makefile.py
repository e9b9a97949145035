"""The Makefile's first-time paths (issue #16): ``make lab`` headless and as root (case 6), one
Jupyter kernel used consistently and nothing left behind by ``distclean`` (case 7).

``make -n`` prints the commands without running them; ``distclean`` runs for real, but in an
empty temporary folder and with a temporary HOME, so it can only delete what the test made.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

pytestmark = pytest.mark.skipif(subprocess.run(["which", "make"], capture_output=True).returncode != 0,
                                reason="make not installed")


def make(*args, cwd=ROOT, env=None, dry=True) -> str:
    cmd = ["make", "-f", str(ROOT / "Makefile"), "-C", str(cwd), *(["-n"] if dry else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout


def lab_command(*args) -> str:
    return next(ln for ln in make("lab", *args).splitlines() if "jupyter lab" in ln)


# ---------------------------------------------------------------------------------------- case 6
def test_lab_has_a_headless_form_for_root_and_for_a_user():
    as_root = lab_command("HEADLESS=1", "UID_NOW=0")
    assert "--no-browser" in as_root and "--allow-root" in as_root and "--ServerApp.ip=127.0.0.1" in as_root
    as_user = lab_command("HEADLESS=1", "UID_NOW=1000")
    assert "--no-browser" in as_user and "--allow-root" not in as_user
    assert "--no-browser" not in lab_command("UID_NOW=1000")  # the default still opens a browser


def test_headless_lab_starts_here_and_prints_its_url(tmp_path):
    """The command `make lab HEADLESS=1` runs, with this user's id, started for real for a moment."""
    jupyter = Path(sys.executable).parent / "jupyter"
    if not jupyter.exists():
        pytest.skip("no jupyter beside this Python")
    flags = lab_command("HEADLESS=1").split("notebooks/", 1)[1].split()
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path), "JUPYTER_CONFIG_DIR": str(tmp_path)}
    proc = subprocess.Popen([str(jupyter), "lab", str(ROOT / "notebooks"), *flags, "--ServerApp.port=0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    seen = []
    try:
        for line in proc.stdout:  # ends when the server exits (e.g. refusing root)
            seen.append(line)
            if "/lab?token=" in line:
                break
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a loaded machine can take longer to shut the server down
            proc.kill()
            proc.wait()
    log = "".join(seen)
    assert "Running as root is not recommended" not in log
    assert "http://127.0.0.1:" in log and "/lab?token=" in log, log[-2000:]


# ---------------------------------------------------------------------------------------- case 7
def test_one_kernel_everywhere_and_it_is_this_python():
    from jupyter_client.kernelspec import KernelSpecManager

    from bcdet_helpers.research.reproduce import KERNEL

    names = {nb.name: json.loads(nb.read_text())["metadata"]["kernelspec"]["name"] for nb in NOTEBOOKS}
    assert set(names.values()) == {KERNEL}, names  # what papermill runs (`bcdet reproduce`, tests)
    argv0 = KernelSpecManager().get_kernel_spec(KERNEL).argv[0]
    # "python" is replaced by the launching Python (jupyter_client); anything else must be this one
    assert argv0 in ("python", "python3") or Path(argv0).resolve() == Path(sys.executable).resolve()


def test_setup_registers_no_user_wide_kernel(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")  # a fresh checkout: nothing set up yet
    recipe = make("setup", cwd=tmp_path)
    assert "pip install" in recipe and "ipykernel install" not in recipe and "kernelspec install" not in recipe


def _kernel(data_dir: Path, python: Path) -> Path:
    k = data_dir / "jupyter" / "kernels" / "bcdet"
    k.mkdir(parents=True)
    (k / "kernel.json").write_text(json.dumps({"argv": [str(python), "-m", "ipykernel_launcher"]}))
    return k


def test_distclean_removes_the_old_kernel_pointing_into_its_venv(tmp_path):
    checkout, xdg = tmp_path / "checkout", tmp_path / "xdg"
    (checkout / ".venv" / "bin").mkdir(parents=True)
    kernel = _kernel(xdg, checkout / ".venv" / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_DATA_DIR"}
    env.update(HOME=str(tmp_path / "home"), XDG_DATA_HOME=str(xdg))
    out = make("distclean", cwd=checkout, env=env, dry=False)
    assert not kernel.exists() and not (checkout / ".venv").exists()
    assert "removed the Jupyter kernel 'bcdet'" in out
    # a kernel of another checkout's .venv is not ours to remove
    other = _kernel(xdg, tmp_path / "elsewhere" / ".venv" / "bin" / "python")
    make("distclean", cwd=checkout, env=env, dry=False)
    assert other.exists()


# ---------------------------------------------------------------------------------------- case 9
def test_readme_first_time_section_states_size_time_and_opt_in():
    text = (ROOT / "README.md").read_text()
    assert "## First time" in text
    section = text.split("## First time", 1)[1].split("\n## ", 1)[0]
    assert "6 GB" in section and "du -sh .venv" in section  # size, and how it was measured
    assert "make test` takes" in section and "min" in section  # time
    assert "YES=1" in section and "--yes" in section and "over an hour" in section  # the opt-in
    assert "HEADLESS=1" in section

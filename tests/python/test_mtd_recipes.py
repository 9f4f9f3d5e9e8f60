"""The magnetic-tile anomaly recipe's one command (training/retrain_mtd.sh) refuses bad input
before it installs or builds anything, naming what is wrong; training/mtd_ref.py parses its
commands without torch (torch is only imported to build)."""
import os
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
SCRIPT = os.path.join(ROOT, "training", "retrain_mtd.sh")


def run(env_extra, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MTD_DIR", "METHOD")}
    env["VENV"] = str(tmp_path / "no-venv")
    env.update(env_extra)
    return subprocess.run(["bash", SCRIPT], env=env, capture_output=True, text=True)


def test_retrain_mtd_needs_the_dataset(tmp_path):
    subprocess.run(["bash", "-n", SCRIPT], check=True)
    r = run({}, tmp_path)
    assert r.returncode != 0
    assert "MTD_DIR" in r.stderr
    assert not (tmp_path / "no-venv").exists()


def test_retrain_mtd_refuses_an_unknown_method(tmp_path):
    r = run({"MTD_DIR": str(tmp_path), "METHOD": "padim"}, tmp_path)
    assert r.returncode == 2
    assert "METHOD must be reference or unet, not 'padim'" in r.stderr
    assert not (tmp_path / "no-venv").exists()


def test_mtd_ref_commands_parse_without_torch():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "training", "mtd_ref.py"), "--help"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for cmd in ("build", "eval", "ablation"):
        assert cmd in r.stdout

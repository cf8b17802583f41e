"""A plugin built as a wheel, installed with pip into a fresh virtual environment beside Sundial, runs its job."""

from __future__ import annotations

import json
import shutil
import site
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# runs inside the fresh environment: the embedded engine, a feature switch due now, its effect
SCRIPT = """
import json, sys, time
from datetime import UTC, datetime
from sqlalchemy import select
from sundial.config import Settings
from sundial.engine import Engine
from sundial.run import RunStatus
import sundial_features
from sundial_features import plan_switch
from sundial_features.plugin import flags

engine = Engine(Settings(database_url=sys.argv[1], max_idle_seconds=0.1, sweep_interval_seconds=0.2))
report = engine.start()
job = plan_switch(engine.control, "drifting_hall", True, datetime.now(UTC).replace(second=0, microsecond=0))
deadline = time.monotonic() + 30
while time.monotonic() < deadline and not engine.store.list_runs(job_id=job.id, statuses=[RunStatus.SUCCEEDED]):
    time.sleep(0.05)
with engine.domain.connect() as conn:
    state = {name: enabled for name, enabled in conn.execute(select(flags.c.name, flags.c.enabled))}
runs = [r.status.value for r in engine.store.list_runs(job_id=job.id)]
engine.stop(grace_seconds=1)
print(json.dumps({"module": sundial_features.__file__, "plugins": engine.plugins.names(),
                  "failures": [f.name for f in report.plugin_failures], "runs": runs, "flags": state}))
"""


def test_a_plugin_wheel_installed_by_pip_is_discovered_and_runs(tmp_path: Path) -> None:
    # built from a copy: setuptools leaves build/ and egg-info/ beside the sources it builds
    source = tmp_path / "features"
    shutil.copytree(ROOT / "plugins" / "features", source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    wheels = tmp_path / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index", "--no-build-isolation",
             "--wheel-dir", str(wheels), str(source)]  # fmt: skip
    subprocess.run(build, check=True, cwd=tmp_path)
    [wheel] = wheels.glob("sundial_features-*.whl")

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    target = Path(sysconfig.get_path("purelib", vars={"base": str(env_dir), "platbase": str(env_dir)}))
    # Sundial from this checkout and its dependencies from the running environment, not from the network
    (target / "sundial-beside.pth").write_text("\n".join([str(ROOT / "core"), *site.getsitepackages()]) + "\n")
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", "--no-index",
               str(wheel)]  # fmt: skip
    subprocess.run(install, check=True, cwd=tmp_path)

    done = subprocess.run([str(python), "-c", SCRIPT, f"sqlite:///{tmp_path / 'wheel.db'}"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(result["module"]).is_relative_to(env_dir)  # imported from the installed wheel
    assert "features" in result["plugins"] and "features" not in result["failures"]
    assert result["runs"] == ["succeeded"]
    assert result["flags"] == {"drifting_hall": True}

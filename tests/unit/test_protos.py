"""The committed stubs in core/sundial/v1 are what protos/generate.py makes from protos/ now."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_committed_stubs_are_fresh(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("generate", ROOT / "protos" / "generate.py")
    assert spec is not None and spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    made = {p.name: p.read_bytes() for p in generate.generate(tmp_path)}
    committed = {p.name: p.read_bytes() for p in (ROOT / "core" / "sundial" / "v1").iterdir() if p.is_file()}
    stale = sorted(name for name in made.keys() | committed.keys() if made.get(name) != committed.get(name))
    assert not stale, f"stale stubs {stale}: run `python protos/generate.py` and commit core/sundial/v1"


def test_stubs_import_as_the_sundial_v1_package() -> None:
    from sundial.v1 import jobs_pb2, jobs_pb2_grpc

    assert jobs_pb2.DESCRIPTOR.package == "sundial.v1"
    assert hasattr(jobs_pb2_grpc, "JobServiceStub") and "sundial.v1.jobs_pb2" in sys.modules

"""`fota serve`'s admission hook: only endpoints of the applied desired state register."""

from __future__ import annotations

from pathlib import Path

from controller_harness import DesiredRepo, endpoint

from reconciler.serve.admission import Admission
from reconciler.sources import GitSource


def test_only_endpoints_declared_in_the_applied_revision_are_admitted(tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=2)
    source = GitSource(str(repo.root), repo.repo.active_branch.name,
                       cache_dir=tmp_path / "cache")
    admit = Admission(source)
    assert not admit(endpoint(0))  # nothing applied yet: nobody
    assert source.sync() is not None
    assert admit(endpoint(0)) and admit(endpoint(1))
    assert not admit(endpoint(2)) and not admit("urn:imei:000000000000000")
    repo.count = 1
    repo.commit("device 1 leaves the fleet")
    assert source.sync() is not None
    assert admit(endpoint(0)) and not admit(endpoint(1))

"""Fresh build caches per evaluation: what a worker wrote reaches the shared cache only as a
build output (regular files of a build's kinds), once, never over one there (red team 6)."""
from __future__ import annotations

import os

from kopt.sandboxes import build_cache


def test_only_build_outputs_are_promoted_once(tmp_path, monkeypatch):
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path / "root"))
    shared = build_cache.build_cache_dir("src", "tool")
    run = build_cache.fresh_cache_dir(shared)
    (run / "torch_extensions" / "ext").mkdir(parents=True)
    (run / "torch_extensions" / "ext" / "ext.so").write_bytes(b"\x7fELF1")
    (run / "torch_extensions" / "ext" / ".ninja_log").write_text("log")
    (run / "count").write_text("1")  # state, not a build output
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    os.symlink(secret, run / "leak.so")  # a link to a host file is never followed
    build_cache.promote(run, shared)
    assert not run.exists()
    files = sorted(str(p.relative_to(shared)) for p in shared.rglob("*") if p.is_file())
    assert files == ["torch_extensions/ext/.ninja_log", "torch_extensions/ext/ext.so"]

    again = build_cache.fresh_cache_dir(shared)  # the next evaluation starts from a copy
    built = again / "torch_extensions" / "ext" / "ext.so"
    assert built.read_bytes() == b"\x7fELF1"
    assert built.stat().st_mtime_ns == (shared / "torch_extensions" / "ext" / "ext.so").stat().st_mtime_ns
    built.write_bytes(b"\x7fELF2")  # a later evaluation cannot change what is kept
    build_cache.promote(again, shared)
    assert (shared / "torch_extensions" / "ext" / "ext.so").read_bytes() == b"\x7fELF1"

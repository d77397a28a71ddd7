"""`page_residency.resident_pages`: what a run's writes hold in the page cache -- written pages
count, a sparse file's size does not, a hard-linked file counts once."""
from __future__ import annotations

import os

from kopt.sandboxes.page_residency import file_pages, resident_pages


def test_written_pages_count_and_sizes_without_pages_do_not(tmp_path):
    (tmp_path / "data.bin").write_bytes(os.urandom(3 * 4096))
    sparse = tmp_path / "sparse.bin"
    with open(sparse, "wb") as f:
        f.truncate(64 << 20)  # 64 MiB of size, no page written
    os.link(tmp_path / "data.bin", tmp_path / "again.bin")
    (tmp_path / "sub").mkdir()
    assert file_pages(str(tmp_path / "data.bin")) == 3
    assert file_pages(str(sparse)) == 0
    total = resident_pages(str(tmp_path))
    folders = -(-os.lstat(tmp_path / "sub").st_blocks * 512 // 4096)
    assert total == 3 + folders, total


def test_what_cannot_be_read_counts_nothing(tmp_path):
    os.symlink("/etc/hostname", tmp_path / "link")
    os.mkfifo(tmp_path / "fifo")
    assert file_pages(str(tmp_path / "link")) == 0 and file_pages(str(tmp_path / "fifo")) == 0
    assert file_pages(str(tmp_path / "missing")) == 0

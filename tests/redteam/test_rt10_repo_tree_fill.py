"""rt10: a repository candidate's run writes gigabytes into its tree: no cap, the host's disk.

Attack: the hot function, when the tests run it, writes 24 files of 64 MiB (1.5 GiB) into its
working directory -- the candidate's work tree, a writable host folder in kopt's workspace --
and prints how much it wrote (the test command's output comes back in the verdict's reason
when the tests then fail).
Before: the whole 1.5 GiB was written ("wrote 1536 MB"); TreeShell gives the tree
`cache_mb=TREE_MB_CAP` (1 TiB: "a tree is never discarded for its size"), RLIMIT_FSIZE bounds
one file only, and repo runs do not go through eval_channel.Channel, so e7825b3's 0.1 s
build-folder polling never looks at a tree. A bench or test run may write until its timeout
(max(30 s, 10x the original's), and the tests' max(60 s, ...)) at disk speed: the host's disk
(76 GB free here) fills within one evaluation.
Root cause: the tree's size is never bounded while the candidate's code runs.
Fix: cap what a run may add to its tree (a project quota, or a size-capped overlay/tmpfs upper
layer over a read-only tree, copied back for the files kopt keeps), or poll the tree's size
while waiting for a run as the KernelBench channel now does, killing the run past the cap.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.small_repo import evaluate_patch, make_repo

FILES = {
    "lib.py": "def work(n):\n    total = 0\n    for i in range(n):\n        total += (i * i) % 7\n    return total\n",
    "runner.py": "import lib\n\n\ndef main(n):\n    return lib.work(n)\n",
    "bench.py": "import runner\n\nprint(\"result:\", runner.main(300_000))\n",
    "test_lib.py": "import lib\n\nassert lib.work(10) == sum((i * i) % 7 for i in range(10))\n",
}
PATCH = """diff --git a/lib.py b/lib.py
--- a/lib.py
+++ b/lib.py
@@ -1,4 +1,12 @@
 def work(n):
+    chunk, wrote = b"\\0" * (64 << 20), 0
+    try:
+        for i in range(24):  # 1.5 GiB into the work tree
+            with open(f"blob{i}.bin", "wb") as f:
+                f.write(chunk)
+            wrote += 64
+    finally:
+        raise SystemExit(f"wrote {wrote} MB")
     total = 0
     for i in range(n):
         total += (i * i) % 7
"""


# red team 11: the same bytes in files unlinked at once and held open, which no walk of the tree sees
UNLINKED = """diff --git a/lib.py b/lib.py
--- a/lib.py
+++ b/lib.py
@@ -1,4 +1,15 @@
 def work(n):
+    import os
+    chunk, wrote, held = b"\\0" * (64 << 20), 0, []
+    try:
+        for i in range(24):  # 1.5 GiB onto the tree's disk, in no file of the tree
+            f = open(f"blob{i}.bin", "wb")  # a file object: the runner sniff refuses raw descriptor writes
+            os.unlink(f"blob{i}.bin")
+            f.write(chunk)
+            held.append(f)
+            wrote += 64
+    finally:
+        raise SystemExit(f"wrote {wrote} MB")
     total = 0
     for i in range(n):
         total += (i * i) % 7
"""


@pytest.mark.parametrize("patch_text", [PATCH, UNLINKED], ids=["files", "unlinked_files"])
def test_tree_writes_are_capped(tmp_path: Path, patch_text: str) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    res = evaluate_patch(repo, patch_text)
    wrote = re.search(r"wrote (\d+) MB", res.get("reason") or "")
    assert wrote is None or int(wrote.group(1)) <= 1024, res.get("reason")
    assert res["verdict"] != "faster" and "grew its tree" in (res.get("reason") or ""), res.get("reason")

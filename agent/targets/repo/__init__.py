"""Repository targets' machinery: work trees (worktree), sandboxed commands (commands,
runner), profiles (profile), hot functions via tree-sitter (hotspots), model answers as
file edits (patches). The Target itself is `kopt.agent.targets.repo.repo_target.RepoTarget`."""

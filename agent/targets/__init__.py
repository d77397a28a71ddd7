"""Targets: what `kopt optimize` works on, one folder per kind (kernelbench/, program/, repo/);
`kinds.load_target` tells the kind from the path."""

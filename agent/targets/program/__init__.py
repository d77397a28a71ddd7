"""A single program (C, C++ or Python reading stdin) as a target."""

"""KernelBench tasks as a target: the target, fitting a task to this machine (`fit.py`) and
probing its input sizes (`size_probe.py`)."""

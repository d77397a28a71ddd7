"""Sub-commands of `kopt`, one module each, registered by `kopt.agent.cli.app`.

Each module exposes `register(app, runs_app)` and keeps heavy imports inside its
command functions so `kopt --help` stays instant.
"""

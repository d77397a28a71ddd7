"""The input spec: a user's validator program, run in the sandbox, that exits 0 exactly when
the input on its stdin is legal (testlib validators work as they are)."""
from __future__ import annotations

import os
from pathlib import Path

from kopt.agent.errors import UserInputError
from kopt.sandboxes.program_runner import FlagError, ProgramRunner, language_of, source_flags_for

VALIDATOR_TIMEOUT_S = 10.0


class Validator:
    """A built validator in its own sandbox. Use as a context manager."""

    def __init__(self, path: Path, runner: ProgramRunner):
        self.path, self.runner = path, runner
        self.calls = 0

    @classmethod
    def load(cls, path: Path, std: str | None = None) -> Validator:
        path = Path(path)
        if not path.is_file():
            raise UserInputError(f"validator not found: {path} (give a .cpp/.c/.py source or an executable)")
        runner = ProgramRunner("validator")
        try:
            language = language_of(path)
            if language is None:
                if not os.access(path, os.X_OK):
                    raise UserInputError(f"validator {path.name} is neither a C/C++/Python source nor executable")
                runner.use_executable(path)
            else:
                source = path.read_text()
                try:
                    err = runner.build(source, language, source_flags_for(path, language, source, std))
                except FlagError as e:
                    raise UserInputError(f"validator {path.name}: {e}") from None
                if err:
                    first = next((line for line in err.splitlines() if "error" in line), err.splitlines()[0])
                    raise UserInputError(f"validator {path.name} does not compile: {first.strip()[:200]}")
        except BaseException:
            runner.close()
            raise
        return cls(path, runner)

    def __enter__(self) -> Validator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.runner.close()

    def accepts(self, data: bytes) -> bool:
        self.calls += 1
        r = self.runner.run(data, VALIDATOR_TIMEOUT_S)
        return r.rc == 0 and not r.timed_out

    def check_all(self, inputs: list[tuple[str, bytes]]) -> None:
        """Every given input must be legal: a validator that rejects the tests is a one-line error."""
        rejected = [name for name, data in inputs if not self.accepts(data)]
        if rejected and len(rejected) == len(inputs):
            raise UserInputError(f"validator {self.path.name} accepts none of the {len(inputs)} given inputs "
                                 f"(e.g. {rejected[0]}); check that it reads stdin and exits 0 on a legal input")
        if rejected:
            raise UserInputError(f"validator {self.path.name} rejects {rejected[0]}"
                                 f"{f' and {len(rejected) - 1} more' if len(rejected) > 1 else ''}; "
                                 f"fix the validator or the input")

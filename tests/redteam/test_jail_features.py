"""Where kopt runs as root with namespaces (this machine and CI), every protection of the
jail is on: a jail.sh step that breaks must fail here, not quietly turn a protection off
(the other jail tests skip a protection the host refuses, as `kopt doctor` reports it).
KOPT_JAIL_PARTIAL=1 accepts a host that refuses some."""
from __future__ import annotations

import os

import pytest

from kopt.sandboxes.jail_probe import REFUSED, jail_features
from kopt.sandboxes.jail_setup import namespace_prefix


def test_every_protection_is_on_as_root():
    if os.geteuid() != 0 or not namespace_prefix():
        pytest.skip("kopt does not run as root with namespaces here")
    if os.environ.get("KOPT_JAIL_PARTIAL") == "1":
        pytest.skip("KOPT_JAIL_PARTIAL=1: this host may refuse some protections")
    jail = jail_features()
    assert jail is not None, f"no jail although kopt runs as root with namespaces: {REFUSED}"
    off = sorted(name for name, on in jail[1].items() if not on)
    assert not off, f"protections off: {off}; jail.sh steps refused: {REFUSED}"

"""Reading execution in a worker process, so ABS verification never holds the node's event loop.

The arkworks bindings hold the GIL while they compute (measured: two threads verifying batches take
as long as one thread doing both), so a thread would still stall ordering messages and timers; a
process does not, and it uses the machine's other core. The node sends the reading items with the
state values they read (endorser.Plan, Endorser.prefetch); the worker runs reading_batch with its
own credential cache, filled only from verified signatures and ledger copies (spec §3.6 L4).
"""

from __future__ import annotations

import atexit
import os
from pathlib import Path

from edgeprov.crypto.credstore import CredentialStore
from ledger_node.contracts import Env
from ledger_node.endorsement.reading_batch import Outcome, Span, execute_items

_worker: dict = {}


def init(authority_dir: str) -> None:
    """Process initializer: the authority's public keys and an empty credential cache; under
    EDGEPROV_PROFILE (benchmarks) a cProfile dump `worker-<pid>.prof` there at exit, as nodes do."""
    from tools.authority import Authority

    aa = Authority.load(Path(authority_dir))
    _worker["env"] = Env(aa.mpk, aa.signing_public, credentials=CredentialStore())
    profile_dir = os.environ.get("EDGEPROV_PROFILE")
    if profile_dir:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        atexit.register(profiler.dump_stats, str(Path(profile_dir) / f"worker-{os.getpid()}.prof"))


def endorse_items(items: list[tuple[dict, str]], values: dict[bytes, bytes | None], spans: list[Span]) -> Outcome:
    return execute_items(_worker["env"], items, values, spans)

"""The ledger's HTTP JSON API (DESIGN.md §5): `server` (FastAPI on the node's loop), `queries`
(pure read functions over committed state, also used by proofs and tools) and `client` (typed async
client with endorse-and-submit)."""

PROOF_PATH = "/v1/proof"  # tools/dashboard/ledger.py asks this path with ?record=

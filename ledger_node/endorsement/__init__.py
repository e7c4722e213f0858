"""Execute-order-validate (DESIGN.md §2 steps 5–7, Fabric style).

`proposal`: the signed proposal, the endorsement statement and the endorsed transaction's bytes.
`endorser`: executes proposals against a state snapshot and signs read/write sets.
`validator`: the ledger Application: endorsement policy, MVCC, commit, reason codes.
"""

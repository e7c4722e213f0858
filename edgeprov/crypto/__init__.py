"""ABS-IOT-V1: outsourced attribute-based signatures (../shared/specs/abs-scheme.md, draft 2).

Modules mirror the spec: `hashing` (§2 hashes and DSTs), `points` (§2/§5 canonical codecs),
`policy` (§2 policies, §3.6 step 1 checks, §3.8 formulas), `statement` (§2 statement),
`abs_iot` (§3 algorithms), `objects` (§5 encodings), `device` (§4 single-use record),
`credstore` (§3.6 L4 caches), `comb` (§3.4/§6 device comb tables), `rng` (§3.1, §9.2).
"""

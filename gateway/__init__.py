"""The edge gateway service (DESIGN.md §1, §2 step 4; spec §3.3–§3.5 Flow M): see README.md."""

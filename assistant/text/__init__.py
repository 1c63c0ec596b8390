"""Text helpers shared by the stages: sentences (`sentences`), stop words and stems (`terms`),
citation markers (`citations`). One helper per job: the other stages import these, not copies.

Stage 0 (lowest): imports only the root modules (`config`, `errors`, `files`, `models`,
`devices`, `calibration`, `prompts`) and the standard library.
"""

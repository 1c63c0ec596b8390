"""Text helpers shared by ingest, grounding and answers: sentences, content words, citation markers.

Stage 0 (lowest): imports only the root modules (`config`, `errors`, `files`, `models`,
`devices`, `calibration`, `prompts`) and the standard library.
"""

"""From folders to the index: finding files, reading each format into blocks, chunking them
with their source, lines and headings, and the incremental pipeline that stores them; `repair`
rebuilds a damaged store from its documents.

Stage 3: may import `index`, `embed`, `text` and the root modules.
"""

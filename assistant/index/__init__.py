"""The store of what was ingested: the database (documents, chunks, sessions), its schema, the
FAISS vectors, lexical + dense retrieval, and `Home`, which keeps the database and the vectors in
step.

Stage 2: may import `embed`, `text` and the root modules.
"""

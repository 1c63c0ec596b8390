"""Embedding text into vectors: the sentence-transformers embedder and its OpenVINO/ONNX export.

Stage 1: may import `text` and the root modules.
"""

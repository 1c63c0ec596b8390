"""The language model runtime: the `ChatModel` engines (our torch engine, llama.cpp, and a model
on an OpenAI-compatible server with its client and token counting), the loader that picks the
engine (by measurement for the local two), and the torch engine's parts (weights, 4-bit and 8-bit
products, the key/value cache, the C kernels and their loader, the kernel plan).

Stage 4: may import `text` and the root modules; it knows nothing about documents or answers.
"""

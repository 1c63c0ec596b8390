"""The command line (typer + rich): commands, the chat screen, rendering answers as they stream.

Stage 8 (top): may import every stage; nothing imports it.
"""

from assistant.cli.app import app

__all__ = ["app"]

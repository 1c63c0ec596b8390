"""`python -m assistant` runs the command line."""

from assistant.cli import app

app(prog_name="assistant")

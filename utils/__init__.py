"""Small helpers every layer uses: the one user-error type, the logger, the one-line-error CLI
parser, name matching, device setup, collectives that are no-ops without torchrun, and safe
checkpoint files. The bottom layer: imports nothing of the project's."""

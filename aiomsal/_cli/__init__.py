"""The command line: ``python -m aiomsal demo`` and ``python -m aiomsal token``."""

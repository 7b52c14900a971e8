"""Token request builders, one module per grant family (sans-I/O)."""

"""Token cache: entries modelled on MSAL's unified schema, and their in-memory index."""

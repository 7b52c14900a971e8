"""The application layer: the shared base, the user flows, and the two application classes."""

"""Opt-in integrations with other libraries, each a public module imported only when used."""

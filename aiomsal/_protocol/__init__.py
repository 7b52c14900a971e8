"""The sans-I/O protocol layer: authorities, grants, answers, scopes, identities, credentials.

Everything here builds requests and parses answers as pure functions over
:class:`HttpRequest` / :class:`HttpResponse` values; nothing awaits or opens a socket.
"""

"""TLS pinned to one server certificate's SHA-1 thumbprint (Service Fabric's managed identity).

Service Fabric's identity endpoint presents a certificate that no public CA
signed; the cluster names it by ``IDENTITY_SERVER_THUMBPRINT``. The handshake
itself fails unless the server's certificate has that thumbprint, so nothing
(in particular the ``Secret`` header) is sent to any other server. aiohttp's own
fingerprint pinning takes SHA-256 only, hence this context.
"""

from __future__ import annotations

import hashlib
import hmac
import ssl

__all__ = ["pinned_ssl_context"]


class _PinnedSSLObject(ssl.SSLObject):
    """An SSL object that checks the peer certificate's thumbprint once the handshake is done."""

    pinned_sha1: bytes = b""

    def do_handshake(self) -> None:
        super().do_handshake()  # raises SSLWantReadError until the handshake completes
        der = self.getpeercert(binary_form=True)
        digest = hashlib.sha1(der).digest() if der else b""  # noqa: S324 - a pin, not a hash
        if not hmac.compare_digest(digest, self.pinned_sha1):
            raise ssl.SSLCertVerificationError(
                "the server certificate does not match IDENTITY_SERVER_THUMBPRINT"
            )


def pinned_ssl_context(thumbprint: str) -> ssl.SSLContext:
    """A client context that accepts exactly the certificate whose SHA-1 is ``thumbprint`` (hex)."""
    pin = bytes.fromhex(thumbprint)

    class Pinned(_PinnedSSLObject):
        pinned_sha1 = pin

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the pin replaces chain validation
    context.sslobject_class = Pinned
    return context

"""Throwaway certificates for tests: client certificates and a loopback TLS CA."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

__all__ = ["TestCertificate", "generate_certificate"]


@dataclass(frozen=True, slots=True)
class TestCertificate:
    """A private key and its certificate, in the forms clients are configured with."""

    __test__ = False  # not a pytest test class

    private_key_pem: bytes = field(repr=False)
    certificate_pem: bytes
    certificate: x509.Certificate = field(repr=False)

    @property
    def thumbprint_sha1(self) -> str:
        """The SHA-1 thumbprint as hex (MSAL's legacy ``thumbprint``)."""
        return self.certificate.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303

    @property
    def thumbprint_sha256(self) -> str:
        """The SHA-256 thumbprint as hex."""
        return self.certificate.fingerprint(hashes.SHA256()).hex().upper()

    def to_pkcs12(self, passphrase: bytes | None = None) -> bytes:
        """Return key and certificate as a PKCS#12 (PFX) blob."""
        key = serialization.load_pem_private_key(self.private_key_pem, password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase)
            if passphrase
            else serialization.NoEncryption()
        )
        return pkcs12.serialize_key_and_certificates(
            b"aiomsal-test", key, self.certificate, None, encryption
        )


def generate_certificate(
    common_name: str = "aiomsal test client",
    *,
    issuer: TestCertificate | None = None,
    is_ca: bool = False,
    ip_addresses: tuple[str, ...] = (),
    dns_names: tuple[str, ...] = (),
    key_size: int = 2048,
) -> TestCertificate:
    """Create an RSA key and a certificate for it, self-signed unless ``issuer`` is given."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    if issuer is None:
        signing_key, issuer_name = key, subject
    else:
        loaded = serialization.load_pem_private_key(issuer.private_key_pem, password=None)
        assert isinstance(loaded, rsa.RSAPrivateKey)
        signing_key, issuer_name = loaded, issuer.certificate.subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    certificate = builder.sign(signing_key, hashes.SHA256())
    return TestCertificate(
        private_key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM),
        certificate=certificate,
    )

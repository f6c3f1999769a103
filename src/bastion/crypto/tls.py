"""A local certificate authority and the gateway's TLS server settings."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bastion.crypto.keys import b64url, write_private_file

CA_VALIDITY = dt.timedelta(days=3650)
SERVER_VALIDITY = dt.timedelta(days=397)  # the CA/Browser Forum ceiling for server certificates
CLIENT_VALIDITY = dt.timedelta(days=90)
CLIENT_URI = "urn:bastion:client:"
ClientCertificates = Literal["off", "optional", "required"]
_STRONG_TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


@dataclass(frozen=True)
class CertificatePaths:
    """Where a workspace keeps its CA and server certificate."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path

    @classmethod
    def under(cls, folder: Path) -> CertificatePaths:
        """The standard file names inside ``folder``."""
        return cls(
            ca_cert=folder / "ca.pem",
            ca_key=folder / "ca.key",
            server_cert=folder / "server.pem",
            server_key=folder / "server.key",
        )


def create_local_pki(paths: CertificatePaths, *, hosts: tuple[str, ...], now: dt.datetime) -> None:
    """Create a CA and a server certificate for ``hosts`` (DNS names or IP addresses)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Bastion local CA")])
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key(), now, CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    write_private_file(paths.ca_key, _private_pem(ca_key))
    paths.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    issue_server_certificate(paths, hosts=hosts, now=now)


def issue_server_certificate(
    paths: CertificatePaths, *, hosts: tuple[str, ...], now: dt.datetime
) -> None:
    """(Re)issue the gateway's certificate for ``hosts``, signed by the workspace CA."""
    if not hosts:
        raise ValueError("a server certificate names at least one host")
    names = [_general_name(host) for host in hosts]
    cert, key = _issue(
        paths,
        common_name=hosts[0],
        names=names,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        now=now,
        validity=SERVER_VALIDITY,
    )
    paths.server_key.unlink(missing_ok=True)
    write_private_file(paths.server_key, key)
    paths.server_cert.write_bytes(cert)


def issue_client_certificate(
    paths: CertificatePaths, *, client_id: str, name: str, now: dt.datetime
) -> tuple[bytes, bytes]:
    """A client certificate (PEM) and its key (PEM) for principal ``client_id``.

    The principal is named by the URI ``urn:bastion:client:<client_id>`` in the subject
    alternative names, which is what the gateway maps back to the principal.
    """
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(CLIENT_URI + client_id)]
    return _issue(
        paths,
        common_name=name,
        names=names,
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        now=now,
        validity=CLIENT_VALIDITY,
    )


def server_context(
    paths: CertificatePaths, *, allow_tls12: bool, client_certificates: ClientCertificates
) -> ssl.SSLContext:
    """The gateway's TLS settings: TLS 1.3 (1.2 only when allowed), optional mutual TLS."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2 if allow_tls12 else ssl.TLSVersion.TLSv1_3
    context.set_ciphers(_STRONG_TLS12_CIPHERS)  # TLS 1.3 suites are all AEAD already
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.load_cert_chain(paths.server_cert, paths.server_key)
    if client_certificates != "off":
        context.load_verify_locations(cafile=paths.ca_cert)
        context.verify_mode = (
            ssl.CERT_REQUIRED if client_certificates == "required" else ssl.CERT_OPTIONAL
        )
    return context


def certificate_thumbprint(der: bytes) -> str:
    """The RFC 8705 ``x5t#S256`` of a certificate: base64url SHA-256 of its DER bytes."""
    return b64url(hashlib.sha256(der).digest())


def client_id_of(der: bytes) -> str | None:
    """The Bastion client id a client certificate names, if any."""
    try:
        cert = x509.load_der_x509_certificate(der)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return None
    uris = [
        u
        for u in san.get_values_for_type(x509.UniformResourceIdentifier)
        if u.startswith(CLIENT_URI)
    ]
    return uris[0].removeprefix(CLIENT_URI) if len(uris) == 1 else None


def _issue(
    paths: CertificatePaths,
    *,
    common_name: str,
    names: list[x509.GeneralName],
    usage: x509.ObjectIdentifier,
    now: dt.datetime,
    validity: dt.timedelta,
) -> tuple[bytes, bytes]:
    ca_key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the workspace CA key is not an EC key")
    ca_cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        _builder(subject, ca_cert.subject, key.public_key(), now, validity)
        .add_extension(x509.SubjectAlternativeName(names), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _private_pem(key)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: dt.datetime,
    validity: dt.timedelta,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + validity)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )

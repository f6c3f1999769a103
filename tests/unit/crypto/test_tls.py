import datetime as dt
import ipaddress
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from bastion.crypto import CertificatePaths, create_local_pki, server_context
from bastion.crypto.tls import certificate_thumbprint, client_id_of, issue_client_certificate


def test_server_certificate_names_loopback_and_chains_to_the_ca(tmp_path):
    """The server certificate has the right SANs and usage, and the CA verifies it."""
    paths = CertificatePaths.under(tmp_path)
    create_local_pki(paths, hosts=("localhost", "127.0.0.1"), now=dt.datetime.now(dt.UTC))
    cert = x509.load_pem_x509_certificate(paths.server_cert.read_bytes())
    ca = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    cert.verify_directly_issued_by(ca)
    assert (paths.server_key.stat().st_mode & 0o777) == 0o600
    assert (paths.ca_key.stat().st_mode & 0o777) == 0o600


def test_server_context_defaults_to_tls13(tmp_path):
    """TLS 1.3 only by default; 1.2 with strong forward-secret AEAD suites when allowed."""
    paths = CertificatePaths.under(tmp_path)
    create_local_pki(paths, hosts=("localhost",), now=dt.datetime.now(dt.UTC))
    default = server_context(paths, allow_tls12=False, client_certificates="off")
    assert default.minimum_version == ssl.TLSVersion.TLSv1_3
    assert default.verify_mode == ssl.CERT_NONE
    relaxed = server_context(paths, allow_tls12=True, client_certificates="required")
    assert relaxed.minimum_version == ssl.TLSVersion.TLSv1_2
    assert relaxed.verify_mode == ssl.CERT_REQUIRED
    names = [cipher["name"] for cipher in relaxed.get_ciphers()]
    assert all(name.startswith(("TLS_", "ECDHE-")) for name in names)  # forward secrecy
    assert not any("CBC" in name or name.endswith("-SHA") for name in names)


def test_client_certificates_name_their_principal(tmp_path):
    """A client certificate carries the principal's URI and the clientAuth usage."""
    paths = CertificatePaths.under(tmp_path)
    now = dt.datetime.now(dt.UTC)
    create_local_pki(paths, hosts=("localhost",), now=now)
    cert_pem, key_pem = issue_client_certificate(paths, client_id="bcl_1", name="ana", now=now)
    cert = x509.load_pem_x509_certificate(cert_pem)
    der = cert.public_bytes(serialization.Encoding.DER)
    assert client_id_of(der) == "bcl_1"
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(paths.ca_cert.read_bytes()))
    assert len(certificate_thumbprint(der)) == 43
    server = x509.load_pem_x509_certificate(paths.server_cert.read_bytes())
    assert client_id_of(server.public_bytes(serialization.Encoding.DER)) is None
    assert b"PRIVATE KEY" in key_pem

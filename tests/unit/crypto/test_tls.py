import datetime as dt
import ipaddress
import ssl

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from bastion.crypto import CertificatePaths, create_local_pki, server_context


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


def test_server_context_refuses_old_tls(tmp_path):
    """The server speaks TLS 1.2 or newer only."""
    paths = CertificatePaths.under(tmp_path)
    create_local_pki(paths, hosts=("localhost",), now=dt.datetime.now(dt.UTC))
    context = server_context(paths)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    names = [cipher["name"] for cipher in context.get_ciphers()]
    assert all(name.startswith(("TLS_", "ECDHE-")) for name in names)  # forward secrecy
    assert not any("CBC" in name or name.endswith("-SHA") for name in names)

"""Backends that hold key-encryption keys: a local keystore, or an HSM over PKCS#11."""

from bastion.crypto.kms.local import LocalKms
from bastion.crypto.kms.pkcs11 import Pkcs11Kms

__all__ = ["LocalKms", "Pkcs11Kms"]

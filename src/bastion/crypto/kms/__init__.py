"""Backends that hold key-encryption keys: a local keystore, or an HSM over PKCS#11."""

from bastion.crypto.kms.local import LocalKms

__all__ = ["LocalKms"]

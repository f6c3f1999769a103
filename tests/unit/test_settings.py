import pytest

from bastion.errors import ConfigError
from bastion.settings import Settings


def test_defaults_are_safe(tmp_path):
    """Defaults: loopback, short-lived tokens, HTTPS issuer."""
    settings = Settings.load(home=tmp_path)
    assert settings.host == "127.0.0.1"
    assert settings.token_ttl_seconds <= 900
    assert settings.issuer == "https://127.0.0.1:8443"


def test_environment_overrides_file_and_flags_override_environment(tmp_path, monkeypatch):
    """Flags beat BASTION_* variables, which beat bastion.toml."""
    (tmp_path / "bastion.toml").write_text("port = 9000\naudience = 'from-file'\nrate_burst = 7\n")
    monkeypatch.setenv("BASTION_PORT", "9100")
    monkeypatch.setenv("BASTION_AUDIENCE", "from-env")
    settings = Settings.load(home=tmp_path, port=9200)
    assert settings.port == 9200
    assert settings.audience == "from-env"
    assert settings.rate_burst == 7


def test_home_comes_from_the_environment(tmp_path, monkeypatch):
    """BASTION_HOME picks the workspace and so its bastion.toml."""
    (tmp_path / "bastion.toml").write_text("port = 9001\n")
    monkeypatch.setenv("BASTION_HOME", str(tmp_path))
    assert Settings.load().port == 9001


@pytest.mark.parametrize(
    "bad",
    [
        {"token_ttl_seconds": 3600},
        {"clock_skew_seconds": 601},
        {"rate_per_second": 0},
        {"public_url": "http://example.test"},
        {"port": 70000},
    ],
)
def test_out_of_range_values_are_refused(tmp_path, bad):
    """Bounded settings fail loudly and name the field."""
    with pytest.raises(ConfigError, match=next(iter(bad))):
        Settings.load(home=tmp_path, **bad)


def test_secret_values_are_not_echoed(tmp_path):
    """A bad database URL is reported by field name, never by value."""
    settings = Settings.load(home=tmp_path, database_url="postgresql://u:hunter2@h/db")
    assert "hunter2" not in repr(settings)
    with pytest.raises(ConfigError) as caught:
        Settings.load(home=tmp_path, database_url=["hunter2"])
    assert "hunter2" not in str(caught.value)


def test_malformed_config_file_is_a_config_error(tmp_path):
    """A broken bastion.toml is reported with its path."""
    (tmp_path / "bastion.toml").write_text("port = [")
    with pytest.raises(ConfigError, match=r"bastion\.toml"):
        Settings.load(home=tmp_path)


def test_unknown_setting_is_refused(tmp_path):
    """A misspelt setting in bastion.toml is an error, not silently ignored."""
    (tmp_path / "bastion.toml").write_text("prot = 1\n")
    with pytest.raises(ConfigError, match="prot"):
        Settings.load(home=tmp_path)


def test_settings_are_frozen(tmp_path):
    """Settings cannot change after startup."""
    settings = Settings.load(home=tmp_path)
    with pytest.raises(ValueError, match="frozen"):
        settings.port = 1


@pytest.mark.parametrize(
    "bad",
    [
        {"alert_webhook_url": "https://hooks.example/x"},  # no secret
        {"alert_webhook_url": "http://hooks.example/x", "alert_webhook_secret": "s"},  # not https
        {"mtls": "sometimes"},
        {"kms": "cloud"},
        {"auth_cache_seconds": 120},
        {"lockout_failures": 1},
    ],
)
def test_contradictory_or_unsafe_options_are_refused(tmp_path, bad):
    """A webhook without its secret or over plain http, or unknown modes, stop startup."""
    with pytest.raises(ConfigError):
        Settings.load(home=tmp_path, **bad)


def test_a_loopback_webhook_may_use_http(tmp_path):
    """Plain http is accepted for a receiver on loopback only."""
    settings = Settings.load(
        home=tmp_path, alert_webhook_url="http://127.0.0.1:9000/hook", alert_webhook_secret="s3cret"
    )
    assert "s3cret" not in repr(settings)


def test_secrets_are_refused_in_the_config_file(tmp_path):
    """The passphrase and the HSM PIN may not be written into bastion.toml."""
    for line in ('passphrase = "x"', 'pkcs11_pin = "1234"'):
        (tmp_path / "bastion.toml").write_text(line + "\n")
        with pytest.raises(ConfigError, match="BASTION_"):
            Settings.load(home=tmp_path)

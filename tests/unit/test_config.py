"""Configuration: defaults, TOML, environment, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from sundial.config import Settings, load_settings
from sundial.errors import ConfigError


def test_nothing_set_means_embedded_sqlite_in_the_working_directory() -> None:
    settings = load_settings(environ={})
    assert settings == Settings()
    assert settings.database_url == "sqlite:///sundial.db" and settings.embedded


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    config = tmp_path / "sundial.toml"
    config.write_text('concurrency = 8\nqueues = ["default", "mail"]\n[plugins.letters]\nbatch = 50\n')
    settings = load_settings(config, environ={"SUNDIAL_CONCURRENCY": "2", "SUNDIAL_QUEUES": "a, b"})
    assert settings.concurrency == 2
    assert settings.queues == ("a", "b")
    assert settings.plugins == {"letters": {"batch": 50}}


def test_failpoints_in_the_environment_are_not_taken_for_an_unknown_setting() -> None:
    # sundial.failpoints reads them; refusing them would stop every process a fault test starts with one
    assert load_settings(environ={"SUNDIAL_FAILPOINTS": "relay.before_publish=crash"}) == Settings()


def test_config_file_from_the_environment_and_a_sundial_table(tmp_path: Path) -> None:
    config = tmp_path / "s.toml"
    config.write_text('[sundial]\ndatabase_url = "postgresql://127.0.0.1/sundial"\n')
    settings = load_settings(environ={"SUNDIAL_CONFIG": str(config)})
    assert settings.database_url == "postgresql://127.0.0.1/sundial" and settings.embedded


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"SUNDIAL_DATABASE_URL": "mysql://x/y"}, "database_url"),
        ({"SUNDIAL_DATABASE_URL": "sqlite:relative.db"}, "database_url"),
        ({"SUNDIAL_BROKER_URL": "http://127.0.0.1"}, "broker_url"),
        ({"SUNDIAL_CONCURRENCY": "many"}, "SUNDIAL_CONCURRENCY"),
        ({"SUNDIAL_CONCURRENCY": "0"}, "concurrency"),
        ({"SUNDIAL_LEASE_SECONDS": "-1"}, "lease_seconds"),
        ({"SUNDIAL_LOG_LEVEL": "loud"}, "log_level"),
        ({"SUNDIAL_METRICS_ADDR": "9464"}, "SUNDIAL_METRICS_ADDR"),
        ({"SUNDIAL_METRICS_ADDR": "127.0.0.1:http"}, "metrics_addr"),
        ({"SUNDIAL_CONCURENCY": "2"}, "SUNDIAL_CONCURENCY"),
    ],
)
def test_bad_values_stop_the_start_naming_the_key(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(environ=environ)


def test_a_typo_suggests_the_real_key(tmp_path: Path) -> None:
    config = tmp_path / "s.toml"
    config.write_text("batch_sise = 10\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'batch_sise' \(did you mean batch_size\?\)"):
        load_settings(config, environ={})
    with pytest.raises(ConfigError, match=r"SUNDIAL_BATCH_SISE \(did you mean SUNDIAL_BATCH_SIZE\?\)"):
        load_settings(environ={"SUNDIAL_BATCH_SISE": "10"})


def test_wrong_type_in_toml_is_named(tmp_path: Path) -> None:
    config = tmp_path / "s.toml"
    config.write_text('max_idle_seconds = "soon"\n')
    with pytest.raises(ConfigError, match="max_idle_seconds"):
        load_settings(config, environ={})


def test_missing_or_broken_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("concurrency = = 2")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(broken, environ={})


def test_api_settings_from_the_environment_and_their_checks(tmp_path: Path) -> None:
    settings = load_settings(environ={"SUNDIAL_API_TOKENS": "r" * 16 + ",q" * 1 + "q" * 15,
                                      "SUNDIAL_API_ADMIN_TOKENS": "a" * 20, "SUNDIAL_API_ADDR": "[::]:7000",
                                      "SUNDIAL_API_MAX_PAGE_SIZE": "50"})  # fmt: skip
    assert settings.api_tokens == ("r" * 16, "q" * 16) and settings.api_admin_tokens == ("a" * 20,)
    assert (settings.api_addr, settings.api_max_page_size) == ("[::]:7000", 50)
    with pytest.raises(ConfigError, match="api_tokens.*at least 16"):
        load_settings(environ={"SUNDIAL_API_TOKENS": "short"})
    with pytest.raises(ConfigError, match="api_addr"):
        load_settings(environ={"SUNDIAL_API_ADDR": "no-port"})
    with pytest.raises(ConfigError, match="both read-only and admin"):
        load_settings(environ={"SUNDIAL_API_TOKENS": "t" * 16, "SUNDIAL_API_ADMIN_TOKENS": "t" * 16})
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    with pytest.raises(ConfigError, match="api_tls_key.*go together"):
        load_settings(environ={"SUNDIAL_API_TLS_CERT": str(cert)})
    with pytest.raises(ConfigError, match="api_tls_client_ca.*mutual TLS"):
        load_settings(environ={"SUNDIAL_API_TLS_CLIENT_CA": str(cert)})
    with pytest.raises(ConfigError, match="api_tls_cert.*no file"):
        load_settings(environ={"SUNDIAL_API_TLS_CERT": str(tmp_path / "missing.pem"), "SUNDIAL_API_TLS_KEY": str(cert)})

"""TLS verification cannot be turned off: an untrusted certificate stops every HTTP plugin.

Each emulator is served over HTTPS with a self-signed certificate. The plugins must refuse it
even with every knob people reach for to disable verification: ``verify``-style config keys and
the ``CURL_CA_BUNDLE`` / ``REQUESTS_CA_BUNDLE`` / ``PYTHONHTTPSVERIFY`` environment variables.
The server must never see a request (no credential leaves the process).
"""

from __future__ import annotations

import datetime as dt
import io
import ipaddress
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from braze_mixpanel_common.retry import BackoffPolicy
from sandbox.emulators.braze import BrazeEmulator
from sandbox.emulators.mixpanel_import import MixpanelImportEmulator
from sandbox.emulators.mixpanel_query import DEFAULT_PROJECT_ID, MixpanelQueryEmulator
from sandbox.emulators.server import Emulator
from tap_braze_currents.storage import tls_downgrades
from target_braze.target import TargetBraze
from target_mixpanel.target import TargetMixpanel
from tests.support.braze import snapshot
from tests.support.clock import FakeClock
from tests.support.cohorts import PROFILES, make_tap, standard_cohorts
from tests.support.mixpanel import currents_record, record_msg, schema_msg

# One line naming the host and the problem, at the first attempt (never retried).
REFUSED = (
    r"TLS certificate of 127\.0\.0\.1 failed verification \(self-signed certificate\); not retried"
)
INSECURE_KNOBS = {
    "verify": False,
    "verify_ssl": False,
    "ssl_verify": False,
    "insecure": True,
    "tls_verify": False,
}


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def insecure_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURL_CA_BUNDLE", "")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "")
    monkeypatch.setenv("PYTHONHTTPSVERIFY", "0")


def serve_tls(emulator: Emulator, cert: tuple[Path, Path]) -> str:
    """Serve the emulator over TLS with ``cert``; return its https URL."""
    emulator.use_tls(*cert).start()
    url = emulator.url
    assert url.startswith("https://")
    # The server works: a client that skips verification gets an answer.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert requests.post(url + "/", verify=False, timeout=5).status_code < 600
    emulator.requests_seen = 0
    return url


@pytest.fixture
def tls_emulators() -> Iterator[list[Emulator]]:
    emulators: list[Emulator] = []
    yield emulators
    for emulator in emulators:
        emulator.stop()


def test_target_mixpanel_refuses_an_untrusted_certificate(
    self_signed, tls_emulators, insecure_env, monkeypatch, tmp_path
):
    emulator = MixpanelImportEmulator()
    tls_emulators.append(emulator)
    url = serve_tls(emulator, self_signed)
    config = {
        "api_url": url,
        "project_id": "12345",
        "service_account_username": "sa-user.mp-service-account",
        "service_account_secret": "sa-secret",
        "dead_letter_path": str(tmp_path / "dead.jsonl"),
        **INSECURE_KNOBS,
    }
    stream = "users_behaviors_customevent"
    lines = [schema_msg(stream), record_msg(stream, currents_record(1))]
    monkeypatch.setattr("sys.stdout", io.StringIO())
    target = TargetMixpanel(config=config, clock=FakeClock(), backoff=BackoffPolicy(max_attempts=2))
    with pytest.raises(Exception, match=REFUSED):
        target.listen(io.StringIO("".join(json.dumps(m) + "\n" for m in lines)))
    assert emulator.requests_seen == 0
    assert emulator.events == []


def test_tap_mixpanel_cohorts_refuses_an_untrusted_certificate(
    self_signed, tls_emulators, insecure_env
):
    emulator = MixpanelQueryEmulator(standard_cohorts(), PROFILES)
    tls_emulators.append(emulator)
    url = serve_tls(emulator, self_signed)
    config = {
        "api_url": url,
        "project_id": str(DEFAULT_PROJECT_ID),
        "api_secret": "legacy-secret",
        **INSECURE_KNOBS,
    }
    tap = make_tap(config, FakeClock())
    with pytest.raises(Exception, match=REFUSED):
        tap.sync_all()
    assert emulator.requests_seen == 0
    assert not any(m["type"] == "RECORD" for m in tap.messages)


def test_target_braze_refuses_an_untrusted_certificate(
    self_signed, tls_emulators, insecure_env, tmp_path
):
    emulator = BrazeEmulator(api_key="k", existing_users=["a", "b"])
    tls_emulators.append(emulator)
    url = serve_tls(emulator, self_signed)
    config = {
        "rest_endpoint": url,
        "api_key": "k",
        "ledger_path": str(tmp_path / "ledger.sqlite3"),
        "dead_letter_path": str(tmp_path / "dead.jsonl"),
        **INSECURE_KNOBS,
    }
    target = TargetBraze(config=config, clock=FakeClock())
    text = "".join(json.dumps(m) + "\n" for m in snapshot({1: ("Buyers", ["a", "b"])}))
    with pytest.raises(Exception, match=REFUSED):
        target.listen(io.StringIO(text))
    assert emulator.requests_seen == 0
    assert emulator.attribute("a", "mixpanel_cohorts") is None


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"client_kwargs": {"verify": False}}, "client_kwargs.verify"),
        ({"use_ssl": False}, "use_ssl"),
        ({"config_kwargs": {"s3": {"verify": "false"}}}, "config_kwargs.s3.verify"),
        ({"endpoint_url": "http://minio.example.com:9000"}, "endpoint_url"),
        ({"client_kwargs": {"endpoint_url": "http://10.0.0.5"}}, "client_kwargs.endpoint_url"),
    ],
)
def test_storage_options_that_weaken_tls_are_named(options, named):
    assert named in tls_downgrades(options)


def test_safe_storage_options_are_not_flagged():
    assert tls_downgrades({"key": "k", "secret": "s"}) == []
    assert tls_downgrades({"endpoint_url": "https://s3.example.com"}) == []
    assert tls_downgrades({"endpoint_url": "http://127.0.0.1:9000"}) == []  # local emulator
    assert tls_downgrades({"client_kwargs": {"verify": "/etc/ssl/custom-ca.pem"}}) == []


def test_tap_braze_currents_warns_when_storage_options_weaken_tls(tmp_path, caplog):
    from tap_braze_currents.tap import TapBrazeCurrents

    caplog.set_level(logging.WARNING)
    config = {"storage_url": str(tmp_path), "storage_options": {"use_ssl": False}}
    TapBrazeCurrents(config=config, parse_env_config=False).discover_streams()
    assert "storage_options turns off TLS protection (use_ssl)" in caplog.text

"""URLs, ACL users, TLS and namespaces: who may reach which broker."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis_server_fixture import ADMIN_PASSWORD, BrokerFactory, RedisServer, free_port

from taskward.api import BrokerConfig, ConfigError, IndefiniteError, ManualClock
from taskward.backends.redis import RedisBroker, split_url

pytestmark = pytest.mark.redis


def test_redis_acl_user_with_password_in_the_url_works(
    make_broker: BrokerFactory, redis_server: RedisServer, namespace: str,
) -> None:
    user = "tw-" + namespace
    with redis_server.admin() as admin:
        admin.execute_command(
            "ACL", "SETUSER", user, "reset", "on", ">s3cret/pass", "~{" + namespace + "}:*",
            "+@all", "-@dangerous",
        )
    url = redis_server.url(namespace, user=user, password="s3cret%2Fpass")
    broker = make_broker(url=url, policy="shared")
    broker.publish({"hello": "acl"}, task_id="t1")
    got = broker.fetch("w1")
    assert got is not None and got.payload == {"hello": "acl"}
    broker.ack("w1", "t1")
    assert broker.stats().acked == 1


def test_redis_acl_user_cannot_touch_another_namespace(
    make_broker: BrokerFactory, redis_server: RedisServer, namespace: str,
) -> None:
    user = "tw-" + namespace
    with redis_server.admin() as admin:
        admin.execute_command(
            "ACL", "SETUSER", user, "reset", "on", ">pw", "~{" + namespace + "}:*", "+@all",
            "-@dangerous",
        )
    other = redis_server.url("not-" + namespace, user=user, password="pw")
    with pytest.raises(ConfigError, match="ACL user"):
        make_broker(url=other)


def test_redis_wrong_password_is_a_config_error_that_hides_the_password(
    make_broker: BrokerFactory, redis_server: RedisServer, namespace: str,
) -> None:
    url = redis_server.url(namespace, password="wrong-one")
    with pytest.raises(ConfigError) as caught:
        make_broker(url=url)
    assert "wrong-one" not in str(caught.value)
    assert ":***@" in str(caught.value)


def test_redis_namespaces_on_one_server_are_isolated(
    make_broker: BrokerFactory, redis_server: RedisServer,
) -> None:
    first = make_broker(url=redis_server.url("iso-a-" + uuid.uuid4().hex), policy="shared")
    second = make_broker(url=redis_server.url("iso-b-" + uuid.uuid4().hex), policy="round_robin")
    first.publish("a", task_id="same-id")
    second.publish("b", task_id="same-id")  # no DuplicateTaskError across namespaces
    got = second.fetch("w1")
    assert got is not None and got.payload == "b"
    assert second.fetch("w1") is None
    got = first.fetch("w1")
    assert got is not None and got.payload == "a"
    assert first.stats().leased == 1 and second.stats().leased == 1


def test_redis_namespace_query_parameter_and_url_checks() -> None:
    assert split_url("redis://h:1/0?namespace=jobs&socket_timeout=3", "taskward") == (
        "redis://h:1/0?socket_timeout=3", "jobs"
    )
    assert split_url("rediss://u:p@h:1/2", "x") == ("rediss://u:p@h:1/2", "x")
    with pytest.raises(ConfigError, match="scheme"):
        split_url("http://h:1/0", "x")
    with pytest.raises(ConfigError, match="braces"):
        split_url("redis://h:1/0?namespace=a{b}", "x")
    with pytest.raises(ConfigError, match="non-empty"):
        split_url("redis://h:1/0", "")


def test_redis_unreachable_server_is_an_indefinite_error() -> None:
    config = BrokerConfig(clock=ManualClock())
    with pytest.raises(IndefiniteError):
        RedisBroker(f"redis://127.0.0.1:{free_port()}/0", config)


# --------------------------------------------------------------------------- TLS


def _tls_binary() -> str | None:
    candidates = [shutil.which("redis-server"), "/usr/bin/redis-server"]
    for binary in candidates:
        if binary is None:
            continue
        # listening nowhere makes a TLS-capable server exit at once
        probe = subprocess.run([binary, "--port", "0", "--tls-port", "0", "--save", ""],
                               capture_output=True, text=True, check=False, timeout=10)
        if "Bad directive" not in probe.stdout + probe.stderr:
            return binary
    return None


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A TLS-only redis-server with a throwaway CA; skips when TLS cannot be set up."""
    openssl = shutil.which("openssl")
    binary = _tls_binary()
    if openssl is None or binary is None:
        pytest.skip("needs the openssl command and a redis-server built with TLS")
    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=tmp_path, check=True, capture_output=True)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "1", "-subj", "/CN=taskward-test-ca")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
        "-subj", "/CN=127.0.0.1")
    (tmp_path / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "srv.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "srv.crt", "-days", "1", "-extfile", "ext.cnf")
    server = RedisServer(binary, tmp_path, durable=False)
    base_args = server.args
    def tls_args() -> list[str]:
        args = base_args()
        args[args.index("--port") + 1] = "0"
        return [*args, "--tls-port", str(server.port), "--tls-cert-file", "srv.crt",
                "--tls-key-file", "srv.key", "--tls-ca-cert-file", "ca.crt",
                "--tls-auth-clients", "no"]
    server.args = tls_args  # type: ignore[method-assign]
    proc = subprocess.Popen(server.args(), cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        yield server.port, tmp_path / "ca.crt"
    finally:
        proc.kill()
        proc.wait()


def test_redis_rediss_url_speaks_tls_to_the_server(tls_server: tuple[int, Path]) -> None:
    port, ca = tls_server
    url = (f"rediss://default:{ADMIN_PASSWORD}@127.0.0.1:{port}/0"
           f"?ssl_ca_certs={ca}&namespace=tls")
    config = BrokerConfig(clock=ManualClock(), policy="shared")
    broker = None
    for _ in range(100):  # the server may still be starting: IndefiniteError until then
        try:
            broker = RedisBroker(url, config)
            break
        except IndefiniteError:
            subprocess.run(["sleep", "0.05"], check=True)
    assert broker is not None, "the TLS server never answered"
    try:
        broker.publish("over tls", task_id="t1")
        got = broker.fetch("w1")
        assert got is not None and got.payload == "over tls"
        with pytest.raises(ConfigError, match="ssl_"):
            RedisBroker(url.replace("rediss://", "redis://"), config)
        plain = f"redis://default:{ADMIN_PASSWORD}@127.0.0.1:{port}/0?namespace=tls"
        with pytest.raises(IndefiniteError):
            RedisBroker(plain, config)
    finally:
        broker.close()

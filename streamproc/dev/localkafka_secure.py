"""The local broker's secured mode: a throwaway CA and broker certificate (openssl), SCRAM-SHA-512
users created at format time, a SASL_SSL client listener, and KRaft's StandardAuthorizer that
denies whatever no ACL allows. `LocalKafka(secure=Secure())` turns it on."""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SUPER_USER = "admin"
# The users made at format time besides the super user: one per role `streamproc acls` knows,
# and one with no ACL at all.
DEFAULT_USERS = ("worker", "topics", "operator", "nobody")
MECHANISM = "SCRAM-SHA-512"


class SecureSetupError(RuntimeError):
    """Making the certificates failed (the message has openssl's output)."""


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SecureSetupError(f"{' '.join(cmd[:3])} failed: {proc.stderr[-1500:]}")


def make_certificates(folder: Path, password: str) -> dict[str, Path]:
    """A CA (ca.pem) and a broker certificate for 127.0.0.1/localhost signed by it, as a
    PKCS12 keystore (broker.p12, protected by `password`). Valid for 7 days."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert, p12 = (folder / n for n in (
        "ca.key", "ca.pem", "broker.key", "broker.csr", "broker.pem", "broker.p12"))
    ext = folder / "san.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key),
          "-out", str(ca), "-days", "7", "-subj", "/CN=streamproc-local-ca"])
    _run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
          "-subj", "/CN=localhost"])
    _run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
          "-CAcreateserial", "-out", str(cert), "-days", "7", "-extfile", str(ext)])
    _run(["openssl", "pkcs12", "-export", "-in", str(cert), "-inkey", str(key), "-certfile", str(ca),
          "-name", "broker", "-out", str(p12), "-passout", f"pass:{password}"])
    return {"ca": ca, "keystore": p12}


def _jaas_scram(user: str, password: str) -> str:
    return (f'org.apache.kafka.common.security.scram.ScramLoginModule required '
            f'username="{user}" password="{password}";')


@dataclass
class Secure:
    """Secured mode of LocalKafka. Passwords are random per instance (`passwords`); the super
    user `admin` may do anything, every other user only what an ACL allows. The controller
    listener is SASL_PLAINTEXT with PLAIN (SCRAM cannot authenticate the controller in KRaft),
    its only user the super user."""

    users: tuple[str, ...] = DEFAULT_USERS
    passwords: dict[str, str] = field(default_factory=dict)
    ca_file: Path | None = None
    keystore: Path | None = None
    _store_password: str = field(default_factory=lambda: secrets.token_hex(12))

    def __post_init__(self) -> None:
        for user in (SUPER_USER, *self.users):
            self.passwords.setdefault(user, secrets.token_hex(12))

    def prepare(self, data_dir: Path) -> None:
        """The certificates, made once per data folder (a restart keeps them)."""
        folder = data_dir / "tls"
        if not (folder / "broker.p12").exists():
            made = make_certificates(folder, self._store_password)
            (folder / "store-password").write_text(self._store_password)
        else:
            made = {"ca": folder / "ca.pem", "keystore": folder / "broker.p12"}
            self._store_password = (folder / "store-password").read_text()
        self.ca_file, self.keystore = made["ca"], made["keystore"]

    def properties(self, port: int, controller_port: int) -> dict[str, str]:
        admin_pw = self.passwords[SUPER_USER]
        plain = (f'org.apache.kafka.common.security.plain.PlainLoginModule required '
                 f'username="{SUPER_USER}" password="{admin_pw}" user_{SUPER_USER}="{admin_pw}";')
        return {
            "listeners": f"SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"SASL_SSL://127.0.0.1:{port}",
            "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:SASL_PLAINTEXT",
            "inter.broker.listener.name": "SASL_SSL",
            "sasl.enabled.mechanisms": MECHANISM,
            "sasl.mechanism.inter.broker.protocol": MECHANISM,
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
                _jaas_scram(SUPER_USER, admin_pw),
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": plain,
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": str(self.keystore),
            "ssl.keystore.password": self._store_password,
            "ssl.key.password": self._store_password,
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca_file),
            "ssl.endpoint.identification.algorithm": "https",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": f"User:{SUPER_USER}",
        }

    def format_args(self) -> list[str]:
        """kafka-storage format arguments creating every user's SCRAM credentials."""
        out: list[str] = []
        for user, pw in self.passwords.items():
            out += ["--add-scram", f"{MECHANISM}=[name={user},password={pw}]"]
        return out

    def client_kwargs(self, user: str = SUPER_USER) -> dict[str, Any]:
        """aiokafka keyword arguments (without bootstrap_servers) to connect as `user`."""
        from aiokafka.helpers import create_ssl_context

        return {"security_protocol": "SASL_SSL", "sasl_mechanism": MECHANISM,
                "sasl_plain_username": user, "sasl_plain_password": self.passwords[user],
                "ssl_context": create_ssl_context(cafile=str(self.ca_file))}

    def env(self, user: str) -> dict[str, str]:
        """The STREAMPROC_KAFKA_* variables (without the bootstrap) to connect as `user`."""
        return {"STREAMPROC_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "STREAMPROC_KAFKA_SASL_MECHANISM": MECHANISM,
                "STREAMPROC_KAFKA_SASL_USERNAME": user,
                "STREAMPROC_KAFKA_SASL_PASSWORD": self.passwords[user],
                "STREAMPROC_KAFKA_SSL_CAFILE": str(self.ca_file)}

    def ready_info(self) -> dict[str, Any]:
        """For `streamproc kafka start --secure --ready-file`: how to connect as each user."""
        return {"security_protocol": "SASL_SSL", "sasl_mechanism": MECHANISM,
                "ssl_cafile": str(self.ca_file), "super_user": SUPER_USER,
                "users": dict(self.passwords)}

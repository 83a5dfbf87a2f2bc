"""HTTP and WebSocket over TLS (`-e ssl:...`): scheme "https", hand-over through the TLS
wrapper (D-27 step 2, D-28)."""

from __future__ import annotations

import datetime
import http.client
import ssl

import pytest
import websocket

from channels.layers.inmemory import ChannelLayer
from tests.daphne.live import LiveServer, Responder, send_retrying

pytest.importorskip("OpenSSL", reason="Twisted's TLS needs pyOpenSSL (pip install -e .[tests])")


def self_signed(tmp_path) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = tmp_path / "key.pem", tmp_path / "cert.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(key_path), str(cert_path)


def handler(layer, channel, message):
    reply = message["reply_channel"]
    if channel == "http.request":
        send_retrying(layer, reply, {"status": 200, "content": message["scheme"].encode()})
    elif channel == "websocket.connect":
        send_retrying(layer, reply, {"accept": True})
    else:
        send_retrying(layer, reply, {"text": "tls:" + message["text"]})


def test_http_and_websocket_over_tls(tmp_path):
    key, cert = self_signed(tmp_path)
    endpoint = f"ssl:port=0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
    layer = ChannelLayer()
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with LiveServer(layer, endpoint=endpoint) as live:
        responder = Responder(
            layer, ["http.request", "websocket.connect", "websocket.receive"], handler
        ).start()
        try:
            connection = http.client.HTTPSConnection(
                "127.0.0.1", live.port, timeout=10, context=context
            )
            connection.request("GET", "/")
            assert connection.getresponse().read() == b"https"
            connection.close()
            ws = websocket.create_connection(
                f"wss://127.0.0.1:{live.port}/ws/", timeout=10, sslopt={"cert_reqs": ssl.CERT_NONE}
            )
            try:
                ws.send("hello")
                assert ws.recv() == "tls:hello"
            finally:
                ws.close()
                ws.shutdown()
        finally:
            responder.stop()

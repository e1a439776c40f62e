"""A real S3 server on 127.0.0.1 for the DVC remote tests: moto's S3 HTTP API in this process, with SigV4 signatures
and permissions checked against its IAM, which a test can stop mid-transfer (every open connection cut, like a crashed
server) and start again with the objects it had stored."""

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from urllib.parse import parse_qs

import boto3
from moto.core.authorization import enable_iam_authentication
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

REGION = "us-east-1"
_ALLOW_S3 = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}


class S3Server:
    """Serves S3 on 127.0.0.1 (start picks a free port, a restart keeps it). `stored_puts` lists the key of every object
    PUT that the server stored, in order."""

    def __init__(self) -> None:
        self._app = DomainDispatcherApplication(create_backend_app)
        self._server: BaseWSGIServer | None = None
        self._port = 0
        self.stored_puts: list[str] = []
        # Any key works until s3_server turns signature checks on; then only its IAM user's.
        self.credentials = {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "set-up-before-checks"}
        self._puts_to_admit: int | None = None  # before stopping (stop_after_puts)
        self._puts_to_store: int | None = None
        self.stopped = threading.Event()
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> None:
        self._server = make_server("127.0.0.1", self._port, self._recording_app, threaded=True, request_handler=_TrackedConnections)
        self._server.open_connections = set()
        self._puts_to_admit = self._puts_to_store = None
        self._port = self._server.server_port
        self.stopped.clear()
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Stop listening and cut every open connection mid-request; what was stored stays stored."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        for connection in list(server.open_connections):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self.stopped.set()

    def stop_after_puts(self, count: int) -> None:
        """Take `count` more object PUTs, hold any further ones, and stop once those `count` are stored."""
        with self._lock:
            self._puts_to_admit = self._puts_to_store = count

    def client(self, service: str):
        """A boto3 client signing with `credentials`."""
        return boto3.client(
            service, endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id=self.credentials["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.credentials["AWS_SECRET_ACCESS_KEY"],
        )

    def _recording_app(self, environ, start_response):
        object_put = environ["REQUEST_METHOD"] == "PUT" and _is_object_put(environ)
        if object_put:
            with self._lock:
                admitted = self._puts_to_admit is None or self._puts_to_admit > 0
                if self._puts_to_admit:
                    self._puts_to_admit -= 1
            if not admitted:  # beyond the last PUT the server takes before it stops: held until its connection is cut
                self.stopped.wait(timeout=60)
                raise ConnectionAbortedError("the server stopped")  # werkzeug drops the connection quietly

        def recording_start_response(status, headers, exc_info=None):
            if object_put and status.startswith("200"):
                with self._lock:
                    self.stored_puts.append(environ["PATH_INFO"].lstrip("/"))
                    if self._puts_to_store is not None:
                        self._puts_to_store -= 1
                        if self._puts_to_store == 0:  # the PUTs still to come stay held until start()
                            self._puts_to_store = None
                            threading.Thread(target=self.stop).start()  # not from this request's own thread
            return start_response(status, headers, exc_info)

        return self._app(environ, recording_start_response)


def _is_object_put(environ) -> bool:
    """A PUT of an object (bucket/key), not of a bucket or of one part of a multipart upload."""
    bucket_and_key = environ["PATH_INFO"].lstrip("/").split("/", 1)
    return len(bucket_and_key) == 2 and bool(bucket_and_key[1]) and "partNumber" not in parse_qs(environ.get("QUERY_STRING", ""))


class _TrackedConnections(MotoRequestHandler):
    def setup(self) -> None:
        super().setup()
        self.server.open_connections.add(self.connection)

    def finish(self) -> None:
        self.server.open_connections.discard(self.connection)
        super().finish()

    def log_request(self, *args) -> None:
        pass


@contextlib.contextmanager
def s3_server() -> Iterator[S3Server]:
    """A started S3Server whose requests must be signed by an IAM user's key; its `credentials` are the key of the
    one user, allowed all of S3. Stopped and emptied on exit."""
    server = S3Server()
    server.start()
    try:
        iam = server.client("iam")
        iam.create_user(UserName="keeptrash")
        iam.put_user_policy(UserName="keeptrash", PolicyName="s3", PolicyDocument=json.dumps(_ALLOW_S3))
        key = iam.create_access_key(UserName="keeptrash")["AccessKey"]
        server.credentials = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
        with enable_iam_authentication():
            yield server
    finally:
        server.stop()
        _reset_moto()


def _reset_moto() -> None:
    from moto.moto_api._internal.models import moto_api_backend

    moto_api_backend.reset()

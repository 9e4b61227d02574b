"""DashScope's temporary storage for local files, emulated (issue 19): the upload policies it issues, the objects the
upload host keeps, and the check a create that names an ``oss://`` object gets.

The official SDK uploads a local file in two steps (dashscope ``utils/oss_utils.py``): ``GET /api/v1/uploads?
action=getPolicy&model=M`` answers a signed policy (``data``: ``upload_host``, ``upload_dir``, ``policy``,
``signature``, ``oss_access_key_id``, ``x_oss_object_acl``, ``x_oss_forbid_overwrite``, ``expire_in_seconds``,
``max_file_size_mb``, ``capacity_limit_mb``); then a multipart POST to ``upload_host`` stores the file under
``upload_dir/<name>``, and the create names it ``oss://<key>`` with the header ``X-DashScope-OssResourceResolve:
enable``. An object lives 48 h (simulated: divided by ``speed``) and serves only the model it was uploaded for.

Assumptions where the vendor documents nothing (docs/EMULATOR.md): a create naming an object that does not exist
(never uploaded, expired) or lacking the header is answered 400 ``InvalidParameter`` naming the URL, and so is one
whose audio the service would not take (not wav or mp3, not 3–30 s, over 15 MB) — checked at the create, as the
service reads the file then; the policy allows 100 MB (``upload_max_mb``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import av

from runner.emulator.protocol import ApiFailure
from runner.models import AUDIO_FORMATS, AUDIO_MAX_BYTES, AUDIO_MAX_SECONDS, AUDIO_MIN_SECONDS, ModelSpec

#: The access key id the emulated policies name (a public id, like OSS's; the secret signs the policy).
ACCESS_KEY_ID = "LTAIemulatorUpload"
BUCKET = "dashscope-file-mgr"
#: How long a policy may be used to upload (real seconds, as the service answers ``expire_in_seconds``).
POLICY_SECONDS = 300
RESOLVE_HEADER = "X-DashScope-OssResourceResolve"


@dataclass(frozen=True)
class IssuedPolicy:
    upload_dir: str
    model: str  # canonical: the model the object will serve
    key_id: str  # the account's key id (an object serves the account it was uploaded by)
    expires_at: float  # emulator clock
    max_bytes: int


@dataclass
class StoredObject:
    key: str
    data: bytes
    model: str
    content_type: str
    expires_at: float  # emulator clock
    audio: str | None = None  # why the service would not take it as audio ("" when it would), once checked


class ObjectStore:
    """The policies issued and the objects stored; used from the emulator's event loop only."""

    def __init__(self, *, speed: float, ttl: float, max_bytes: int, seed: int) -> None:
        self.speed, self.ttl, self.max_bytes = speed, ttl, max_bytes
        self._secret = hashlib.blake2b(f"upload-secret:{seed}".encode(), digest_size=32).digest()
        self.clear()

    def clear(self) -> None:
        """Forget every policy, object and counter (``POST /_emulator/reset``)."""
        self.policies: dict[str, IssuedPolicy] = {}
        self.objects: dict[str, StoredObject] = {}
        self.issued = 0
        self.stored = 0
        self.stored_bytes = 0
        self.with_authorization = 0  # uploads that carried an Authorization header (the key must never go there)
        self.resolving_creates = 0  # creates that carried X-DashScope-OssResourceResolve: enable
        self.refused: Counter[str] = Counter()  # upload answers other than success, by code

    # -- policies -----------------------------------------------------------------------------------------

    def sign(self, policy: str) -> str:
        return base64.b64encode(hmac.new(self._secret, policy.encode(), hashlib.sha1).digest()).decode()

    def issue(self, model: str, key_id: str, now: float, upload_host: str) -> dict[str, Any]:
        """A new policy for ``model``: the ``data`` of the getPolicy answer."""
        day = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")
        upload_dir = f"dashscope-instant/{hashlib.md5(key_id.encode()).hexdigest()}/{day}/{uuid.uuid4()}"
        expiration = datetime.fromtimestamp(now + POLICY_SECONDS, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        document = {
            "expiration": expiration,
            "conditions": [
                {"bucket": BUCKET},
                ["content-length-range", 0, self.max_bytes],
                ["starts-with", "$key", upload_dir],
                {"x-oss-object-acl": "private"},
                {"x-oss-forbid-overwrite": "true"},
            ],
        }
        policy = base64.b64encode(json.dumps(document, separators=(",", ":")).encode()).decode()
        self.policies[upload_dir] = IssuedPolicy(upload_dir, model, key_id, now + POLICY_SECONDS, self.max_bytes)
        self.issued += 1
        return {
            "policy": policy,
            "signature": self.sign(policy),
            "upload_dir": upload_dir,
            "upload_host": upload_host,
            "expire_in_seconds": POLICY_SECONDS,
            "max_file_size_mb": self.max_bytes // (1024 * 1024),
            "capacity_limit_mb": 999999999,
            "oss_access_key_id": ACCESS_KEY_ID,
            "x_oss_object_acl": "private",
            "x_oss_forbid_overwrite": "true",
        }

    def policy_of(self, policy: str) -> IssuedPolicy | None:
        """The issued policy a (signature-checked) policy document names, or None."""
        try:
            document = json.loads(base64.b64decode(policy, validate=True))
            conditions = document["conditions"]
        except (ValueError, KeyError, TypeError):
            return None
        for c in conditions if isinstance(conditions, list) else ():
            if isinstance(c, list) and len(c) == 3 and c[0] == "starts-with" and c[1] == "$key":
                return self.policies.get(str(c[2]))
        return None

    # -- objects ------------------------------------------------------------------------------------------

    def put(self, key: str, data: bytes, policy: IssuedPolicy, content_type: str, now: float) -> None:
        self.objects[key] = StoredObject(key, data, policy.model, content_type, now + self.ttl / self.speed)
        self.stored += 1
        self.stored_bytes += len(data)

    def get(self, key: str, now: float) -> StoredObject | None:
        """The object at ``key`` while it lives (an expired one is gone)."""
        obj = self.objects.get(key)
        if obj is not None and obj.expires_at <= now:
            del self.objects[key]
            return None
        return obj

    def as_stats(self, now: float) -> dict[str, Any]:
        return {
            "upload_policies": self.issued,
            "uploads": self.stored,
            "upload_bytes": self.stored_bytes,
            "uploads_with_authorization": self.with_authorization,
            "uploads_refused": dict(self.refused),
            "creates_with_resolve_header": self.resolving_creates,
            "objects": sum(1 for o in self.objects.values() if o.expires_at > now),
        }


# -- the create's check -----------------------------------------------------------------------------------


def check_oss_audio(store: ObjectStore, inp: dict[str, Any], resolve: str, spec: ModelSpec, now: float) -> None:
    """A create whose ``input.audio_url`` names an ``oss://`` object: the header must ask to resolve it, the object
    must live and serve this model, and its audio must be what the service takes; else 400 naming the URL."""
    enabled = resolve.strip().lower() == "enable"
    store.resolving_creates += enabled
    url = inp.get("audio_url")
    if not isinstance(url, str) or not url.startswith("oss://"):
        return
    if not enabled:
        raise _invalid(f"The oss resource {url} cannot be read: a request naming an oss:// URL needs the header "
                       f"{RESOLVE_HEADER}: enable.")  # fmt: skip
    obj = store.get(url.removeprefix("oss://"), now)
    if obj is None:
        raise _invalid(f"The oss resource {url} does not exist or has expired (temporary files are kept 48 hours).")
    if obj.model != spec.name:
        raise _invalid(f"The oss resource {url} was uploaded for model {obj.model}; a temporary file serves only the "
                       "model it was uploaded for.")  # fmt: skip
    if obj.audio is None:
        obj.audio = audio_problem(obj.data)
    if obj.audio:
        raise _invalid(f"The audio {url} {obj.audio}.")


def audio_problem(data: bytes) -> str:
    """Why the service would not take ``data`` as ``audio_url`` (API.md §1.3), or "" when it would."""
    allowed = " or ".join(AUDIO_FORMATS)
    if len(data) > AUDIO_MAX_BYTES:
        return f"is {len(data)} bytes; at most {AUDIO_MAX_BYTES} (15 MB)"
    try:
        with av.open(io.BytesIO(data), "r") as container:
            names = set(container.format.name.split(","))
            if not container.streams.audio or not names & set(AUDIO_FORMATS):
                return f"is not {allowed}"
            seconds = container.duration / 1_000_000 if container.duration else 0.0
    except (av.error.FFmpegError, ValueError):
        return f"is not {allowed}"
    if not AUDIO_MIN_SECONDS <= seconds <= AUDIO_MAX_SECONDS:
        return f"lasts {seconds:.1f} s; it must last {AUDIO_MIN_SECONDS:g} to {AUDIO_MAX_SECONDS:g} s"
    return ""


def _invalid(message: str) -> ApiFailure:
    return ApiFailure(400, "InvalidParameter", message)

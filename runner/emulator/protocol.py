"""What the emulator says on the wire: error codes and messages (API.md §4), timestamps, and the checks of a
create request's body (API.md §1.3), applied with the rules of ``runner.models``."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from runner.models import (
    NEGATIVE_PROMPT_MAX_CHARS,
    SEED_MAX,
    SEED_MIN,
    TIER_SR,
    ModelSpec,
    parse_size,
    resolve_model,
    tier_of,
)

# Messages of API.md §4, verbatim where the vendor documents them.
NO_API_KEY = "No API-key provided."
INVALID_API_KEY = "Invalid API-key provided."
SYNC_NOT_SUPPORTED = "current user api does not support synchronous calls."
URL_ERROR = "url error, please check url!"
MODEL_NOT_EXIST = "Model not exist."
RATE_QUOTA = "Requests rate limit exceeded, please try again later."
CONCURRENCY = "Too many concurrent requests."
CANCEL_NOT_PENDING = "Failed to cancel the task, please confirm if the task is in PENDING status."
INPUT_INSPECTION = "Input data may contain inappropriate content."
OUTPUT_INSPECTION = "Output data may contain inappropriate content."
INTERNAL_ERROR = "An internal error has occured, please try again later or contact service support."
MODEL_UNAVAILABLE = "Model is unavailable, please try again later."
TASK_TIMEOUT = "The task did not finish within 3 hours."
ARREARAGE = "Access denied, please make sure your account is in good standing."
MODEL_ACCESS_DENIED = "Model access denied."

CST = timezone(timedelta(hours=8))


class ApiFailure(Exception):
    """A refused request: HTTP status plus the flat ``{code, message}`` body of the real service."""

    def __init__(self, status: int, code: str, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


def fmt_time(epoch: float) -> str:
    """Task timestamps: ``YYYY-MM-DD HH:mm:ss.SSS`` in UTC+8 (API.md decision 6)."""
    dt = datetime.fromtimestamp(epoch, CST)
    return dt.strftime("%Y-%m-%d %H:%M:%S.") + f"{dt.microsecond // 1000:03d}"


def parse_list_time(value: str) -> float:
    """A list window bound ``YYYYMMDDhhmmss`` read in UTC+8 (API.md decision 9) → epoch seconds."""
    try:
        dt = datetime.strptime(value, "%Y%m%d%H%M%S").replace(tzinfo=CST)
    except ValueError:
        raise ApiFailure(400, "InvalidParameter", f"Invalid time format: {value!r}, expected yyyyMMddHHmmss.") from None
    return dt.timestamp()


def body_digest(body: dict[str, Any]) -> str:
    """sha256 of a create body in canonical form, to count duplicate submissions.

    Canonical: ``input.extend_prompt`` and ``input.function`` removed (the 1.x SDK adds them, the 2.x client
    does not), an empty or missing ``parameters`` dropped, the model named by its canonical spelling, then
    ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` encoded as UTF-8.
    """
    canon: dict[str, Any] = dict(body)
    inp = canon.get("input")
    if isinstance(inp, dict):
        canon["input"] = {k: v for k, v in inp.items() if k not in ("extend_prompt", "function")}
    if not canon.get("parameters"):
        canon.pop("parameters", None)
    model = canon.get("model")
    spec = resolve_model(model) if isinstance(model, str) else None
    if spec is not None:
        canon["model"] = spec.name
    text = json.dumps(canon, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class TaskRequest:
    """A create body that passed every check: what the simulated model will make."""

    model_name: str  # as sent (either spelling)
    spec: ModelSpec
    prompt: str  # as sent: answered as orig_prompt
    prompt_used: str  # truncated to the model's limit: what the model "sees"
    negative_prompt: str | None
    size: str
    width: int
    height: int
    duration: int
    prompt_extend: bool
    shot_type: str | None
    watermark: bool
    seed: int | None
    digest: str


def _bad(message: str) -> ApiFailure:
    return ApiFailure(400, "InvalidParameter", message)


def _opt_bool(params: dict[str, Any], key: str, default: bool) -> bool:
    v = params.get(key, default)
    if not isinstance(v, bool):
        raise _bad(f"Parameter {key} must be a boolean, got {v!r}.")
    return v


def resolve_body_model(body: Any) -> tuple[dict[str, Any], str, ModelSpec]:
    """The first checks (body shape and model), done before the per-model submit quota can be counted."""
    if not isinstance(body, dict):
        raise ApiFailure(400, "BadRequest.IllegalInput", "The request body is not a valid JSON object.")
    model = body.get("model")
    if model is None or model == "":
        raise ApiFailure(400, "BadRequest.EmptyModel", 'Required parameter "model" missing from request.')
    if not isinstance(model, str):
        raise ApiFailure(400, "BadRequest.IllegalInput", 'Parameter "model" must be a string.')
    spec = resolve_model(model)
    if spec is None:
        raise ApiFailure(400, "InvalidParameter", MODEL_NOT_EXIST)
    return body, model, spec


def check_create(body: dict[str, Any], model_name: str, spec: ModelSpec) -> TaskRequest:
    """Every remaining check of API.md §1.3; over-long prompts are truncated, unknown input keys ignored."""
    inp = body.get("input")
    if inp is None or inp == {} or inp == "":
        raise ApiFailure(400, "BadRequest.EmptyInput", 'Required parameter "input" missing from request.')
    if not isinstance(inp, dict):
        raise ApiFailure(400, "BadRequest.IllegalInput", 'Parameter "input" must be a JSON object.')
    params = body.get("parameters", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ApiFailure(400, "BadRequest.EmptyParameters", 'Parameter "parameters" must be a JSON object.')

    prompt = inp.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ApiFailure(400, "BadRequest.EmptyInput", 'Required parameter "prompt" missing from input.')
    negative = inp.get("negative_prompt")
    if negative is not None and not isinstance(negative, str):
        raise _bad("Parameter negative_prompt must be a string.")
    if "audio_url" in inp:
        if not spec.audio_url:
            raise _bad(f"Parameter audio_url is not supported by model {model_name}.")
        if not isinstance(inp["audio_url"], str) or not inp["audio_url"].startswith(("http://", "https://", "oss://")):
            raise ApiFailure(400, "InvalidURL", "The audio_url is not a valid http, https or oss URL.")

    size = params.get("size", spec.default_size)
    if not isinstance(size, str) or not spec.allows_size(size):
        raise _bad(f"The size is not match the allowed sizes of {model_name}: {', '.join(spec.sizes)}.")
    width, height = parse_size(size)

    duration = params.get("duration", spec.default_duration)
    if isinstance(duration, float) and duration.is_integer():
        duration = int(duration)
    if isinstance(duration, bool) or not isinstance(duration, int) or duration not in spec.durations:
        raise _bad(f"The duration is not match the allowed durations of {model_name}: {spec.describe_durations()}.")

    prompt_extend = _opt_bool(params, "prompt_extend", True)
    watermark = _opt_bool(params, "watermark", False)
    shot_type = params.get("shot_type")
    if shot_type is not None:
        if shot_type not in ("single", "multi"):
            raise _bad(f"Parameter shot_type must be single or multi, got {shot_type!r}.")
        if not spec.shot_type or not prompt_extend:
            shot_type = None  # only wan2.6 knows it, and only with prompt_extend (API.md §1.3): ignored
    seed = params.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not SEED_MIN <= seed <= SEED_MAX):
        raise _bad(f"Parameter seed must be an integer in [{SEED_MIN}, {SEED_MAX}].")
    if "audio" in params and not isinstance(params["audio"], bool):
        raise _bad("Parameter audio must be a boolean.")

    return TaskRequest(
        model_name=model_name,
        spec=spec,
        prompt=prompt,
        prompt_used=prompt[: spec.prompt_max_chars],
        negative_prompt=negative[:NEGATIVE_PROMPT_MAX_CHARS] if negative is not None else None,
        size=size,
        width=width,
        height=height,
        duration=duration,
        prompt_extend=prompt_extend,
        shot_type=shot_type if shot_type is not None else ("single" if spec.shot_type and prompt_extend else None),
        watermark=watermark,
        seed=seed,
        digest=body_digest(body),
    )


def usage_of(req: TaskRequest) -> dict[str, Any]:
    """``usage`` of a SUCCEEDED task in the model family's shape (API.md §2)."""
    if req.spec.usage_family == "wan2.6":
        tier = tier_of(req.size)
        return {
            "duration": req.duration,
            "size": req.size,
            "input_video_duration": 0,
            "output_video_duration": req.duration,
            "video_count": 1,
            "SR": TIER_SR[tier] if tier else 0,
        }
    return {"video_duration": req.duration, "video_ratio": req.size, "video_count": 1}


def actual_prompt_of(req: TaskRequest) -> str | None:
    """The "rewritten" prompt of models that answer one (never wan2.6; only with prompt_extend)."""
    if not (req.spec.rewrites_prompt and req.prompt_extend):
        return None
    return f"{req.prompt_used} Cinematic lighting, rich detail, smooth camera movement, high quality."

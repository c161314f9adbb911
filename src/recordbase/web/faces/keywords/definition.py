"""The built-in request-log record type of the Keywords AI face, as data.

Every project gets this type on first use of the face (`RecordService.ensure_type`). It is an
ordinary record type: its JSON Schema defaults (`log_type` "chat", `status_code` 200), its
aliases for the vendor's older field names, its discriminator (a JSON text in `input`/`output`
of structured log types becomes structure), its computed fields (total tokens, cost from a
price table, status, tokens per second) and its indexes are general core features
(docs/types.md), so the native /v1 API sees the same type as `request_log`.
"""

from __future__ import annotations

from typing import Any, Final

TYPE_KEY: Final = "request_log"

LOG_TYPES: Final = (
    "chat",
    "completion",
    "response",
    "embedding",
    "transcription",
    "speech",
    "workflow",
    "agent",
    "task",
    "tool",
    "function",
    "generation",
    "handoff",
    "guardrail",
    "custom",
)
# Log types whose input/output are structured (messages, objects): a JSON text is parsed.
STRUCTURED_TYPES: Final = tuple(t for t in LOG_TYPES if t not in ("completion", "embedding"))

# USD per 1M tokens (prompt, completion); `prompt_unit_price`/`completion_unit_price` on a log
# override it. A model missing here gets no computed cost unless the log carries unit prices.
PRICES: Final[dict[str, dict[str, float]]] = {
    "gpt-4o": {"prompt": 2.5, "completion": 10.0},
    "gpt-4o-mini": {"prompt": 0.15, "completion": 0.6},
    "gpt-4.1": {"prompt": 2.0, "completion": 8.0},
    "gpt-4.1-mini": {"prompt": 0.4, "completion": 1.6},
    "gpt-4-turbo": {"prompt": 10.0, "completion": 30.0},
    "gpt-3.5-turbo": {"prompt": 0.5, "completion": 1.5},
    "o1": {"prompt": 15.0, "completion": 60.0},
    "o3-mini": {"prompt": 1.1, "completion": 4.4},
    "claude-3-5-sonnet-20241022": {"prompt": 3.0, "completion": 15.0},
    "claude-3-5-haiku-20241022": {"prompt": 0.8, "completion": 4.0},
    "claude-3-opus-20240229": {"prompt": 15.0, "completion": 75.0},
    "gemini-1.5-pro": {"prompt": 1.25, "completion": 5.0},
    "gemini-1.5-flash": {"prompt": 0.075, "completion": 0.3},
}

_STR: Final = {"type": "string"}
_NUM: Final = {"type": "number"}
_INT: Final = {"type": "integer"}
_BOOL: Final = {"type": "boolean"}
_OBJ: Final = {"type": "object"}
_ARR: Final = {"type": "array"}
_ANY: Final[dict[str, Any]] = {}
_STR_OR_OBJ: Final = {"type": ["string", "object"]}

STRING_FIELDS: Final = (
    "model",
    "customer_identifier",
    "thread_identifier",
    "custom_identifier",
    "group_identifier",
    "trace_unique_id",
    "span_name",
    "span_parent_id",
    "span_workflow_name",
    "error_message",
    "error_code",
    "environment",
    "prompt_id",
    "prompt_name",
    "note",
)
NUMBER_FIELDS: Final = (
    "cost",
    "latency",
    "time_to_first_token",
    "tokens_per_second",
    "temperature",
    "top_p",
    "frequency_penalty",
    "presence_penalty",
    "prompt_unit_price",
    "completion_unit_price",
)
OBJECT_FIELDS: Final = (
    "metadata",
    "customer_params",
    "response_format",
    "full_request",
    "full_response",
    "properties",
    "variables",
)

PROPERTIES: Final[dict[str, Any]] = {
    "input": _ANY,
    "output": _ANY,
    "log_type": {"type": "string", "enum": list(LOG_TYPES), "default": "chat"},
    "usage": {
        "type": "object",
        "properties": {"prompt_tokens": _INT, "completion_tokens": _INT, "total_tokens": _INT},
    },
    **{name: _STR for name in STRING_FIELDS},
    **{name: _NUM for name in NUMBER_FIELDS},
    **{name: _OBJ for name in OBJECT_FIELDS},
    "error_message": {"type": "string", "default": ""},
    "status_code": {"type": "integer", "minimum": 100, "maximum": 599, "default": 200},
    "status": {"type": "string", "enum": ["success", "error"]},
    "warnings": _STR_OR_OBJ,
    "tools": _ARR,
    "tool_calls": _ARR,
    "messages": _ARR,
    "tool_choice": _STR_OR_OBJ,
    "stop": {"type": ["string", "array"]},
    "max_tokens": _INT,
    "stream": _BOOL,
    "positive_feedback": _BOOL,
    "is_custom_prompt": _BOOL,
    "timestamp": {"type": "string", "format": "date-time"},
    "start_time": {"type": "string", "format": "date-time"},
}

COST = (
    "(usage.prompt_tokens * coalesce(prompt_unit_price, get(prices, model).prompt)"
    " + usage.completion_tokens * coalesce(completion_unit_price, get(prices, model).completion))"
    " / 1000000"
)

DEFINITION: Final[dict[str, Any]] = {
    "key": TYPE_KEY,
    "name": "Request log",
    "description": "LLM request logs (built in; spoken by the Keywords AI face).",
    "schema": {"type": "object", "additionalProperties": False, "properties": PROPERTIES},
    "aliases": {
        "data.generation_time": "data.latency",
        "data.ttft": "data.time_to_first_token",
        "data.prompt_messages": "data.input",
        "data.completion_message": "data.output",
        "data.prompt_tokens": "data.usage.prompt_tokens",
        "data.completion_tokens": "data.usage.completion_tokens",
        "data.total_tokens": "data.usage.total_tokens",
    },
    "computed": {
        "data.usage.total_tokens": "usage.prompt_tokens + usage.completion_tokens",
        "data.cost": COST,
        "data.status": "'error' if status_code >= 400 else 'success'",
        "data.tokens_per_second": "round(usage.completion_tokens / latency, 3)",
    },
    "constants": {"prices": PRICES},
    # Logs are ingested in bulk and looked up by filters, never by text: no search entries.
    "search": False,
    "discriminator": {
        "field": "data.log_type",
        "cases": {t: {"parse_json": ["data.input", "data.output"]} for t in STRUCTURED_TYPES},
    },
    "indexes": [
        {"name": "by_custom_identifier", "fields": ["data.custom_identifier"]},
        {"name": "by_customer_identifier", "fields": ["data.customer_identifier"]},
        {"name": "by_thread_identifier", "fields": ["data.thread_identifier"]},
        {"name": "by_trace_unique_id", "fields": ["data.trace_unique_id"]},
        {"name": "by_timestamp", "fields": ["data.timestamp"]},
    ],
}

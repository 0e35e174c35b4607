"""The multipart/mixed wire format of Google's batch endpoint (guides/batch)."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from email.parser import BytesParser, Parser
from http import HTTPStatus
from typing import Any


@dataclass
class BatchPart:
    content_id: str
    method: str
    target: str  # path and query, e.g. /calendar/v3/calendars/c/events?alt=json
    headers: dict[str, str]  # lower-case names
    body: bytes


def parse_batch(content_type: str, body: bytes) -> list[BatchPart]:
    """Split a batch request into its application/http parts; ValueError if malformed."""
    message = BytesParser().parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n"
                                       + body)
    if not message.is_multipart():
        raise ValueError("batch body is not multipart/mixed")
    parts = []
    for part in message.get_payload():
        if isinstance(part, str):
            raise ValueError("batch part without headers")
        payload = part.get_payload(decode=False)
        if not isinstance(payload, str):
            raise ValueError("nested multipart is not supported")
        request_line, _, rest = payload.lstrip("\r\n").partition("\n")
        fields = request_line.strip().split(" ")
        if len(fields) < 2:
            raise ValueError(f"bad request line {request_line!r}")
        inner = Parser().parsestr(rest)
        inner_body = inner.get_payload()
        parts.append(BatchPart(
            content_id=part.get("Content-ID", ""),
            method=fields[0].upper(),
            target=fields[1],
            headers={k.lower(): v for k, v in inner.items()},
            body=(inner_body if isinstance(inner_body, str) else "").strip().encode(),
        ))
    return parts


def response_id(content_id: str) -> str:
    inner = content_id.strip()
    inner = inner[1:-1] if inner.startswith("<") and inner.endswith(">") else inner
    return f"<response-{inner}>"


def format_batch(responses: list[tuple[str, int, dict[str, str], Any]]) -> tuple[str, bytes]:
    """(content_id, status, headers, JSON body or None) per part -> (content type, body)."""
    boundary = "batch_" + secrets.token_hex(12)
    chunks = []
    for content_id, status, headers, body in responses:
        reason = HTTPStatus(status).phrase
        lines = [f"--{boundary}", "Content-Type: application/http",
                 f"Content-ID: {response_id(content_id)}", "", f"HTTP/1.1 {status} {reason}"]
        text = "" if body is None else json.dumps(body)
        if body is not None:
            lines.append("Content-Type: application/json; charset=UTF-8")
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines += [f"Content-Length: {len(text.encode())}", "", text]
        chunks.append("\r\n".join(lines))
    payload = "\r\n".join(chunks) + f"\r\n--{boundary}--\r\n"
    return f"multipart/mixed; boundary={boundary}", payload.encode()

"""Twilio's error envelope and a payload already serialised."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answer: HTTP ``status``, Twilio ``code`` and message, and extra headers (Retry-After)."""

    def __init__(self, status: int, code: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }


def not_found(path: str) -> ApiError:
    return ApiError(404, 20404, f"The requested resource {path} was not found")


def method_not_allowed() -> ApiError:
    return ApiError(405, 20004, "Method not allowed")


class RawJSON(str):
    """A payload already serialised."""

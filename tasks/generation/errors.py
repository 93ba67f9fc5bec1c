"""What a failed model call means: transient or permanent, and in words a person can act on.

litellm wraps provider errors in its own exception types, and not always the telling one: a refused
connection arrives as an InternalServerError, the OpenAI client's "Missing credentials" too. The kinds
here are the ones records carry (`Generation.error_kind`).
"""

from __future__ import annotations


def classify(exc: BaseException) -> tuple[str, bool]:
    """(error_kind, transient) for an exception raised by litellm.completion."""
    import litellm

    def isa(*names: str) -> bool:
        types = tuple(t for n in names if isinstance(t := getattr(litellm, n, None), type))
        return bool(types) and isinstance(exc, types)

    if isa("Timeout"):
        return "timeout", True
    if isa("RateLimitError"):
        return "rate_limit", True
    if _missing_credentials(exc):
        # litellm wraps the OpenAI client's "Missing credentials" as an InternalServerError: no request
        # was sent, and none will succeed until a key is set.
        return "auth", False
    if isa("ServiceUnavailableError", "InternalServerError", "BadGatewayError"):
        # litellm reports a refused connection (a server that is down) as an InternalServerError.
        return ("unreachable" if _refused(exc) else "server_error"), True
    if isa("APIConnectionError"):
        return "unreachable", True
    if isa("AuthenticationError", "PermissionDeniedError"):
        return "auth", False
    if isa("NotFoundError"):
        return "not_found", False
    if isa("ContextWindowExceededError"):
        return "context_window", False
    if isa("ContentPolicyViolationError"):
        return "content_policy", False
    if isa("BadRequestError", "UnprocessableEntityError"):
        return ("unknown_model" if "LLM Provider NOT provided" in str(exc) else "bad_request"), False
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and (status == 429 or status >= 500):
        return "server_error", True
    return "error", False


def _missing_credentials(exc: BaseException) -> bool:
    text = str(exc)
    return "Missing credentials" in text or "api_key client option must be set" in text


def _chain(exc: BaseException):
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return
        yield seen
        seen = seen.__cause__ or seen.__context__


def unreachable_cause(exc: BaseException, where: str) -> str:
    """'connection refused at http://127.0.0.1:9/v1', 'DNS lookup failed for ...': one phrase; `where` is
    the endpoint (api_base) or, without one, the model."""
    for seen in _chain(exc):
        if isinstance(seen, ConnectionRefusedError) or "Connection refused" in str(seen):
            return f"connection refused at {where}"
        if "Name or service not known" in str(seen) or "getaddrinfo" in str(seen):
            return f"DNS lookup failed for {where}"
        if isinstance(seen, TimeoutError) or "timed out" in str(seen).lower():
            return f"connection timed out at {where}"
    return f"cannot connect to {where}: {str(exc).splitlines()[0][:200]}"


def _refused(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, ConnectionError) or "Connect" in type(seen).__name__:
            return True
        seen = seen.__cause__ or seen.__context__
    return "Connection error" in str(exc)

"""JSON log lines for every PitWall process: one object a line with time, level, logger, message,
and the session, car and lap (or user, stage...) passed as `extra=`. Nothing secret is written:
bearer tokens, JWTs, `token=` / `password=` / `secret=` values and PITWALL_SECRET itself are
replaced by "[redacted]" before the line leaves the process."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time

CONTEXT = ("session", "car", "lap", "stage", "user", "role", "source", "status", "path")
REDACTED = "[redacted]"
SECRETS = re.compile(
    r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"                       # Authorization: Bearer <token>
    r"|eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"    # any JWT
    r"|((?:token|password|secret|pitwall_session|_csrf_token)=)[^&\s\"';]+")


def redact(text: str, secret: str | None = None) -> str:
    """The text without tokens, passwords or the secret."""
    if secret:
        text = text.replace(secret, REDACTED)
    return SECRETS.sub(lambda m: (m.group(1) or m.group(2) or "") + REDACTED, text)


class JsonFormatter(logging.Formatter):
    """A log record as one JSON object (UTC time, level, logger, msg, context fields, exception)."""

    def __init__(self, process: str):
        super().__init__()
        self.process = process
        self.secret = os.environ.get("PITWALL_SECRET") or None

    def format(self, record: logging.LogRecord) -> str:
        """One log record as a JSON line, secrets redacted, so the pit wall logs can be searched."""
        doc = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
               "level": record.levelname.lower(), "process": self.process, "logger": record.name,
               "msg": record.getMessage()}
        for key in CONTEXT:
            value = getattr(record, key, None)
            if value is not None:
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(doc, default=str), self.secret)


def configure(process: str, level: int = logging.INFO) -> None:
    """JSON lines on stderr for this process (PITWALL_LOG_FORMAT=text keeps plain lines)."""
    handler = logging.StreamHandler(sys.stderr)
    if (os.environ.get("PITWALL_LOG_FORMAT") or "json").lower() == "text":
        handler.setFormatter(logging.Formatter(f"%(asctime)s {process} %(levelname)s %(message)s"))
    else:
        handler.setFormatter(JsonFormatter(process))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)

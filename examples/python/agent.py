#!/usr/bin/env python3
"""An agent for neonhub in Python, standard library only.

neonhub POSTs each attempt of a run to this server:
    {"run_id", "attempt", "input", "correlation_id", "deadline_ms",
     "steps_url", "steps_token"}
The agent sends a notification through neonhub's `slack` connector as a
journaled step (POST steps_url): if the attempt is retried or the run resumed
after a crash, the step answers its recorded result and Slack is not called
again. The agent answers the run's output as JSON (200), or
{"error": {"message": ...}} with a 4xx (not retried) or a 5xx (retried).

Run it, then point neonhub at it (see examples/neonhub.toml):
    python3 examples/python/agent.py --port 9000
    neonhub serve --config examples/neonhub.toml
    curl -s localhost:4000/v1/runs -H 'content-type: application/json' \
        -d '{"intent": "text.summarize", "input": {"text": "..."}}'
"""

import argparse
import json
import sys
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def step(request, key, connector, operation, step_input):
    """Calls `connector.operation` as step `key` of this attempt; returns its output."""
    body = json.dumps({
        "step": key,
        "connector": connector,
        "operation": operation,
        "input": step_input,
        "attempt": request["attempt"],
    }).encode()
    call = urllib.request.Request(
        request["steps_url"],
        data=body,
        method="POST",
        headers={
            "content-type": "application/json",
            "authorization": "Bearer " + request["steps_token"],
        },
    )
    try:
        with urllib.request.urlopen(call, timeout=30) as answer:
            return json.load(answer)["output"]
    except urllib.error.HTTPError as e:
        error = json.load(e).get("error", {})
        raise StepFailed(error.get("message", str(e)), error.get("retryable", False))


class StepFailed(Exception):
    def __init__(self, message, retryable):
        super().__init__(message)
        self.retryable = retryable


def summarize(request):
    """The agent's work: a summary of input.text, posted to input.channel."""
    text = request["input"].get("text")
    if not isinstance(text, str) or not text.strip():
        return 422, {"error": {"message": "the input needs a non-empty string field \"text\""}}
    words = text.split()
    summary = " ".join(words[:12]) + (" ..." if len(words) > 12 else "")
    channel = request["input"].get("channel", "#general")
    try:
        posted = step(request, "notify-channel", "slack", "post_message",
                      {"channel": channel, "text": "Summary: " + summary})
    except StepFailed as e:
        # A step that may succeed later fails the attempt with a 5xx: retried.
        return (503 if e.retryable else 422), {"error": {"message": str(e)}}
    return 200, {"summary": summary, "words": len(words), "posted": posted}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        try:
            request = json.loads(self.rfile.read(length))
            status, answer = summarize(request)
        except (ValueError, KeyError, TypeError) as e:
            status, answer = 400, {"error": {"message": "not a neonhub attempt: %s" % e}}
        body = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        sys.stderr.write("agent: " + (format % args) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9000, help="0 picks a free one")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("agent listening on http://127.0.0.1:%d/run" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

// An agent for neonhub in TypeScript: Node's own http module and fetch, no
// framework, no dependencies.
//
// neonhub POSTs each attempt of a run here:
//   {run_id, attempt, input, correlation_id, deadline_ms, steps_url, steps_token}
// The agent sends a notification through neonhub's `slack` connector as a
// journaled step (POST steps_url): on a retry or after a crash the step
// answers its recorded result and Slack is not called again. It answers the
// run's output as JSON (200), or {"error": {"message"}} with a 4xx (not
// retried) or a 5xx (retried).
//
// Run it (Node 22.6 or later strips the types itself; older: npx tsx):
//   node --experimental-strip-types examples/typescript/agent.ts --port 9001
//   neonhub serve --config examples/neonhub.toml

import { createServer, IncomingMessage, ServerResponse } from "node:http";
import { AddressInfo } from "node:net";

interface Attempt {
  run_id: string;
  attempt: number;
  input: { text?: unknown; channel?: unknown };
  correlation_id: string;
  deadline_ms: number;
  steps_url: string;
  steps_token: string;
}

class StepFailed extends Error {
  constructor(message: string, readonly retryable: boolean) {
    super(message);
  }
}

/** Calls `connector.operation` as step `key` of this attempt; returns its output. */
async function step(
  attempt: Attempt,
  key: string,
  connector: string,
  operation: string,
  input: unknown,
): Promise<unknown> {
  const answer = await fetch(attempt.steps_url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: `Bearer ${attempt.steps_token}`,
    },
    body: JSON.stringify({ step: key, connector, operation, input, attempt: attempt.attempt }),
    signal: AbortSignal.timeout(Math.max(1, attempt.deadline_ms - Date.now())),
  });
  const body = (await answer.json()) as {
    output?: unknown;
    error?: { message?: string; retryable?: boolean };
  };
  if (!answer.ok) {
    throw new StepFailed(body.error?.message ?? `HTTP ${answer.status}`, body.error?.retryable ?? false);
  }
  return body.output;
}

/** The agent's work: a summary of input.text, posted to input.channel. */
async function summarize(attempt: Attempt): Promise<[number, unknown]> {
  const text = attempt.input.text;
  if (typeof text !== "string" || text.trim() === "") {
    return [422, { error: { message: 'the input needs a non-empty string field "text"' } }];
  }
  const words = text.split(/\s+/).filter((w) => w !== "");
  const summary = words.slice(0, 12).join(" ") + (words.length > 12 ? " ..." : "");
  const channel = typeof attempt.input.channel === "string" ? attempt.input.channel : "#general";
  try {
    const posted = await step(attempt, "notify-channel", "slack", "post_message", {
      channel,
      text: `Summary: ${summary}`,
    });
    return [200, { summary, words: words.length, posted }];
  } catch (e) {
    // A step that may succeed later fails the attempt with a 5xx: retried.
    const retryable = e instanceof StepFailed && e.retryable;
    return [retryable ? 503 : 422, { error: { message: String(e instanceof Error ? e.message : e) } }];
  }
}

async function readJson(request: IncomingMessage): Promise<Attempt> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) {
    chunks.push(chunk as Buffer);
  }
  return JSON.parse(Buffer.concat(chunks).toString("utf8")) as Attempt;
}

const server = createServer(async (request: IncomingMessage, response: ServerResponse) => {
  let status: number;
  let answer: unknown;
  try {
    [status, answer] = await summarize(await readJson(request));
  } catch (e) {
    [status, answer] = [400, { error: { message: `not a neonhub attempt: ${String(e)}` } }];
  }
  const body = JSON.stringify(answer);
  response.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
  });
  response.end(body);
});

const flag = process.argv.indexOf("--port");
const port = flag >= 0 ? Number(process.argv[flag + 1]) : 9001;
server.listen(port, "127.0.0.1", () => {
  const { port: bound } = server.address() as AddressInfo;
  console.log(`agent listening on http://127.0.0.1:${bound}/run`);
});

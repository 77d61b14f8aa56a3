// The live feed, `GET /v1/events`, read with fetch() and a ReadableStream
// (EventSource cannot send the Authorization header). Parses server-sent
// events as the HTML standard does, remembers the last `id:`, and
// reconnects with `Last-Event-ID` after a drop.

import {askToken, authHeaders, token} from './api.js';

/**
 * A parser of the text/event-stream format: feed it decoded text in chunks
 * of any size; `onEvent({id, event, data})` is called once per event.
 */
export class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = '';
    this.data = [];
    this.event = '';
    this.lastEventId = null;
    this.retry = null;
    this.pendingCR = false;
  }

  push(text) {
    let chunk = text;
    // A CR at the end of the last chunk may be half of a CRLF.
    if (this.pendingCR && chunk.startsWith('\n')) chunk = chunk.slice(1);
    this.pendingCR = false;
    this.buffer += chunk;
    let start = 0;
    for (;;) {
      let end = -1;
      let next = -1;
      for (let i = start; i < this.buffer.length; i++) {
        const c = this.buffer.charCodeAt(i);
        if (c === 10) {
          end = i;
          next = i + 1;
          break;
        }
        if (c === 13) {
          end = i;
          if (i + 1 < this.buffer.length) {
            next = this.buffer.charCodeAt(i + 1) === 10 ? i + 2 : i + 1;
          } else {
            next = i + 1;
            this.pendingCR = true;
          }
          break;
        }
      }
      if (end < 0) break;
      this.line(this.buffer.slice(start, end));
      start = next;
    }
    this.buffer = this.buffer.slice(start);
  }

  line(line) {
    if (line === '') {
      this.dispatch();
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'data':
        this.data.push(value);
        break;
      case 'event':
        this.event = value;
        break;
      case 'id':
        if (!value.includes('\0')) this.lastEventId = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.retry = Number(value);
        break;
      default:
        break;
    }
  }

  dispatch() {
    if (this.data.length === 0) {
      this.event = '';
      return;
    }
    const message = {
      id: this.lastEventId,
      event: this.event || 'message',
      data: this.data.join('\n'),
    };
    this.data = [];
    this.event = '';
    this.onEvent(message);
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Follows `GET /v1/events` (from the head, then from the last id seen)
 * until `stop()`. `onEvent(event)` gets each parsed event (its `data` is the
 * JSON `{position, stream, revision, type, recorded_at, data}`);
 * `onState('connecting'|'live'|'reconnecting'|'paused'|'off', detail)` the
 * feed's state. `ready` resolves once the first connection is open (or
 * failed). `pause()` closes the connection until `resume()`, which goes on
 * from the last id seen: a browser keeps at most six connections to one
 * server, so a page that is hidden, or left for another, must not hold one.
 */
export function follow(onEvent, onState = () => {}) {
  let stopped = false;
  let paused = false;
  let wake = null;
  let controller = null;
  let lastId = null;
  let markReady;
  const ready = new Promise((resolve) => {
    markReady = resolve;
  });

  async function connectOnce() {
    controller = new AbortController();
    const headers = authHeaders({Accept: 'text/event-stream'});
    if (lastId !== null) headers['Last-Event-ID'] = lastId;
    const response = await fetch('/v1/events', {
      headers,
      signal: controller.signal,
      cache: 'no-store',
    });
    if (response.status === 401) {
      await askToken(token() !== null);
      return 'again';
    }
    if (response.status === 400 && lastId !== null) {
      // The id is not an event of this log (a log restored, say): start
      // again from the head.
      lastId = null;
      return 'again';
    }
    if (!response.ok || !response.body) {
      throw new Error(`the event feed answered ${response.status}`);
    }
    onState('live');
    markReady();
    const parser = new SseParser((message) => {
      if (message.id !== null) lastId = message.id;
      let parsed = null;
      try {
        parsed = JSON.parse(message.data);
      } catch {
        return;
      }
      onEvent({id: message.id, type: message.event, event: parsed});
    });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      parser.push(value);
    }
    return parser.retry;
  }

  (async () => {
    let delay = 500;
    onState('connecting');
    while (!stopped) {
      if (paused) {
        onState('paused');
        await new Promise((resolve) => {
          wake = resolve;
        });
        continue;
      }
      try {
        const outcome = await connectOnce();
        if (outcome === 'again') continue;
        if (typeof outcome === 'number') delay = outcome;
        else delay = 500;
      } catch (error) {
        if (stopped) break;
        if (paused) continue;
        onState('reconnecting', error.message);
        markReady();
        delay = Math.min(delay * 2, 10_000);
      }
      if (stopped) break;
      if (paused) continue;
      onState('reconnecting');
      await sleep(delay);
    }
    onState('off');
  })();

  return {
    ready,
    stop() {
      stopped = true;
      if (controller) controller.abort();
      if (wake) wake();
    },
    pause() {
      if (paused || stopped) return;
      paused = true;
      if (controller) controller.abort();
    },
    resume() {
      if (!paused) return;
      paused = false;
      if (wake) {
        wake();
        wake = null;
      }
    },
  };
}

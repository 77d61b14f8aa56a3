// One live feed for the whole page, shared by the views that follow it;
// its state is shown in the header.

import {follow} from './sse.js';

const listeners = new Set();
let feed = null;

function showState(state, detail) {
  const pill = document.getElementById('feed-state');
  if (!pill) return;
  pill.textContent = `feed: ${state}`;
  pill.dataset.state = state;
  pill.title = detail ? `The live event feed: ${detail}` : 'The live event feed (GET /v1/events)';
}

/**
 * Calls `listener({id, type, event})` for each new event until the
 * returned function is called. Resolves once the feed is open, so that a
 * page that loads after it misses nothing.
 */
export async function subscribe(listener) {
  listeners.add(listener);
  if (!feed) {
    feed = follow((message) => {
      for (const l of [...listeners]) {
        try {
          l(message);
        } catch (error) {
          console.error(error);
        }
      }
    }, showState);
    // A hidden page, or one left for another (which the browser may keep
    // in its back/forward cache), gives its connection back: with six per
    // server, five dashboards kept open left the sixth no connection for
    // its API calls, and it hung for a minute.
    document.addEventListener('visibilitychange', () => {
      if (document.hidden) feed.pause();
      else feed.resume();
    });
    window.addEventListener('pagehide', () => feed.pause());
    window.addEventListener('pageshow', () => {
      if (!document.hidden) feed.resume();
    });
  }
  await Promise.race([feed.ready, new Promise((resolve) => setTimeout(resolve, 3000))]);
  return () => listeners.delete(listener);
}

/** The run id of an event's stream (`run-<id>`), or null. */
export function runIdOf(event) {
  const stream = event && event.stream;
  return typeof stream === 'string' && stream.startsWith('run-') ? stream.slice(4) : null;
}

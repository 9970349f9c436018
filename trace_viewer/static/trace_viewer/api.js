// The viewer's only way to data: GraphQL over the staff session.
//
// Every query string lives here, so aligning with schema.graphql is one file's work, and
// the view code downstream only sees the shapes these functions return.

const config = JSON.parse(document.getElementById("agent-viewer-config").textContent);

export function viewerConfig() {
  return config;
}

export class GraphQLError extends Error {}

function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return "";
}

// The API allows a user GRAPHQL_MAX_IN_FLIGHT_PER_USER requests in flight (429 past it).
// A page opens several queries at once, and a page left a moment ago may still have some
// running on the server: so this page keeps at most `maxInFlight - 1` of its own in
// flight (one spare for another tab), queues the rest, and answers a 429 by waiting its
// Retry-After and sending again (a few times, then the error is shown).
const MAX_IN_FLIGHT = Math.max(1, (Number(config.maxInFlight) || 4) - 1);
const RETRIES_ON_429 = 5;
let inFlight = 0;
const queued = [];

async function takeSlot() {
  if (inFlight < MAX_IN_FLIGHT) {
    inFlight += 1;
    return;
  }
  await new Promise((resolve) => queued.push(resolve)); // the slot is handed over
}

function releaseSlot() {
  const next = queued.shift();
  if (next) next();
  else inFlight -= 1;
}

function retryDelayMs(response) {
  const seconds = Number(response.headers.get("Retry-After"));
  return (Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds, 10) : 1) * 1000;
}

async function post(query, variables) {
  await takeSlot();
  try {
    for (let attempt = 0; ; attempt += 1) {
      const response = await fetch(config.graphqlUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "Content-Type": "application/json",
          Accept: "application/json",
          // The cookie is the freshest token (a login in another tab rotates it).
          "X-CSRFToken": cookie("csrftoken") || config.csrfToken,
        },
        body: JSON.stringify({ query, variables }),
      });
      if (response.status !== 429 || attempt >= RETRIES_ON_429) return response;
      await new Promise((resolve) => setTimeout(resolve, retryDelayMs(response)));
    }
  } finally {
    releaseSlot();
  }
}

export async function graphql(query, variables = {}) {
  let response;
  try {
    response = await post(query, variables);
  } catch (err) {
    throw new GraphQLError(`The GraphQL endpoint could not be reached: ${err.message}`);
  }
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    // Not JSON (a proxy error page, a CSRF failure page): report the status below.
  }
  if (payload && Array.isArray(payload.errors) && payload.errors.length) {
    throw new GraphQLError(payload.errors.map((e) => e.message).join("; "));
  }
  if (!response.ok || !payload || !payload.data) {
    throw new GraphQLError(`The GraphQL endpoint answered HTTP ${response.status}.`);
  }
  return payload.data;
}

// --- queries (field names as in schema.graphql) -------------------------------------------

const TRACE_ROW_FIELDS = `
  id query status model serviceName startedAt totalDurationMs
  totalInputTokens totalOutputTokens iterationCount toolCallCount toolsUsed spanCount
`;

export const TRACE_LIST_QUERY = `
query TraceList(
  $filters: TraceFilter, $ordering: [TraceOrder!]!,
  $first: Int, $after: String, $last: Int, $before: String
) {
  traces(
    filters: $filters, ordering: $ordering,
    first: $first, after: $after, last: $last, before: $before
  ) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { ${TRACE_ROW_FIELDS} } }
  }
}`;

export const TRACE_STATS_QUERY = `
query TraceStats($filters: TraceFilter) {
  traceStats(filters: $filters) {
    count errors errorRate inputTokens outputTokens
    durationMs { p50 p95 p99 }
  }
}`;

export const FILTER_OPTIONS_QUERY = `
query FilterOptions { filterOptions { statuses models tools services } }`;

export const TRACE_DETAIL_QUERY = `
query TraceDetail($id: ID!) {
  trace(id: $id) {
    ${TRACE_ROW_FIELDS}
    endedAt
    conversation { id }
    userMessage { id content }
    aiMessage { id content }
    spanColumns {
      ids parentIds names kinds ops offsetsMs durationsMs selfDurationsMs depths
      statuses statusMessages
    }
  }
}`;

// The waterfall reads the spans column by column (Trace.spanColumns: one list per field,
// ordered by start), which the server answers several times faster than a list of span
// objects; here they become one object per span again, `order` keeping the server's order.
export function spansFromColumns(columns) {
  if (!columns) return [];
  return columns.ids.map((id, i) => ({
    id,
    parentId: columns.parentIds[i],
    name: columns.names[i],
    kind: columns.kinds[i],
    op: columns.ops[i],
    offsetMs: columns.offsetsMs[i],
    durationMs: columns.durationsMs[i],
    selfDurationMs: columns.selfDurationsMs[i],
    depth: columns.depths[i],
    status: columns.statuses[i],
    statusMessage: columns.statusMessages[i],
    order: i,
  }));
}

// Attributes, GenAI fields and events are fetched per span, on click: a 2,000-span trace
// then costs one light query to draw, not megabytes of attributes nobody looks at.
export const SPAN_DETAIL_QUERY = `
query SpanDetail($traceId: ID!, $spanId: ID!) {
  span(traceId: $traceId, spanId: $spanId) {
    id name kind op startedAt endedAt durationMs offsetMs selfDurationMs depth
    status statusMessage attributes events
    genAi {
      operation model provider inputTokens outputTokens finishReasons
      toolName toolInput toolOutput toolSuccess prompt
    }
  }
}`;

export const CONVERSATION_QUERY = `
query Conversation($id: ID!) { conversation(id: $id) { id title createdAt } }`;

// --- shapes ----------------------------------------------------------------------------------

// The kinds the waterfall colours; anything else the API may name is drawn as "other".
const KINDS = new Set([
  "agent", "iteration", "llm", "tool", "routing", "token_management",
  "database", "http", "request", "other",
]);

export function spanKind(span) {
  const kind = String(span.kind ?? "").toLowerCase();
  return KINDS.has(kind) ? kind : "other";
}

export function isError(status) {
  return String(status ?? "").toUpperCase() === "ERROR";
}

// Attributes arrive as a JSON scalar: an object, or (from some servers) its JSON text.
export function asObject(value) {
  if (value == null) return {};
  if (typeof value === "string") {
    try {
      const parsed = JSON.parse(value);
      return parsed && typeof parsed === "object" ? parsed : { value: parsed };
    } catch {
      return { value };
    }
  }
  return value;
}

export function asList(value) {
  if (value == null) return [];
  if (typeof value === "string") {
    try {
      const parsed = JSON.parse(value);
      return Array.isArray(parsed) ? parsed : [parsed];
    } catch {
      return [value];
    }
  }
  return Array.isArray(value) ? value : [value];
}

// page: { first, after } going forwards or { last, before } going backwards.
export async function fetchTracePage(filters, ordering, page) {
  const data = await graphql(TRACE_LIST_QUERY, {
    filters,
    ordering,
    first: page.first ?? null,
    after: page.after || null,
    last: page.last ?? null,
    before: page.before || null,
  });
  const conn = data.traces;
  const info = conn.pageInfo || {};
  return {
    totalCount: conn.totalCount,
    hasNextPage: Boolean(info.hasNextPage),
    hasPreviousPage: Boolean(info.hasPreviousPage),
    startCursor: info.startCursor || null,
    endCursor: info.endCursor || null,
    traces: conn.edges.map((edge) => edge.node),
  };
}

export async function fetchTraceStats(filters) {
  const data = await graphql(TRACE_STATS_QUERY, { filters });
  return data.traceStats;
}

export async function fetchFilterOptions() {
  const data = await graphql(FILTER_OPTIONS_QUERY);
  return data.filterOptions;
}

export const RETENTION_QUERY = `
query Retention { retention { days cutoff oldestKept } }`;

export async function fetchRetention() {
  const data = await graphql(RETENTION_QUERY);
  return data.retention;
}

export async function fetchTrace(id) {
  const data = await graphql(TRACE_DETAIL_QUERY, { id });
  return data.trace;
}

export async function fetchSpan(traceId, spanId) {
  const data = await graphql(SPAN_DETAIL_QUERY, { traceId, spanId });
  return data.span;
}

export async function fetchConversation(id) {
  const data = await graphql(CONVERSATION_QUERY, { id });
  return data.conversation;
}

export function urlFor(template, id) {
  return template.replace(config.idPlaceholder, encodeURIComponent(String(id)));
}

// --- span search (the Spans tab) ---------------------------------------------------------

export const SPAN_LIST_QUERY = `
query SpanList($filters: SpanFilter, $ordering: [SpanOrder!]!, $first: Int, $after: String) {
  spans(filters: $filters, ordering: $ordering, first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node {
      id traceId name kind status startedAt durationMs
      genAi { model toolName inputTokens outputTokens }
    } }
  }
}`;

// No totalCount: counting every match of a broad filter over millions of spans would cost
// more than the page; the pager only needs hasNextPage.
export async function fetchSpanPage(filters, ordering, page) {
  const data = await graphql(SPAN_LIST_QUERY, {
    filters,
    ordering,
    first: page.first ?? null,
    after: page.after || null,
  });
  const conn = data.spans;
  return {
    hasNextPage: Boolean(conn.pageInfo.hasNextPage),
    endCursor: conn.pageInfo.endCursor || null,
    spans: conn.edges.map((edge) => edge.node),
  };
}

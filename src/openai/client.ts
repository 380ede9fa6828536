// A small client for OpenAI-compatible servers (vLLM, SGLang, `sppo-native serve`), on Node's
// fetch: JSON in and out, errors that name the URL and the server's own message, a timeout, and a
// few retries with backoff for connection failures, 429 and 5xx. OPENAI_API_KEY, when set, is
// sent as the bearer token.

export class OpenAIRequestError extends Error {
  constructor(message: string, readonly status: number | null) {
    super(message);
  }
}

export interface ClientOptions {
  timeoutMs?: number;
  retries?: number;
  apiKey?: string;
}

/** The API root of a base URL: as given when it ends in /v1, else with /v1 added. */
export function apiRoot(baseUrl: string): string {
  let u: URL;
  try {
    u = new URL(baseUrl);
  } catch {
    throw new Error(`'${baseUrl}' is not a URL (expected e.g. http://localhost:8000/v1)`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`'${baseUrl}': only http and https URLs are supported`);
  const path = u.pathname.replace(/\/+$/, '');
  return `${u.origin}${path.endsWith('/v1') ? path : `${path}/v1`}`;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class OpenAIClient {
  readonly root: string;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly apiKey: string | undefined;

  constructor(baseUrl: string, o: ClientOptions = {}) {
    this.root = apiRoot(baseUrl);
    this.timeoutMs = o.timeoutMs ?? 600_000;
    this.retries = o.retries ?? 3;
    this.apiKey = o.apiKey ?? process.env.OPENAI_API_KEY;
  }

  private async request(method: 'GET' | 'POST', path: string, body?: unknown, retries = this.retries): Promise<unknown> {
    const url = `${this.root}${path}`;
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(this.timeoutMs) });
      } catch (err) {
        const e = err as Error & { cause?: { code?: string; message?: string } };
        const why = e.name === 'TimeoutError' ? `no answer within ${this.timeoutMs / 1000} s` : (e.cause?.code ?? e.cause?.message ?? e.message);
        if (attempt < retries) {
          await sleep(250 * 2 ** attempt);
          continue;
        }
        throw new OpenAIRequestError(`${method} ${url}: ${why}`, null);
      }
      const text = await res.text();
      if (res.ok) {
        try {
          return JSON.parse(text);
        } catch {
          throw new OpenAIRequestError(`${method} ${url}: the answer is not JSON: ${text.slice(0, 200)}`, res.status);
        }
      }
      if ((res.status === 429 || res.status >= 500) && attempt < retries) {
        await sleep(250 * 2 ** attempt);
        continue;
      }
      let message = text.slice(0, 500);
      try {
        const j = JSON.parse(text) as { error?: { message?: string } | string; message?: string; detail?: unknown };
        message = typeof j.error === 'string' ? j.error : (j.error?.message ?? j.message ?? (j.detail !== undefined ? JSON.stringify(j.detail) : message));
      } catch {
        // not JSON: the text as it came
      }
      throw new OpenAIRequestError(`${method} ${url}: HTTP ${res.status}: ${message}`, res.status);
    }
  }

  post(path: string, body: unknown): Promise<unknown> {
    return this.request('POST', path, body);
  }

  /** The ids of the served models (GET /v1/models). */
  async models(retries?: number): Promise<string[]> {
    const r = (await this.request('GET', '/models', undefined, retries)) as { data?: { id?: unknown }[] };
    if (!Array.isArray(r?.data)) throw new OpenAIRequestError(`GET ${this.root}/models: the answer has no 'data' list`, 200);
    return r.data.map((m) => String(m.id));
  }
}

// Gzipped JSON fixtures (test/fixtures/charsmap, test/fixtures/bpe), read whole.
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

export function readGzJson(file: string): Record<string, unknown> {
  return JSON.parse(gunzipSync(readFileSync(file)).toString('utf8')) as Record<string, unknown>;
}

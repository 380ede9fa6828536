// One TensorBoard event file that a run appends to as it goes, and picks up again when the run is
// resumed. Each event has a key (its first tag's group and its step, e.g. "train:17"); writing a
// key the file already holds with the same values does nothing (a rerun re-reporting finished
// work), and with other values cuts the file back to that event first (steps redone after a
// resume replace the ones a killed run wrote), so the file always ends as an uninterrupted run's.
// A torn last record (a kill mid-write) is cut off when the file is opened.
import { closeSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { frameRecord, readRecords } from './tfrecord.js';
import { decodeEvent, encodeFileVersion, encodeScalars, type ScalarEvent } from './tfevents.js';

const SUFFIX = '.sppo-native';

interface Entry {
  key: string;
  offset: number;
  values: [string, number][];
}

export function eventKey(values: readonly [string, number][], step: number): string {
  const first = values[0]?.[0] ?? '';
  return `${first.split('/')[0]}:${step}`;
}

const sameValues = (a: readonly [string, number][], b: readonly [string, number][]): boolean =>
  a.length === b.length &&
  a.every(([tag, v], i) => {
    const [tb, w] = b[i]!;
    const x = Math.fround(v);
    const y = Math.fround(w);
    return tag === tb && (x === y || (Number.isNaN(x) && Number.isNaN(y)));
  });

export class EventFileWriter {
  private entries: Entry[] = [];
  private readonly byKey = new Map<string, number>();
  private size: number;
  private fd: number | null;

  private constructor(readonly file: string, fd: number, size: number) {
    this.fd = fd;
    this.size = size;
  }

  /** Opens the run's event file in `dir` (created with a file-version event when there is none). */
  static open(dir: string, log: (message: string) => void = () => {}): EventFileWriter {
    mkdirSync(dir, { recursive: true });
    const mine = readdirSync(dir).filter((n) => n.includes('tfevents') && n.endsWith(SUFFIX)).sort();
    if (mine.length === 0) {
      const file = join(dir, `events.out.tfevents.${Math.floor(Date.now() / 1000)}.${hostname()}${SUFFIX}`);
      const fd = openSync(file, 'w+');
      const w = new EventFileWriter(file, fd, 0);
      w.append(frameRecord(encodeFileVersion(Date.now() / 1000)));
      return w;
    }
    const file = join(dir, mine[mine.length - 1]!);
    const buf = readFileSync(file);
    const { records, validBytes, corrupt } = readRecords(buf);
    const fd = openSync(file, 'r+');
    if (validBytes < buf.length) {
      ftruncateSync(fd, validBytes);
      log(`${file}: ${corrupt ? 'a corrupt record' : 'a torn last record'} (${buf.length - validBytes} bytes) cut off`);
    }
    const w = new EventFileWriter(file, fd, validBytes);
    for (const r of records) {
      let e;
      try {
        e = decodeEvent(r.data);
      } catch {
        continue; // not one of ours: left as it is
      }
      if (e.values.length === 0) continue;
      w.remember({ key: eventKey(e.values, e.step), offset: r.offset, values: e.values });
    }
    return w;
  }

  private remember(e: Entry): void {
    this.byKey.set(e.key, this.entries.length);
    this.entries.push(e);
  }

  private append(record: Buffer): void {
    if (this.fd === null) throw new Error(`${this.file}: the event file is closed`);
    let off = 0;
    while (off < record.length) off += writeSync(this.fd, record, off, record.length - off, this.size + off);
    this.size += record.length;
  }

  /** Writes one event of scalars (see the file comment for keys). */
  write(e: ScalarEvent): void {
    if (e.values.length === 0) return;
    const key = eventKey(e.values, e.step);
    const at = this.byKey.get(key);
    if (at !== undefined) {
      const old = this.entries[at]!;
      if (sameValues(old.values, e.values)) return;
      ftruncateSync(this.fd!, old.offset);
      this.size = old.offset;
      for (const dropped of this.entries.splice(at)) this.byKey.delete(dropped.key);
    }
    const offset = this.size;
    this.append(frameRecord(encodeScalars(e)));
    this.remember({ key, offset, values: e.values.map(([t, v]) => [t, v]) });
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

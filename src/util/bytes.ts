// Byte counts as people read them (the native core's format_bytes: binary units, two decimals),
// and the sizes people type ("141GB", "80 GiB", "512MiB"; a bare number is GiB).

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v.toFixed(0)} ${units[u]}` : `${v.toFixed(2)} ${units[u]}`;
}

const UNITS: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };

/** Parses "141GB", "80 GiB", "0.5TiB" or a bare number of GiB; throws naming `what`. */
export function parseBytes(text: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(String(text));
  const unit = m ? (m[2] || 'gib').toLowerCase() : '';
  if (!m || !Object.hasOwn(UNITS, unit)) throw new Error(`${what} must be a size like 141GB, 80GiB or 512MiB (a bare number is GiB), got '${text}'`);
  const v = Number(m[1]) * UNITS[unit]!;
  if (!(v > 0)) throw new Error(`${what} must be more than 0 (got '${text}')`);
  return Math.floor(v);
}

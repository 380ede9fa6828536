// The version of the code a rank runs, for the rendezvous to refuse ranks that differ: the
// package version, and a hash of the compiled JavaScript and of the native addon this process
// loads (two installs of the same version built differently are different code).
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { packageRoot } from '../native/addon.js';

let cached: string | undefined;

export function codeVersion(): string {
  if (cached) return cached;
  const h = createHash('sha256');
  const pkg = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version?: string };
  h.update(`version ${pkg.version ?? '?'}\n`);
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.js')) files.push(p);
    }
  };
  if (existsSync(join(packageRoot, 'dist'))) walk(join(packageRoot, 'dist'));
  const addon = process.env.SPPO_ADDON_PATH || join(packageRoot, 'build', 'Release', 'sppo_native.node');
  if (existsSync(addon)) files.push(addon);
  for (const f of files) {
    h.update(`${relative(packageRoot, f)}\n`);
    h.update(readFileSync(f));
  }
  cached = `${pkg.version ?? '?'}+${h.digest('hex').slice(0, 16)}`;
  return cached;
}

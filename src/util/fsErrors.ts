// File-system errors in the user's words: what could not be done to which path, and why, instead
// of Node's `ENOSPC: no space left on device, write` (which names no file when it comes from a write).
const WORDS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted (a read-only or special file system?)',
  EROFS: 'the file system is read-only',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'the disk quota is exceeded',
  ENOTDIR: 'a part of the path is a file, not a folder',
  EEXIST: 'a file of that name exists',
  ENOENT: 'no such file or folder',
  EISDIR: 'it is a folder, not a file',
  EMFILE: 'too many open files',
  EIO: 'an input/output error of the device',
  EFBIG: 'the file is too large for the file system',
};

export function fsErrorCode(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** "no space left on the device (ENOSPC)", or the error's own message when it has no known code. */
export function fsErrorWords(err: unknown): string {
  const code = fsErrorCode(err);
  if (code && WORDS[code]) return `${WORDS[code]} (${code})`;
  return err instanceof Error ? err.message : String(err);
}

/** Whether `err` is a system error (it has an errno code) rather than one of ours. */
export function isFsError(err: unknown): boolean {
  const code = fsErrorCode(err);
  return code !== undefined && /^E[A-Z]+$/.test(code);
}

/** An Error saying `cannot <action> <path>: <why>`, keeping the code. */
export function fsError(err: unknown, action: string, path: string): Error {
  const e = new Error(`cannot ${action} ${path}: ${fsErrorWords(err)}`) as NodeJS.ErrnoException;
  const code = fsErrorCode(err);
  if (code) e.code = code;
  return e;
}

// A flag that takes one value, given more than once (`-k 6 -k 4`): yargs collects the values into
// a list, which would then be reported as a wrong type ("must be an integer (got [6,4])"). Refused
// here with the flag and its values named.
export function repeatedFlag(argv: Record<string, unknown>, listFlags: ReadonlySet<string>): string | null {
  for (const [key, value] of Object.entries(argv)) {
    if (key === '_' || key === '$0' || listFlags.has(key) || !Array.isArray(value)) continue;
    // yargs sets both spellings (max-prompts, maxPrompts): name the dashed one, as typed.
    if (/[A-Z]/.test(key) && Object.keys(argv).some((k) => k !== key && k.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()) === key)) continue;
    const flag = key.length === 1 ? `-${key}` : `--${key}`;
    return `${flag} was given ${value.length} times (${value.map((v) => String(v)).join(', ')}); give it once`;
  }
  return null;
}

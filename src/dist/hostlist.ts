// SLURM's compressed host lists ("gpu[01-04,07],login1"): the first host, which SLURM launches
// rank 0 on, is the rendezvous address when MASTER_ADDR is not set.
export function firstHost(list: string): string {
  const s = list.trim();
  if (s === '') throw new Error('empty SLURM node list');
  let depth = 0;
  let end = s.length;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '[') depth++;
    else if (s[i] === ']') depth--;
    else if (s[i] === ',' && depth === 0) {
      end = i;
      break;
    }
  }
  const first = s.slice(0, end);
  const m = /^([^[]*)\[([^\]]+)\](.*)$/.exec(first);
  if (!m) return first;
  const range = m[2]!.split(',')[0]!;
  const lo = range.split('-')[0]!;
  return `${m[1]}${lo}${m[3]}`;
}

import type { CommandModule } from 'yargs';
import { formatInfo, systemInfo } from '../info.js';

export const infoCommand: CommandModule<object, { json: boolean }> = {
  command: 'info',
  describe: 'Print what this build has (backends, CUDA architectures, cuBLASLt, NCCL) and the devices it sees',
  builder: (y) => y.option('json', { type: 'boolean', default: false, describe: 'Print JSON instead of text' }),
  handler: (args) => {
    const info = systemInfo();
    console.log(args.json ? JSON.stringify(info, null, 2) : formatInfo(info));
  },
};
